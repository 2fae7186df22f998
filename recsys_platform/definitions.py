"""The code location: the whole asset graph, its checks, jobs, schedules and sensors, and the resources of
the deployment `RECSYS_ENV` names. Read top to bottom, `build_definitions` is the map of the graph.

Dagster calls `defs()` when it loads the code location (the webserver, the daemon, every run worker and
step process), so configuration is read then, not when this module is imported.
"""

from __future__ import annotations

import os

import dagster as dg

from recsys_platform.defs.ga4.daily_job import (
    build_ga4_daily_job,
    build_ga4_daily_schedule,
    build_ga4_intraday_schedule,
    build_merge_deadline,
)
from recsys_platform.defs.ga4.events import build_ga4_events
from recsys_platform.defs.ga4.export import build_ga4_export
from recsys_platform.defs.ga4.export_sensor import build_ga4_export_sensor
from recsys_platform.defs.ga4.ga4_setup import load_ga4_setup
from recsys_platform.defs.ga4.refined import build_refined_assets
from recsys_platform.defs.ga4.taxonomy import load_taxonomy
from recsys_platform.defs.interactions.interactions import build_interactions
from recsys_platform.defs.notifications import FAILURE_NOTIFIER, FailureNotifier, build_run_failure_sensor
from recsys_platform.defs.personalize.campaign import build_campaign
from recsys_platform.defs.personalize.dataset_import import build_dataset_import
from recsys_platform.defs.personalize.model_comparison import build_model_comparison
from recsys_platform.defs.personalize.personalize_setup import load_setup
from recsys_platform.defs.personalize.retraining_job import build_retraining_job, build_retraining_schedule
from recsys_platform.defs.personalize.snapshots import HANDOFF_IO_MANAGER, build_snapshot_assets
from recsys_platform.defs.personalize.solution_version import build_solution_version
from recsys_platform.defs.product_db.contract import load_contract
from recsys_platform.defs.privacy.erasure import build_erasure, build_erasure_job_and_schedule
from recsys_platform.defs.product_db.replica_assets import product_db_specs
from recsys_platform.lib.deployments import failure_notification_config, resources_for
from recsys_platform.lib.handoff_io_manager import LakeHandoffIOManager
from recsys_platform.lib.partitions import daily_partitions
from recsys_platform.lib.step_processes import step_executor
from recsys_platform.settings import PlatformSettings


def build_definitions(settings: PlatformSettings) -> dg.Definitions:
    days = daily_partitions(settings)  # completed days: what training works on
    ga4_days = daily_partitions(settings, include_open_day=True)  # and today's, for the intraday refresh
    timezone = settings.timezone
    taxonomy = load_taxonomy()
    ga4 = load_ga4_setup()
    personalize = load_setup()
    contract = load_contract(settings.product_db_contract)

    # GA4 export -> merged raw -> refined item tables -> interactions (with the product DB's purchases)
    ga4_assets = [
        build_ga4_export(ga4_days),
        build_ga4_events(ga4_days, timezone, ga4, contract),
        build_refined_assets(taxonomy, ga4_days, timezone),
        build_interactions(taxonomy, ga4_days, timezone, contract),
    ]
    # interactions -> lake snapshots -> dataset import -> solution version -> gated campaign (+ the experiment)
    personalize_assets = [
        *build_snapshot_assets(personalize, days, timezone, contract),
        build_dataset_import(personalize, days),
        build_solution_version(personalize, days),
        build_campaign(personalize, days, timezone),
        build_model_comparison(personalize, days),
    ]
    # Right to erasure: requests reach every derived table and Personalize.
    erasure = build_erasure(taxonomy, personalize, contract)
    erasure_job, erasure_schedule = build_erasure_job_and_schedule(timezone)
    ga4_daily_job = build_ga4_daily_job(taxonomy)
    retraining_job = build_retraining_job()
    deadline_check, deadline_job, deadline_schedule = build_merge_deadline(ga4_days, timezone)

    resources = resources_for(settings)
    return dg.Definitions(
        assets=[*ga4_assets, *product_db_specs, *personalize_assets, erasure],
        asset_checks=[deadline_check],
        jobs=[ga4_daily_job, retraining_job, erasure_job, deadline_job],
        schedules=[build_ga4_daily_schedule(ga4_daily_job, timezone), build_ga4_intraday_schedule(ga4_daily_job, timezone),
                   deadline_schedule, build_retraining_schedule(retraining_job), erasure_schedule],
        # A failed run of any job is posted to Slack / SNS when configured (RECSYS_SLACK_*, RECSYS_SNS_TOPIC_ARN).
        sensors=[build_ga4_export_sensor(ga4_days, ga4, timezone), build_run_failure_sensor()],
        # Every job's steps run in processes forked from one preloaded server (the UI's ad-hoc runs too).
        executor=step_executor(),
        resources={**resources, HANDOFF_IO_MANAGER: LakeHandoffIOManager(lake=resources["lake"]),
                   FAILURE_NOTIFIER: FailureNotifier(**failure_notification_config(settings))},
    )


# The last definitions `defs()` built in this process, with the settings and environment they were built from.
_built: tuple[tuple, dg.Definitions] | None = None


@dg.definitions
def defs() -> dg.Definitions:
    # Dagster loads the code location several times in one process (a run worker five times before its run
    # starts, each step twice), and a step forked from the preloaded server (recsys_platform/step_preload.py)
    # can take the server's: built again only when the settings or any environment variable differ.
    global _built
    settings = PlatformSettings.from_environment()
    key = (settings, tuple(sorted(os.environ.items())))
    if _built is None or _built[0] != key:
        _built = (key, build_definitions(settings))
    return _built[1]
