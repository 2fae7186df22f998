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


def _purchases_in_training(lake, snapshot_key: str) -> dict[str, set[str]]:
    """USER_ID -> items bought, as the interactions dataset holds them (what an interactions filter sees)."""
    import csv
    import io

    bought: dict[str, set[str]] = {}
    for row in csv.DictReader(io.StringIO(lake.read_text(snapshot_key))):
        if row["EVENT_TYPE"] == "purchase":
            bought.setdefault(row["USER_ID"], set()).add(row["ITEM_ID"])
    return bought


def test_gate_decides_before_the_campaign_moves(recsys_home, lake, personalize):
    import json

    # Enough held-out users with purchases to score (gate.min_holdout_users).
    warehouse = fill_warehouse(recsys_home, synthetic_interactions(n_users=300, n_events=9000, seed=5), n_users=300)
    instance = DagsterInstance.ephemeral()
    resources = chain_resources(warehouse, lake, personalize)
    client = personalize.get_client()
    first, result = _run(instance, "2026-02-27", resources)
    first_version = result.asset_materializations_for_node("personalize_solution_version")[0].metadata[
        "solution_version_arn"].value
    assert first["decision"].value.startswith("first deployment")
    assert first["serving_solution_version_arn"].value == first_version
    # The campaign never follows its solution by itself: only the gate moves it.
    created = client.describe_campaign(campaignArn=first["campaign_arn"].value)["campaign"]
    assert created["campaignConfig"]["syncWithLatestSolutionVersion"] is False
    # What the shop's app needs is in the campaign's metadata and hand-off.
    state = result.asset_value("personalize_campaign")
    serving_filter = state.filter_arns["recsys-platform-serving"]
    assert first["serving_filter_arn"].value == state.serving_filter_arn == serving_filter
    assert first["filter_arns"].value == state.filter_arns and len(state.filter_arns) == 2
    tracker = client.describe_event_tracker(eventTrackerArn=state.event_tracker_arn)["eventTracker"]
    assert first["tracking_id"].value == state.tracking_id == tracker["trackingId"]

    held, result = _run(instance, "2026-02-28", resources, override="hold")
    challenger = result.asset_materializations_for_node("personalize_solution_version")[0].metadata[
        "solution_version_arn"].value
    assert challenger != first_version
    assert held["decision"].value == "operator override: hold" and held["promoted"].value is False
    assert held["serving_solution_version_arn"].value == first_version
    metric = held["gate_metric"].value
    assert held["challenger_users_scored"].value == held["champion_users_scored"].value >= 10
    assert 0 <= held[f"challenger_{metric}"].value <= 1 and 0 <= held[f"champion_{metric}"].value <= 1
    assert "| normalized_discounted_cumulative_gain_at_25 |" in held["holdout_scores"].value

    # Both versions answered through the serving filter: what users get, not the raw ranking.
    assert held["gate_filter_arn"].value == serving_filter
    outputs = [k for k in lake.list("personalize/batch-inference/") if k.endswith(".out")]
    assert len(outputs) == 2
    jobs = client.list_batch_inference_jobs()["batchInferenceJobs"]
    assert {client.describe_batch_inference_job(batchInferenceJobArn=j["batchInferenceJobArn"])[
        "batchInferenceJob"]["filterArn"] for j in jobs} == {serving_filter}
    bought = _purchases_in_training(lake, result.asset_value("personalize_interactions_csv").key)
    unavailable = {f"i{n}" for n in range(60) if n % 7 == 0}  # the synthetic catalogue's is_available = false
    answered = 0
    for key in outputs:
        for line in lake.read_text(key).splitlines():
            record = json.loads(line)
            items = set(record["output"]["recommendedItems"])
            answered += 1
            assert not items & unavailable
            assert not items & bought.get(record["input"]["userId"], set())
    assert answered == 2 * held["challenger_users_scored"].value

    promoted, _ = _run(instance, "2026-02-28", resources, selection=[personalize_campaign.key], tolerance=1.0)
    assert promoted["promoted"].value is True and promoted["decision"].value.startswith("promote")
    assert promoted["serving_solution_version_arn"].value == challenger
    # The re-run resumed both batch inference jobs instead of starting new ones.
    assert len([k for k in lake.list("personalize/batch-inference/") if k.endswith(".out")]) == 2
    campaign = client.describe_campaign(campaignArn=promoted["campaign_arn"].value)["campaign"]
    assert campaign["solutionVersionArn"] == challenger
    assert campaign["campaignConfig"]["syncWithLatestSolutionVersion"] is False

    again, _ = _run(instance, "2026-02-28", resources, selection=[personalize_campaign.key])
    assert again["decision"].value == "the campaign already serves this version"

    # What a shop's app does next: recommendations from the campaign through boto3, with the serving filter.
    items = personalize.get_runtime_client().get_recommendations(
        campaignArn=promoted["campaign_arn"].value, userId="u1", numResults=5, filterArn=serving_filter)["itemList"]
    assert len(items) == 5 and not {item["itemId"] for item in items} & unavailable


def test_a_campaign_that_drifted_from_the_yaml_is_refused_by_name(warehouse, lake, personalize):
    instance = DagsterInstance.ephemeral()
    resources = chain_resources(warehouse, lake, personalize)
    first, result = _run(instance, "2026-02-28", resources)
    client = personalize.get_client()
    campaign_arn = first["campaign_arn"].value
    version = result.asset_value("personalize_solution_version")
    solution_arn = version.solution_arn

    def settle():
        return wait_until_active(lambda: campaign_progress(client.describe_campaign(campaignArn=campaign_arn)[
            "campaign"]), "campaign", WaitPolicy(0.05, 60))

    # Someone turned on syncWithLatestSolutionVersion: every new version would go live ungated.
    client.update_campaign(campaignArn=campaign_arn, solutionVersionArn=f"{solution_arn}/$LATEST",
                           campaignConfig={"syncWithLatestSolutionVersion": True})
    settle()
    refused = materialize(CHAIN, instance=instance, partition_key="2026-02-28", run_config=_config(True),
                          resources=resources, selection=[personalize_campaign.key], raise_on_error=False)
    assert not refused.success
    message = str(next(e for e in refused.all_events if e.event_type_value == "STEP_FAILURE").event_specific_data.error)
    assert "campaign recsys-platform" in message
    assert "campaignConfig.syncWithLatestSolutionVersion: true in Personalize, false in personalize.yaml" in message
    assert f"Fix: aws personalize update-campaign --campaign-arn {campaign_arn}" in message
    assert "syncWithLatestSolutionVersion=false" in message

    # Fixed as the message says, but with another minProvisionedTPS: refused too, naming both values.
    client.update_campaign(campaignArn=campaign_arn, solutionVersionArn=version.solution_version_arn,
                           minProvisionedTPS=5, campaignConfig={"syncWithLatestSolutionVersion": False})
    settle()
    refused = materialize(CHAIN, instance=instance, partition_key="2026-02-28", run_config=_config(True),
                          resources=resources, selection=[personalize_campaign.key], raise_on_error=False)
    message = str(next(e for e in refused.all_events if e.event_type_value == "STEP_FAILURE").event_specific_data.error)
    assert "minProvisionedTPS: 5 in Personalize, 1 in personalize.yaml" in message
    assert "syncWithLatestSolutionVersion: true" not in message

    client.update_campaign(campaignArn=campaign_arn, minProvisionedTPS=1)
    settle()
    fixed, _ = _run(instance, "2026-02-28", resources, selection=[personalize_campaign.key])
    assert fixed["decision"].value == "the campaign already serves this version"


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


def test_a_holdout_too_small_to_score_is_an_explicit_decision_not_a_failed_run(recsys_home, lake, personalize):
    """A small shop: 7 held-out users bought something in the holdout period, fewer than
    gate.min_holdout_users (10). The default promotes, saying so; `hold` keeps the campaign's version."""
    from recsys_platform_tests.personalize.chain import chain_assets, metadata, run_chain, with_setup

    warehouse = fill_warehouse(recsys_home, synthetic_interactions())
    instance = DagsterInstance.ephemeral()
    first = run_chain(chain_assets(), "2026-02-26", warehouse, lake, personalize, instance)
    serving = metadata(first, "personalize_campaign")["serving_solution_version_arn"]

    held = run_chain(chain_assets(with_setup(gate={"when_unscorable": "hold"})), "2026-02-27", warehouse, lake,
                     personalize, instance)
    decided = metadata(held, "personalize_campaign")
    assert decided["promoted"] is False and decided["scored"] is False
    assert decided["serving_solution_version_arn"] == serving
    assert decided["decision"].startswith("hold unscored: ")
    assert "held-out user(s) with a purchase since 2026-02-21, fewer than gate.min_holdout_users (10)" in decided["decision"]
    assert decided["decision"].endswith("(gate.when_unscorable: hold)")
    [check] = [c for c in held.get_asset_check_evaluations() if c.check_name == "challenger_not_worse"]
    assert not check.passed
    assert check.severity.value == "WARN" and check.metadata["scored"].value is False
    assert held.asset_value("personalize_campaign").scored is False

    promoted = run_chain(chain_assets(), "2026-02-28", warehouse, lake, personalize, instance)
    decided = metadata(promoted, "personalize_campaign")
    challenger = metadata(promoted, "personalize_solution_version")["solution_version_arn"]
    assert decided["promoted"] is True and decided["serving_solution_version_arn"] == challenger
    assert decided["decision"].startswith("promote unscored: ") and decided["when_unscorable"] == "promote"
    assert not lake.list("personalize/batch-inference/")  # nothing was scored, so no batch inference was paid for


def test_an_empty_holdout_is_decided_the_same_way(recsys_home, lake, personalize):
    import pyarrow.compute as pc

    from recsys_platform_tests.personalize.chain import chain_assets, metadata, run_chain

    source = synthetic_interactions()
    no_purchases = fill_warehouse(recsys_home, source.filter(pc.not_equal(source["EVENT_TYPE"], "purchase")))
    instance = DagsterInstance.ephemeral()
    run_chain(chain_assets(), "2026-02-27", no_purchases, lake, personalize, instance)
    # An operator's override decides over gate.when_unscorable ...
    overridden = run_chain(chain_assets(), "2026-02-28", no_purchases, lake, personalize, instance,
                           personalize_campaign={"override": "hold"})
    decided = metadata(overridden, "personalize_campaign")
    assert decided["decision"] == "operator override: hold" and decided["scored"] is False
    assert "the holdout of 2026-02-28 is empty" in decided["unscored_because"]
    # ... and without one, the setting (promote) does: the run succeeds, saying why.
    campaign_step = chain_assets()
    gated = run_chain(campaign_step, "2026-02-28", no_purchases, lake, personalize, instance,
                      selection=[campaign_step[-1]])
    decided = metadata(gated, "personalize_campaign")
    assert decided["promoted"] is True
    assert decided["decision"].startswith("promote unscored: the holdout of 2026-02-28 is empty")
    assert decided["serving_solution_version_arn"] == metadata(overridden, "personalize_solution_version")[
        "solution_version_arn"]
