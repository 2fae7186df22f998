"""Fixtures: a local Personalize on a temporary state folder and lake, and boto3 clients for it."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import boto3
import numpy as np
import pytest
from botocore.config import Config

from recsys_platform.standins.local_personalize.server import start_in_background

REGION = "us-east-1"
BUCKET = "shop-lake"
INTERACTIONS_SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "Interactions",
        "namespace": "com.amazonaws.personalize.schema",
        "fields": [
            {"name": "USER_ID", "type": "string"},
            {"name": "ITEM_ID", "type": "string"},
            {"name": "TIMESTAMP", "type": "long"},
            {"name": "EVENT_TYPE", "type": "string"},
            {"name": "EVENT_VALUE", "type": ["null", "float"]},
        ],
        "version": "1.0",
    }
)
ITEMS_SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "Items",
        "namespace": "com.amazonaws.personalize.schema",
        "fields": [
            {"name": "ITEM_ID", "type": "string"},
            {"name": "CATEGORY", "type": ["null", "string"], "categorical": True},
        ],
        "version": "1.0",
    }
)


ROLE = "arn:aws:iam::000000000000:role/PersonalizeRole"
# Items with a categorical CATEGORY (`shoes|bags`) and a numeric PRICE; Users with an AGE.
CATALOGUE_SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "Items",
        "namespace": "com.amazonaws.personalize.schema",
        "fields": [
            {"name": "ITEM_ID", "type": "string"},
            {"name": "CATEGORY", "type": ["null", "string"], "categorical": True},
            {"name": "PRICE", "type": ["null", "float"]},
            {"name": "IN_STOCK", "type": ["null", "boolean"]},
            {"name": "DESCRIPTION", "type": ["null", "string"], "textual": True},
        ],
        "version": "1.0",
    }
)
USERS_SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "Users",
        "namespace": "com.amazonaws.personalize.schema",
        "fields": [
            {"name": "USER_ID", "type": "string"},
            {"name": "AGE", "type": ["null", "int"]},
            {"name": "MEMBERSHIP", "type": ["null", "string"], "categorical": True},
        ],
        "version": "1.0",
    }
)


def make_events_client(endpoint_url: str, region: str = REGION):
    return boto3.client(
        "personalize-events",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


def make_clients(endpoint_url: str, region: str = REGION):
    options = dict(
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    return boto3.client("personalize", **options), boto3.client("personalize-runtime", **options)


def write_interactions(
    path: Path, users: int = 60, events_per_user: int = 25, items: int = 40, seed: int = 7
) -> Path:
    """Synthetic shop interactions: users prefer one of four item groups; views, carts and purchases."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE"])
        for user in range(users):
            group = user % 4
            for event in range(events_per_user):
                in_group = rng.random() < 0.8
                size = items // 4
                item = group * size + int(rng.integers(size)) if in_group else int(rng.integers(items))
                event_type = rng.choice(["view", "view", "view", "cart", "purchase"])
                value = f"{rng.uniform(1, 100):.2f}" if event_type == "purchase" else ""
                timestamp = 1_700_000_000 + user * 1000 + event
                writer.writerow([f"u{user}", f"i{item}", timestamp, event_type, value])
    return path


def wait_for(
    describe,
    key: str,
    *,
    timeout: float = 30.0,
    done=("ACTIVE", "CREATE FAILED", "CREATE STOPPED", "UPDATE FAILED"),
) -> dict:
    """Poll a Describe call until the resource's status is one of `done`."""
    deadline = time.monotonic() + timeout
    while True:
        resource = describe()[key]
        if resource["status"] in done:
            return resource
        if time.monotonic() > deadline:
            raise AssertionError(f"still {resource['status']} after {timeout}s: {resource}")
        time.sleep(0.02)


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "soak: a load test that runs for about 30 seconds")


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    return tmp_path / "lake"


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "personalize"


@pytest.fixture
def server(state_dir: Path, lake: Path):
    with start_in_background(state_dir=state_dir, lake_root=lake, step_delay=0.02) as handle:
        yield handle


@pytest.fixture
def start_server(state_dir: Path, lake: Path):
    """Start more servers on the same state folder and lake (e.g. with a slower step delay)."""
    started = []

    def start(**options):
        handle = start_in_background(state_dir=state_dir, lake_root=lake, **{"step_delay": 0.02, **options})
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.stop()


@pytest.fixture
def clients(server):
    return make_clients(server.endpoint_url)


@pytest.fixture
def personalize(clients):
    return clients[0]


@pytest.fixture
def runtime(clients):
    return clients[1]


class Shop:
    """Creates the usual resources through boto3, waiting for each to be ACTIVE."""

    def __init__(self, personalize, lake: Path) -> None:
        self.personalize = personalize
        self.lake = lake

    def dataset_group(self, name: str = "shop") -> str:
        arn = self.personalize.create_dataset_group(name=name)["datasetGroupArn"]
        wait_for(lambda: self.personalize.describe_dataset_group(datasetGroupArn=arn), "datasetGroup")
        return arn

    def interactions_dataset(self, group_arn: str, schema_name: str = "shop-interactions") -> str:
        schema_arn = self.personalize.create_schema(name=schema_name, schema=INTERACTIONS_SCHEMA)["schemaArn"]
        arn = self.personalize.create_dataset(
            name="interactions", schemaArn=schema_arn, datasetGroupArn=group_arn, datasetType="Interactions"
        )["datasetArn"]
        wait_for(lambda: self.personalize.describe_dataset(datasetArn=arn), "dataset")
        return arn

    def import_csv(self, dataset_arn: str, key: str, job_name: str, mode: str = "FULL") -> dict:
        arn = self.personalize.create_dataset_import_job(
            jobName=job_name,
            datasetArn=dataset_arn,
            dataSource={"dataLocation": f"s3://{BUCKET}/{key}"},
            roleArn="arn:aws:iam::000000000000:role/PersonalizeRole",
            importMode=mode,
        )["datasetImportJobArn"]
        return wait_for(
            lambda: self.personalize.describe_dataset_import_job(datasetImportJobArn=arn), "datasetImportJob"
        )

    def solution(
        self, group_arn: str, name: str = "shop-solution", recipe: str = "aws-popularity-count", **extra
    ) -> str:
        arn = self.personalize.create_solution(
            name=name, datasetGroupArn=group_arn, recipeArn=f"arn:aws:personalize:::recipe/{recipe}",
            performAutoTraining=False, **extra,
        )["solutionArn"]
        wait_for(lambda: self.personalize.describe_solution(solutionArn=arn), "solution")
        return arn

    def train(self, solution_arn: str) -> dict:
        arn = self.personalize.create_solution_version(solutionArn=solution_arn)["solutionVersionArn"]
        return self.wait_for_version(arn)

    def version(self, arn: str) -> dict:
        return self.personalize.describe_solution_version(solutionVersionArn=arn)["solutionVersion"]

    def wait_for_version(self, arn: str) -> dict:
        describe = self.personalize.describe_solution_version
        return wait_for(lambda: describe(solutionVersionArn=arn), "solutionVersion")

    def campaign(self, solution_version_arn: str, name: str = "shop-campaign") -> str:
        created = self.personalize.create_campaign(name=name, solutionVersionArn=solution_version_arn)
        arn = created["campaignArn"]
        campaign = wait_for(lambda: self.personalize.describe_campaign(campaignArn=arn), "campaign")
        assert campaign["status"] == "ACTIVE", campaign.get("failureReason")
        return arn

    def dataset(self, group_arn: str, dataset_type: str, schema: str, schema_name: str | None = None) -> str:
        name = schema_name or f"{dataset_type.lower()}-schema"
        schema_arn = self.personalize.create_schema(name=name, schema=schema)["schemaArn"]
        arn = self.personalize.create_dataset(
            name=dataset_type.lower(), schemaArn=schema_arn, datasetGroupArn=group_arn, datasetType=dataset_type
        )["datasetArn"]
        wait_for(lambda: self.personalize.describe_dataset(datasetArn=arn), "dataset")
        return arn

    def event_tracker(self, group_arn: str, name: str = "shop-tracker") -> tuple[str, str]:
        created = self.personalize.create_event_tracker(name=name, datasetGroupArn=group_arn)
        arn = created["eventTrackerArn"]
        tracker = wait_for(lambda: self.personalize.describe_event_tracker(eventTrackerArn=arn), "eventTracker")
        assert tracker["status"] == "ACTIVE" and tracker["trackingId"] == created["trackingId"]
        return arn, created["trackingId"]

    def filter(self, group_arn: str, expression: str, name: str = "shop-filter") -> str:
        arn = self.personalize.create_filter(name=name, datasetGroupArn=group_arn, filterExpression=expression)["filterArn"]
        described = wait_for(lambda: self.personalize.describe_filter(filterArn=arn), "filter")
        assert described["status"] == "ACTIVE" and described["filterExpression"] == expression
        return arn

    def trained_group(self, recipe: str = "aws-popularity-count") -> tuple[str, dict]:
        """A dataset group with imported interactions and an ACTIVE solution version."""
        group = self.dataset_group()
        dataset = self.interactions_dataset(group)
        write_interactions(self.lake / BUCKET / "snapshots/interactions.csv")
        assert self.import_csv(dataset, "snapshots/interactions.csv", "import-1")["status"] == "ACTIVE"
        version = self.train(self.solution(group, recipe=recipe))
        assert version["status"] == "ACTIVE", version.get("failureReason")
        return group, version


@pytest.fixture
def events(server):
    return make_events_client(server.endpoint_url)


@pytest.fixture
def shop(personalize, lake) -> Shop:
    return Shop(personalize, lake)
