"""The GA4 half of the graph: the export, the merged raw table, the refined item tables and their sensor."""
