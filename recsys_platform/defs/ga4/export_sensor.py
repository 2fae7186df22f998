"""ga4_export_sensor: turns the export's table listing into runs of the GA4 day job."""

import datetime as dt
import hashlib
import json

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
from recsys_platform.lib.warehouse.export_tables import (
    ExportTable,
    export_dataset_name,
    qualified,
    sources_of_day,
    tables_version,
    unqualified,
)
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
            "Lists each GA4 property's export tables with one metadata query per property per tick and "
            "requests a run for each day whose table appeared or was rewritten in any property (GA4 rewrites "
            "a day for up to 72 hours as late events arrive; a daily table replaces an intraday one), once "
            "every property has a table for it. The run key is the day's tables + modification times, so a "
            "tick never requests the same work twice; many days at once become single-run backfills."
        ),
    )
    def ga4_export_sensor(context: SensorEvaluationContext, warehouse: Warehouse):
        return ga4_export_tick(context, warehouse, partitions, setup, timezone)

    return ga4_export_sensor


# (property id, table id) -> the modification time (ms) it was requested or merged at
Seen = dict[tuple[str, str], int]


def _read_cursor(cursor: str, first_property: str) -> Seen:
    """The cursor maps table ids (`<property id>/<table id>` with several properties) to modification times;
    a bare table id, as every cursor of a single-property deployment has it, is the first property's."""
    return {unqualified(key, first_property): ms for key, ms in json.loads(cursor).items()}


def _write_cursor(seen: Seen, several_properties: bool) -> str:
    return json.dumps({qualified(p, table_id, several_properties): ms for (p, table_id), ms in seen.items()},
                      sort_keys=True)


def _seen_from_materializations(context: SensorEvaluationContext, first_property: str) -> Seen:
    """An empty cursor (a new deployment, `make dev` after `make demo`) is seeded from what was merged:
    each day's source tables, as of when they were merged, count as seen."""
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("ga4_events")), limit=SEED_LOOKBACK_RECORDS
    ).records
    seen: Seen = {}
    for record in records:
        sources = record.asset_materialization.metadata.get("sources")
        merged_ms = int(record.timestamp * 1000)
        for day_key, table_id in (sources.value if sources is not None else {}).items():
            key = (unqualified(day_key, first_property)[0], table_id)
            seen[key] = max(seen.get(key, 0), merged_ms)
    return seen


def _is_new(property_id: str, table: ExportTable, seen: Seen) -> bool:
    # Seen tables carry the modification time they were requested (or merged) at.
    key = (property_id, table.table_id)
    return key not in seen or seen[key] < table.last_modified_ms


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
    first, several = warehouse.ga4_property_id, warehouse.several_properties
    seen = _read_cursor(context.cursor, first) if context.cursor else _seen_from_materializations(context, first)
    listings = warehouse.list_all_export_tables()  # one metadata query per property
    by_property = {p: listing.by_day() for p, listing in listings.items()}
    valid_keys = set(partitions.get_partition_keys())
    now = now or dt.datetime.now(dt.timezone.utc)
    due: dict[dt.date, dict[str, ExportTable]] = {}
    changed: dict[dt.date, dict[str, ExportTable]] = {}
    outside: list[str] = []
    held_back: list[str] = []
    for day in sorted(set().union(*by_property.values())):
        sources = sources_of_day(day, by_property, setup.sources, timezone, now)
        # An open day's intraday table changes by the minute: the intraday schedule refreshes it when it is
        # turned on, and the day's daily table brings it here once exported.
        if any(s.still_open for s in sources.values()):
            continue
        new = {p: s.table for p, s in sources.items() if s.table is not None and _is_new(p, s.table, seen)}
        if not new:
            continue
        if day.isoformat() not in valid_keys:
            outside.extend(qualified(p, t.table_id, several) for p, t in new.items())
            continue
        # A day some property has no table for would only fail: it is requested once that table lands (the
        # 10:00 fallback run and the merge deadline name a property that never delivers).
        waiting = [p for p, s in sources.items() if s.table is None]
        if waiting:
            held_back.append(f"{day} (waiting for {', '.join(export_dataset_name(p) for p in waiting)})")
            continue
        due[day] = {p: s.table for p, s in sources.items()}
        changed[day] = new
    notes = []
    unrecognised = [qualified(p, t, several) for p, listing in listings.items() for t in listing.unrecognised]
    if unrecognised:
        notes.append(f"ignored {len(unrecognised)} export table(s) whose name is not a valid day: "
                     f"{', '.join(unrecognised[:10])}")
    if outside:
        notes.append(f"ignored {len(outside)} table(s) outside the partitions (start {partitions.start:%Y-%m-%d}): "
                     f"{', '.join(outside[:10])}")
    if held_back:
        notes.append(f"held back {len(held_back)} day(s) until every property has its table: "
                     f"{', '.join(held_back[:10])}")
    for note in notes:
        context.log.warning(note)
    if not due:
        return SkipReason("; ".join(["no GA4 export table appeared or changed since the last tick", *notes]))

    run_requests, reports = [], []
    for day, tables in changed.items():
        for property_id, table in tables.items():
            reports.append(AssetMaterialization(
                asset_key="ga4_export", partition=day.isoformat(),
                metadata={"table_id": table.table_id, "dataset": export_dataset_name(property_id),
                          "kind": table.kind, "last_modified_ms": table.last_modified_ms,
                          "dagster/row_count": table.row_count,
                          "change": "rewritten" if (property_id, table.table_id) in seen else "new"},
            ))
    for tables in changed.values():
        for property_id, table in tables.items():
            seen[(property_id, table.table_id)] = table.last_modified_ms
    if len(due) <= MAX_DAY_RUNS_PER_TICK:
        for day, tables in due.items():
            run_requests.append(RunRequest(
                run_key=tables_version(tables, several), partition_key=day.isoformat(),
                tags={"recsys/ga4_table": ",".join(qualified(p, t.table_id, several)
                                                   for p, t in sorted(tables.items())),
                      "recsys/ga4_table_kind": ",".join(sorted({t.kind for t in tables.values()}))},
            ))
    else:
        for first_day, last_day in _contiguous(list(due)):
            version = hashlib.sha256(
                "".join(tables_version(due[d], several) for d in sorted(due) if first_day <= d <= last_day).encode()
            ).hexdigest()[:12]
            run_requests.append(RunRequest(
                run_key=f"{first_day.isoformat()}..{last_day.isoformat()}@{version}",
                tags={ASSET_PARTITION_RANGE_START_TAG: first_day.isoformat(),
                      ASSET_PARTITION_RANGE_END_TAG: last_day.isoformat(),
                      "recsys/ga4_backfill_days": str((last_day - first_day).days + 1)},
            ))
    return SensorResult(run_requests=run_requests, asset_events=reports, cursor=_write_cursor(seen, several))
