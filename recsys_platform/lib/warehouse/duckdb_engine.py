"""The embedded default's warehouse: three DuckDB files behind the warehouse interface.

The export and the product DB are attached read-only, the platform's own tables read-write. DuckDB lets
a single process open a file while it writes, so connections are short and retry on a lock with
jittered backoff; warehouse-writing steps also share one Dagster pool.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recsys_platform.lib.sql_files import validate_identifier
from recsys_platform.lib.warehouse.dialect import LOGICAL_DATASETS, to_duckdb
from recsys_platform.lib.warehouse.export_tables import (
    ExportListing,
    export_dataset_name,
    list_export_tables_sql,
    listing_from_rows,
)
from recsys_platform.lib.warehouse.interface import PartitionReplacement, StagedPartitions, Warehouse
from recsys_platform.shared.bigquery_on_duckdb import used_params
from recsys_platform.shared.duckdb_files import Attachment, FileLender

if TYPE_CHECKING:  # pyarrow is imported by duckdb when a result is fetched, not when definitions load
    import pyarrow as pa


def field_additions(existing, incoming, path: str = "") -> list[tuple[str, str]]:
    """(column path, type) of every field `incoming` has and `existing` lacks, at any depth (struct fields,
    list elements), for `ALTER TABLE ... ADD COLUMN path type`: DuckDB would otherwise drop such fields
    silently when inserting a wider struct into a narrower one."""
    if existing.id == "struct" and incoming.id == "struct":
        have = dict(existing.children)
        added = []
        for name, kind in incoming.children:
            child_path = f"{path}.{_quoted(name)}" if path else _quoted(name)
            if name not in have:
                added.append((child_path, str(kind)))
            else:
                added.extend(field_additions(have[name], kind, child_path))
        return added
    if existing.id == "list" and incoming.id == "list":
        return field_additions(existing.child, incoming.child, f"{path}.element")
    return []


# DuckDB type -> the BigQuery type name it stands for (a naive TIMESTAMP is BigQuery's DATETIME).
_BIGQUERY_TYPE_NAMES = {
    "BIGINT": "INT64", "INTEGER": "INT64", "SMALLINT": "INT64", "TINYINT": "INT64", "HUGEINT": "INT64",
    "UBIGINT": "INT64", "UINTEGER": "INT64", "USMALLINT": "INT64", "UTINYINT": "INT64",
    "DOUBLE": "FLOAT64", "FLOAT": "FLOAT64", "VARCHAR": "STRING", "BOOLEAN": "BOOL", "DATE": "DATE",
    "TIMESTAMP": "DATETIME", "TIMESTAMP_NS": "DATETIME", "TIMESTAMP_MS": "DATETIME", "TIMESTAMP_S": "DATETIME",
    "TIMESTAMP WITH TIME ZONE": "TIMESTAMP",
}


def bigquery_type_name(duckdb_type: str) -> str:
    if duckdb_type.startswith("DECIMAL"):
        return "NUMERIC"
    return _BIGQUERY_TYPE_NAMES.get(duckdb_type, duckdb_type)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# The platform's DuckDB databases of this process, lent to one warehouse call at a time.
_DATABASES = FileLender()


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
        files = []
        if with_platform:
            Path(self.warehouse_path).parent.mkdir(parents=True, exist_ok=True)
            # The platform's file is attached under a fixed name, whatever the file is called.
            files.append(Attachment(self.warehouse_path, "warehouse", read_only=False))
        for wanted, path, alias in ((attach_export, self.export_path, "ga4_export"),
                                    (attach_product_db, self.product_db_path, "product_db")):
            if wanted:
                # A missing file is an empty in-memory catalog: SQL that names it stays valid, and reading
                # a table from it fails with "table does not exist", which names what is missing.
                files.append(Attachment(path if Path(path).exists() else None, alias))
        with _DATABASES.attached(self._duckdb_config(), files, self.lock_timeout_seconds) as con:
            if with_platform:
                con.execute(f"CREATE SCHEMA IF NOT EXISTS warehouse.{self.platform_schema}")
            yield con

    def _duckdb_config(self) -> dict:
        # Never fetch an extension at run time: icu and json ship inside the duckdb wheel.
        return {
            "autoinstall_known_extensions": False,
            # The common-subplan optimizer materialises a subquery a statement reads twice, which undoes
            # the CTE inlining of `dialect.to_duckdb`: the merge's wide event rows (2 GB for a 1M-event day)
            # were spilled to disk and read back twice, doubling the merge's time (bench/ga4_pipeline.py).
            "disabled_optimizers": "common_subplan",
            "memory_limit": self.memory_limit,
            "threads": self.threads,
            "preserve_insertion_order": False,
        }

    # SQL translation -----------------------------------------------------------------------------
    def _physical(self, dataset: str) -> tuple[str, str]:
        if dataset == "analytics" or dataset.startswith("analytics_"):
            # Every property's export dataset is a schema of the one export file.
            return "ga4_export", self.export_dataset_of(dataset)
        if dataset == "product_db":
            return "product_db", "product_db"
        if dataset in ("recsys", "staged"):
            # Staged rows are the target's own rows inside the replacing transaction (see replace_partitions).
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
        with self._connect() as con, self._timed():
            return self._relation(con, sql, params).to_arrow_table()

    def iter_batches(self, sql, params=None, batch_rows: int = 100_000) -> Iterator[pa.RecordBatch]:
        with self._connect() as con:
            with self._timed():
                reader = self._relation(con, sql, params).to_arrow_reader(batch_rows)
            while True:
                with self._timed():
                    batch = next(reader, None)
                if batch is None:
                    return
                yield batch

    def replace_partitions(self, table, select_sql, params, partition_column, first_day, last_day,
                           cluster_by=(), validate=None) -> int:
        """One transaction: delete the range, insert the new rows, validate them, commit. The validation
        reads the inserted rows inside the transaction (`staged.<table>`), so the day is written once; a
        refusal rolls everything back and no other process ever saw the new rows."""
        job = PartitionReplacement(table, select_sql, params, partition_column, first_day, last_day, tuple(cluster_by))
        target = f"warehouse.{self.platform_schema}.{job.table}"
        in_range = f"{job.partition_column} BETWEEN $first_day AND $last_day"
        with self._connect() as con, self._timed():
            select = self._translate(con, job.select_sql, job.params)
            bound = used_params(select, job.params)
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(f"CREATE TABLE IF NOT EXISTS {target} AS SELECT * FROM ({select}) WHERE false", bound)
                self._add_new_fields(con, target, select, bound)
                con.execute(f"DELETE FROM {target} WHERE {in_range}", job.range_params)
                # No ORDER BY for the cluster columns: sorting a 1M-event day's wide rows cost ~15 s to save the
                # refined step ~1 s per table (zone maps). BigQuery clusters the table instead (CLUSTER BY).
                con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM ({select})", bound)
                (rows,) = con.execute(f"SELECT COUNT(*) FROM {target} WHERE {in_range}", job.range_params).fetchall()[0]
                if validate is not None:
                    validate(StagedPartitions(
                        rows=int(rows), query=lambda sql, query_params=None: self._relation(con, sql, query_params)
                        .to_arrow_table()))
                con.execute("COMMIT")
            except BaseException:
                # A failed COMMIT (disk full) has already rolled back; the ROLLBACK's own "no transaction
                # is active" must not replace the disk error as the step's error.
                import duckdb  # already loaded by _connect

                with suppress(duckdb.TransactionException):
                    con.execute("ROLLBACK")
                raise
        return int(rows)

    def has_table(self, table) -> bool:
        with self._connect(attach_export=False, attach_product_db=False) as con:
            (exists,) = con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'warehouse' AND schema_name = ? "
                "AND table_name = ?", [self.platform_schema, validate_identifier(table, "table")]).fetchall()[0]
        return bool(exists)

    def delete_rows(self, table, where_sql, params=None) -> int:
        if not self.has_table(table):
            return 0
        with self._connect() as con, self._timed():
            statement = self._translate(con, f"DELETE FROM recsys.{table} WHERE {where_sql}", params)
            (deleted,) = con.execute(statement, used_params(statement, params)).fetchall()[0]
        return int(deleted)

    @staticmethod
    def _add_new_fields(con, target: str, select: str, bound: dict) -> None:
        """The export gained a field (a column, or a field of a nested record such as `items`): add it to the
        table first, so the new day keeps it and older days read it as NULL."""
        existing = dict(zip(con.sql(f"SELECT * FROM {target} LIMIT 0").columns,
                            con.sql(f"SELECT * FROM {target} LIMIT 0").types))
        incoming = con.sql(f"SELECT * FROM ({select}) LIMIT 0", params=bound)
        for name, kind in zip(incoming.columns, incoming.types):
            if name not in existing:
                con.execute(f"ALTER TABLE {target} ADD COLUMN {_quoted(name)} {kind}")
                continue
            for path, added in field_additions(existing[name], kind, _quoted(name)):
                con.execute(f"ALTER TABLE {target} ADD COLUMN {path} {added}")

    def list_export_tables(self, property_id=None) -> ExportListing:
        property_id = self._export_property(property_id)
        dataset = export_dataset_name(property_id)
        # Only the export file is opened: a run writing the platform's tables never blocks the sensor.
        if not Path(self.export_path).exists():
            return ExportListing()
        with self._connect(with_platform=False, attach_product_db=False) as con:
            (exists,) = con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'ga4_export' "
                "AND schema_name = ? AND table_name = '__TABLES__'",
                [dataset],
            ).fetchall()[0]
            if not exists:
                return ExportListing()
            listing = self._relation(con, list_export_tables_sql(property_id), None)
            return listing_from_rows(listing.to_arrow_table().to_pylist())

    def export_columns(self, table_ids, property_id=None) -> dict[str, set[str]]:
        dataset = export_dataset_name(self._export_property(property_id))
        if not Path(self.export_path).exists() or not table_ids:
            return {}
        with self._connect(with_platform=False, attach_product_db=False) as con:
            rows = con.execute(
                "SELECT table_name, column_name FROM duckdb_columns() WHERE database_name = 'ga4_export' "
                "AND schema_name = ? AND list_contains(?, table_name)",
                [dataset, list(table_ids)],
            ).fetchall()
        columns: dict[str, set[str]] = {}
        for table, column in rows:
            columns.setdefault(table, set()).add(column)
        return columns

    def replica_columns(self, tables) -> dict[str, dict[str, str]]:
        if not Path(self.product_db_path).exists() or not tables:
            return {}
        with self._connect(with_platform=False, attach_export=False) as con:
            rows = con.execute(
                "SELECT table_name, column_name, data_type FROM duckdb_columns() WHERE database_name = 'product_db' "
                "AND schema_name = 'product_db' AND list_contains(?, table_name)",
                [list(tables)],
            ).fetchall()
        columns: dict[str, dict[str, str]] = {}
        for table, column, kind in rows:
            columns.setdefault(table, {})[column] = bigquery_type_name(kind)
        return columns
