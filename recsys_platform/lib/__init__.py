"""Machinery the code location's definitions use: the warehouse engines and their SQL dialect layer, the
lake, AWS and Personalize clients, partitions, table statistics, and the resources of each deployment."""
