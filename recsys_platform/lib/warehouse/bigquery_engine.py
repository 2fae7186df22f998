"""The production warehouse: BigQuery through dagster-gcp's `BigQueryResource`.

The SQL runs as written; only dataset names are qualified. The merged table is partitioned by day and
clustered, and partition replacement runs as one multi-statement transaction, so readers never see a
day half replaced. This module is imported only when the deployment is `aws`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pyarrow as pa
from dagster_gcp import BigQueryResource
from pydantic import Field, PrivateAttr

from recsys_platform.lib.warehouse.dialect import LOGICAL_DATASETS, to_bigquery
from recsys_platform.lib.warehouse.interface import (
    LIST_SHARDS_SQL,
    ExportShard,
    PartitionReplacement,
    Warehouse,
    shards_from_rows,
)


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


class BigQueryWarehouse(Warehouse):
    """BigQuery: the GA4 export dataset, the product DB replica dataset and the platform's dataset."""

    bigquery: BigQueryResource
    platform_dataset: str = "recsys"
    product_dataset: str = "product_db"
    export_project: str | None = Field(
        default=None, description="Project of the GA4 export if it differs from the platform's."
    )
    location: str | None = None

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
            if dataset == "analytics":
                return self.export_project or project, self.export_dataset
            if dataset == "product_db":
                return project, self.product_dataset
            if dataset == "recsys":
                return project, self.platform_dataset
            raise ValueError(f"unknown dataset {dataset!r}; SQL must use one of {LOGICAL_DATASETS}")

        return physical

    def _job_config(self, params: Mapping[str, Any] | None):
        from google.cloud import bigquery

        return bigquery.QueryJobConfig(
            query_parameters=[_query_parameter(k, v) for k, v in (params or {}).items()]
        )

    def _run(self, client, sql: str, params, **result_options):
        job = client.query(
            to_bigquery(sql, self._physical_in(self._project(client))),
            job_config=self._job_config(params),
            location=self.location,
        )
        return job.result(**result_options)

    def query(self, sql, params=None) -> pa.Table:
        with self._client() as client:
            return self._run(client, sql, params).to_arrow(create_bqstorage_client=False)

    def iter_batches(self, sql, params=None, batch_rows: int = 100_000) -> Iterator[pa.RecordBatch]:
        with self._client() as client:
            rows = self._run(client, sql, params, page_size=batch_rows)
            for batch in rows.to_arrow_iterable(bqstorage_client=None):
                yield batch

    def replace_partitions(self, table, select_sql, params, partition_column, first_day, last_day,
                           cluster_by=()) -> int:
        job = PartitionReplacement(table, select_sql, params, partition_column, first_day, last_day, tuple(cluster_by))
        with self._client() as client:
            project = self._project(client)
            select = to_bigquery(job.select_sql, self._physical_in(project))
            target = f"`{project}.{self.platform_dataset}.{job.table}`"
            cluster = f" CLUSTER BY {', '.join(job.cluster_by)}" if job.cluster_by else ""
            # DDL is not allowed inside a BigQuery transaction: create first, then swap the range.
            create = (
                f"CREATE TABLE IF NOT EXISTS {target} PARTITION BY {job.partition_column}{cluster} "
                f"AS SELECT * FROM ({select}) WHERE FALSE"
            )
            client.query(create, job_config=self._job_config(job.params), location=self.location).result()
            swap = (
                "BEGIN TRANSACTION;\n"
                f"DELETE FROM {target} WHERE {job.partition_column} BETWEEN @first_day AND @last_day;\n"
                f"INSERT INTO {target} SELECT * FROM ({select});\n"
                "COMMIT TRANSACTION;"
            )
            all_params = {**job.params, **job.range_params}
            client.query(swap, job_config=self._job_config(all_params), location=self.location).result()
            count = client.query(
                f"SELECT COUNT(*) AS n FROM {target} WHERE {job.partition_column} BETWEEN @first_day AND @last_day",
                job_config=self._job_config(job.range_params),
                location=self.location,
            ).result()
            return int(next(iter(count))[0])

    def list_export_shards(self) -> list[ExportShard]:
        with self._client() as client:
            table = self._run(client, LIST_SHARDS_SQL, None).to_arrow(create_bqstorage_client=False)
            return shards_from_rows(table.to_pylist())
