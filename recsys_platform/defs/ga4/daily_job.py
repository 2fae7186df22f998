"""The GA4 day job, its fallback schedule and the merge deadline check."""

from dagster import (
    AssetChecksDefinition,
    AssetSelection,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    ScheduleDefinition,
    SensorDefinition,
    build_schedule_from_partitioned_job,
    build_sensor_for_freshness_checks,
    build_time_partition_freshness_checks,
    define_asset_job,
)

from recsys_platform.defs.ga4.taxonomy import Taxonomy

GA4_DAILY_JOB = "ga4_daily_job"


def build_ga4_daily_job(taxonomy: Taxonomy):
    return define_asset_job(
        GA4_DAILY_JOB,
        selection=AssetSelection.assets("ga4_events", *(event.asset for event in taxonomy.events), "interactions"),
        description="Merge one GA4 day, refine its tracked events and rebuild that day's interactions.",
    )


def build_ga4_daily_schedule(job) -> ScheduleDefinition:
    """Fallback when the sensor missed a day: yesterday's partition at 10:00 property time."""
    return build_schedule_from_partitioned_job(
        job, hour_of_day=10, minute_of_hour=0, default_status=DefaultScheduleStatus.RUNNING
    )


def build_merge_deadline_checks(timezone: str) -> tuple[list[AssetChecksDefinition], SensorDefinition]:
    """"Yesterday's GA4 day is merged by 09:00 property time", per partition, and the sensor that runs it.

    Dagster 1.13 marks these builders as superseded by `FreshnessPolicy`, which is not partition-aware:
    the policy on the asset says the table is fresh, this check says which day is late."""
    checks = build_time_partition_freshness_checks(assets=["ga4_events"], deadline_cron="0 9 * * *", timezone=timezone)
    sensor = build_sensor_for_freshness_checks(
        freshness_checks=checks, name="ga4_merge_deadline_sensor", default_status=DefaultSensorStatus.RUNNING
    )
    return list(checks), sensor
