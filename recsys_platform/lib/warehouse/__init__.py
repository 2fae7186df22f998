"""The warehouse: one interface (`interface`), two engines (`duckdb_engine`, `bigquery_engine`), and the
dialect layer that maps the platform's BigQuery SQL onto each (`dialect`)."""
