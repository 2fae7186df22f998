"""ListRecipes / DescribeRecipe, and paging that behaves the same on every List* operation."""

from __future__ import annotations

import base64
import json

import pytest

from recsys_platform_tests.local_personalize.conftest import BUCKET, ROLE, wait_for, write_interactions

RECIPE = "arn:aws:personalize:::recipe/"


def test_recipes_are_the_ones_this_server_trains(personalize):
    recipes = personalize.list_recipes()["recipes"]
    assert [r["recipeArn"] for r in recipes] == [
        f"{RECIPE}aws-popularity-count", f"{RECIPE}aws-user-personalization", f"{RECIPE}aws-user-personalization-v2",
    ]
    assert all(r["status"] == "ACTIVE" and r["name"] == r["recipeArn"].rsplit("/", 1)[1] for r in recipes)
    recipe = personalize.describe_recipe(recipeArn=f"{RECIPE}aws-popularity-count")["recipe"]
    assert recipe["algorithmArn"] == "arn:aws:personalize:::algorithm/aws-popularity-count"
    assert recipe["featureTransformationArn"] == "arn:aws:personalize:::feature-transformation/sims"
    assert recipe["recipeType"] == "USER_PERSONALIZATION" and recipe["description"]
    v2 = personalize.describe_recipe(recipeArn=f"{RECIPE}aws-user-personalization-v2")["recipe"]
    assert v2["algorithmArn"] == "arn:aws:personalize:::algorithm/aws-user-personalization-v2"
    assert personalize.list_recipes(recipeProvider="SERVICE")["recipes"] == recipes
    assert personalize.list_recipes(domain="ECOMMERCE")["recipes"] == []  # no domain recipes here
    first = personalize.list_recipes(maxResults=2)
    rest = personalize.list_recipes(maxResults=2, nextToken=first["nextToken"])
    assert [r["name"] for r in first["recipes"] + rest["recipes"]] == [r["name"] for r in recipes]
    assert "nextToken" not in rest
    with pytest.raises(personalize.exceptions.ResourceNotFoundException, match="aws-magic"):
        personalize.describe_recipe(recipeArn=f"{RECIPE}aws-magic")
    with pytest.raises(personalize.exceptions.InvalidInputException, match="not a recipe ARN"):
        personalize.describe_recipe(recipeArn="arn:aws:personalize:us-east-1:000000000000:solution/s")


def make_every_kind(personalize, shop, lake) -> dict[str, tuple[str, str, dict]]:
    """Three resources of each listable kind; operation -> (answer key, ARN member, filter member)."""
    groups = [shop.dataset_group(f"group-{n}") for n in range(3)]
    group = groups[0]
    datasets = [shop.interactions_dataset(g, schema_name=f"schema-{n}") for n, g in enumerate(groups)]
    write_interactions(lake / BUCKET / "i.csv")
    for n in range(3):
        shop.import_csv(datasets[0], "i.csv", f"import-{n}")
    solutions = [shop.solution(group, name=f"solution-{n}") for n in range(3)]
    versions = [shop.train(solutions[0]) for _ in range(3)]
    for n in range(3):
        shop.campaign(versions[n]["solutionVersionArn"], name=f"campaign-{n}")
    (lake / BUCKET / "users.json").write_text(json.dumps({"userId": "u1"}) + "\n")
    for n in range(3):
        arn = personalize.create_batch_inference_job(
            jobName=f"batch-{n}", solutionVersionArn=versions[0]["solutionVersionArn"], roleArn=ROLE,
            jobInput={"s3DataSource": {"path": f"s3://{BUCKET}/users.json"}},
            jobOutput={"s3DataDestination": {"path": f"s3://{BUCKET}/out-{n}/"}},
        )["batchInferenceJobArn"]
        wait_for(lambda arn=arn: personalize.describe_batch_inference_job(batchInferenceJobArn=arn), "batchInferenceJob")
        shop.filter(group, f'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("e{n}")', name=f"filter-{n}")
        shop.event_tracker(groups[n], name=f"tracker-{n}")
    (lake / BUCKET / "delete.csv").write_text("USER_ID\nnobody\n")
    for n in range(3):
        arn = personalize.create_data_deletion_job(
            jobName=f"deletion-{n}", datasetGroupArn=group, roleArn=ROLE,
            dataSource={"dataLocation": f"s3://{BUCKET}/delete.csv"},
        )["dataDeletionJobArn"]
        wait_for(lambda arn=arn: personalize.describe_data_deletion_job(dataDeletionJobArn=arn),
                 "dataDeletionJob", done=("COMPLETED", "FAILED"))
    return {
        "list_dataset_groups": ("datasetGroups", "datasetGroupArn", {}),
        "list_schemas": ("schemas", "schemaArn", {}),
        "list_datasets": ("datasets", "datasetArn", {}),
        "list_dataset_import_jobs": ("datasetImportJobs", "datasetImportJobArn", {"datasetArn": datasets[0]}),
        "list_solutions": ("solutions", "solutionArn", {"datasetGroupArn": group}),
        "list_solution_versions": ("solutionVersions", "solutionVersionArn", {"solutionArn": solutions[0]}),
        "list_campaigns": ("campaigns", "campaignArn", {}),
        "list_batch_inference_jobs": ("batchInferenceJobs", "batchInferenceJobArn", {}),
        "list_filters": ("Filters", "filterArn", {"datasetGroupArn": group}),
        "list_event_trackers": ("eventTrackers", "eventTrackerArn", {}),
        "list_data_deletion_jobs": ("dataDeletionJobs", "dataDeletionJobArn", {"datasetGroupArn": group}),
    }


def test_every_list_operation_pages_the_same_way(personalize, shop, lake):
    operations = make_every_kind(personalize, shop, lake)
    for operation, (key, arn_member, scope) in operations.items():
        listing = getattr(personalize, operation)
        everything = listing(**scope)[key]
        assert len(everything) == 3, operation
        assert "nextToken" not in listing(**scope)
        created = [item["creationDateTime"] for item in everything]
        assert created == sorted(created, reverse=True), f"{operation}: newest first"
        pages, token = [], None
        while True:
            page = listing(maxResults=1, **scope, **({"nextToken": token} if token else {}))
            pages.append(page[key])
            token = page.get("nextToken")
            if not token:
                break
        assert [page[0][arn_member] for page in pages] == [item[arn_member] for item in everything], operation
        with pytest.raises(personalize.exceptions.InvalidNextTokenException):
            listing(nextToken="garbage!", **scope)
        first = listing(maxResults=1, **scope)
        forged = json.loads(base64.urlsafe_b64decode(first["nextToken"]))
        forged["k"] = ["not a number", "x"]
        with pytest.raises(personalize.exceptions.InvalidNextTokenException):
            listing(nextToken=base64.urlsafe_b64encode(json.dumps(forged).encode()).decode(), **scope)
        with pytest.raises(personalize.exceptions.InvalidInputException, match="maxResults must be at most 100"):
            listing(maxResults=101, **scope)  # botocore checks the minimum only; the model says 1..100
    # botocore's paginators (what the pipeline uses) walk them too
    for operation in ("list_dataset_groups", "list_solution_versions", "list_filters", "list_event_trackers"):
        key, _, scope = operations[operation]
        pages = personalize.get_paginator(operation).paginate(**scope, PaginationConfig={"PageSize": 2})
        assert len([item for page in pages for item in page[key]]) == 3


def test_a_token_belongs_to_its_request_and_survives_changes(personalize, shop):
    groups = [shop.dataset_group(f"g{n}") for n in range(4)]
    first = personalize.list_dataset_groups(maxResults=2)
    with pytest.raises(personalize.exceptions.InvalidNextTokenException, match="issued for another request"):
        personalize.list_schemas(nextToken=first["nextToken"])
    with pytest.raises(personalize.exceptions.InvalidNextTokenException, match="issued for another request"):
        personalize.list_solutions(datasetGroupArn=groups[0], nextToken=first["nextToken"])
    # a group created and one deleted between pages: no repeats and no skips of the others
    shop.dataset_group("newcomer")
    personalize.delete_dataset_group(datasetGroupArn=groups[3])
    second = personalize.list_dataset_groups(maxResults=10, nextToken=first["nextToken"])
    seen = [g["name"] for g in first["datasetGroups"] + second["datasetGroups"]]
    assert seen == ["g3", "g2", "g1", "g0"] and "nextToken" not in second
    # a parent that does not exist lists nothing (ListSolutions has no ResourceNotFoundException);
    # ListSolutionVersions is the one List* whose model has it
    missing = groups[0].replace("g0", "missing")
    assert personalize.list_solutions(datasetGroupArn=missing)["solutions"] == []
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.list_solution_versions(solutionArn=missing.replace("dataset-group", "solution"))
    with pytest.raises(personalize.exceptions.InvalidInputException, match="not a dataset-group ARN"):
        personalize.list_filters(datasetGroupArn=missing.replace("dataset-group", "campaign"))
