"""ga4_events: the merged raw table every later GA4 model trusts."""

import datetime as dt

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    BackfillPolicy,
    DailyPartitionsDefinition,
    Failure,
    FreshnessPolicy,
    MaterializeResult,
    MetadataValue,
    asset,
)

from recsys_platform.lib.partitions import PartitionRange, partition_range
from recsys_platform.lib.sql_files import read_sql
from recsys_platform.lib.table_stats import null_counts, preview, rows_per_day
from recsys_platform.lib.warehouse.interface import Warehouse, shard_suffix

MAX_DROPPED_SHARE = 0.05
WAREHOUSE_POOL = "warehouse"


def merged_by_0900(timezone: str) -> FreshnessPolicy:
    """Yesterday's GA4 day is expected merged by 09:00 property time (GA4 usually exports by early morning)."""
    return FreshnessPolicy.cron(deadline_cron="0 9 * * *", lower_bound_delta=dt.timedelta(hours=24), timezone=timezone)


def missing_shards(warehouse: Warehouse, days: PartitionRange) -> list[str]:
    present = {shard.suffix for shard in warehouse.list_export_shards()}
    return [warehouse.shard_name(day) for day in days.days if shard_suffix(day) not in present]


def build_ga4_events(partitions: DailyPartitionsDefinition, timezone: str) -> AssetsDefinition:
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
                           description="Every day of the range has events."),
            AssetCheckSpec("event_keys_unique", asset="ga4_events", blocking=True,
                           description="Deduplication left exactly one row per event identity."),
            AssetCheckSpec("dropped_share_small", asset="ga4_events",
                           description=f"At most {MAX_DROPPED_SHARE:.0%} of shard rows were unusable."),
        ],
    )
    def ga4_events(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
        """All GA4 events, one row per event, partitioned by property-local `event_date` (clustered by
        `event_name` on BigQuery). Built from the day's export shard: rows that cannot be events are dropped
        and counted, re-delivered duplicates collapse to one deterministic copy (event identity = stream,
        pseudo user, microsecond timestamp, event name, session id and page_location), and the day is
        replaced atomically, so re-running or backfilling a day never duplicates rows."""
        days = partition_range(context)
        missing = missing_shards(warehouse, days)
        if missing:
            raise Failure(
                description=f"GA4 export shard(s) not found: {', '.join(missing)}. The export for these days has "
                "not landed yet (or was deleted); the sensor will request the day again once it appears.",
                metadata={"missing_shards": MetadataValue.json(missing)},
            )
        params = {
            **days.params,
            "first_suffix": shard_suffix(days.first_day),
            "last_suffix": shard_suffix(days.last_day),
        }
        rows = warehouse.replace_partitions(
            "ga4_events", read_sql(__file__, "ga4_events.sql"), params, "event_date",
            days.first_day, days.last_day, cluster_by=["event_name"],
        )
        drops = warehouse.query(read_sql(__file__, "ga4_events_drops.sql"), params).to_pylist()[0]
        shard_rows = int(drops.pop("shard_rows") or 0)
        dropped = {k: int(v or 0) for k, v in drops.items()}
        duplicates_removed = shard_rows - sum(dropped.values()) - rows
        per_day = rows_per_day(warehouse, "ga4_events", days)
        stats = null_counts(warehouse, "ga4_events", ["event_key"], days)
        distinct_keys = warehouse.query(
            "SELECT COUNT(DISTINCT event_key) AS n FROM recsys.ga4_events WHERE event_date BETWEEN @first_day AND @last_day",
            days.params,
        ).to_pylist()[0]["n"]
        dropped_share = sum(dropped.values()) / shard_rows if shard_rows else 0.0
        context.log.info(f"ga4_events {days.label}: {rows} events from {shard_rows} shard rows")
        return MaterializeResult(
            metadata={
                "dagster/row_count": rows,
                "days": days.label,
                "shard_rows": shard_rows,
                "duplicates_removed": duplicates_removed,
                **{k: v for k, v in dropped.items()},
                "rows_per_day": MetadataValue.json(per_day),
                "preview": preview(warehouse, "ga4_events",
                                   ["event_date", "event_name", "user_pseudo_id", "user_id", "ga_session_id"],
                                   days, order_by="event_timestamp"),
            },
            check_results=[
                AssetCheckResult(
                    check_name="has_rows_every_day",
                    passed=all(n > 0 for n in per_day.values()),
                    metadata={"rows_per_day": MetadataValue.json(per_day)},
                ),
                AssetCheckResult(
                    check_name="event_keys_unique",
                    passed=int(distinct_keys) == rows and stats["event_key_nulls"] == 0,
                    metadata={"rows": rows, "distinct_event_keys": int(distinct_keys)},
                ),
                AssetCheckResult(
                    check_name="dropped_share_small",
                    passed=dropped_share <= MAX_DROPPED_SHARE,
                    severity=AssetCheckSeverity.WARN,
                    metadata={"dropped_share": dropped_share, **dropped},
                ),
            ],
        )

    return ga4_events
