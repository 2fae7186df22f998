"""AWS's getting-started sequence (developer guide, "Getting started (SDK for Python (Boto3))"), run
through boto3 against the local Personalize on a real public log: Taobao user behaviour, complete
histories of 114 users (../shared/data/real, outside the project; skipped when it is absent)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from recsys_platform_tests.local_personalize.conftest import ROLE, wait_for

REAL_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"
TAOBAO = REAL_DATA / "taobao_users_tail.csv"
# Taobao behaviours as the platform's EVENT_TYPEs (the taxonomy in the data's README)
EVENT_TYPES = {"pv": "view", "cart": "cart", "fav": "like", "buy": "purchase"}
MISSING = "arn:aws:personalize:us-east-1:000000000000:"


def schema(name: str, fields: list[dict]) -> str:
    return json.dumps({"type": "record", "name": name, "namespace": "com.amazonaws.personalize.schema",
                       "fields": fields, "version": "1.0"})


def write_dataset_csvs(lake_bucket: Path) -> dict[str, set[str]]:
    """The log as Personalize CSVs (interactions, items); returns each user's purchased items."""
    lake_bucket.mkdir(parents=True, exist_ok=True)
    purchases: dict[str, set[str]] = {}
    categories: dict[str, str] = {}
    with TAOBAO.open(newline="") as source, (lake_bucket / "interactions.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE"])
        for user, item, category, behaviour, timestamp in csv.reader(source):
            writer.writerow([user, item, timestamp, EVENT_TYPES[behaviour]])
            categories[item] = category
            if behaviour == "buy":
                purchases.setdefault(user, set()).add(item)
    with (lake_bucket / "items.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["ITEM_ID", "CATEGORY"])
        writer.writerows(sorted(categories.items()))
    return purchases


@pytest.mark.skipif(not TAOBAO.is_file(), reason=f"the real logs are not beside the project ({TAOBAO} is absent)")
def test_the_getting_started_sequence_on_real_data(personalize, runtime, lake):
    # 1. choose a recipe
    recipes = {r["name"]: r["recipeArn"] for r in personalize.list_recipes()["recipes"]}
    recipe_arn = recipes["aws-user-personalization-v2"]
    assert personalize.describe_recipe(recipeArn=recipe_arn)["recipe"]["recipeType"] == "USER_PERSONALIZATION"

    # 2. schemas, a dataset group, datasets
    interactions_schema = personalize.create_schema(name="taobao-interactions", schema=schema("Interactions", [
        {"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
        {"name": "TIMESTAMP", "type": "long"}, {"name": "EVENT_TYPE", "type": "string"},
    ]))["schemaArn"]
    items_schema = personalize.create_schema(name="taobao-items", schema=schema("Items", [
        {"name": "ITEM_ID", "type": "string"}, {"name": "CATEGORY", "type": "string", "categorical": True},
    ]))["schemaArn"]
    group = personalize.create_dataset_group(name="taobao")["datasetGroupArn"]
    assert wait_for(lambda: personalize.describe_dataset_group(datasetGroupArn=group), "datasetGroup")["status"] == "ACTIVE"
    datasets = {}
    for dataset_type, schema_arn in (("Interactions", interactions_schema), ("Items", items_schema)):
        arn = personalize.create_dataset(name=f"taobao-{dataset_type.lower()}", schemaArn=schema_arn,
                                         datasetGroupArn=group, datasetType=dataset_type)["datasetArn"]
        assert wait_for(lambda arn=arn: personalize.describe_dataset(datasetArn=arn), "dataset")["status"] == "ACTIVE"
        datasets[dataset_type] = arn

    # 3. FULL imports from the lake
    purchases = write_dataset_csvs(lake / "taobao")
    for dataset_type, key in (("Interactions", "interactions.csv"), ("Items", "items.csv")):
        arn = personalize.create_dataset_import_job(
            jobName=f"taobao-{dataset_type.lower()}", datasetArn=datasets[dataset_type],
            dataSource={"dataLocation": f"s3://taobao/{key}"}, roleArn=ROLE, importMode="FULL",
        )["datasetImportJobArn"]
        job = wait_for(lambda arn=arn: personalize.describe_dataset_import_job(datasetImportJobArn=arn),
                       "datasetImportJob", timeout=120)
        assert job["status"] == "ACTIVE", job.get("failureReason")

    # 4. a solution, a version, its metrics
    solution = personalize.create_solution(name="taobao-solution", datasetGroupArn=group, recipeArn=recipe_arn,
                                           performAutoTraining=False)["solutionArn"]
    wait_for(lambda: personalize.describe_solution(solutionArn=solution), "solution")
    version_arn = personalize.create_solution_version(solutionArn=solution)["solutionVersionArn"]
    version = wait_for(lambda: personalize.describe_solution_version(solutionVersionArn=version_arn),
                       "solutionVersion", timeout=300)
    assert version["status"] == "ACTIVE", version.get("failureReason")
    metrics = personalize.get_solution_metrics(solutionVersionArn=version_arn)["metrics"]
    assert 0 < metrics["normalized_discounted_cumulative_gain_at_25"] <= 1 and 0 < metrics["coverage"] <= 1

    # 5. a campaign, a filter, recommendations with the filter
    campaign = personalize.create_campaign(name="taobao-campaign", solutionVersionArn=version_arn,
                                           minProvisionedTPS=1)["campaignArn"]
    assert wait_for(lambda: personalize.describe_campaign(campaignArn=campaign), "campaign", timeout=120)["status"] == "ACTIVE"
    filter_arn = personalize.create_filter(
        name="not-bought", datasetGroupArn=group,
        filterExpression='EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")',
    )["filterArn"]
    assert wait_for(lambda: personalize.describe_filter(filterArn=filter_arn), "filter")["status"] == "ACTIVE"
    buyer = max(purchases, key=lambda user: len(purchases[user]))
    plain = [i["itemId"] for i in runtime.get_recommendations(campaignArn=campaign, userId=buyer, numResults=100)["itemList"]]
    assert set(plain) & purchases[buyer], "the buyer's own purchases rank high without the filter"
    filtered = runtime.get_recommendations(campaignArn=campaign, userId=buyer, filterArn=filter_arn)["itemList"]
    assert len(filtered) == 25 and not {i["itemId"] for i in filtered} & purchases[buyer]

    # 6. what does not exist
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.describe_campaign(campaignArn=f"{MISSING}campaign/nope")
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.describe_solution_version(solutionVersionArn=f"{solution}/00000000")
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.describe_filter(filterArn=f"{MISSING}filter/nope")
    with pytest.raises(runtime.exceptions.ResourceNotFoundException):
        runtime.get_recommendations(campaignArn=f"{MISSING}campaign/nope", userId=buyer)
    with pytest.raises(runtime.exceptions.ResourceNotFoundException):
        runtime.get_recommendations(campaignArn=campaign, userId=buyer, filterArn=f"{MISSING}filter/nope")

    # 7. clean up, in the order the guide gives
    personalize.delete_filter(filterArn=filter_arn)
    personalize.delete_campaign(campaignArn=campaign)
    personalize.delete_solution(solutionArn=solution)
    for arn in datasets.values():
        personalize.delete_dataset(datasetArn=arn)
    for arn in (interactions_schema, items_schema):
        personalize.delete_schema(schemaArn=arn)
    personalize.delete_dataset_group(datasetGroupArn=group)
    assert personalize.list_dataset_groups()["datasetGroups"] == []
    assert personalize.list_schemas()["schemas"] == []
