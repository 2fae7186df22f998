"""The daily retraining job and its schedule: independent of the GA4 day's success."""

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    ScheduleDefinition,
    build_schedule_from_partitioned_job,
    define_asset_job,
)

RETRAINING_ASSETS = (
    "personalize_interactions_csv", "personalize_items_csv", "personalize_users_csv",
    "personalize_dataset_import", "personalize_solution_version", "personalize_campaign",
)


def build_retraining_job():
    return define_asset_job(
        "personalize_retraining_job",
        selection=AssetSelection.assets(*RETRAINING_ASSETS),
        description="Snapshot the training window to the lake, import it into Personalize, train a solution "
                    "version and move the campaign to it if it passes the gate.",
        # One retraining at a time (dagster.yaml). Each Personalize wait gives up after 6 h (WaitConfig); a run
        # past 20 h is stuck outside them, and run monitoring ends it.
        tags={"recsys/lane": "personalize", "dagster/max_runtime": str(20 * 3600)},
    )


def build_retraining_schedule(job) -> ScheduleDefinition:
    """Yesterday's partition at 11:00 property time, after the GA4 day's own fallback run (10:00). It
    selects only the chain, so a failed GA4 day never blocks it: training uses whatever refined data exists."""
    return build_schedule_from_partitioned_job(
        job, name="personalize_retraining_schedule", hour_of_day=11, minute_of_hour=0,
        default_status=DefaultScheduleStatus.RUNNING,
    )
