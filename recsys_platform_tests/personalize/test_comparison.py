from dagster import DagsterInstance, materialize

from recsys_platform_tests.code_location import SNAPSHOT_NAMES, assets, chain_resources
from recsys_platform_tests.personalize.conftest import FAST_WAIT
from recsys_platform_tests.personalize.synthetic_shop import TRAINING_DATE, fill_warehouse, synthetic_interactions


(personalize_interactions_csv, personalize_items_csv, personalize_users_csv, personalize_dataset_import,
 personalize_model_comparison) = assets(*SNAPSHOT_NAMES, "personalize_dataset_import", "personalize_model_comparison")


def test_v1_vs_v2_table_on_the_same_holdout(recsys_home, lake, personalize):
    # Enough purchases for a purchases-only solution to meet Personalize's minimums.
    warehouse = fill_warehouse(recsys_home / "big", synthetic_interactions(n_users=150, n_events=9000, seed=3))
    result = materialize(
        [personalize_interactions_csv, personalize_items_csv, personalize_users_csv, personalize_dataset_import,
         personalize_model_comparison],
        instance=DagsterInstance.ephemeral(), partition_key=TRAINING_DATE,
        resources=chain_resources(warehouse, lake, personalize),
        run_config={"ops": {"personalize_dataset_import": {"config": FAST_WAIT},
                            "personalize_model_comparison": {"config": FAST_WAIT}}},
    )
    assert result.success
    meta = result.asset_materializations_for_node("personalize_model_comparison")[0].metadata
    table = meta["comparison"].value
    assert "| Metric | Ver1 (purchases only) | Ver2 (all events) | Change |" in table
    assert "| NDCG@25 |" in table and "| MRR@25 |" in table and "| Coverage |" in table
    assert "On the platform holdout (same targets, comparable)" in table
    assert f"Users scored: {meta['holdout_users'].value}" in table
    assert meta["v1_solution_version_arn"].value != meta["v2_solution_version_arn"].value
    client = personalize.get_client()
    v1 = client.describe_solution_version(solutionVersionArn=meta["v1_solution_version_arn"].value)["solutionVersion"]
    assert v1["eventType"] == "purchase"
    v2 = client.describe_solution_version(solutionVersionArn=meta["v2_solution_version_arn"].value)["solutionVersion"]
    assert not v2.get("eventType")
    for variant in ("v1", "v2"):
        assert 0 <= meta[f"{variant}_holdout_normalized_discounted_cumulative_gain_at_25"].value <= 1
        assert 0 <= meta[f"{variant}_personalize_coverage"].value <= 1


def test_too_few_purchases_for_v1_fails_with_the_numbers_before_training(warehouse, lake, personalize):
    # The default test shop has ~650 purchases: enough events in total, too few for a purchases-only v1.
    result = materialize(
        [personalize_interactions_csv, personalize_items_csv, personalize_users_csv, personalize_dataset_import,
         personalize_model_comparison],
        instance=DagsterInstance.ephemeral(), partition_key=TRAINING_DATE, raise_on_error=False,
        resources=chain_resources(warehouse, lake, personalize),
        run_config={"ops": {"personalize_dataset_import": {"config": FAST_WAIT},
                            "personalize_model_comparison": {"config": FAST_WAIT}}},
    )
    assert not result.success
    error = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE").event_specific_data.error
    messages = []
    while error is not None:
        messages.append(error.message)
        error = error.cause
    text = "\n".join(messages)
    assert "v1 (purchase) cannot be trained" in text and "(Personalize needs at least 1000)" in text
    assert not personalize.get_client().list_solution_versions()["solutionVersions"]
