"""ga4_export_sensor: turns the export's table listing into runs of the GA4 day job."""

import datetime as dt
import hashlib
import json
from zoneinfo import ZoneInfo

from dagster import (
    AssetKey,
    AssetMaterialization,
    AssetRecordsFilter,
    DailyPartitionsDefinition,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from recsys_platform.defs.ga4.daily_job import GA4_DAILY_JOB
from recsys_platform.defs.ga4.ga4_setup import Ga4Setup
from recsys_platform.lib.warehouse.export_tables import ExportTable, choose_source
from recsys_platform.lib.warehouse.interface import Warehouse

# More days than this in one tick (a first deployment, a long outage) become single-run backfills of
# contiguous ranges instead of one run per day: competing runs would queue on the warehouse pool and,
# on BigQuery, on the same tables.
MAX_DAY_RUNS_PER_TICK = 7
# Materializations read to seed an empty cursor (one query; a day is materialized a few times at most).
SEED_LOOKBACK_RECORDS = 10_000


def build_ga4_export_sensor(partitions: DailyPartitionsDefinition, setup: Ga4Setup, timezone: str) -> SensorDefinition:
    @sensor(
        job_name=GA4_DAILY_JOB,
        minimum_interval_seconds=300,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            "Lists the GA4 export's tables with one metadata query per tick and requests a run for each day "
            "whose table appeared or was rewritten (GA4 rewrites a day for up to 72 hours as late events "
            "arrive; a daily table replaces an intraday one). The run key is table + modification time, so a "
            "tick never requests the same work twice; many days at once become single-run backfills."
        ),
    )
    def ga4_export_sensor(context: SensorEvaluationContext, warehouse: Warehouse):
        return ga4_export_tick(context, warehouse, partitions, setup, timezone)

    return ga4_export_sensor


def _seen_from_materializations(context: SensorEvaluationContext) -> dict[str, int]:
    """An empty cursor (a new deployment, `make dev` after `make demo`) is seeded from what was merged:
    each day's source table, as of when it was merged, counts as seen."""
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("ga4_events")), limit=SEED_LOOKBACK_RECORDS
    ).records
    seen: dict[str, int] = {}
    for record in records:
        sources = record.asset_materialization.metadata.get("sources")
        merged_ms = int(record.timestamp * 1000)
        for table_id in (sources.value if sources is not None else {}).values():
            seen[table_id] = max(seen.get(table_id, 0), merged_ms)
    return seen


def _is_new(table: ExportTable, seen: dict[str, int]) -> bool:
    # Seen tables carry the modification time they were requested (or merged) at.
    return table.table_id not in seen or seen[table.table_id] < table.last_modified_ms


def _contiguous(days: list[dt.date]) -> list[tuple[dt.date, dt.date]]:
    blocks: list[list[dt.date]] = []
    for day in sorted(days):
        if blocks and (day - blocks[-1][-1]).days == 1:
            blocks[-1].append(day)
        else:
            blocks.append([day])
    return [(block[0], block[-1]) for block in blocks]


def ga4_export_tick(context: SensorEvaluationContext, warehouse: Warehouse, partitions: DailyPartitionsDefinition,
                    setup: Ga4Setup, timezone: str, now: dt.datetime | None = None):
    seen: dict[str, int] = json.loads(context.cursor) if context.cursor else _seen_from_materializations(context)
    listing = warehouse.list_export_tables()
    valid_keys = set(partitions.get_partition_keys())
    now = now or dt.datetime.now(dt.timezone.utc)
    due: dict[dt.date, ExportTable] = {}
    outside: list[str] = []
    for day, available in sorted(listing.by_day().items()):
        day_end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=ZoneInfo(timezone))
        source = choose_source(day, available, setup.sources, (now - day_end).total_seconds() / 3600)
        if source.table is None or not _is_new(source.table, seen):
            continue
        if day.isoformat() not in valid_keys:
            outside.append(source.table.table_id)
            continue
        due[day] = source.table
    notes = []
    if listing.unrecognised:
        notes.append(f"ignored {len(listing.unrecognised)} export table(s) whose name is not a valid day: "
                     f"{', '.join(listing.unrecognised[:10])}")
    if outside:
        notes.append(f"ignored {len(outside)} table(s) outside the partitions (start {partitions.start:%Y-%m-%d}): "
                     f"{', '.join(outside[:10])}")
    for note in notes:
        context.log.warning(note)
    if not due:
        return SkipReason("; ".join(["no GA4 export table appeared or changed since the last tick", *notes]))

    run_requests, reports = [], []
    for day, table in due.items():
        change = "rewritten" if table.table_id in seen else "new"
        reports.append(AssetMaterialization(
            asset_key="ga4_export", partition=day.isoformat(),
            metadata={"table_id": table.table_id, "kind": table.kind, "last_modified_ms": table.last_modified_ms,
                      "dagster/row_count": table.row_count, "change": change},
        ))
        seen[table.table_id] = table.last_modified_ms
    if len(due) <= MAX_DAY_RUNS_PER_TICK:
        for day, table in due.items():
            run_requests.append(RunRequest(
                run_key=f"{table.table_id}@{table.last_modified_ms}", partition_key=day.isoformat(),
                tags={"recsys/ga4_table": table.table_id, "recsys/ga4_table_kind": table.kind},
            ))
    else:
        for first, last in _contiguous(list(due)):
            version = hashlib.sha256(
                "".join(f"{due[d].table_id}@{due[d].last_modified_ms}" for d in sorted(due) if first <= d <= last)
                .encode()).hexdigest()[:12]
            run_requests.append(RunRequest(
                run_key=f"{first.isoformat()}..{last.isoformat()}@{version}",
                tags={ASSET_PARTITION_RANGE_START_TAG: first.isoformat(), ASSET_PARTITION_RANGE_END_TAG: last.isoformat(),
                      "recsys/ga4_backfill_days": str((last - first).days + 1)},
            ))
    return SensorResult(run_requests=run_requests, asset_events=reports, cursor=json.dumps(seen, sort_keys=True))
