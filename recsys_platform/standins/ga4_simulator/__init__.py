"""The GA4 export simulator: synthetic or replayed GA4 BigQuery export tables plus the shop's product DB,
written in the embedded default's DuckDB files (`<home>/ga4_export.duckdb`: schema `analytics_<property>`
with `events_YYYYMMDD`, `events_intraday_YYYYMMDD`, `events_fresh_YYYYMMDD` tables and a `__TABLES__`
listing; `<home>/product_db.duckdb`: schema `product_db` in the simulator or the Datastream layout).

Entry points: `simulation.simulate(SimulationConfig)`; `late_events.reexport_shard`; `export_store` (list,
read, write, drop tables; `finish_streaming`); `odd_rows` (one production oddity at a time, for fault
injection); `real_logs.read_real_log`. The contracts: `ga4_schema` (table kinds, names, columns per date)
and `product_store` (both product DB layouts)."""
