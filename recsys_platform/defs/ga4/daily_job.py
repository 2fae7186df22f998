"""The GA4 day job and what starts it besides the export sensor: the fallback run for yesterday, the optional
intraday refresh of today, and the 09:00 merge deadline."""

import datetime as dt
from zoneinfo import ZoneInfo

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    AssetRecordsFilter,
    AssetSelection,
    DailyPartitionsDefinition,
    DefaultScheduleStatus,
    MetadataValue,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    asset_check,
    define_asset_job,
    schedule,
)

from recsys_platform.defs.ga4.taxonomy import Taxonomy
from recsys_platform.lib.step_processes import step_executor
from recsys_platform.lib.warehouse.export_tables import INTRADAY, export_dataset_name, qualified, tables_version
from recsys_platform.lib.warehouse.interface import Warehouse

GA4_DAILY_JOB = "ga4_daily_job"
# Runs of one lane wait in the run queue, not in a run worker, while another run of the lane holds the
# warehouse: Dagster's run worker busy-waits on a pool slot (see dagster.yaml).
LANE_TAG = "recsys/lane"
DEADLINE_CHECK = "merged_by_deadline"
DEADLINE_HOUR = 9  # property time: yesterday's day is merged by then (DESIGN.md)


def build_ga4_daily_job(taxonomy: Taxonomy):
    return define_asset_job(
        GA4_DAILY_JOB,
        # The deadline check is the deadline schedule's to run, not a step of every day's run.
        selection=AssetSelection.assets("ga4_events", *(event.asset for event in taxonomy.events), "interactions")
        - AssetSelection.checks(AssetCheckKey(AssetKey("ga4_events"), DEADLINE_CHECK)),
        description="Merge one GA4 day, refine its tracked events and rebuild that day's interactions.",
        executor_def=step_executor(),
        # A day merges in seconds to minutes; a run still going after two hours is stuck (run monitoring ends it).
        tags={LANE_TAG: "ga4", "dagster/max_runtime": str(2 * 3600)},
    )


def _local_date(context: ScheduleEvaluationContext, timezone: str) -> dt.date:
    return context.scheduled_execution_time.astimezone(ZoneInfo(timezone)).date()


def build_ga4_daily_schedule(job, timezone: str) -> ScheduleDefinition:
    """Fallback when the sensor missed a day: yesterday's partition at 10:00 property time (the partitions
    include today's open day, so the job's own "latest partition" would be the wrong one)."""

    @schedule(name="ga4_daily_job_schedule", job=job, cron_schedule="0 10 * * *", execution_timezone=timezone,
              default_status=DefaultScheduleStatus.RUNNING)
    def ga4_daily_job_schedule(context: ScheduleEvaluationContext):
        yesterday = _local_date(context, timezone) - dt.timedelta(days=1)
        return RunRequest(run_key=f"fallback@{yesterday.isoformat()}", partition_key=yesterday.isoformat())

    return ga4_daily_job_schedule


def build_ga4_intraday_schedule(job, timezone: str) -> ScheduleDefinition:
    """Today's partition merged from its intraday tables every hour, for a shop that wants the open day near
    real time (turn it on in the UI). Skips while some property has no intraday table for the day; the run
    key is the tables' modification times, so unchanged tables are not merged twice. The day's daily tables
    replace them later through the export sensor."""

    @schedule(name="ga4_intraday_schedule", job=job, cron_schedule="15 * * * *", execution_timezone=timezone,
              default_status=DefaultScheduleStatus.STOPPED)
    def ga4_intraday_schedule(context: ScheduleEvaluationContext, warehouse: Warehouse):
        today = _local_date(context, timezone)
        several = warehouse.several_properties
        tables = {p: listing.by_day().get(today, {}).get(INTRADAY)
                  for p, listing in warehouse.list_all_export_tables().items()}
        missing = [export_dataset_name(p) for p, table in tables.items() if table is None]
        if missing:
            return SkipReason(f"no intraday export table for {today} yet in {', '.join(missing)}")
        return RunRequest(run_key=tables_version(tables, several), partition_key=today.isoformat(),
                          tags={"recsys/ga4_table": ",".join(qualified(p, t.table_id, several)
                                                             for p, t in sorted(tables.items())),
                                "recsys/ga4_table_kind": INTRADAY})

    return ga4_intraday_schedule


def due_day(now: dt.datetime, timezone: str) -> dt.date:
    """The day that must be merged by now: the day before the latest deadline that has passed."""
    local = now.astimezone(ZoneInfo(timezone))
    deadline_date = local.date() if local.hour >= DEADLINE_HOUR else local.date() - dt.timedelta(days=1)
    return deadline_date - dt.timedelta(days=1)


def build_merge_deadline(partitions: DailyPartitionsDefinition, timezone: str):
    """"Yesterday's GA4 day is merged by 09:00 property time": a check on `ga4_events` naming the late day,
    and the schedule that evaluates it at the deadline. (Dagster's partition freshness-check builders are
    superseded in 1.13, and `FreshnessPolicy` - also on the asset - is not partition-aware: it says the
    table was updated, not which day is late.)"""

    @asset_check(asset="ga4_events", name=DEADLINE_CHECK,
                 description=f"The day before the latest {DEADLINE_HOUR:02d}:00 ({timezone}) is merged.")
    def merged_by_deadline(context: AssetCheckExecutionContext) -> AssetCheckResult:
        day = due_day(dt.datetime.now(dt.timezone.utc), timezone)
        if day < partitions.start.date():
            return AssetCheckResult(passed=True, metadata={"due_day": day.isoformat(),
                                                           "note": "before the first partition"})
        records = context.instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey("ga4_events"), asset_partitions=[day.isoformat()]), limit=1
        ).records
        merged_at = MetadataValue.timestamp(records[0].timestamp) if records else "not merged"
        return AssetCheckResult(passed=bool(records), severity=AssetCheckSeverity.ERROR,
                                metadata={"due_day": day.isoformat(), "merged_at": merged_at})

    job = define_asset_job("ga4_merge_deadline_job", selection=AssetSelection.checks(merged_by_deadline),
                           description="Evaluate the GA4 merge deadline check.")
    deadline_schedule = ScheduleDefinition(name="ga4_merge_deadline_schedule", job=job,
                                           cron_schedule=f"0 {DEADLINE_HOUR} * * *", execution_timezone=timezone,
                                           default_status=DefaultScheduleStatus.RUNNING)
    return merged_by_deadline, job, deadline_schedule

