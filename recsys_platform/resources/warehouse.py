"""The warehouse: where the GA4 export, the product DB replica and the platform's tables live.

Every transform is BigQuery Standard SQL (the dialect GA4 users know). SQL names tables by a logical
dataset — `analytics.events_*` (the GA4 export), `product_db.items` (the product DB replica),
`recsys.ga4_events` (the platform's own tables) — and the warehouse maps those to physical names:
BigQuery projects/datasets in production, DuckDB files on the embedded default, where the statement is
transpiled with sqlglot. Parameters are always bound (`@name`), never formatted into the text.

Wildcard shards (`analytics.events_*`) are pruned by the `@first_suffix` / `@last_suffix` parameters:
BigQuery through `_TABLE_SUFFIX BETWEEN @first_suffix AND @last_suffix` in the SQL, DuckDB by expanding
the wildcard only to the shards in that range (DuckDB has no wildcard tables; this expansion is the one
piece no library does for us).
"""

from __future__ import annotations

import datetime as dt
import random
import re
import time
from abc import abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlglot
from dagster import ConfigurableResource
from dagster_gcp import BigQueryResource
from pydantic import Field, PrivateAttr
from sqlglot import exp

LOGICAL_DATASETS = ("analytics", "product_db", "recsys")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SHARD_PREFIX = "events_"


def read_sql(anchor_file: str, name: str) -> str:
    """The text of `sql/<name>` beside the module `anchor_file` (pass `__file__`)."""
    path = Path(anchor_file).with_name("sql") / name
    if not path.is_file():
        raise FileNotFoundError(f"SQL file {path} does not exist")
    return path.read_text()


def _used_params(duckdb_sql: str, params: Mapping[str, Any] | None) -> dict:
    """The subset of `params` a DuckDB statement names (`$name`): DuckDB rejects unused ones."""
    return {k: v for k, v in (params or {}).items() if re.search(rf"\${re.escape(k)}\b", duckdb_sql)}


def validate_identifier(name: str, what: str = "identifier") -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"{what} {name!r} is not a plain SQL identifier")
    return name


@dataclass(frozen=True)
class ExportShard:
    """One daily table of the GA4 export, as listed by the export's `__TABLES__` meta-table."""

    table_id: str
    last_modified_ms: int
    row_count: int

    @property
    def suffix(self) -> str:
        return self.table_id[len(_SHARD_PREFIX):]

    @property
    def day(self) -> dt.date:
        return dt.datetime.strptime(self.suffix, "%Y%m%d").date()


def shard_suffix(day: dt.date) -> str:
    return day.strftime("%Y%m%d")


LIST_SHARDS_SQL = """
SELECT table_id, last_modified_time, row_count
FROM analytics.__TABLES__
WHERE STARTS_WITH(table_id, 'events_') AND NOT STARTS_WITH(table_id, 'events_intraday_')
ORDER BY table_id
"""


class Warehouse(ConfigurableResource):
    """One interface over DuckDB (embedded default) and BigQuery (production)."""

    ga4_property_id: str = Field(description="GA4 property id: the export dataset is analytics_<id>.")

    @property
    def export_dataset(self) -> str:
        if not self.ga4_property_id.isdigit():
            raise ValueError(f"GA4 property id must be numeric, got {self.ga4_property_id!r}")
        return f"analytics_{self.ga4_property_id}"

    # -- what each engine implements --------------------------------------------------------------
    @abstractmethod
    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        """Run a SELECT and return its (small) result."""

    @abstractmethod
    def iter_batches(
        self, sql: str, params: Mapping[str, Any] | None = None, batch_rows: int = 100_000
    ) -> Iterator[pa.RecordBatch]:
        """Stream a SELECT's result in Arrow batches, never holding the whole result."""

    @abstractmethod
    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run a statement (DDL or DML) on the platform's tables."""

    @abstractmethod
    def replace_partitions(
        self,
        table: str,
        select_sql: str,
        params: Mapping[str, Any],
        partition_column: str,
        first_day: dt.date,
        last_day: dt.date,
        cluster_by: Sequence[str] = (),
    ) -> int:
        """Atomically replace the rows of `recsys.<table>` whose `partition_column` lies in
        [first_day, last_day] with the result of `select_sql`; create the table on first use.
        Returns the number of rows now in that range."""

    @abstractmethod
    def list_export_shards(self) -> list[ExportShard]:
        """The export's daily shards in ONE metadata query (the sensor calls this every tick)."""

    @abstractmethod
    def table_exists(self, dataset: str, table: str) -> bool: ...

    # -- shared helpers ----------------------------------------------------------------------------
    def shard_exists(self, day: dt.date) -> bool:
        return self.table_exists("analytics", f"{_SHARD_PREFIX}{shard_suffix(day)}")

    def shard_name(self, day: dt.date) -> str:
        return f"{self.export_dataset}.{_SHARD_PREFIX}{shard_suffix(day)}"


def _shards_from_table(table: pa.Table) -> list[ExportShard]:
    rows = table.to_pylist()
    return [
        ExportShard(r["table_id"], int(r["last_modified_time"]), int(r["row_count"] or 0))
        for r in rows
        if re.fullmatch(r"events_\d{8}", r["table_id"])
    ]


# ------------------------------------------------------------------------------------------------
# DuckDB: the embedded default
# ------------------------------------------------------------------------------------------------


class DuckDBWarehouse(Warehouse):
    """Three DuckDB files: the export and the product DB attached read-only, the platform's own tables
    read-write. DuckDB lets a single process open a file while it writes, so connections are short and
    retry on a lock with jittered backoff; warehouse-writing steps also share one Dagster pool."""

    warehouse_path: str
    export_path: str
    product_db_path: str
    platform_schema: str = "recsys"
    lock_timeout_seconds: float = 300.0
    # With the run process itself, a 1M-event day then peaks under 2 GB (bench/ga4_pipeline.py).
    memory_limit: str = "1536MB"
    threads: int = 2

    _catalogs = {"analytics": "ga4_export", "product_db": "product_db", "recsys": "warehouse"}

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

    def translate(self, sql: str, params: Mapping[str, Any] | None = None, con=None) -> str:
        """BigQuery SQL with logical dataset names -> DuckDB SQL with physical names."""
        statements = sqlglot.parse(sql, read="bigquery")
        out = []
        for tree in statements:
            if tree is None:
                continue
            for table in list(tree.find_all(exp.Table)):
                dataset = table.args.get("db")
                if dataset is None:
                    continue  # CTE names and unnest aliases
                dataset_name = dataset.name
                if dataset_name not in LOGICAL_DATASETS:
                    raise ValueError(
                        f"table {table.sql('bigquery')} must be qualified with one of {LOGICAL_DATASETS}"
                    )
                catalog, schema = self._physical(dataset_name)
                if table.name.endswith("*"):
                    table.replace(self._expand_wildcard(table, catalog, schema, params or {}, con))
                    continue
                table.set("catalog", exp.to_identifier(catalog))
                table.set("db", exp.to_identifier(schema))
            _unnest_subqueries_to_list_functions(tree)
            _cross_join_unnest_to_select_list(tree)
            out.append(tree.sql("duckdb"))
        return ";\n".join(out)

    def _expand_wildcard(self, table: exp.Table, catalog: str, schema: str, params, con) -> exp.Expression:
        prefix = table.name[:-1]
        first = str(params.get("first_suffix", ""))
        last = str(params.get("last_suffix", "99999999"))
        rows = con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = ? AND schema_name = ? "
            "AND starts_with(table_name, ?)",
            [catalog, schema, prefix],
        ).fetchall()
        # Only plain identifiers become part of the statement (the names come from the export file).
        suffixes = sorted(
            name[len(prefix):] for (name,) in rows
            if first <= name[len(prefix):] <= last and _IDENTIFIER.match(name)
        )
        alias = table.alias or table.name.rstrip("*")
        if not suffixes:
            raise LookupError(
                f"no table matches {schema}.{table.name} for suffixes {first}..{last}"
            )
        branches = " UNION ALL BY NAME ".join(
            f"SELECT *, '{suffix}' AS _TABLE_SUFFIX FROM {catalog}.{schema}.{prefix}{suffix}"
            for suffix in suffixes
        )
        return exp.Subquery(this=sqlglot.parse_one(branches, read="duckdb"), alias=exp.TableAlias(
            this=exp.to_identifier(alias)))

    def _relation(self, con, sql: str, params: Mapping[str, Any] | None):
        translated = self.translate(sql, params, con)
        return con.sql(translated, params=_used_params(translated, params))

    # interface -----------------------------------------------------------------------------------
    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        with self._connect() as con:
            return self._relation(con, sql, params).to_arrow_table()

    def iter_batches(self, sql, params=None, batch_rows: int = 100_000) -> Iterator[pa.RecordBatch]:
        with self._connect() as con:
            yield from self._relation(con, sql, params).to_arrow_reader(batch_rows)

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        with self._connect() as con:
            translated = self.translate(sql, params, con)
            con.execute(translated, _used_params(translated, params))

    def replace_partitions(self, table, select_sql, params, partition_column, first_day, last_day,
                           cluster_by=()) -> int:
        validate_identifier(table, "table")
        validate_identifier(partition_column, "partition column")
        for column in cluster_by:
            validate_identifier(column, "cluster column")
        target = f"warehouse.{self.platform_schema}.{table}"
        with self._connect() as con:
            select = self.translate(select_sql, params, con)
            bound = _used_params(select, params)
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(f"CREATE TABLE IF NOT EXISTS {target} AS SELECT * FROM ({select}) WHERE false",
                            bound)
                con.execute(
                    f"DELETE FROM {target} WHERE {partition_column} BETWEEN $first_day AND $last_day",
                    {"first_day": first_day, "last_day": last_day},
                )
                # Sorting by the cluster columns is DuckDB's clustering: zone maps then let readers of
                # one event_name skip the other row groups.
                order = f" ORDER BY {', '.join(cluster_by)}" if cluster_by else ""
                con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM ({select}){order}", bound)
                (rows,) = con.execute(
                    f"SELECT COUNT(*) FROM {target} WHERE {partition_column} BETWEEN $first_day AND $last_day",
                    {"first_day": first_day, "last_day": last_day},
                ).fetchall()[0]
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
            exists = con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'ga4_export' "
                "AND schema_name = ? AND table_name = '__TABLES__'",
                [self.export_dataset],
            ).fetchall()[0][0]
            if not exists:
                return []
            return _shards_from_table(self._relation(con, LIST_SHARDS_SQL, None).to_arrow_table())

    def table_exists(self, dataset: str, table: str) -> bool:
        catalog, schema = self._physical(dataset)
        with self._connect(with_platform=dataset == "recsys", attach_export=dataset == "analytics",
                           attach_product_db=dataset == "product_db") as con:
            (count,) = con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND schema_name = ? "
                "AND table_name = ?",
                [catalog, schema, table],
            ).fetchall()[0]
        return bool(count)


def _cross_join_unnest_to_select_list(tree: exp.Expression) -> None:
    """Rewrite `FROM t AS e CROSS JOIN UNNEST(e.items) AS item` into
    `FROM (SELECT *, UNNEST(e.items) AS item FROM t AS e) AS e` for DuckDB.

    Same rows; but DuckDB plans a lateral UNNEST whose elements are filtered or joined later as a
    correlated (delim) join, ~30x slower on a 1M-event GA4 day, while a select-list UNNEST is a plain
    vectorised operator. `item.field` still resolves: `item` becomes a struct column of `e`."""
    for select in list(tree.find_all(exp.Select)):
        source = select.args.get("from_")
        joins = select.args.get("joins") or []
        if source is None or len(joins) != 1 or not isinstance(source.this, exp.Table):
            continue
        join = joins[0]
        unnest = join.this
        if not isinstance(unnest, exp.Unnest) or join.args.get("on") or len(unnest.expressions) != 1:
            continue
        column, alias = unnest.expressions[0], unnest.args.get("alias")
        table_alias = source.this.alias_or_name
        if alias is None or not isinstance(column, exp.Column) or column.table != table_alias:
            continue
        name = alias.columns[0].name if alias.columns else alias.name
        subquery = sqlglot.parse_one(
            f"(SELECT *, UNNEST({column.sql('duckdb')}) AS {name} FROM {source.this.sql('duckdb')}) AS {table_alias}",
            read="duckdb",
        )
        source.set("this", subquery)
        select.set("joins", None)


def _unnest_subqueries_to_list_functions(tree: exp.Expression) -> None:
    """Rewrite GA4's idiom `(SELECT f(p) FROM UNNEST(arr) AS p WHERE cond(p))` into DuckDB list functions.

    The two mean the same, but DuckDB runs the scalar subquery as a correlated join per row (about 100x
    slower on a GA4 day); `LIST_FILTER`/`LIST_TRANSFORM` stay vectorised. `COUNT(*)` becomes the filtered
    list's length."""
    for subquery in list(tree.find_all(exp.Subquery)):
        select = subquery.this
        if not isinstance(select, exp.Select) or len(select.expressions) != 1:
            continue
        source = select.args.get("from_")
        if source is None or not isinstance(source.this, exp.Unnest):
            continue
        if any(select.args.get(k) for k in ("joins", "group", "having", "order", "limit", "qualify")):
            continue
        unnest = source.this
        alias = unnest.args.get("alias")
        if alias is None or len(unnest.expressions) != 1:
            continue
        name = alias.columns[0].name if alias.columns else alias.name
        array = unnest.expressions[0].sql("duckdb")
        where = select.args.get("where")
        filtered = f"LIST_FILTER({array}, LAMBDA {name} : {where.this.sql('duckdb')})" if where else array
        projection = select.expressions[0]
        projection = projection.this if isinstance(projection, exp.Alias) else projection
        if isinstance(projection, exp.Count) and isinstance(projection.this, exp.Star):
            replacement = f"COALESCE(LEN({filtered}), 0)"
        else:
            replacement = f"LIST_TRANSFORM({filtered}, LAMBDA {name} : {projection.sql('duckdb')})[1]"
        subquery.replace(sqlglot.parse_one(replacement, read="duckdb"))


# ------------------------------------------------------------------------------------------------
# BigQuery: production
# ------------------------------------------------------------------------------------------------


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
    """BigQuery through dagster-gcp's `BigQueryResource`. The SQL runs as written; only dataset names
    are qualified. The merged table is partitioned by day and clustered, and partition replacement
    runs as one multi-statement transaction, so readers never see a day half replaced."""

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

    def _physical(self, dataset: str, project: str) -> tuple[str, str]:
        if dataset == "analytics":
            return self.export_project or project, self.export_dataset
        if dataset == "product_db":
            return project, self.product_dataset
        if dataset == "recsys":
            return project, self.platform_dataset
        raise ValueError(f"unknown dataset {dataset!r}; SQL must use one of {LOGICAL_DATASETS}")

    def translate(self, sql: str, project: str) -> str:
        out = []
        for tree in sqlglot.parse(sql, read="bigquery"):
            if tree is None:
                continue
            for table in tree.find_all(exp.Table):
                dataset = table.args.get("db")
                if dataset is None:
                    continue
                if dataset.name not in LOGICAL_DATASETS:
                    raise ValueError(
                        f"table {table.sql('bigquery')} must be qualified with one of {LOGICAL_DATASETS}"
                    )
                catalog, schema = self._physical(dataset.name, project)
                table.set("catalog", exp.to_identifier(catalog))
                table.set("db", exp.to_identifier(schema))
            out.append(tree.sql("bigquery"))
        return ";\n".join(out)

    def _job_config(self, params: Mapping[str, Any] | None):
        from google.cloud import bigquery

        return bigquery.QueryJobConfig(
            query_parameters=[_query_parameter(k, v) for k, v in (params or {}).items()]
        )

    def _run(self, client, sql: str, params):
        job = client.query(
            self.translate(sql, self._project(client)),
            job_config=self._job_config(params),
            location=self.location,
        )
        return job.result()

    def query(self, sql, params=None) -> pa.Table:
        with self._client() as client:
            return self._run(client, sql, params).to_arrow(create_bqstorage_client=False)

    def iter_batches(self, sql, params=None, batch_rows: int = 100_000) -> Iterator[pa.RecordBatch]:
        with self._client() as client:
            job = client.query(self.translate(sql, self._project(client)),
                               job_config=self._job_config(params), location=self.location)
            rows = job.result(page_size=batch_rows)
            for batch in rows.to_arrow_iterable(create_bqstorage_client=False):
                yield batch

    def execute(self, sql, params=None) -> None:
        with self._client() as client:
            self._run(client, sql, params)

    def replace_partitions(self, table, select_sql, params, partition_column, first_day, last_day,
                           cluster_by=()) -> int:
        validate_identifier(table, "table")
        validate_identifier(partition_column, "partition column")
        for column in cluster_by:
            validate_identifier(column, "cluster column")
        with self._client() as client:
            project = self._project(client)
            select = self.translate(select_sql, project)
            target = f"`{project}.{self.platform_dataset}.{table}`"
            cluster = f" CLUSTER BY {', '.join(cluster_by)}" if cluster_by else ""
            # DDL is not allowed inside a BigQuery transaction: create first, then swap the range.
            create = (
                f"CREATE TABLE IF NOT EXISTS {target} PARTITION BY {partition_column}{cluster} "
                f"AS SELECT * FROM ({select}) WHERE FALSE"
            )
            client.query(create, job_config=self._job_config(params), location=self.location).result()
            swap = (
                "BEGIN TRANSACTION;\n"
                f"DELETE FROM {target} WHERE {partition_column} BETWEEN @first_day AND @last_day;\n"
                f"INSERT INTO {target} SELECT * FROM ({select});\n"
                "COMMIT TRANSACTION;"
            )
            all_params = {**params, "first_day": first_day, "last_day": last_day}
            client.query(swap, job_config=self._job_config(all_params), location=self.location).result()
            count = client.query(
                f"SELECT COUNT(*) AS n FROM {target} WHERE {partition_column} BETWEEN @first_day AND @last_day",
                job_config=self._job_config({"first_day": first_day, "last_day": last_day}),
                location=self.location,
            ).result()
            return int(next(iter(count))[0])

    def list_export_shards(self) -> list[ExportShard]:
        with self._client() as client:
            return _shards_from_table(self._run(client, LIST_SHARDS_SQL, None).to_arrow(
                create_bqstorage_client=False))

    def table_exists(self, dataset: str, table: str) -> bool:
        from google.api_core.exceptions import NotFound

        with self._client() as client:
            project, schema = self._physical(dataset, self._project(client))
            try:
                client.get_table(f"{project}.{schema}.{validate_identifier(table, 'table')}")
            except NotFound:
                return False
            return True
