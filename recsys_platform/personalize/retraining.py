"""The daily retraining job and its schedule: independent of the GA4 day's success."""

from dagster import AssetSelection, DefaultScheduleStatus, build_schedule_from_partitioned_job, define_asset_job

from recsys_platform.personalize.campaign import personalize_campaign
from recsys_platform.personalize.snapshots import (
    personalize_interactions_csv,
    personalize_items_csv,
    personalize_users_csv,
)
from recsys_platform.personalize.training import personalize_dataset_import, personalize_solution_version

personalize_retraining_job = define_asset_job(
    "personalize_retraining_job",
    selection=AssetSelection.assets(
        personalize_interactions_csv, personalize_items_csv, personalize_users_csv,
        personalize_dataset_import, personalize_solution_version, personalize_campaign,
    ),
    description="Snapshot the training window to the lake, import it into Personalize, train a solution "
                "version and move the campaign to it if it passes the gate.",
)

# Yesterday's partition at 11:00 property time, after the GA4 day's own fallback run (10:00). It selects
# only the chain, so a failed GA4 day never blocks it: training uses whatever refined data exists.
personalize_retraining_schedule = build_schedule_from_partitioned_job(
    personalize_retraining_job, name="personalize_retraining_schedule", hour_of_day=11, minute_of_hour=0,
    default_status=DefaultScheduleStatus.RUNNING,
)
