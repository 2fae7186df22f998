"""The embedded default's warehouse: three DuckDB files behind the warehouse interface.

The export and the product DB are attached read-only, the platform's own tables read-write. DuckDB lets
a single process open a file while it writes, so connections are short and retry on a lock with
jittered backoff; warehouse-writing steps also share one Dagster pool.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa

from recsys_platform.lib.warehouse.dialect import LOGICAL_DATASETS, to_duckdb
from recsys_platform.shared.bigquery_on_duckdb import used_params
from recsys_platform.lib.warehouse.interface import (
    LIST_SHARDS_SQL,
    ExportShard,
    PartitionReplacement,
    Warehouse,
    shards_from_rows,
)


class DuckDBWarehouse(Warehouse):
    """Three DuckDB files: the GA4 export, the product DB and the platform's tables."""

    warehouse_path: str
    export_path: str
    product_db_path: str
    platform_schema: str = "recsys"
    lock_timeout_seconds: float = 300.0
    # With the run process itself, a 1M-event day then peaks under 2 GB (bench/ga4_pipeline.py).
    memory_limit: str = "1536MB"
    threads: int = 2

    # connections ---------------------------------------------------------------------------------
    @contextmanager
    def _connect(self, *, with_platform: bool = True, attach_export: bool = True,
                 attach_product_db: bool = True):
        import duckdb

        deadline = time.monotonic() + self.lock_timeout_seconds
        delay = 0.05
        while True:
            con = None
            try:
                # The platform's file is attached under a fixed name, whatever the file is called.
                con = duckdb.connect(":memory:", config=self._duckdb_config())
                if with_platform:
                    Path(self.warehouse_path).parent.mkdir(parents=True, exist_ok=True)
                    con.execute("ATTACH ? AS warehouse", [self.warehouse_path])
                if attach_export:
                    self._attach(con, self.export_path, "ga4_export")
                if attach_product_db:
                    self._attach(con, self.product_db_path, "product_db")
                if with_platform:
                    con.execute(f"CREATE SCHEMA IF NOT EXISTS warehouse.{self.platform_schema}")
                break
            except duckdb.IOException as error:
                if con is not None:
                    con.close()
                if "lock" not in str(error).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 2.0)
        try:
            yield con
        finally:
            con.close()

    def _duckdb_config(self) -> dict:
        # Never fetch an extension at run time: icu and json ship inside the duckdb wheel.
        return {
            "autoinstall_known_extensions": False,
            "memory_limit": self.memory_limit,
            "threads": self.threads,
            "preserve_insertion_order": False,
        }

    @staticmethod
    def _attach(con, path: str, alias: str) -> None:
        if not Path(path).exists():
            # An empty in-memory catalog keeps SQL that names it valid; reading a table from it fails
            # with "table does not exist", which names what is missing.
            con.execute(f"ATTACH ':memory:' AS {alias}")
            return
        con.execute("ATTACH ? AS " + alias + " (READ_ONLY)", [path])

    # SQL translation -----------------------------------------------------------------------------
    def _physical(self, dataset: str) -> tuple[str, str]:
        if dataset == "analytics":
            return "ga4_export", self.export_dataset
        if dataset == "product_db":
            return "product_db", "product_db"
        if dataset == "recsys":
            return "warehouse", self.platform_schema
        raise ValueError(f"unknown dataset {dataset!r}; SQL must use one of {LOGICAL_DATASETS}")

    def _translate(self, con, sql: str, params: Mapping[str, Any] | None) -> str:
        def list_tables(catalog: str, schema: str, prefix: str) -> list[str]:
            rows = con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = ? AND schema_name = ? "
                "AND starts_with(table_name, ?)",
                [catalog, schema, prefix],
            ).fetchall()
            return [name for (name,) in rows]

        return to_duckdb(sql, self._physical, list_tables, params)

    def _relation(self, con, sql: str, params: Mapping[str, Any] | None):
        translated = self._translate(con, sql, params)
        return con.sql(translated, params=used_params(translated, params))

    # interface -----------------------------------------------------------------------------------
    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        with self._connect() as con:
            return self._relation(con, sql, params).to_arrow_table()

    def iter_batches(self, sql, params=None, batch_rows: int = 100_000) -> Iterator[pa.RecordBatch]:
        with self._connect() as con:
            yield from self._relation(con, sql, params).to_arrow_reader(batch_rows)

    def replace_partitions(self, table, select_sql, params, partition_column, first_day, last_day,
                           cluster_by=()) -> int:
        job = PartitionReplacement(table, select_sql, params, partition_column, first_day, last_day, tuple(cluster_by))
        target = f"warehouse.{self.platform_schema}.{job.table}"
        in_range = f"{job.partition_column} BETWEEN $first_day AND $last_day"
        with self._connect() as con:
            select = self._translate(con, job.select_sql, job.params)
            bound = used_params(select, job.params)
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(f"CREATE TABLE IF NOT EXISTS {target} AS SELECT * FROM ({select}) WHERE false", bound)
                con.execute(f"DELETE FROM {target} WHERE {in_range}", job.range_params)
                # Sorting by the cluster columns is DuckDB's clustering: zone maps then let readers of
                # one event_name skip the other row groups.
                order = f" ORDER BY {', '.join(job.cluster_by)}" if job.cluster_by else ""
                con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM ({select}){order}", bound)
                (rows,) = con.execute(f"SELECT COUNT(*) FROM {target} WHERE {in_range}", job.range_params).fetchall()[0]
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return int(rows)

    def list_export_shards(self) -> list[ExportShard]:
        # Only the export file is opened: a run writing the platform's tables never blocks the sensor.
        if not Path(self.export_path).exists():
            return []
        with self._connect(with_platform=False, attach_product_db=False) as con:
            (exists,) = con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'ga4_export' "
                "AND schema_name = ? AND table_name = '__TABLES__'",
                [self.export_dataset],
            ).fetchall()[0]
            if not exists:
                return []
            return shards_from_rows(self._relation(con, LIST_SHARDS_SQL, None).to_arrow_table().to_pylist())
