"""The GA4 day job, its fallback schedule and the merge deadline check."""

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    build_schedule_from_partitioned_job,
    build_sensor_for_freshness_checks,
    build_time_partition_freshness_checks,
    define_asset_job,
)

from recsys_platform.ga4.events import ga4_events
from recsys_platform.ga4.refined import refined_assets
from recsys_platform.interactions.assets import interactions
from recsys_platform.settings import ga4_timezone

ga4_daily_job = define_asset_job(
    "ga4_daily_job",
    selection=AssetSelection.assets(ga4_events, *refined_assets, interactions),
    description="Merge one GA4 day, refine its tracked events and rebuild that day's interactions.",
)

# Fallback when the sensor missed a day: yesterday's partition at 10:00 property time.
ga4_daily_schedule = build_schedule_from_partitioned_job(
    ga4_daily_job, hour_of_day=10, minute_of_hour=0, default_status=DefaultScheduleStatus.RUNNING
)

# "Yesterday's GA4 day is merged by 09:00 property time", per partition.
ga4_merge_deadline_checks = build_time_partition_freshness_checks(
    assets=[ga4_events], deadline_cron="0 9 * * *", timezone=ga4_timezone()
)
ga4_merge_deadline_sensor = build_sensor_for_freshness_checks(
    freshness_checks=ga4_merge_deadline_checks,
    name="ga4_merge_deadline_sensor",
    default_status=DefaultSensorStatus.RUNNING,
)
