"""The GA4 export simulator: synthetic or replayed GA4 BigQuery export shards plus the shop's product DB,
written in the embedded default's DuckDB files. Entry points: `simulation.simulate`,
`late_events.reexport_shard`, `export_store` (list, read, drop shards) and `real_logs.read_real_log`."""
