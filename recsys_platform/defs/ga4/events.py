"""ga4_events: the merged raw table every later GA4 model trusts."""

import datetime as dt
import statistics
from zoneinfo import ZoneInfo

import sqlglot
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
from sqlglot import exp

from recsys_platform.defs.ga4.ga4_setup import Ga4Setup
from recsys_platform.lib.partitions import PartitionRange, partition_range
from recsys_platform.lib.sql_files import read_sql
from recsys_platform.lib.table_stats import preview, rows_per_day
from recsys_platform.lib.warehouse.export_tables import DaySource, ExportDrift, choose_source
from recsys_platform.lib.warehouse.interface import RefusedPartitions, StagedPartitions, Warehouse

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
DROP_REASONS = ("dropped_without_timestamp", "dropped_without_event_name", "dropped_malformed_event_date",
                "dropped_implausible_timestamp", "dropped_outside_partition")


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
                now: dt.datetime | None = None) -> list[DaySource]:
    """The table each day of the range is merged from (one listing query)."""
    by_day = warehouse.list_export_tables().by_day()
    now = now or dt.datetime.now(dt.timezone.utc)
    sources = []
    for day in days.days:
        day_end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=ZoneInfo(timezone))
        sources.append(choose_source(day, by_day.get(day, {}), setup.sources, (now - day_end).total_seconds() / 3600))
    return sources


def export_drift(columns: dict[str, set[str]], table_ids: list[str]) -> ExportDrift:
    drift = ExportDrift()
    for table_id in table_ids:
        missing = [c for c in REQUIRED_EXPORT_COLUMNS if c not in columns.get(table_id, set())]
        if missing:
            drift.missing_required[table_id] = missing
    present = set().union(*(columns.get(t, set()) for t in table_ids)) if table_ids else set()
    drift.absent_optional = [c for c in OPTIONAL_EXPORT_COLUMNS if c not in present]
    return drift


def merge_sql(name: str, absent_optional: list[str]) -> str:
    """The SQL file `name` with each optional column absent from every table read as a typed NULL."""
    sql = read_sql(__file__, name)
    if not absent_optional:
        return sql
    tree = sqlglot.parse_one(sql, read="bigquery")
    export_read = next(
        select for select in tree.find_all(exp.Select)
        if any(table.name == "events_*" for table in select.args["from_"].find_all(exp.Table))
        and isinstance(select.args["from_"].this, exp.Table)
    )
    for column in absent_optional:
        export_read.select(
            exp.alias_(exp.cast(exp.null(), exp.DataType.build(OPTIONAL_EXPORT_COLUMNS[column], dialect="bigquery")),
                       column),
            copy=False,
        )
    return tree.sql("bigquery", pretty=True)


def _volume_guard(committed, staged_per_day: dict[str, int], days: PartitionRange, setup: Ga4Setup) -> dict:
    """Each staged day against the median of the trailing days already merged (none yet: nothing to compare)."""
    guard = setup.volume_guard
    trailing = PartitionRange(days.first_day - dt.timedelta(days=guard.trailing_days),
                              days.first_day - dt.timedelta(days=1))
    history = [n for n in rows_per_day(committed, "ga4_events", trailing).values() if n > 0]
    median = statistics.median(history) if history else None
    if median is None or median < guard.min_events:
        return {"passed": True, "trailing_median": median, "too_low": {}, "applies": False}
    floor = guard.min_ratio * median
    too_low = {day: n for day, n in staged_per_day.items() if n < floor}
    return {"passed": not too_low, "trailing_median": median, "floor": floor, "too_low": too_low, "applies": True}


def build_ga4_events(partitions: DailyPartitionsDefinition, timezone: str, setup: Ga4Setup) -> AssetsDefinition:
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
        """All GA4 events, one row per event, partitioned by property-local `event_date` (clustered by
        `event_name`), with every column of the export. A day is read from its daily table (the 360 fresh
        table, or after a grace period the intraday table, when the daily one is missing; `sources` in the
        metadata says which). Rows that cannot be events are left out and counted by reason; re-delivered
        events collapse to one deterministic copy (event_key: GA4's batch fields, or on older rows stream,
        pseudo user, timestamp, name, session and page). The new rows are checked before they replace the
        stored day, so a refused re-export leaves every table as it was."""
        sql_started = warehouse.sql_seconds
        days = partition_range(context)
        sources = day_sources(warehouse, days, setup, timezone)
        waiting = [s for s in sources if s.table is None]
        if waiting:
            names = [warehouse.export_table_name(f"events_{s.day.strftime('%Y%m%d')}") for s in waiting]
            raise Failure(
                description=f"GA4 export table(s) not found: {', '.join(names)} "
                            f"({'; '.join(f'{s.day}: {s.reason}' for s in waiting)}). The sensor requests the "
                            "day again once its table appears.",
                metadata={"missing_tables": MetadataValue.json(names)},
            )
        table_ids = [s.table.table_id for s in sources]
        drift = export_drift(warehouse.export_columns(table_ids), table_ids)
        if drift.missing_required:
            described = "; ".join(f"{warehouse.export_table_name(t)} lacks {', '.join(c)}"
                                  for t, c in drift.missing_required.items())
            raise Failure(
                description=f"GA4 export schema drift: {described}. Merging would fill those columns with NULL; "
                            "fix or re-export the table(s), then run the day again.",
                metadata={"missing_columns": MetadataValue.json(drift.missing_required)},
            )
        params = {**days.params, "table_suffixes": [s.table.suffix for s in sources],
                  "url_params_kept": setup.url_params_pattern}
        outcome: dict = {}

        def validate(staged: StagedPartitions) -> None:
            per_day = rows_per_day(staged, "ga4_events", days, dataset="staged")
            keys = staged.query(
                "SELECT COUNT(DISTINCT event_key) AS distinct_keys, COUNTIF(event_key IS NULL) AS null_keys, "
                "COUNTIF(analytics_consent_denied) AS consent_denied FROM staged.ga4_events "
                "WHERE event_date BETWEEN @first_day AND @last_day", days.params).to_pylist()[0]
            volume = _volume_guard(staged, per_day, days, setup)
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
                "ga4_events", merge_sql("ga4_events.sql", drift.absent_optional), params, "event_date",
                days.first_day, days.last_day, cluster_by=["event_name"], validate=validate,
            )
            refusal = None
        except RefusedPartitions as error:
            refusal = error
            rows = outcome["rows"]
        read = warehouse.query(merge_sql("ga4_events_drops.sql", drift.absent_optional), params).to_pylist()[0]
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
        sources_by_day = {s.day.isoformat(): s.table.table_id for s in sources}
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
                "source_kinds": ", ".join(sorted({s.kind for s in sources})),
                "rows_read": rows_read,
                "duplicates_removed": kept_rows - rows,
                **dropped,
                "consent_denied_rows": int(outcome["keys"]["consent_denied"] or 0),
                "consent_denied_share": consent_share,
                "user_ids_refused_as_email": int(read["user_ids_refused_as_email"] or 0),
                "page_locations_scrubbed": int(read["page_locations_scrubbed"] or 0),
                "export_columns_absent": MetadataValue.json(drift.absent_optional),
                "sql_seconds": MetadataValue.float(warehouse.sql_seconds - sql_started),
                "rows_per_day": MetadataValue.json(outcome["per_day"]),
                "preview": preview(warehouse, "ga4_events",
                                   ["event_date", "event_name", "user_pseudo_id", "user_id", "ga_session_id",
                                    "source_table"], days, order_by="event_timestamp"),
            },
            check_results=checks,
        )

    return ga4_events
