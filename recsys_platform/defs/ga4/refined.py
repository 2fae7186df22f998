"""Refined, item-grain GA4 tables: one asset per tracked event of taxonomy.yaml, all built by one SQL file
in one step (one process under the multiprocess executor, not one per table)."""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    AssetSpec,
    BackfillPolicy,
    DailyPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)

from recsys_platform.defs.ga4.events import WAREHOUSE_POOL, merged_by_0900
from recsys_platform.defs.ga4.taxonomy import Taxonomy, TrackedEvent
from recsys_platform.lib.partitions import PartitionRange, partition_range
from recsys_platform.lib.sql_files import read_sql
from recsys_platform.lib.table_stats import null_counts, preview, rows_per_day
from recsys_platform.lib.warehouse.interface import RefusedPartitions, StagedPartitions, Warehouse

STITCH_LOOKBACK_DAYS = 90
MAX_ANONYMOUS_SHARE = 0.9
KEY_COLUMNS = ["event_ts", "user_pseudo_id", "item_id"]
PREVIEW_COLUMNS = ["event_ts", "user_id", "user_pseudo_id", "session_id", "item_id", "price", "quantity"]


def refined_spec(event: TrackedEvent, partitions: DailyPartitionsDefinition, timezone: str) -> AssetSpec:
    return AssetSpec(
        key=event.asset,
        deps=["ga4_events"],
        partitions_def=partitions,
        group_name="ga4_refined",
        kinds={"sql"},
        freshness_policy=merged_by_0900(timezone),
        description=(
            f"{event.description} One row per item of each GA4 `{event.ga4_event}` event (item grain), with "
            "user_id stitched from the visitor's last login; becomes Personalize EVENT_TYPE "
            f"`{event.event_type}`."
        ),
    )


def refined_check_specs(event: TrackedEvent) -> list[AssetCheckSpec]:
    name = event.asset
    return [
        # Not blocking: a small shop can have a day without, say, a wishlist add.
        AssetCheckSpec("has_rows_every_day", asset=name),
        AssetCheckSpec("keys_not_null", asset=name, blocking=True,
                       description=f"No NULL in {', '.join(KEY_COLUMNS)} (checked before the day is swapped in)."),
        AssetCheckSpec("anonymous_share", asset=name,
                       description=f"At most {MAX_ANONYMOUS_SHARE:.0%} of rows have no user_id after stitching."),
    ]


def refine_event(context: AssetExecutionContext, warehouse: Warehouse, event: TrackedEvent,
                 days: PartitionRange) -> MaterializeResult:
    """Replaces the range of one refined table (keys checked on the staged rows first) and reports it."""
    sql_started = warehouse.sql_seconds
    name = event.asset
    params = {**days.params, "event_name": event.ga4_event, "stitch_lookback_days": STITCH_LOOKBACK_DAYS}
    key_nulls: dict[str, int] = {}

    def validate(staged: StagedPartitions) -> None:
        nulls = null_counts(staged, name, KEY_COLUMNS, days, dataset="staged")
        key_nulls.update({f"{c}_nulls": nulls[f"{c}_nulls"] for c in KEY_COLUMNS})
        if any(key_nulls.values()):
            raise RefusedPartitions(f"{name} {days.label} refused by keys_not_null: {key_nulls}")

    rows = warehouse.replace_partitions(name, read_sql(__file__, "ga4_item_events.sql"), params, "event_date",
                                        days.first_day, days.last_day, validate=validate)
    drops = {k: int(v or 0) for k, v in
             warehouse.query(read_sql(__file__, "ga4_item_events_drops.sql"), params).to_pylist()[0].items()}
    per_day = rows_per_day(warehouse, name, days)
    nulls = null_counts(warehouse, name, ["user_id"], days, flag_columns=["is_stitched"])
    anonymous_share = nulls["user_id_nulls"] / rows if rows else 0.0
    return MaterializeResult(
        asset_key=name,
        metadata={
            "dagster/row_count": rows,
            "days": days.label,
            "sql_seconds": MetadataValue.float(warehouse.sql_seconds - sql_started),
            "source_events": drops["events"],
            "consent_denied_events": drops["consent_denied_events"],
            "events_without_items": drops["events_without_items"],
            "items_without_item_id": drops["items_without_item_id"],
            "items_without_price": drops["items_without_price"],
            "rows_stitched_to_user_id": nulls["is_stitched_true"],
            "anonymous_share": anonymous_share,
            "rows_per_day": MetadataValue.json(per_day),
            "preview": preview(warehouse, name, PREVIEW_COLUMNS, days, order_by="event_ts"),
        },
        check_results=[
            AssetCheckResult(asset_key=name, check_name="has_rows_every_day",
                             passed=all(n > 0 for n in per_day.values()), severity=AssetCheckSeverity.WARN,
                             metadata={"rows_per_day": MetadataValue.json(per_day)}),
            AssetCheckResult(asset_key=name, check_name="keys_not_null", passed=True, metadata=key_nulls),
            AssetCheckResult(asset_key=name, check_name="anonymous_share", passed=anonymous_share <= MAX_ANONYMOUS_SHARE,
                             severity=AssetCheckSeverity.WARN, metadata={"anonymous_share": anonymous_share}),
        ],
    )


def build_refined_assets(taxonomy: Taxonomy, partitions: DailyPartitionsDefinition, timezone: str) -> AssetsDefinition:
    """The taxonomy's refined tables as one step: a day is refined in one process, table after table."""

    @multi_asset(
        name="ga4_refined",
        specs=[refined_spec(event, partitions, timezone) for event in taxonomy.events],
        check_specs=[spec for event in taxonomy.events for spec in refined_check_specs(event)],
        partitions_def=partitions,
        backfill_policy=BackfillPolicy.single_run(),
        pool=WAREHOUSE_POOL,
        can_subset=False,
    )
    def ga4_refined(context: AssetExecutionContext, warehouse: Warehouse):
        days = partition_range(context)
        for event in taxonomy.events:
            try:
                yield refine_event(context, warehouse, event, days)
            except RefusedPartitions as refusal:
                yield AssetCheckResult(asset_key=event.asset, check_name="keys_not_null", passed=False,
                                       metadata={"refused": str(refusal)})
                raise

    return ga4_refined
