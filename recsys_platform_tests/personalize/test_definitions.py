from dagster import Definitions

import recsys_platform.personalize as chain
from recsys_platform.resources.lake import build_lake_resource
from recsys_platform.resources.personalize import build_personalize_resource


def test_chain_definitions_load_with_each_deployments_resources(monkeypatch, tmp_path, warehouse):
    monkeypatch.setenv("RECSYS_HOME", str(tmp_path))
    for env in ("local", "aws"):
        defs = Definitions(
            assets=chain.assets, asset_checks=chain.asset_checks, jobs=chain.jobs, schedules=chain.schedules,
            sensors=chain.sensors,
            resources={"warehouse": warehouse, "lake": build_lake_resource(env),
                       "personalize": build_personalize_resource(env)},
        )
        Definitions.validate_loadable(defs)
    job = defs.resolve_job_def("personalize_retraining_job")
    assert {key.to_user_string() for key in job.asset_layer.executable_asset_keys} == {
        "personalize_interactions_csv", "personalize_items_csv", "personalize_users_csv",
        "personalize_dataset_import", "personalize_solution_version", "personalize_campaign",
    }
    schedule = defs.resolve_schedule_def("personalize_retraining_schedule")
    assert schedule.cron_schedule == "0 11 * * *"
    assert schedule.job_name == "personalize_retraining_job"
    pools = {a.key.to_user_string(): a.op.pool for a in chain.assets}
    assert pools["personalize_solution_version"] == pools["personalize_model_comparison"] == "personalize_training"


def test_retraining_job_runs_the_chain_with_default_config(recsys_home, warehouse):
    from dagster import DagsterInstance

    from recsys_platform_tests.personalize.synthetic_shop import TRAINING_DATE

    defs = Definitions(
        assets=chain.assets, jobs=chain.jobs, schedules=chain.schedules,
        resources={"warehouse": warehouse, "lake": build_lake_resource("local"),
                   "personalize": build_personalize_resource("local")},
    )
    result = defs.resolve_job_def("personalize_retraining_job").execute_in_process(
        partition_key=TRAINING_DATE, instance=DagsterInstance.ephemeral()
    )
    assert result.success
    campaign = result.asset_materializations_for_node("personalize_campaign")[0].metadata
    version = result.asset_materializations_for_node("personalize_solution_version")[0].metadata
    assert campaign["serving_solution_version_arn"].value == version["solution_version_arn"].value
    assert (recsys_home / "lake" / "recsys-lake" / "personalize" / "interactions" / TRAINING_DATE).is_dir()
