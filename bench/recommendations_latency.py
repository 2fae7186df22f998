"""GetRecommendations latency of the local Personalize through boto3 on loopback.

Starts a server on a fresh state folder, trains the default recipe (`aws-user-personalization-v2`)
on ~100k synthetic interactions through the control plane, creates a campaign, then times
`get_recommendations` calls one after another from a single boto3 client (keep-alive connection,
as a shop's app server uses it). Reports p50/p99/mean in milliseconds, the training figures, and
the p50 of a DescribeCampaign round trip (no model involved) to separate protocol cost from model cost.
"""

from __future__ import annotations

import csv
import json
import pathlib
import shutil
import time

import boto3
import numpy as np
from botocore.config import Config

from recsys_platform.standins.local_personalize.server import start_in_background

RECIPE = "arn:aws:personalize:::recipe/aws-user-personalization-v2"
BUCKET = "bench-lake"
# The platform's own interactions schema: the benchmark imports what the pipeline imports.
REPO = pathlib.Path(__file__).resolve().parents[1]
SCHEMA_FILE = REPO / "recsys_platform" / "personalize" / "schemas" / "interactions.json"


def _write_interactions(path: pathlib.Path, users: int, items: int, per_user: int, seed: int = 0) -> int:
    """Users with a taste for one of 50 item groups, item popularity skewed (Zipf-like)."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    groups = 50
    group_size = items // groups
    rows = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE"])
        for user in range(users):
            taste = user % groups
            in_group = rng.random(per_user) < 0.7
            ranks = np.minimum(rng.zipf(1.3, per_user) - 1, group_size - 1)
            item_ids = np.where(in_group, taste * group_size + ranks, rng.integers(0, items, per_user))
            event_types = rng.choice(["view", "view", "view", "cart", "purchase"], per_user)
            for step, (item, event_type) in enumerate(zip(item_ids, event_types)):
                timestamp = 1_700_000_000 + user * 10_000 + step * 60
                writer.writerow([f"user{user}", f"item{item}", timestamp, event_type])
                rows += 1
    return rows


def _wait(describe, key: str, timeout: float = 900.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        resource = describe()[key]
        if resource["status"] == "ACTIVE":
            return resource
        if "FAILED" in resource["status"] or time.monotonic() > deadline:
            raise RuntimeError(f"{key} ended {resource['status']}: {resource.get('failureReason')}")
        time.sleep(0.05)


def run(out_dir: pathlib.Path, quick: bool = False) -> dict:
    calls = 200 if quick else 2000
    users, items, per_user = 5_000, 5_000, 20  # 100k interactions
    work = pathlib.Path(out_dir) / "recommendations_latency"
    shutil.rmtree(work, ignore_errors=True)
    rows = _write_interactions(work / "lake" / BUCKET / "interactions.csv", users, items, per_user)

    server = start_in_background(state_dir=work / "personalize", lake_root=work / "lake", step_delay=0.0)
    with server:
        options = dict(
            endpoint_url=server.endpoint_url, region_name="us-east-1",
            aws_access_key_id="bench", aws_secret_access_key="bench",
            config=Config(retries={"max_attempts": 1, "mode": "standard"}),
        )
        personalize = boto3.client("personalize", **options)
        runtime = boto3.client("personalize-runtime", **options)
        schema_text = SCHEMA_FILE.read_text(encoding="utf-8")
        schema = personalize.create_schema(name="bench-interactions", schema=schema_text)["schemaArn"]
        group = personalize.create_dataset_group(name="bench")["datasetGroupArn"]
        _wait(lambda: personalize.describe_dataset_group(datasetGroupArn=group), "datasetGroup")
        dataset = personalize.create_dataset(
            name="interactions", schemaArn=schema, datasetGroupArn=group, datasetType="Interactions"
        )["datasetArn"]
        _wait(lambda: personalize.describe_dataset(datasetArn=dataset), "dataset")
        started = time.perf_counter()
        job = personalize.create_dataset_import_job(
            jobName="bench-import", datasetArn=dataset,
            dataSource={"dataLocation": f"s3://{BUCKET}/interactions.csv"},
        )["datasetImportJobArn"]
        _wait(lambda: personalize.describe_dataset_import_job(datasetImportJobArn=job), "datasetImportJob")
        import_seconds = time.perf_counter() - started
        solution = personalize.create_solution(
            name="bench", datasetGroupArn=group, recipeArn=RECIPE, performAutoTraining=False
        )["solutionArn"]
        _wait(lambda: personalize.describe_solution(solutionArn=solution), "solution")
        started = time.perf_counter()
        version = personalize.create_solution_version(solutionArn=solution)["solutionVersionArn"]
        _wait(lambda: personalize.describe_solution_version(solutionVersionArn=version), "solutionVersion")
        training_seconds = time.perf_counter() - started
        campaign = personalize.create_campaign(name="bench", solutionVersionArn=version)["campaignArn"]
        _wait(lambda: personalize.describe_campaign(campaignArn=campaign), "campaign")

        rng = np.random.default_rng(1)
        user_ids = [f"user{u}" for u in rng.integers(0, users, calls)]
        runtime.get_recommendations(campaignArn=campaign, userId=user_ids[0])  # loads the model once
        latencies = []
        for user_id in user_ids:
            began = time.perf_counter()
            answer = runtime.get_recommendations(campaignArn=campaign, userId=user_id, numResults=25)
            latencies.append((time.perf_counter() - began) * 1000)
            assert len(answer["itemList"]) == 25
        # the same round trip without a model: boto3 + HTTP + the server's request handling
        protocol_latencies = []
        for _ in range(calls // 4):
            began = time.perf_counter()
            personalize.describe_campaign(campaignArn=campaign)
            protocol_latencies.append((time.perf_counter() - began) * 1000)
        metrics = personalize.get_solution_metrics(solutionVersionArn=version)["metrics"]

    latencies_ms = np.array(latencies)
    result = {
        "interactions": rows,
        "users": users,
        "items": items,
        "recipe": RECIPE.rsplit("/", 1)[-1],
        "calls": calls,
        "p50_ms": round(float(np.percentile(latencies_ms, 50)), 3),
        "p99_ms": round(float(np.percentile(latencies_ms, 99)), 3),
        "mean_ms": round(float(latencies_ms.mean()), 3),
        "describe_campaign_p50_ms": round(float(np.percentile(protocol_latencies, 50)), 3),
        "import_seconds": round(import_seconds, 2),
        "training_seconds": round(training_seconds, 2),
        "precision_at_25": round(metrics["precision_at_25"], 4),
    }
    print("GetRecommendations through boto3 on loopback (local Personalize)")
    print(f"  data           {rows:,} interactions, {users:,} users, {items:,} items")
    print(f"  recipe         {result['recipe']}")
    print(f"  import         {result['import_seconds']:.2f} s")
    print(f"  training       {result['training_seconds']:.2f} s (fit + Personalize-protocol evaluation)")
    print(f"  calls          {calls}")
    print(
        f"  latency        p50 {result['p50_ms']:.2f} ms   p99 {result['p99_ms']:.2f} ms"
        f"   mean {result['mean_ms']:.2f} ms"
    )
    protocol_p50 = result["describe_campaign_p50_ms"]
    print(f"  round trip     DescribeCampaign p50 {protocol_p50:.2f} ms (no model: the protocol's cost)")
    return result


if __name__ == "__main__":
    import sys

    print(json.dumps(run(pathlib.Path(".recsys/bench"), quick="--quick" in sys.argv)))
