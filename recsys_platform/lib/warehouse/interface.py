"""The warehouse interface every asset sees: where the GA4 export, the product DB replica and the
platform's own tables live. Two engines implement it: `duckdb_engine` (the embedded default) and
`bigquery_engine` (production); `dialect` maps the SQL between them.

Every transform is BigQuery Standard SQL that names tables by a logical dataset — `analytics.events_*`
(the GA4 export), `product_db.items` (the product DB replica), `recsys.ga4_events` (the platform's
tables) — and each engine maps those to physical names. Parameters are always bound (`@name`), never
formatted into the text.
"""

from __future__ import annotations

import datetime as dt
import time
from abc import abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from dagster import ConfigurableResource
from pydantic import Field, PrivateAttr

from recsys_platform.lib.sql_files import validate_identifier
from recsys_platform.lib.warehouse.dialect import PROPERTY_DATASET
from recsys_platform.lib.warehouse.export_tables import EXPORT_TABLE_PREFIX, ExportListing, export_dataset_name



class RefusedPartitions(Exception):
    """The staged rows failed a blocking check: nothing was replaced. The message names the checks."""


@dataclass(frozen=True)
class StagedPartitions:
    """The replacement rows of a range, written but not yet swapped in. `query` runs SQL in which the
    logical dataset `staged` names them (`staged.<table>`, filter by the range), alongside `recsys.*`."""

    rows: int
    query: Callable[[str, Mapping[str, Any] | None], Any]


@dataclass(frozen=True)
class PartitionReplacement:
    """What `replace_partitions` is asked to do, validated once for both engines."""

    table: str
    select_sql: str
    params: Mapping[str, Any]
    partition_column: str
    first_day: dt.date
    last_day: dt.date
    cluster_by: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        validate_identifier(self.table, "table")
        validate_identifier(self.partition_column, "partition column")
        for column in self.cluster_by:
            validate_identifier(column, "cluster column")

    @property
    def range_params(self) -> dict:
        return {"first_day": self.first_day, "last_day": self.last_day}


class Warehouse(ConfigurableResource):
    """One interface over DuckDB (embedded default) and BigQuery (production)."""

    ga4_property_id: str = Field(description="GA4 property id: the export dataset is analytics_<id>. The first "
                                             "property when the deployment reads several.")
    additional_ga4_property_ids: list[str] = Field(
        default=[], description="Further GA4 properties merged with the first (datasets analytics_<id>, in the "
                                "same export project).")

    _sql_seconds: float = PrivateAttr(default=0.0)

    @property
    def sql_seconds(self) -> float:
        """Seconds spent in the engine since this resource was created: a step reports the difference, so
        the benchmark can set a run's wall time against the SQL work it did."""
        return self._sql_seconds

    @contextmanager
    def _timed(self):
        started = time.perf_counter()
        try:
            yield
        finally:
            self._sql_seconds += time.perf_counter() - started

    @property
    def property_ids(self) -> tuple[str, ...]:
        """Every GA4 property the deployment reads, the first first."""
        ids = (self.ga4_property_id, *self.additional_ga4_property_ids)
        for property_id in ids:
            export_dataset_name(property_id)  # validates
        repeated = sorted({p for p in ids if ids.count(p) > 1})
        if repeated:
            raise ValueError(f"GA4 property id(s) {', '.join(repeated)} listed more than once")
        return ids

    @property
    def several_properties(self) -> bool:
        return bool(self.additional_ga4_property_ids)

    @property
    def export_dataset(self) -> str:
        """The first property's export dataset (what the logical dataset `analytics` names)."""
        return export_dataset_name(self.ga4_property_id)

    def export_dataset_of(self, logical: str) -> str:
        """The export dataset a logical dataset names: `analytics` (the first property) or
        `analytics_<id>` of one of the deployment's properties."""
        if logical == "analytics":
            return self.export_dataset
        match = PROPERTY_DATASET.match(logical)
        if match is None or match.group(1) not in self.property_ids:
            raise ValueError(f"{logical} is not the export of one of this deployment's GA4 properties "
                             f"({', '.join(self.property_ids)})")
        return logical

    def export_table_name(self, table_id: str, property_id: str | None = None) -> str:
        return f"{export_dataset_name(self._export_property(property_id))}.{table_id}"

    def _export_property(self, property_id: str | None) -> str:
        """`property_id` (default: the first property), refused unless the deployment reads it."""
        chosen = property_id or self.ga4_property_id
        if chosen not in self.property_ids:
            raise ValueError(f"GA4 property {chosen!r} is not one of this deployment's "
                             f"({', '.join(self.property_ids)})")
        return chosen

    @abstractmethod
    def query(self, sql: str, params: Mapping[str, Any] | None = None):
        """Run a SELECT and return its (small) result as a pyarrow Table."""

    @abstractmethod
    def iter_batches(self, sql: str, params: Mapping[str, Any] | None = None,
                     batch_rows: int = 100_000) -> Iterator:
        """Stream a SELECT's result in pyarrow RecordBatches, never holding the whole result."""

    @abstractmethod
    def replace_partitions(self, table: str, select_sql: str, params: Mapping[str, Any], partition_column: str,
                           first_day: dt.date, last_day: dt.date, cluster_by: Sequence[str] = (),
                           validate: Callable[[StagedPartitions], None] | None = None) -> int:
        """Replace the rows of `recsys.<table>` whose `partition_column` lies in [first_day, last_day] with
        the result of `select_sql`, creating the table on first use. Validate before swap: the new rows are
        staged, `validate(staged)` runs (it raises `RefusedPartitions` to refuse), and only then are they
        swapped in, atomically; a refused or failed replacement leaves every stored table as it was.
        Returns the number of rows now in that range."""

    @abstractmethod
    def has_table(self, table: str) -> bool:
        """Whether the platform's table `recsys.<table>` exists yet."""

    @abstractmethod
    def delete_rows(self, table: str, where_sql: str, params: Mapping[str, Any] | None = None) -> int:
        """DELETE FROM recsys.<table> WHERE <where_sql> (a BigQuery boolean expression; parameters bound).
        Returns the rows deleted; a table that does not exist yet has none to delete."""

    @abstractmethod
    def list_export_tables(self, property_id: str | None = None) -> ExportListing:
        """A property's export dataset's `events_*` tables (default: the first property's) in ONE metadata query
        (the sensor calls this every tick, once per property)."""

    def list_all_export_tables(self) -> dict[str, ExportListing]:
        """Every property's listing, one metadata query each."""
        return {property_id: self.list_export_tables(property_id) for property_id in self.property_ids}

    @abstractmethod
    def export_columns(self, table_ids: Sequence[str], property_id: str | None = None) -> dict[str, set[str]]:
        """Top-level column names of each named export table of a property (default: the first)."""

    def wildcard_columns(self, property_id: str | None = None, prefix: str = EXPORT_TABLE_PREFIX) -> set[str] | None:
        """The columns a read of the wildcard `<prefix>*` in a property's export dataset has whatever tables it
        selects, or None when a read has the columns of the tables it selects (DuckDB). BigQuery gives a
        wildcard the schema of the newest table its prefix matches, with NULL where an older table lacks a
        column and no way to read a column only older tables have."""
        return None

    @abstractmethod
    def replica_columns(self, tables: Sequence[str]) -> dict[str, dict[str, str]]:
        """`{table: {column: BigQuery type name}}` of the product DB replica's tables that exist (INT64, NUMERIC,
        FLOAT64, STRING, BOOL, TIMESTAMP, DATETIME, DATE, ...), for the product DB contract."""
