"""The chain as the code location defines it: what each deployment loads, and the retraining job with
its default config against the local Personalize."""

from dagster import DagsterInstance, Definitions

from recsys_platform.definitions import build_definitions
from recsys_platform.settings import PlatformSettings
from recsys_platform_tests.code_location import platform_definitions
from recsys_platform_tests.personalize.synthetic_shop import TRAINING_DATE

RETRAINING = {"personalize_interactions_csv", "personalize_items_csv", "personalize_users_csv",
              "personalize_dataset_import", "personalize_solution_version", "personalize_campaign"}


def test_chain_definitions_load_with_each_deployments_resources(tmp_path):
    for environ in ({"RECSYS_HOME": str(tmp_path)},
                    {"RECSYS_ENV": "aws", "RECSYS_GA4_TIMEZONE": "Europe/Berlin"}):
        defs = build_definitions(PlatformSettings.from_environment(environ))
        Definitions.validate_loadable(defs)
        job = defs.resolve_job_def("personalize_retraining_job")
        assert {key.to_user_string() for key in job.asset_layer.executable_asset_keys} == RETRAINING
        schedule = defs.resolve_schedule_def("personalize_retraining_schedule")
        assert schedule.cron_schedule == "0 11 * * *" and schedule.job_name == "personalize_retraining_job"
        pools = {name: defs.get_assets_def(name).op.pool
                 for name in ("personalize_solution_version", "personalize_model_comparison")}
        assert set(pools.values()) == {"personalize_training"}
    assert schedule.execution_timezone == "Europe/Berlin"  # the aws deployment's own property time zone


def test_retraining_job_runs_the_chain_with_default_config(recsys_home, warehouse, local_personalize, monkeypatch):
    monkeypatch.setenv("RECSYS_PERSONALIZE_ENDPOINT_URL", local_personalize.endpoint_url)
    defs = platform_definitions()  # the embedded default's resources over RECSYS_HOME (filled by `warehouse`)
    result = defs.resolve_job_def("personalize_retraining_job").execute_in_process(
        partition_key=TRAINING_DATE, instance=DagsterInstance.ephemeral()
    )
    assert result.success
    campaign = result.asset_value("personalize_campaign")
    version = result.asset_value("personalize_solution_version")
    assert campaign.serving_solution_version_arn == version.solution_version_arn
    metadata = result.asset_materializations_for_node("personalize_campaign")[0].metadata
    assert metadata["serving_solution_version_arn"].value == version.solution_version_arn
    assert (recsys_home / "lake" / "recsys-lake" / "personalize" / "interactions" / TRAINING_DATE).is_dir()
    # Each step handed the next a typed value, stored beside the snapshots.
    assert (recsys_home / "lake" / "recsys-lake" / "handoffs" / "personalize_campaign" / f"{TRAINING_DATE}.json").is_file()
