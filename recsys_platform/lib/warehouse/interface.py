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
import re
from abc import abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dagster import ConfigurableResource
from pydantic import Field

from recsys_platform.lib.sql_files import validate_identifier

SHARD_PREFIX = "events_"
_DAILY_SHARD = re.compile(r"events_\d{8}")

# One metadata query per sensor tick: every table of the export dataset with its modification time.
LIST_SHARDS_SQL = """
SELECT table_id, last_modified_time, row_count
FROM analytics.__TABLES__
WHERE STARTS_WITH(table_id, 'events_') AND NOT STARTS_WITH(table_id, 'events_intraday_')
ORDER BY table_id
"""


@dataclass(frozen=True)
class ExportShard:
    """One daily table of the GA4 export, as listed by the export's `__TABLES__` meta-table."""

    table_id: str
    last_modified_ms: int
    row_count: int

    @property
    def suffix(self) -> str:
        return self.table_id[len(SHARD_PREFIX):]

    @property
    def day(self) -> dt.date:
        return dt.datetime.strptime(self.suffix, "%Y%m%d").date()


def shard_suffix(day: dt.date) -> str:
    return day.strftime("%Y%m%d")


def shards_from_rows(rows: list[dict]) -> list[ExportShard]:
    return [
        ExportShard(r["table_id"], int(r["last_modified_time"]), int(r["row_count"] or 0))
        for r in rows
        if _DAILY_SHARD.fullmatch(r["table_id"])
    ]


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

    ga4_property_id: str = Field(description="GA4 property id: the export dataset is analytics_<id>.")

    @property
    def export_dataset(self) -> str:
        if not self.ga4_property_id.isdigit():
            raise ValueError(f"GA4 property id must be numeric, got {self.ga4_property_id!r}")
        return f"analytics_{self.ga4_property_id}"

    def shard_name(self, day: dt.date) -> str:
        return f"{self.export_dataset}.{SHARD_PREFIX}{shard_suffix(day)}"

    @abstractmethod
    def query(self, sql: str, params: Mapping[str, Any] | None = None):
        """Run a SELECT and return its (small) result as a pyarrow Table."""

    @abstractmethod
    def iter_batches(self, sql: str, params: Mapping[str, Any] | None = None,
                     batch_rows: int = 100_000) -> Iterator:
        """Stream a SELECT's result in pyarrow RecordBatches, never holding the whole result."""

    @abstractmethod
    def replace_partitions(self, table: str, select_sql: str, params: Mapping[str, Any], partition_column: str,
                           first_day: dt.date, last_day: dt.date, cluster_by: Sequence[str] = ()) -> int:
        """Atomically replace the rows of `recsys.<table>` whose `partition_column` lies in
        [first_day, last_day] with the result of `select_sql`; create the table on first use.
        Returns the number of rows now in that range."""

    @abstractmethod
    def list_export_shards(self) -> list[ExportShard]:
        """The export's daily shards in ONE metadata query (the sensor calls this every tick)."""
