"""ga4_events: the merged raw table every later GA4 model trusts."""

import datetime as dt
import os
import statistics
from dataclasses import dataclass, replace
from functools import cache, reduce
from typing import TYPE_CHECKING

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    BackfillPolicy,
    Config,
    DailyPartitionsDefinition,
    Failure,
    FreshnessPolicy,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from recsys_platform.defs.ga4.ga4_setup import Ga4Setup
from recsys_platform.defs.product_db.contract import ProductDbContract, contract_params, read_shop_sql
from recsys_platform.lib.partitions import PartitionRange, partition_range
from recsys_platform.lib.sql_files import read_sql
from recsys_platform.lib.table_stats import preview, rows_per_day
from recsys_platform.lib.warehouse.dialect import SUFFIX_COLUMN
from recsys_platform.lib.warehouse.export_tables import (
    EXPORT_TABLE_PREFIX,
    SOURCE_PREFERENCE,
    DaySource,
    ExportDrift,
    export_dataset_name,
    qualified,
    sources_of_day,
)
from recsys_platform.lib.warehouse.interface import RefusedPartitions, StagedPartitions, Warehouse

if TYPE_CHECKING:  # sqlglot is imported where SQL is built or translated, not when definitions load
    from sqlglot import exp

WAREHOUSE_POOL = "warehouse"

# Columns the merge reads from every export table: a table without one has drifted from GA4's schema,
# and merging it would NULL-fill the column without a word.
REQUIRED_EXPORT_COLUMNS = (
    "event_date", "event_timestamp", "event_name", "event_params", "event_bundle_sequence_id",
    "event_server_timestamp_offset", "user_id", "user_pseudo_id", "stream_id", "items",
)

# Columns GA4 added over the years that the merge reads when present: absent from every table of a run
# (an older property's days), they are read as NULL of their documented type.
OPTIONAL_EXPORT_COLUMNS = {
    "privacy_info": "STRUCT<analytics_storage STRING, ads_storage STRING, uses_transient_token STRING>",
    "batch_page_id": "INT64",
    "batch_ordering_id": "INT64",
    "batch_event_index": "INT64",
}
# Parameters of the export read that are one read's: each copy of the read binds its own.
PER_READ_PARAMS = ("table_suffixes", "property_id")
DROP_REASONS = ("dropped_erased_on_request", "dropped_without_timestamp", "dropped_without_event_name", "dropped_malformed_event_date",
                "dropped_implausible_timestamp", "dropped_outside_partition")

ERASED_VISITORS_TABLE = "erased_visitors"


def erased_visitors(warehouse: Warehouse) -> list[str]:
    """Pseudo ids of the browsers of erased users (`recsys.erased_visitors`, kept by the erasure asset): the
    merge leaves their rows out, including anonymous browsing of days in which they never logged in."""
    if not warehouse.has_table(ERASED_VISITORS_TABLE):
        return []
    return warehouse.query(f"SELECT DISTINCT user_pseudo_id FROM recsys.{ERASED_VISITORS_TABLE}").column(
        "user_pseudo_id").to_pylist()


# One policy for the merged table and its refined tables: Dagster walks a thousand cron ticks to build one
# (~20 ms), so it is built once per zone.
@cache
def merged_by_0900(timezone: str) -> FreshnessPolicy:
    """Yesterday's GA4 day is expected merged by 09:00 property time (GA4 usually exports by early morning)."""
    return FreshnessPolicy.cron(deadline_cron="0 9 * * *", lower_bound_delta=dt.timedelta(hours=24), timezone=timezone)


class MergeConfig(Config):
    accept_volume_drop: bool = Field(
        default=False,
        description="Accept the day(s) even though the volume guard would refuse them (a day that really was "
                    "quiet). Every other blocking check still applies.",
    )


def day_sources(warehouse: Warehouse, days: PartitionRange, setup: Ga4Setup, timezone: str,
                now: dt.datetime | None = None) -> dict[str, list[DaySource]]:
    """For each GA4 property, the table each day of the range is merged from (one listing query per
    property)."""
    by_property = {p: listing.by_day() for p, listing in warehouse.list_all_export_tables().items()}
    now = now or dt.datetime.now(dt.timezone.utc)
    sources: dict[str, list[DaySource]] = {p: [] for p in by_property}
    for day in days.days:
        for property_id, source in sources_of_day(day, by_property, setup.sources, timezone, now).items():
            sources[property_id].append(source)
    return sources


def export_drift(columns: dict[str, set[str]], table_ids: list[str], read: set[str]) -> ExportDrift:
    """Required columns each table lacks, and the optional ones the read lacks (`read`: the columns a read
    of these tables has)."""
    drift = ExportDrift()
    for table_id in table_ids:
        missing = [c for c in REQUIRED_EXPORT_COLUMNS if c not in columns.get(table_id, set())]
        if missing:
            drift.missing_required[table_id] = missing
    drift.absent_optional = [c for c in OPTIONAL_EXPORT_COLUMNS if c not in read]
    return drift


@dataclass(frozen=True)
class ExportRead:
    """One read of a GA4 property's export: its tables of one kind (daily, fresh or intraday) through the
    wildcard `<prefix>*`, and what that read lacks."""

    property_id: str
    kind: str
    prefix: str  # what the tables' ids share: the read is `<prefix>*`
    suffixes: tuple[str, ...]  # `_TABLE_SUFFIX` of each day's table under that prefix
    absent_optional: tuple[str, ...] = ()  # optional columns the read lacks: read as typed NULL
    absent_columns: tuple[str, ...] = ()  # columns only other reads have: read as NULL

    @property
    def name(self) -> str:
        return f"{self.property_id}_{self.kind}"

    @property
    def params(self) -> dict:
        return {f"table_suffixes_{self.name}": list(self.suffixes), f"property_id_{self.name}": self.property_id}


def read_prefix(table_ids: list[str]) -> str:
    """The longest prefix the tables share that leaves each at least one character of `_TABLE_SUFFIX`.

    BigQuery reads a wildcard with the schema of the newest table its prefix matches, whatever the
    `_TABLE_SUFFIX` filter: through `events_*`, a daily day merged after midnight would lose `is_active_user`
    whenever today's intraday table (which lacks it) is the newest. A daily read's prefix (`events_2026...`)
    matches no intraday or fresh table, and the narrower it is, the fewer tables outside the read it matches."""
    shared = os.path.commonprefix(table_ids)
    return shared[:min(len(t) for t in table_ids) - 1]


def export_reads(warehouse: Warehouse, sources: dict[str, list[DaySource]]) -> list[ExportRead]:
    """What the merge reads: one read per property and table kind, after checking the tables exist and carry
    GA4's columns (one metadata query per read); a missing table or a drifted schema fails naming the table."""
    waiting = [(p, s) for p, property_sources in sources.items() for s in property_sources if s.table is None]
    if waiting:
        names = [warehouse.export_table_name(f"events_{s.day.strftime('%Y%m%d')}", p) for p, s in waiting]
        raise Failure(
            description=f"GA4 export table(s) not found: {', '.join(names)} "
                        f"({'; '.join(f'{name}: {s.reason}' for name, (_, s) in zip(names, waiting))}). The "
                        "sensor requests the day again once its table appears.",
            metadata={"missing_tables": MetadataValue.json(names)},
        )
    reads, columns, missing = [], [], {}
    for property_id, property_sources in sources.items():
        table_ids = [s.table.table_id for s in property_sources]
        found = warehouse.export_columns(table_ids, property_id)
        for kind in SOURCE_PREFERENCE:
            kind_ids = [s.table.table_id for s in property_sources if s.kind == kind]
            if not kind_ids:
                continue
            prefix = read_prefix(kind_ids)
            # A required column is checked table by table (BigQuery's wildcard would read a lost one as NULL);
            # the columns a read has decide what its copy adds as NULL (adding one it has would repeat it).
            wildcard = warehouse.wildcard_columns(property_id, prefix)
            read = wildcard if wildcard is not None else set().union(*(found.get(t, set()) for t in kind_ids))
            drift = export_drift(found, kind_ids, read)
            missing.update({warehouse.export_table_name(t, property_id): c for t, c in drift.missing_required.items()})
            reads.append(ExportRead(property_id, kind, prefix, tuple(t[len(prefix):] for t in kind_ids),
                                    tuple(drift.absent_optional)))
            columns.append(read)
    if missing:
        described = "; ".join(f"{name} lacks {', '.join(c)}" for name, c in missing.items())
        raise Failure(
            description=f"GA4 export schema drift: {described}. Merging would fill those columns with NULL; "
                        "fix or re-export the table(s), then run the day again.",
            metadata={"missing_columns": MetadataValue.json(missing)},
        )
    every_column = set().union(*columns)
    return [replace(read, absent_columns=tuple(sorted(every_column - read_columns - set(OPTIONAL_EXPORT_COLUMNS))))
            for read, read_columns in zip(reads, columns)]


def merge_sql(name: str, reads: list[ExportRead]) -> str:
    """The SQL file `name` with its export read repeated for each read (that property's dataset, the read's
    tables and parameters; what it lacks read as NULL), the copies unioned by column name."""
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(read_sql(__file__, name), read="bigquery")
    export_read = next(
        select for select in tree.find_all(exp.Select)
        if any(table.name == f"{EXPORT_TABLE_PREFIX}*" for table in select.args["from_"].find_all(exp.Table))
        and isinstance(select.args["from_"].this, exp.Table)
    )
    copies = [_export_copy(export_read, read) for read in reads]
    export_read.replace(reduce(lambda a, b: exp.Union(this=a, expression=b, distinct=False, by_name=True), copies))
    return tree.sql("bigquery", pretty=True)


def _export_copy(export_read: "exp.Select", read: ExportRead) -> "exp.Select":
    from sqlglot import exp

    copy = export_read.copy()
    table = copy.args["from_"].this
    table.set("db", exp.to_identifier(export_dataset_name(read.property_id)))
    table.set("this", exp.to_identifier(f"{read.prefix}*", quoted=True))
    # `_TABLE_SUFFIX` is relative to the read's prefix; `source_table` stays the table's suffix under `events_*`.
    stem = read.prefix[len(EXPORT_TABLE_PREFIX):]
    if stem:
        for projection in copy.expressions:
            if isinstance(projection, exp.Alias) and isinstance(projection.this, exp.Column) \
                    and projection.this.name.upper() == SUFFIX_COLUMN:
                projection.set("this", exp.Concat(expressions=[exp.Literal.string(stem), projection.this.copy()]))
    for parameter in copy.find_all(exp.Parameter):
        if parameter.name in PER_READ_PARAMS:
            parameter.set("this", exp.var(f"{parameter.name}_{read.name}"))
    for column in read.absent_optional:
        copy.select(exp.alias_(exp.cast(exp.null(), exp.DataType.build(OPTIONAL_EXPORT_COLUMNS[column],
                                                                       dialect="bigquery")), column), copy=False)
    for column in read.absent_columns:
        copy.select(exp.alias_(exp.null(), column), copy=False)
    return copy


def merge_statement(name: str, reads: list[ExportRead], contract: ProductDbContract, warehouse: Warehouse) -> str:
    """`merge_sql` with the product DB's tables mapped through the contract: what the asset runs."""
    return read_shop_sql(merge_sql(name, reads), contract, warehouse)


def merge_params(days: PartitionRange, reads: list[ExportRead], setup: Ga4Setup, contract: ProductDbContract,
                 warehouse: Warehouse) -> dict:
    params = {**days.params, **contract_params(contract), "url_params_kept": setup.url_params_pattern,
              "erased_visitors": erased_visitors(warehouse)}
    for read in reads:
        params.update(read.params)
    return params


@dataclass(frozen=True)
class DayMerge:
    """The merge of a day range as planned against the export: each property's table per day, what the merge
    reads from each, and the parameters its statements bind. `statement(name)` is a SQL file of the merge
    (`ga4_events.sql`, `ga4_events_drops.sql`) as it runs."""

    sources: dict[str, list[DaySource]]
    reads: list[ExportRead]
    params: dict
    contract: ProductDbContract
    warehouse: Warehouse

    def statement(self, name: str) -> str:
        return merge_statement(name, self.reads, self.contract, self.warehouse)


def plan_merge(warehouse: Warehouse, days: PartitionRange, setup: Ga4Setup, contract: ProductDbContract,
               timezone: str, now: dt.datetime | None = None) -> DayMerge:
    """What the `ga4_events` asset merges for `days`: fails naming a missing or drifted export table."""
    sources = day_sources(warehouse, days, setup, timezone, now)
    reads = export_reads(warehouse, sources)
    return DayMerge(sources, reads, merge_params(days, reads, setup, contract, warehouse), contract, warehouse)


def _volume_guard(committed, staged_per_day: dict[str, int], days: PartitionRange, setup: Ga4Setup,
                  open_days: frozenset[str] = frozenset()) -> dict:
    """Each staged day against the median of the trailing days already merged (none yet: nothing to compare).
    A day still open (the intraday refresh) is partial by nature and is not held to it."""
    guard = setup.volume_guard
    trailing = PartitionRange(days.first_day - dt.timedelta(days=guard.trailing_days),
                              days.first_day - dt.timedelta(days=1))
    history = [n for n in rows_per_day(committed, "ga4_events", trailing).values() if n > 0]
    median = statistics.median(history) if history else None
    if median is None or median < guard.min_events:
        return {"passed": True, "trailing_median": median, "too_low": {}, "applies": False}
    floor = guard.min_ratio * median
    too_low = {day: n for day, n in staged_per_day.items() if n < floor and day not in open_days}
    return {"passed": not too_low, "trailing_median": median, "floor": floor, "too_low": too_low, "applies": True}


def build_ga4_events(partitions: DailyPartitionsDefinition, timezone: str, setup: Ga4Setup,
                     contract: ProductDbContract) -> AssetsDefinition:
    @asset(
        deps=["ga4_export"],
        partitions_def=partitions,
        backfill_policy=BackfillPolicy.single_run(),
        pool=WAREHOUSE_POOL,
        group_name="ga4",
        kinds={"sql"},
        freshness_policy=merged_by_0900(timezone),
        check_specs=[
            AssetCheckSpec("has_rows_every_day", asset="ga4_events", blocking=True,
                           description="Every day of the range has events (checked before the day replaces the "
                                       "stored one)."),
            AssetCheckSpec("event_keys_unique", asset="ga4_events", blocking=True,
                           description="Deduplication left exactly one row per event identity."),
            AssetCheckSpec("volume_within_guard", asset="ga4_events", blocking=True,
                           description=f"No day has fewer than {setup.volume_guard.min_ratio:.0%} of the median "
                                       f"events of the {setup.volume_guard.trailing_days} days before it."),
            AssetCheckSpec("dropped_share_small", asset="ga4_events",
                           description=f"At most {setup.max_dropped_share:.0%} of the rows read were unusable."),
            AssetCheckSpec("consent_denied_share", asset="ga4_events",
                           description=f"At most {setup.max_consent_denied_share:.0%} of events had no analytics "
                                       "consent (cookieless pings: kept, but out of stitching and interactions)."),
        ],
    )
    def ga4_events(context: AssetExecutionContext, config: MergeConfig, warehouse: Warehouse):
        """All GA4 events of every property the deployment reads, one row per event, partitioned by
        property-local `event_date` (clustered by `event_name`), with every column of the export and the
        `property_id` that exported it. Each property's day is read from its daily table (the 360 fresh
        table, or after a grace period the intraday table, when the daily one is missing; `sources` in the
        metadata says which, keyed `<property id>/<day>` when there are several properties); a property
        whose day has no usable table fails the day, naming the table. Rows that cannot be events are left
        out and counted by reason; re-delivered events collapse to one deterministic copy (event_key:
        property plus GA4's batch fields, or on older rows property, stream, pseudo user, timestamp, name,
        session and page). The new rows are checked before they replace the stored day, so a refused
        re-export leaves every table as it was."""
        sql_started = warehouse.sql_seconds
        days = partition_range(context)
        merge = plan_merge(warehouse, days, setup, contract, timezone)
        sources, reads, params = merge.sources, merge.reads, merge.params
        every_source = [s for property_sources in sources.values() for s in property_sources]
        open_days = sorted({s.day.isoformat() for s in every_source if s.still_open})

        outcome: dict = {}

        def validate(staged: StagedPartitions) -> None:
            per_day = rows_per_day(staged, "ga4_events", days, dataset="staged")
            keys = staged.query(
                "SELECT COUNT(DISTINCT event_key) AS distinct_keys, COUNTIF(event_key IS NULL) AS null_keys, "
                "COUNTIF(analytics_consent_denied) AS consent_denied FROM staged.ga4_events "
                "WHERE event_date BETWEEN @first_day AND @last_day", days.params).to_pylist()[0]
            volume = _volume_guard(staged, per_day, days, setup, frozenset(open_days))
            outcome.update(per_day=per_day, keys=keys, volume=volume, rows=staged.rows)
            refused = [name for name, passed in (
                ("has_rows_every_day", all(n > 0 for n in per_day.values())),
                ("event_keys_unique", int(keys["distinct_keys"]) == staged.rows and not keys["null_keys"]),
                ("volume_within_guard", volume["passed"] or config.accept_volume_drop),
            ) if not passed]
            outcome["refused"] = refused
            if refused:
                raise RefusedPartitions(f"ga4_events {days.label} refused by {', '.join(refused)}")

        try:
            rows = warehouse.replace_partitions(
                "ga4_events", merge.statement("ga4_events.sql"), params, "event_date",
                days.first_day, days.last_day, cluster_by=["event_name"], validate=validate,
            )
            refusal = None
        except RefusedPartitions as error:
            refusal = error
            rows = outcome["rows"]
        read = warehouse.query(merge.statement("ga4_events_drops.sql"), params).to_pylist()[0]
        rows_read = int(read.pop("rows_read") or 0)
        dropped = {k: int(read[k] or 0) for k in DROP_REASONS}
        kept_rows = rows_read - sum(dropped.values())
        dropped_share = sum(dropped.values()) / rows_read if rows_read else 0.0
        consent_share = int(outcome["keys"]["consent_denied"] or 0) / rows if rows else 0.0
        volume = outcome["volume"]
        checks = [
            AssetCheckResult(check_name="has_rows_every_day", passed="has_rows_every_day" not in outcome["refused"],
                             metadata={"rows_per_day": MetadataValue.json(outcome["per_day"])}),
            AssetCheckResult(check_name="event_keys_unique", passed="event_keys_unique" not in outcome["refused"],
                             metadata={"rows": rows, "distinct_event_keys": int(outcome["keys"]["distinct_keys"])}),
            AssetCheckResult(
                check_name="volume_within_guard", passed="volume_within_guard" not in outcome["refused"],
                metadata={"trailing_median": float(volume["trailing_median"]) if volume["trailing_median"] is not None
                          else "no merged days before the range",
                          "guard_applies": volume["applies"],
                          "days_below_guard": MetadataValue.json(volume.get("too_low", {})),
                          "accepted_by_operator": config.accept_volume_drop and not volume["passed"]},
            ),
            AssetCheckResult(check_name="dropped_share_small", passed=dropped_share <= setup.max_dropped_share,
                             severity=AssetCheckSeverity.WARN, metadata={"dropped_share": dropped_share, **dropped}),
            AssetCheckResult(check_name="consent_denied_share", passed=consent_share <= setup.max_consent_denied_share,
                             severity=AssetCheckSeverity.WARN, metadata={"consent_denied_share": consent_share}),
        ]
        # Day -> table; with several properties, <property id>/<day> -> table.
        sources_by_day = {qualified(p, s.day.isoformat(), warehouse.several_properties): s.table.table_id
                          for p, property_sources in sources.items() for s in property_sources}
        if refusal is not None:
            yield from checks
            raise Failure(
                description=f"{refusal}: the stored day(s) were left as they were. Rows per day read now: "
                            f"{outcome['per_day']}; trailing median: {volume.get('trailing_median')}. If the day "
                            "really was this small, run it again with run config accept_volume_drop: true.",
                metadata={"sources": MetadataValue.json(sources_by_day)},
            )
        context.log.info(f"ga4_events {days.label}: {rows} events from {rows_read} rows read ({sources_by_day})")
        yield MaterializeResult(
            metadata={
                "dagster/row_count": rows,
                "days": days.label,
                "sources": MetadataValue.json(sources_by_day),
                "source_kinds": ", ".join(sorted({s.kind for s in every_source})),
                "days_still_open": MetadataValue.json(open_days),
                "rows_read": rows_read,
                "duplicates_removed": kept_rows - rows,
                **dropped,
                "consent_denied_rows": int(outcome["keys"]["consent_denied"] or 0),
                "consent_denied_share": consent_share,
                "user_ids_refused_as_email": int(read["user_ids_refused_as_email"] or 0),
                "page_locations_scrubbed": int(read["page_locations_scrubbed"] or 0),
                "export_columns_absent": MetadataValue.json(
                    sorted(set().union(*(r.absent_optional for r in reads)))),
                "sql_seconds": MetadataValue.float(warehouse.sql_seconds - sql_started),
                "rows_per_day": MetadataValue.json(outcome["per_day"]),
                "preview": preview(warehouse, "ga4_events",
                                   ["event_date", "event_name", "user_pseudo_id", "user_id", "ga_session_id",
                                    "property_id", "source_table"], days, order_by="event_timestamp"),
            },
            check_results=checks,
        )

    return ga4_events
