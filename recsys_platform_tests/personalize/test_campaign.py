import math

import pytest
from dagster import DagsterInstance, materialize

from recsys_platform.defs.personalize.campaign import campaign_progress
from recsys_platform.defs.personalize.campaign_gate import decide, gate_decision
from recsys_platform.defs.personalize.job_waiting import PersonalizeJobFailed, WaitPolicy, wait_until_active
from recsys_platform.defs.personalize.personalize_setup import load_setup
from recsys_platform_tests.code_location import SNAPSHOT_NAMES, assets, chain_resources
from recsys_platform_tests.personalize.conftest import FAST_WAIT
from recsys_platform_tests.personalize.synthetic_shop import fill_warehouse, synthetic_interactions

CHAIN = assets(*SNAPSHOT_NAMES, "personalize_dataset_import", "personalize_solution_version", "personalize_campaign")
personalize_campaign = CHAIN[-1]


def _config(campaign_only: bool, **campaign):
    ops = {"personalize_campaign": {"config": {**FAST_WAIT, **campaign}}}
    if not campaign_only:
        ops.update({"personalize_dataset_import": {"config": FAST_WAIT},
                    "personalize_solution_version": {"config": FAST_WAIT}})
    return {"ops": ops}


def _run(instance, day, resources, selection=None, **campaign):
    result = materialize(CHAIN, instance=instance, partition_key=day, run_config=_config(selection is not None, **campaign),
                         resources=resources, selection=selection)
    assert result.success
    return result.asset_materializations_for_node("personalize_campaign")[0].metadata, result


def test_gate_decides_before_the_campaign_moves(warehouse, lake, personalize):
    instance = DagsterInstance.ephemeral()
    resources = chain_resources(warehouse, lake, personalize)
    first, result = _run(instance, "2026-02-27", resources)
    first_version = result.asset_materializations_for_node("personalize_solution_version")[0].metadata[
        "solution_version_arn"].value
    assert first["decision"].value.startswith("first deployment")
    assert first["serving_solution_version_arn"].value == first_version

    held, result = _run(instance, "2026-02-28", resources, override="hold")
    challenger = result.asset_materializations_for_node("personalize_solution_version")[0].metadata[
        "solution_version_arn"].value
    assert challenger != first_version
    assert held["decision"].value == "operator override: hold" and held["promoted"].value is False
    assert held["serving_solution_version_arn"].value == first_version
    metric = held["gate_metric"].value
    assert held["challenger_users_scored"].value == held["champion_users_scored"].value > 0
    assert 0 <= held[f"challenger_{metric}"].value <= 1 and 0 <= held[f"champion_{metric}"].value <= 1
    assert "| normalized_discounted_cumulative_gain_at_25 |" in held["holdout_scores"].value

    # Batch inference output for both versions landed in the lake.
    assert len([k for k in lake.list("personalize/batch-inference/") if k.endswith(".out")]) == 2

    promoted, _ = _run(instance, "2026-02-28", resources, selection=[personalize_campaign.key], tolerance=1.0)
    assert promoted["promoted"].value is True and promoted["decision"].value.startswith("promote")
    assert promoted["serving_solution_version_arn"].value == challenger
    # The re-run resumed both batch inference jobs instead of starting new ones.
    assert len([k for k in lake.list("personalize/batch-inference/") if k.endswith(".out")]) == 2
    campaign = personalize.get_client().describe_campaign(campaignArn=promoted["campaign_arn"].value)["campaign"]
    assert campaign["solutionVersionArn"] == challenger

    again, _ = _run(instance, "2026-02-28", resources, selection=[personalize_campaign.key])
    assert again["decision"].value == "the campaign already serves this version"

    # What a shop's app does next: recommendations from the campaign through boto3.
    items = personalize.get_runtime_client().get_recommendations(
        campaignArn=promoted["campaign_arn"].value, userId="u1", numResults=5)["itemList"]
    assert len(items) == 5 and all(item["itemId"].startswith("i") for item in items)


def test_decide():
    assert decide(0.30, 0.31, tolerance=0.02).promote
    assert decide(0.31, 0.30, tolerance=0.0).promote
    held = decide(0.25, 0.31, tolerance=0.02)
    assert not held.promote and held.reason.startswith("hold: challenger < champion - tolerance (challenger 0.2500")
    # With the paired interval: a drop is held only when the whole interval is below -tolerance.
    assert decide(0.25, 0.31, tolerance=0.02, difference_upper=0.01).promote
    assert decide(0.25, 0.31, tolerance=0.02, difference_upper=-0.015).promote
    confident = decide(0.25, 0.31, tolerance=0.02, difference_upper=-0.03)
    assert not confident.promote and confident.reason.startswith("hold: challenger worse with 95% confidence")
    assert decide(0.25, 0.31, tolerance=0.02, override="promote").promote
    assert not decide(0.40, 0.31, tolerance=0.02, override="hold").promote
    assert not decide(math.nan, 0.31, tolerance=0.02).promote
    with pytest.raises(ValueError, match="tolerance"):
        decide(0.3, 0.3, tolerance=-1)
    with pytest.raises(ValueError, match="override"):
        decide(0.3, 0.3, tolerance=0, override="maybe")


def test_an_earlier_failed_update_does_not_block_later_gates_but_a_new_one_fails():
    failed_update = {
        "status": "UPDATE FAILED", "solutionVersionArn": "arn:v1",
        "latestCampaignUpdate": {"status": "UPDATE FAILED", "solutionVersionArn": "arn:v2",
                                 "failureReason": "model could not be loaded"},
    }
    policy = WaitPolicy(poll_seconds=1, deadline_seconds=5)
    # Waiting on the update this run started surfaces its failure...
    with pytest.raises(PersonalizeJobFailed, match="UPDATE FAILED: model could not be loaded"):
        wait_until_active(lambda: campaign_progress(failed_update), "campaign", policy, sleep=lambda s: None)
    # ...but before the gate, an earlier run's failed update is settled: the campaign still serves arn:v1.
    settled = wait_until_active(lambda: campaign_progress(failed_update, earlier_update_failure_ok=True),
                                "campaign", policy, sleep=lambda s: None)
    assert settled["solutionVersionArn"] == "arn:v1"
    in_flight = {**failed_update, "latestCampaignUpdate": {"status": "UPDATE IN_PROGRESS"}}
    assert campaign_progress(in_flight, earlier_update_failure_ok=True)["status"] == "UPDATE IN_PROGRESS"


def test_gate_without_scores_moves_only_on_an_operator_override():
    gate = load_setup().gate
    promoted, check, metadata = gate_decision(None, gate, 0.0, "promote")
    assert promoted.promote and not check.passed and metadata == {}
    held, _, _ = gate_decision(None, gate, 0.0, "hold")
    assert not held.promote


def test_override_promotes_when_the_holdout_is_empty(recsys_home, lake, personalize):
    import pyarrow.compute as pc

    source = synthetic_interactions()
    no_purchases = fill_warehouse(recsys_home, source.filter(pc.not_equal(source["EVENT_TYPE"], "purchase")))
    instance = DagsterInstance.ephemeral()
    resources = chain_resources(no_purchases, lake, personalize)
    _run(instance, "2026-02-27", resources)
    gated = materialize(CHAIN, instance=instance, partition_key="2026-02-28", run_config=_config(False),
                        resources=resources, raise_on_error=False)
    assert not gated.success  # nothing to score on: the gate fails, saying why
    failure = next(e for e in gated.all_events if e.event_type_value == "STEP_FAILURE")
    assert "the holdout of 2026-02-28 is empty" in str(failure.event_specific_data.error.cause)
    challenger = gated.asset_materializations_for_node("personalize_solution_version")[0].metadata[
        "solution_version_arn"].value

    promoted, _ = _run(instance, "2026-02-28", resources, selection=[personalize_campaign.key], override="promote")
    assert promoted["decision"].value == "operator override: promote"
    assert promoted["serving_solution_version_arn"].value == challenger
