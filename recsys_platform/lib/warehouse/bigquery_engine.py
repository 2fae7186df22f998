"""The production warehouse: BigQuery through dagster-gcp's `BigQueryResource`.

The SQL runs as written; only dataset names are qualified. Partition replacement validates before it
swaps: the new rows go to a staging table (expiring after a day, so a crashed run leaves nothing behind
for long), the caller's checks read them there, and only then is each day written over its partition
(`table$YYYYMMDD`, WRITE_TRUNCATE). A day's write is atomic, days of a range never conflict with one
another or with other tables' writes (unlike multi-statement transactions, which BigQuery cancels when
they touch the same table), and ALLOW_FIELD_ADDITION lets a field GA4 adds to a nested record (such as
`items.item_params`) join the table instead of failing every later day. Imported only when the deployment
is `aws`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pyarrow as pa
import sqlglot
from dagster_gcp import BigQueryResource
from pydantic import Field, PrivateAttr
from sqlglot import exp

from recsys_platform.lib.sql_files import validate_identifier
from recsys_platform.lib.warehouse.dialect import LOGICAL_DATASETS, to_bigquery
from recsys_platform.lib.warehouse.export_tables import (
    EXPORT_TABLE_PREFIX,
    ExportListing,
    export_dataset_name,
    list_export_tables_sql,
    listing_from_rows,
)
from recsys_platform.lib.warehouse.interface import PartitionReplacement, StagedPartitions, Warehouse

STAGING_TTL_HOURS = 24
# BigQuery's legacy type names in table schemas -> the Standard SQL names the platform uses.
_STANDARD_TYPE_NAMES = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL", "RECORD": "STRUCT"}


def _query_parameter(name: str, value: Any):
    from google.cloud import bigquery

    if isinstance(value, bool):
        return bigquery.ScalarQueryParameter(name, "BOOL", value)
    if isinstance(value, int):
        return bigquery.ScalarQueryParameter(name, "INT64", value)
    if isinstance(value, float):
        return bigquery.ScalarQueryParameter(name, "FLOAT64", value)
    if isinstance(value, dt.datetime):
        return bigquery.ScalarQueryParameter(name, "TIMESTAMP", value)
    if isinstance(value, dt.date):
        return bigquery.ScalarQueryParameter(name, "DATE", value)
    if isinstance(value, str):
        return bigquery.ScalarQueryParameter(name, "STRING", value)
    if isinstance(value, (list, tuple)):
        kind = "INT64" if value and isinstance(value[0], int) else "STRING"
        return bigquery.ArrayQueryParameter(name, kind, list(value))
    raise TypeError(f"parameter @{name}: unsupported type {type(value).__name__}")


def _rename_staged(sql: str, tables: Mapping[str, str]) -> str:
    """`staged.<table>` -> `recsys.<staging table>` (the staging tables live in the platform's dataset)."""
    trees = [t for t in sqlglot.parse(sql, read="bigquery") if t is not None]
    for tree in trees:
        for table in tree.find_all(exp.Table):
            if table.args.get("db") is not None and table.db == "staged":
                if table.name not in tables:
                    raise ValueError(f"staged.{table.name}: only {sorted(tables)} is staged here")
                table.set("db", exp.to_identifier("recsys"))
                table.set("this", exp.to_identifier(tables[table.name]))
    return ";\n".join(t.sql("bigquery") for t in trees)


class BigQueryWarehouse(Warehouse):
    """BigQuery: the GA4 export dataset, the product DB replica dataset and the platform's dataset."""

    bigquery: BigQueryResource
    platform_dataset: str = "recsys"
    product_dataset: str = "product_db"
    export_project: str | None = Field(
        default=None, description="Project of the GA4 export (every property's) if it differs from the platform's."
    )
    location: str | None = Field(default=None, description="BigQuery location of the datasets, e.g. EU or US.")

    _client_override: Any = PrivateAttr(default=None)

    @contextmanager
    def _client(self):
        if self._client_override is not None:  # tests inject a client with a faked transport
            yield self._client_override
            return
        with self.bigquery.get_client() as client:
            yield client

    def _project(self, client) -> str:
        return self.bigquery.project or client.project

    def _physical_in(self, project: str):
        def physical(dataset: str) -> tuple[str, str]:
            if dataset == "analytics" or dataset.startswith("analytics_"):
                return self.export_project or project, self.export_dataset_of(dataset)
            if dataset == "product_db":
                return project, self.product_dataset
            if dataset == "recsys":
                return project, self.platform_dataset
            raise ValueError(f"unknown dataset {dataset!r}; SQL must use one of {LOGICAL_DATASETS}")

        return physical

    def _job_config(self, params: Mapping[str, Any] | None, **options):
        from google.cloud import bigquery

        return bigquery.QueryJobConfig(
            query_parameters=[_query_parameter(k, v) for k, v in (params or {}).items()], **options
        )

    def _run(self, client, sql: str, params, **result_options):
        job = client.query(
            to_bigquery(sql, self._physical_in(self._project(client))),
            job_config=self._job_config(params),
            location=self.location,
        )
        return job.result(**result_options)

    def query(self, sql, params=None) -> pa.Table:
        with self._timed(), self._client() as client:
            return self._run(client, sql, params).to_arrow(create_bqstorage_client=False)

    def iter_batches(self, sql, params=None, batch_rows: int = 100_000) -> Iterator[pa.RecordBatch]:
        with self._client() as client:
            with self._timed():
                rows = self._run(client, sql, params, page_size=batch_rows)
            for batch in rows.to_arrow_iterable(bqstorage_client=None):
                yield batch

    def replace_partitions(self, table, select_sql, params, partition_column, first_day, last_day,
                           cluster_by=(), validate=None) -> int:
        from google.cloud import bigquery

        job = PartitionReplacement(table, select_sql, params, partition_column, first_day, last_day, tuple(cluster_by))
        with self._timed(), self._client() as client:
            project = self._project(client)
            physical = self._physical_in(project)
            staging = f"{job.table}__staged_{uuid.uuid4().hex[:12]}"
            staging_id = f"{project}.{self.platform_dataset}.{staging}"
            target_id = f"{project}.{self.platform_dataset}.{job.table}"
            select = to_bigquery(job.select_sql, physical)
            client.query(
                f"CREATE TABLE `{staging_id}` OPTIONS (expiration_timestamp = "
                f"TIMESTAMP_ADD(CURRENT_TIMESTAMP(), INTERVAL {STAGING_TTL_HOURS} HOUR)) AS {select}",
                job_config=self._job_config(job.params), location=self.location,
            ).result()
            try:
                in_range = (f"SELECT COUNT(*) AS n FROM `{staging_id}` "
                            f"WHERE {job.partition_column} BETWEEN @first_day AND @last_day")
                rows = int(next(iter(client.query(in_range, job_config=self._job_config(job.range_params),
                                                  location=self.location).result()))[0])
                # Created (empty) before validating: checks compare the staged days with the stored ones.
                self._create_target(client, target_id, staging_id, job)
                if validate is not None:
                    validate(StagedPartitions(rows=rows, query=lambda sql, query_params=None: self.query(
                        _rename_staged(sql, {job.table: staging}), query_params)))
                for day in _days(job.first_day, job.last_day):
                    # One atomic write per day partition; a field the day adds joins the table's schema.
                    config = self._job_config(
                        {"day": day},
                        destination=f"{target_id}${day:%Y%m%d}",
                        write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
                        schema_update_options=[bigquery.SchemaUpdateOption.ALLOW_FIELD_ADDITION,
                                               bigquery.SchemaUpdateOption.ALLOW_FIELD_RELAXATION],
                        time_partitioning=bigquery.TimePartitioning(field=job.partition_column),
                        clustering_fields=list(job.cluster_by) or None,
                    )
                    client.query(f"SELECT * FROM `{staging_id}` WHERE {job.partition_column} = @day",
                                 job_config=config, location=self.location).result()
            finally:
                client.delete_table(staging_id, not_found_ok=True)
        return rows

    def has_table(self, table) -> bool:
        from google.api_core.exceptions import NotFound

        with self._client() as client:
            try:
                client.get_table(f"{self._project(client)}.{self.platform_dataset}.{validate_identifier(table, 'table')}")
            except NotFound:
                return False
            return True

    def delete_rows(self, table, where_sql, params=None) -> int:
        if not self.has_table(table):
            return 0
        with self._timed(), self._client() as client:
            job = client.query(to_bigquery(f"DELETE FROM recsys.{table} WHERE {where_sql}",
                                           self._physical_in(self._project(client))),
                               job_config=self._job_config(params), location=self.location)
            job.result()
            return int(job.num_dml_affected_rows or 0)

    def _create_target(self, client, target_id: str, staging_id: str, job: PartitionReplacement) -> None:
        """The day-partitioned, clustered table, created empty from the staged rows' schema on first use."""
        cluster = f" CLUSTER BY {', '.join(job.cluster_by)}" if job.cluster_by else ""
        client.query(
            f"CREATE TABLE IF NOT EXISTS `{target_id}` PARTITION BY {job.partition_column}{cluster} "
            f"AS SELECT * FROM `{staging_id}` WHERE FALSE",
            location=self.location,
        ).result()

    def list_export_tables(self, property_id=None) -> ExportListing:
        from google.api_core.exceptions import NotFound

        sql = list_export_tables_sql(self._export_property(property_id))
        with self._client() as client:
            try:
                table = self._run(client, sql, None).to_arrow(create_bqstorage_client=False)
            except NotFound:
                # GA4 creates a property's dataset with its first export: until then it has no tables (as
                # on DuckDB), and a day it should have is named by the merge, not by a sensor crash.
                return ExportListing()
            return listing_from_rows(table.to_pylist())

    def export_columns(self, table_ids, property_id=None) -> dict[str, set[str]]:
        logical = export_dataset_name(self._export_property(property_id))
        with self._client() as client:
            project, dataset = self._physical_in(self._project(client))(logical)
            return {table_id: {field.name for field in client.get_table(f"{project}.{dataset}.{table_id}").schema}
                    for table_id in table_ids}

    def wildcard_columns(self, property_id=None, prefix=EXPORT_TABLE_PREFIX) -> set[str] | None:
        from google.cloud import bigquery

        logical = export_dataset_name(self._export_property(property_id))
        with self._client() as client:
            project, dataset = self._physical_in(self._project(client))(logical)
            newest = list(client.query_and_wait(
                f"SELECT table_id FROM `{project}.{dataset}.__TABLES__` WHERE STARTS_WITH(table_id, @prefix) "
                "ORDER BY creation_time DESC, table_id DESC LIMIT 1",
                job_config=bigquery.QueryJobConfig(
                    query_parameters=[bigquery.ScalarQueryParameter("prefix", "STRING", prefix)])))
            if not newest:
                return None
            return {field.name for field in client.get_table(f"{project}.{dataset}.{newest[0]['table_id']}").schema}

    def replica_columns(self, tables) -> dict[str, dict[str, str]]:
        from google.api_core.exceptions import NotFound

        with self._client() as client:
            project, dataset = self._physical_in(self._project(client))("product_db")
            columns = {}
            for table in tables:
                try:
                    schema = client.get_table(f"{project}.{dataset}.{table}").schema
                except NotFound:
                    continue
                columns[table] = {f.name: _STANDARD_TYPE_NAMES.get(f.field_type, f.field_type) for f in schema}
            return columns


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
