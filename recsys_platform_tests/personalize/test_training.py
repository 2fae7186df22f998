from dagster import DagsterInstance, materialize

from recsys_platform_tests.code_location import SNAPSHOT_NAMES, assets, chain_resources
from recsys_platform_tests.personalize.conftest import FAST_WAIT
from recsys_platform_tests.personalize.synthetic_shop import TRAINING_DATE

SNAPSHOTS = assets(*SNAPSHOT_NAMES)
personalize_dataset_import, personalize_solution_version = assets("personalize_dataset_import",
                                                                  "personalize_solution_version")
CHAIN = [*SNAPSHOTS, personalize_dataset_import, personalize_solution_version]
METRIC_KEYS = {
    "coverage", "mean_reciprocal_rank_at_25", "normalized_discounted_cumulative_gain_at_5",
    "normalized_discounted_cumulative_gain_at_10", "normalized_discounted_cumulative_gain_at_25",
    "precision_at_5", "precision_at_10", "precision_at_25",
}
CHAIN_CONFIG = {"ops": {"personalize_dataset_import": {"config": FAST_WAIT},
                        "personalize_solution_version": {"config": FAST_WAIT}}}


def _failure_message(result) -> str:
    """The step failure's message with its causes (Dagster wraps the exception the asset raised)."""
    error = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE").event_specific_data.error
    messages = []
    while error is not None:
        messages.append(error.message)
        error = error.cause
    return "\n".join(messages)


def _run(assets, instance, warehouse, lake, personalize, selection=None):
    result = materialize(
        assets, instance=instance, partition_key=TRAINING_DATE, run_config=CHAIN_CONFIG, selection=selection,
        resources=chain_resources(warehouse, lake, personalize),
    )
    assert result.success
    return result


def test_import_and_training_then_rerun_resumes_instead_of_duplicating(warehouse, lake, personalize):
    instance = DagsterInstance.ephemeral()
    assets = [*SNAPSHOTS, personalize_dataset_import, personalize_solution_version]
    first = _run(assets, instance, warehouse, lake, personalize)
    imported = first.asset_materializations_for_node("personalize_dataset_import")[0].metadata
    snapshot_uri = first.asset_materializations_for_node("personalize_interactions_csv")[0].metadata["uri"].value
    assert imported["interactions_data_location"].value == snapshot_uri
    assert imported["interactions_resumed"].value is False
    assert imported["import_mode"].value == "FULL"
    assert imported["import_reason"].value.startswith("no import into the dataset yet")
    version = first.asset_materializations_for_node("personalize_solution_version")[0].metadata
    assert version["name"].value == "recsys-20260228" and version["resumed"].value is False
    assert version["training_mode"].value == "FULL"
    assert version["training_reason"].value.startswith("aws-user-personalization-v2 trains FULL only")
    assert METRIC_KEYS <= set(version)
    assert 0 < version["coverage"].value <= 1

    # Re-executing the two chain steps for the same day finds the day's jobs and waits on them.
    second = _run(assets, instance, warehouse, lake, personalize,
                  selection=[personalize_dataset_import, personalize_solution_version])
    reimported = second.asset_materializations_for_node("personalize_dataset_import")[0].metadata
    assert reimported["interactions_job_arn"].value == imported["interactions_job_arn"].value
    assert reimported["interactions_resumed"].value is True
    again = second.asset_materializations_for_node("personalize_solution_version")[0].metadata
    assert again["solution_version_arn"].value == version["solution_version_arn"].value
    assert again["resumed"].value is True

    # The whole chain again on unchanged data: new snapshot objects, the same content, so nothing is redone.
    third = _run(assets, instance, warehouse, lake, personalize)
    rerun = third.asset_materializations_for_node("personalize_dataset_import")[0].metadata
    assert all(rerun[f"{key}_resumed"].value for key in ("interactions", "items", "users"))
    assert rerun["interactions_reason"].value.startswith("resumed: recsys-interactions-20260228 already loaded this content")
    assert third.asset_materializations_for_node("personalize_solution_version")[0].metadata["resumed"].value is True

    client = personalize.get_client()
    dataset_arn = client.describe_dataset_import_job(
        datasetImportJobArn=imported["interactions_job_arn"].value)["datasetImportJob"]["datasetArn"]
    assert len(client.list_dataset_import_jobs(datasetArn=dataset_arn)["datasetImportJobs"]) == 1
    solution_arn = client.describe_solution_version(
        solutionVersionArn=version["solution_version_arn"].value)["solutionVersion"]["solutionArn"]
    assert len(client.list_solution_versions(solutionArn=solution_arn)["solutionVersions"]) == 1


def test_failed_training_surfaces_its_reason_and_the_next_attempt_gets_a_new_name(recsys_home, lake, personalize):
    from recsys_platform_tests.personalize.synthetic_shop import fill_warehouse, synthetic_interactions

    # Too little data: the blocking minimums check stops the chain before the import ...
    small = fill_warehouse(recsys_home / "small", synthetic_interactions(n_users=20, n_events=300))
    instance = DagsterInstance.ephemeral()
    assets = [*SNAPSHOTS, personalize_dataset_import, personalize_solution_version]
    blocked = materialize(assets, instance=instance, partition_key=TRAINING_DATE, run_config=CHAIN_CONFIG,
                          resources=chain_resources(small, lake, personalize),
                          raise_on_error=False)
    assert not blocked.success
    assert not blocked.asset_materializations_for_node("personalize_dataset_import")

    # ... and if an operator pushes on anyway, Personalize's training fails and the step says why.
    forced = materialize(CHAIN, selection=[personalize_dataset_import, personalize_solution_version], instance=instance,
                         partition_key=TRAINING_DATE, run_config=CHAIN_CONFIG, raise_on_error=False,
                         resources=chain_resources(small, lake, personalize))
    assert not forced.success
    message = _failure_message(forced)
    assert "solution version recsys-20260228 ended CREATE FAILED" in message
    assert "Insufficient training data" in message

    retried = materialize(CHAIN, selection=[personalize_solution_version], instance=instance, partition_key=TRAINING_DATE,
                          run_config={"ops": {"personalize_solution_version": {"config": FAST_WAIT}}},
                          raise_on_error=False, resources=chain_resources(small, lake, personalize))
    message = _failure_message(retried)
    assert "solution version recsys-20260228-a2 ended CREATE FAILED" in message


def test_deadline_fails_cleanly_and_a_retry_resumes_the_same_training(warehouse, lake, personalize):
    instance = DagsterInstance.ephemeral()
    resources = chain_resources(warehouse, lake, personalize)
    forced_full = {"ops": {"personalize_dataset_import": {"config": {**FAST_WAIT, "import_mode": "FULL"}}}}
    imported = materialize(CHAIN, selection=[*SNAPSHOTS, personalize_dataset_import], instance=instance, partition_key=TRAINING_DATE,
                           resources=resources, run_config=forced_full)
    meta = imported.asset_materializations_for_node("personalize_dataset_import")[0].metadata
    assert meta["import_reason"].value == "run config import_mode: FULL"
    client = personalize.get_client()
    job = client.describe_dataset_import_job(datasetImportJobArn=meta["interactions_job_arn"].value)["datasetImportJob"]
    assert job["importMode"] == "FULL"

    impatient = {"ops": {"personalize_solution_version": {"config": {"poll_seconds": 0.01, "deadline_seconds": 0}}}}
    timed_out = materialize(CHAIN, selection=[personalize_solution_version], instance=instance, partition_key=TRAINING_DATE,
                            resources=resources, run_config=impatient, raise_on_error=False)
    assert not timed_out.success
    message = _failure_message(timed_out)
    assert "solution version recsys-20260228 still CREATE" in message and "a retry of this step resumes" in message

    retried = materialize(CHAIN, selection=[personalize_solution_version], instance=instance, partition_key=TRAINING_DATE,
                          resources=resources, run_config={"ops": {"personalize_solution_version": {"config": FAST_WAIT}}})
    version = retried.asset_materializations_for_node("personalize_solution_version")[0].metadata
    assert version["name"].value == "recsys-20260228" and version["resumed"].value is True


def test_cancelled_training_is_stopped_in_personalize(warehouse, lake, personalize, monkeypatch):
    from dagster import DagsterExecutionInterruptedError, build_asset_context

    from recsys_platform.defs.personalize.provisioning import provision
    from recsys_platform.defs.personalize.personalize_setup import load_setup
    from recsys_platform.defs.personalize.job_waiting import WaitPolicy
    from recsys_platform.defs.personalize.solution_version import train_solution_version

    client = personalize.get_client()
    arns = provision(client, load_setup(), WaitPolicy(0.05, 60))
    describe = client.describe_solution_version

    def cancelled_while_waiting(**kwargs):
        describe(**kwargs)
        raise DagsterExecutionInterruptedError()  # what Dagster raises in a step when the run is cancelled

    monkeypatch.setattr(client, "describe_solution_version", cancelled_while_waiting)
    try:
        train_solution_version(build_asset_context(), client, arns.solution_arn, "recsys-20260228", "FULL",
                               WaitPolicy(0.05, 60))
        raise AssertionError("the interruption must propagate")
    except DagsterExecutionInterruptedError:
        pass
    monkeypatch.undo()
    versions = client.list_solution_versions(solutionArn=arns.solution_arn)["solutionVersions"]
    assert len(versions) == 1
    assert versions[0]["status"] in ("CREATE STOPPING", "CREATE STOPPED")


def test_a_version_still_training_on_older_data_is_stopped_and_the_day_trains_again(recsys_home, warehouse, lake,
                                                                                     personalize):
    """A re-run after a fresh import: the day's version started before the datasets changed, so it trains
    on the old import. It is stopped (not paid for to the end) and the next attempt trains on the new data."""
    import datetime as dt

    from recsys_platform.defs.personalize.job_waiting import WaitPolicy
    from recsys_platform.defs.personalize.personalize_setup import load_setup
    from recsys_platform.defs.personalize.provisioning import provision
    from recsys_platform.defs.personalize.solution_version import (
        solution_versions,
        start_or_resume_solution_version,
    )
    from recsys_platform.standins.local_personalize.server import start_in_background
    from recsys_platform_tests.code_location import local_personalize_resource

    arns = provision(personalize.get_client(), load_setup(), WaitPolicy(0.05, 60))
    assert materialize([*SNAPSHOTS, personalize_dataset_import], instance=DagsterInstance.ephemeral(),
                       partition_key=TRAINING_DATE, resources=chain_resources(warehouse, lake, personalize),
                       run_config={"ops": {"personalize_dataset_import": {"config": FAST_WAIT}}}).success
    # A second server on the same state whose jobs move slowly: the version is still training when looked at.
    with start_in_background(recsys_home / "personalize", recsys_home / "lake", step_delay=2.0) as slow:
        client = local_personalize_resource(slow.endpoint_url).get_client()
        old = client.create_solution_version(solutionArn=arns.solution_arn, name="recsys-20260228")["solutionVersionArn"]
        started = client.describe_solution_version(solutionVersionArn=old)["solutionVersion"]["creationDateTime"]
        changed = started + dt.timedelta(microseconds=1)  # an import landed right after it started

        resumed = start_or_resume_solution_version(client, arns.solution_arn, "recsys-20260228", "FULL",
                                                   solution_versions(client, arns.solution_arn), started)
        assert resumed[:3] == (old, "recsys-20260228", True)  # created after the data it reads: resumed

        stopped = []
        arn, name, was_resumed, why = start_or_resume_solution_version(
            client, arns.solution_arn, "recsys-20260228", "FULL", solution_versions(client, arns.solution_arn),
            changed, stop=lambda a: (stopped.append(a), client.stop_solution_version_creation(solutionVersionArn=a)))
        assert name == "recsys-20260228-a2" and not was_resumed and arn != old
        assert why.startswith("recsys-20260228 was created at ") and "before the datasets last changed" in why
        assert stopped == [old]
        assert client.describe_solution_version(solutionVersionArn=old)["solutionVersion"]["status"] in (
            "CREATE STOPPING", "CREATE STOPPED")
        client.stop_solution_version_creation(solutionVersionArn=arn)  # not needed by the test: not paid for
