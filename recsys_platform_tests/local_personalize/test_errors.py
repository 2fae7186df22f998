"""Bad requests get Personalize's error names, so boto3 raises `client.exceptions.<Name>`."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request

import botocore.exceptions
import pytest

from recsys_platform_tests.local_personalize.conftest import (
    BUCKET,
    INTERACTIONS_SCHEMA,
    make_clients,
    wait_for,
    write_interactions,
)

ROLE = "arn:aws:iam::000000000000:role/PersonalizeRole"
ARN_PREFIX = "arn:aws:personalize:us-east-1:000000000000:"
RECIPES = "arn:aws:personalize:::recipe/"
MISSING_GROUP = f"{ARN_PREFIX}dataset-group/nope"


def test_duplicate_names(personalize, shop):
    group = shop.dataset_group("dup")
    with pytest.raises(personalize.exceptions.ResourceAlreadyExistsException, match="already exists"):
        personalize.create_dataset_group(name="dup")
    personalize.create_schema(name="s", schema=INTERACTIONS_SCHEMA)
    with pytest.raises(personalize.exceptions.ResourceAlreadyExistsException):
        personalize.create_schema(name="s", schema=INTERACTIONS_SCHEMA)
    shop.interactions_dataset(group, schema_name="s2")
    schema = personalize.list_schemas()["schemas"][0]["schemaArn"]
    with pytest.raises(personalize.exceptions.ResourceAlreadyExistsException, match="Interactions"):
        personalize.create_dataset(
            name="again", schemaArn=schema, datasetGroupArn=group, datasetType="Interactions"
        )


def test_missing_resources(personalize, runtime):
    with pytest.raises(personalize.exceptions.ResourceNotFoundException, match="does not exist") as raised:
        personalize.describe_dataset_group(datasetGroupArn=MISSING_GROUP)
    # JSON 1.1 answers every client error with 400 (the runtime's REST-JSON model says 404 below)
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.create_solution(
            name="s", datasetGroupArn=MISSING_GROUP, recipeArn=f"{RECIPES}aws-popularity-count"
        )
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.get_solution_metrics(
            solutionVersionArn="arn:aws:personalize:us-east-1:000000000000:solution/s/abcd1234"
        )
    with pytest.raises(runtime.exceptions.ResourceNotFoundException) as raised:
        runtime.get_recommendations(campaignArn=f"{ARN_PREFIX}campaign/none", userId="u")
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_invalid_input(personalize, runtime, shop):
    invalid = personalize.exceptions.InvalidInputException
    with pytest.raises(invalid, match="pattern"):
        personalize.create_dataset_group(name="-starts-with-a-dash")
    with pytest.raises(invalid, match="not a dataset-group ARN"):
        personalize.describe_dataset_group(datasetGroupArn=f"{ARN_PREFIX}campaign/c")
    with pytest.raises(invalid, match="solutionVersionArn .* is not a solution ARN"):
        personalize.list_batch_inference_jobs(solutionVersionArn=f"{ARN_PREFIX}campaign/c")
    with pytest.raises(invalid, match="not valid JSON"):
        personalize.create_schema(name="broken", schema="{not json")
    with pytest.raises(invalid, match="record"):
        personalize.create_schema(name="broken", schema=json.dumps({"type": "string"}))
    with pytest.raises(invalid, match="not supported"):
        personalize.create_schema(
            name="broken",
            schema=json.dumps({"type": "record", "name": "x", "fields": [{"name": "A", "type": "bytes"}]}),
        )
    group = shop.dataset_group()
    items_only = personalize.create_schema(
        name="items-only",
        schema=json.dumps(
            {"type": "record", "name": "Items", "fields": [{"name": "ITEM_ID", "type": "string"}]}
        ),
    )["schemaArn"]
    with pytest.raises(invalid, match="USER_ID"):
        personalize.create_dataset(
            name="d", schemaArn=items_only, datasetGroupArn=group, datasetType="Interactions"
        )
    with pytest.raises(invalid, match="datasetType"):
        personalize.create_dataset(
            name="d", schemaArn=items_only, datasetGroupArn=group, datasetType="Things"
        )
    with pytest.raises(invalid, match="unknown recipe"):
        personalize.create_solution(name="s", datasetGroupArn=group, recipeArn=f"{RECIPES}aws-magic")
    with pytest.raises(invalid, match="recipeArn is required"):
        personalize.create_solution(name="s", datasetGroupArn=group)
    dataset = shop.interactions_dataset(group)
    write_interactions(shop.lake / BUCKET / "x.csv", users=2, events_per_user=2)
    with pytest.raises(invalid, match="importMode 'SOMETIMES' must be one of FULL, INCREMENTAL"):
        personalize.create_dataset_import_job(
            jobName="j",
            datasetArn=dataset,
            dataSource={"dataLocation": f"s3://{BUCKET}/x.csv"},
            importMode="SOMETIMES",
        )


def test_import_needs_existing_data(personalize, shop):
    dataset = shop.interactions_dataset(shop.dataset_group())
    with pytest.raises(personalize.exceptions.InvalidInputException, match="no such object"):
        personalize.create_dataset_import_job(
            jobName="j",
            datasetArn=dataset,
            dataSource={"dataLocation": f"s3://{BUCKET}/missing.csv"},
            roleArn=ROLE,
        )
    with pytest.raises(personalize.exceptions.InvalidInputException, match="s3://"):
        personalize.create_dataset_import_job(
            jobName="j",
            datasetArn=dataset,
            dataSource={"dataLocation": "https://example.com/x.csv"},
            roleArn=ROLE,
        )


def test_locations_stay_inside_the_lake(personalize, shop, tmp_path):
    dataset = shop.interactions_dataset(shop.dataset_group())
    outside = write_interactions(tmp_path / "outside" / "interactions.csv")  # a file beside the lake
    # s3://bucket//tmp/... is the key "/tmp/...": an object in the bucket, never the absolute path
    with pytest.raises(personalize.exceptions.InvalidInputException, match="no such object"):
        personalize.create_dataset_import_job(
            jobName="escape", datasetArn=dataset, dataSource={"dataLocation": f"s3://{BUCKET}/{outside}"}
        )
    with pytest.raises(personalize.exceptions.InvalidInputException, match=r"'\.\.'"):
        personalize.create_dataset_import_job(
            jobName="escape",
            datasetArn=dataset,
            dataSource={"dataLocation": f"s3://{BUCKET}/../outside/interactions.csv"},
        )


def test_runtime_input_checks(personalize, runtime, shop):
    _, version = shop.trained_group()
    campaign = shop.campaign(version["solutionVersionArn"])
    with pytest.raises(runtime.exceptions.InvalidInputException, match="numResults"):
        runtime.get_recommendations(campaignArn=campaign, userId="u1", numResults=501)
    with pytest.raises(runtime.exceptions.InvalidInputException, match="userId"):
        runtime.get_recommendations(campaignArn=campaign)


def test_referenced_resources_must_be_active(personalize, shop, start_server):
    group, version = shop.trained_group()
    solution = version["solutionArn"]
    slow, _ = make_clients(start_server(step_delay=0.5).endpoint_url)
    # a version that is still training cannot back a campaign, and a second one cannot start
    training = slow.create_solution_version(solutionArn=solution)["solutionVersionArn"]
    with pytest.raises(personalize.exceptions.ResourceInUseException, match="not ACTIVE"):
        personalize.create_campaign(name="early", solutionVersionArn=training)
    with pytest.raises(personalize.exceptions.ResourceInUseException, match="in progress"):
        personalize.create_solution_version(solutionArn=solution)
    wait_for(lambda: personalize.describe_solution_version(solutionVersionArn=training), "solutionVersion")
    with pytest.raises(personalize.exceptions.ResourceInUseException, match="in use"):
        personalize.delete_dataset_group(datasetGroupArn=group)


def test_deletes(personalize, shop):
    group, version = shop.trained_group()
    campaign = shop.campaign(version["solutionVersionArn"])
    with pytest.raises(personalize.exceptions.ResourceInUseException):
        personalize.delete_solution(solutionArn=version["solutionArn"])
    personalize.delete_campaign(campaignArn=campaign)
    personalize.delete_solution(solutionArn=version["solutionArn"])
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.describe_solution_version(solutionVersionArn=version["solutionVersionArn"])
    dataset = personalize.list_datasets(datasetGroupArn=group)["datasets"][0]
    schema = personalize.describe_dataset(datasetArn=dataset["datasetArn"])["dataset"]["schemaArn"]
    with pytest.raises(personalize.exceptions.ResourceInUseException):
        personalize.delete_schema(schemaArn=schema)
    personalize.delete_dataset(datasetArn=dataset["datasetArn"])
    personalize.delete_schema(schemaArn=schema)
    personalize.delete_dataset_group(datasetGroupArn=group)
    assert personalize.list_dataset_groups()["datasetGroups"] == []


def test_limit_on_concurrent_trainings(shop, start_server):
    group, version = shop.trained_group()
    other = shop.solution(group, name="other")
    limited, _ = make_clients(start_server(step_delay=0.5, max_concurrent_trainings=1).endpoint_url)
    limited.create_solution_version(solutionArn=version["solutionArn"])
    with pytest.raises(limited.exceptions.LimitExceededException, match="at most 1"):
        limited.create_solution_version(solutionArn=other)


def test_paging(personalize):
    for n in range(7):
        personalize.create_dataset_group(name=f"group-{n}")
    first = personalize.list_dataset_groups(maxResults=3)
    assert len(first["datasetGroups"]) == 3 and first["nextToken"]
    second = personalize.list_dataset_groups(maxResults=3, nextToken=first["nextToken"])
    third = personalize.list_dataset_groups(maxResults=3, nextToken=second["nextToken"])
    assert "nextToken" not in third
    names = [g["name"] for page in (first, second, third) for g in page["datasetGroups"]]
    assert sorted(names) == [f"group-{n}" for n in range(7)]
    assert names[0] == "group-6"  # newest first
    paginated = personalize.get_paginator("list_dataset_groups").paginate(PaginationConfig={"PageSize": 2})
    assert sorted(g["name"] for page in paginated for g in page["datasetGroups"]) == sorted(names)
    with pytest.raises(personalize.exceptions.InvalidNextTokenException):
        personalize.list_dataset_groups(nextToken="garbage!")


@pytest.mark.parametrize(
    ("path", "target", "named"),
    [
        ("/", "AmazonPersonalize.CreateRecommender", "operation CreateRecommender"),
        ("/", "SomeOtherService.ListDatasetGroups", "SomeOtherService.ListDatasetGroups"),
        ("/datasets", "AmazonPersonalize.ListDatasetGroups", "POST /datasets"),
    ],
)
def test_unknown_operation_and_path(server, path, target, named):
    request = urllib.request.Request(
        server.endpoint_url + path,
        data=b"{}",
        headers={"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"},
    )
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request)
    assert raised.value.code == 400
    error = json.loads(raised.value.read())
    assert error["__type"] == "UnknownOperationException" and named in error["message"]


def test_a_model_that_cannot_be_loaded_is_reported(shop, state_dir, start_server):
    _, version = shop.trained_group()
    campaign = shop.campaign(version["solutionVersionArn"])
    # what a damaged or foreign model file looks like to this server
    for model_file in (state_dir / "models").rglob("model.npz"):
        model_file.write_bytes(b"not a model")
    _, runtime = make_clients(start_server().endpoint_url)  # a fresh server: nothing cached
    with pytest.raises(botocore.exceptions.ClientError, match="train a new solution version") as raised:
        runtime.get_recommendations(campaignArn=campaign, userId="u1")
    assert raised.value.response["Error"]["Code"] == "InternalFailure"


def test_one_import_at_a_time_per_dataset(shop, lake, start_server):
    dataset = shop.interactions_dataset(shop.dataset_group())
    write_interactions(lake / BUCKET / "a.csv", users=3, events_per_user=3)
    slow, _ = make_clients(start_server(step_delay=0.5).endpoint_url)
    source = {"dataLocation": f"s3://{BUCKET}/a.csv"}
    slow.create_dataset_import_job(jobName="first", datasetArn=dataset, dataSource=source)
    with pytest.raises(slow.exceptions.ResourceAlreadyExistsException):
        slow.create_dataset_import_job(jobName="first", datasetArn=dataset, dataSource=source)
    with pytest.raises(slow.exceptions.ResourceInUseException, match="first"):
        slow.create_dataset_import_job(jobName="second", datasetArn=dataset, dataSource=source)


@pytest.mark.parametrize("content_length", ["-1", "lots", str(64 << 20)])
def test_a_bad_content_length_is_refused_at_once(server, content_length):
    """Neither waits for a body that never comes nor reads an unbounded one into memory."""
    connection = http.client.HTTPConnection(server.host, server.port, timeout=5)
    connection.putrequest("POST", "/")
    connection.putheader("X-Amz-Target", "AmazonPersonalize.ListDatasetGroups")
    connection.putheader("Content-Length", content_length)
    connection.endheaders()
    answer = connection.getresponse()
    assert answer.status == 400
    error = json.loads(answer.read())
    assert error["__type"] == "SerializationException" and "Content-Length" in error["message"]
    connection.close()
