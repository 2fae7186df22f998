"""The code location: every asset, check, job, schedule, sensor and resource of the platform."""

from dagster import Definitions

from recsys_platform import personalize
from recsys_platform.ga4.events import ga4_events
from recsys_platform.ga4.export import ga4_export
from recsys_platform.ga4.jobs import (
    ga4_daily_job,
    ga4_daily_schedule,
    ga4_merge_deadline_checks,
    ga4_merge_deadline_sensor,
)
from recsys_platform.ga4.refined import refined_assets
from recsys_platform.ga4.sensors import ga4_export_sensor
from recsys_platform.interactions.assets import interactions
from recsys_platform.product_db import product_db_specs
from recsys_platform.resources import build_resources


def build_definitions(env: str | None = None) -> Definitions:
    """The definitions with resources for `env` (default RECSYS_ENV), resolved from the environment now."""
    return Definitions(
        assets=[ga4_export, *product_db_specs, ga4_events, *refined_assets, interactions, *personalize.assets],
        asset_checks=[*ga4_merge_deadline_checks, *personalize.asset_checks],
        jobs=[ga4_daily_job, *personalize.jobs],
        schedules=[ga4_daily_schedule, *personalize.schedules],
        sensors=[ga4_export_sensor, ga4_merge_deadline_sensor, *personalize.sensors],
        resources=build_resources(env),
    )


defs = build_definitions()
