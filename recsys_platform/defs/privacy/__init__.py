"""Privacy duties that span the graph: the right to erasure."""
