"""Training time and `GetRecommendations` latency of the local Personalize, through boto3 on loopback.

For each catalogue size (5k and 100k items), a fresh local Personalize in its own process
(`recsys-platform serve`, as `make dev` runs it) imports a synthetic interactions file (1M interactions:
users with a taste for one of 50 item groups, Zipf-skewed popularity) through the control plane, trains
the default recipe (`aws-user-personalization-v2`, the platform's default) and creates a campaign. The
training figure is CreateSolutionVersion -> ACTIVE, timed from the client.

Latency: one boto3 client (keep-alive connection, as a shop's app server uses it). Warm-up asks once for
each of 500 distinct known users; then the same 500 users are asked again in shuffled order, several
passes, each call timed: p50 / p99 / mean in ms. DescribeCampaign's round trip (no model involved) is
timed too, to separate the protocol's cost from the model's. On a shared machine wall times follow the
other work on it; the server's CPU time per call (`server_cpu_ms_per_call`, from /proc) follows it less.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import tempfile
import time

import numpy as np

RECIPE = "arn:aws:personalize:::recipe/aws-user-personalization-v2"
BUCKET = "bench-lake"
# The platform's own interactions schema: the benchmark imports what the pipeline imports.
REPO = pathlib.Path(__file__).resolve().parents[1]
SCHEMA_FILE = REPO / "recsys_platform" / "defs" / "personalize" / "schemas" / "interactions.json"


def write_interactions(path: pathlib.Path, users: int, items: int, interactions: int, seed: int = 0) -> int:
    """Users with a taste for one of 50 item groups (70% of their events), item popularity Zipf-skewed."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    groups = 50
    group_size = items // groups
    user = np.sort(rng.integers(0, users, interactions))
    in_group = rng.random(interactions) < 0.7
    ranks = np.minimum(rng.zipf(1.3, interactions) - 1, group_size - 1)
    item = np.where(in_group, (user % groups) * group_size + ranks, rng.integers(0, items, interactions))
    step = np.arange(interactions) - np.searchsorted(user, user)  # position within the user's history
    timestamp = 1_700_000_000 + user.astype(np.int64) * 10_000 + step * 60
    kinds = np.array(["view", "view", "view", "cart", "purchase"])[rng.integers(0, 5, interactions)]
    table = pa.table({"USER_ID": np.char.add("user", user.astype(str)), "ITEM_ID": np.char.add("item", item.astype(str)),
                      "TIMESTAMP": timestamp, "EVENT_TYPE": kinds})
    pacsv.write_csv(table, path, pacsv.WriteOptions(quoting_style="none"))
    return interactions


TRAINING_TIMEOUT_SECONDS = 900.0


def _wait(describe, key: str, timeout: float = TRAINING_TIMEOUT_SECONDS) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        resource = describe()[key]
        if resource["status"] == "ACTIVE":
            return resource
        if "FAILED" in resource["status"] or time.monotonic() > deadline:
            raise RuntimeError(f"{key} ended {resource['status']}: {resource.get('failureReason')}")
        time.sleep(0.05)


def _percentiles(values: list[float]) -> dict:
    array = np.array(values)
    return {"p50_ms": round(float(np.percentile(array, 50)), 3), "p99_ms": round(float(np.percentile(array, 99)), 3),
            "mean_ms": round(float(array.mean()), 3), "max_ms": round(float(array.max()), 3), "calls": len(values)}


def one_catalogue(work: pathlib.Path, users: int, items: int, interactions: int, warm_users: int,
                  passes: int) -> dict:
    import boto3
    from botocore.config import Config

    from bench.personalize_server import ServerProcess

    home = work / f"items-{items}"
    shutil.rmtree(home, ignore_errors=True)
    started = time.perf_counter()
    rows = write_interactions(home / "lake" / BUCKET / "interactions.csv", users, items, interactions)
    write_seconds = time.perf_counter() - started
    with ServerProcess(home, step_delay=0.0) as server:
        options = dict(endpoint_url=server.endpoint_url, region_name="us-east-1",
                       aws_access_key_id="bench", aws_secret_access_key="bench",
                       config=Config(retries={"max_attempts": 1, "mode": "standard"}, read_timeout=600))
        personalize = boto3.client("personalize", **options)
        runtime = boto3.client("personalize-runtime", **options)
        schema = personalize.create_schema(name="bench-interactions", schema=SCHEMA_FILE.read_text())["schemaArn"]
        group = personalize.create_dataset_group(name="bench")["datasetGroupArn"]
        _wait(lambda: personalize.describe_dataset_group(datasetGroupArn=group), "datasetGroup")
        dataset = personalize.create_dataset(name="interactions", schemaArn=schema, datasetGroupArn=group,
                                             datasetType="Interactions")["datasetArn"]
        _wait(lambda: personalize.describe_dataset(datasetArn=dataset), "dataset")
        started = time.perf_counter()
        job = personalize.create_dataset_import_job(
            jobName="bench-import", datasetArn=dataset, dataSource={"dataLocation": f"s3://{BUCKET}/interactions.csv"},
        )["datasetImportJobArn"]
        _wait(lambda: personalize.describe_dataset_import_job(datasetImportJobArn=job), "datasetImportJob")
        import_seconds = time.perf_counter() - started
        solution = personalize.create_solution(name="bench", datasetGroupArn=group, recipeArn=RECIPE,
                                               performAutoTraining=False)["solutionArn"]
        _wait(lambda: personalize.describe_solution(solutionArn=solution), "solution")
        started = time.perf_counter()
        version = personalize.create_solution_version(solutionArn=solution)["solutionVersionArn"]
        _wait(lambda: personalize.describe_solution_version(solutionVersionArn=version), "solutionVersion")
        training_seconds = time.perf_counter() - started
        started = time.perf_counter()
        campaign = personalize.create_campaign(name="bench", solutionVersionArn=version)["campaignArn"]
        _wait(lambda: personalize.describe_campaign(campaignArn=campaign), "campaign")
        campaign_seconds = time.perf_counter() - started

        rng = np.random.default_rng(1)
        known = [f"user{u}" for u in rng.choice(users, size=min(warm_users, users), replace=False)]
        warm = []
        for user_id in known:  # warm-up: every user once (loads the model, fills caches)
            began = time.perf_counter()
            runtime.get_recommendations(campaignArn=campaign, userId=user_id, numResults=25)
            warm.append((time.perf_counter() - began) * 1000)
        latencies = []
        cpu_before = server.cpu_seconds()
        for _ in range(passes):
            for user_id in rng.permutation(known):
                began = time.perf_counter()
                answer = runtime.get_recommendations(campaignArn=campaign, userId=str(user_id), numResults=25)
                latencies.append((time.perf_counter() - began) * 1000)
                if len(answer["itemList"]) != 25:
                    raise RuntimeError(f"{user_id}: {len(answer['itemList'])} items, expected 25")
        cpu_after = server.cpu_seconds()
        server_cpu = None if cpu_before is None or cpu_after is None else (cpu_after - cpu_before) / len(latencies)
        protocol = []
        for _ in range(max(100, len(latencies) // 4)):
            began = time.perf_counter()
            personalize.describe_campaign(campaignArn=campaign)
            protocol.append((time.perf_counter() - began) * 1000)
        metrics = personalize.get_solution_metrics(solutionVersionArn=version)["metrics"]
        server_peak = server.peak_rss_mb()
    shutil.rmtree(home, ignore_errors=True)
    return {
        "items": items, "users": users, "interactions": rows, "recipe": RECIPE.rsplit("/", 1)[-1],
        "write_csv_seconds": round(write_seconds, 2), "import_seconds": round(import_seconds, 2),
        "training_seconds": round(training_seconds, 2), "campaign_seconds": round(campaign_seconds, 2),
        "server_peak_rss_mb": server_peak, "warm_users": len(known),
        "warm_up": _percentiles(warm), **_percentiles(latencies),
        "describe_campaign_p50_ms": round(float(np.percentile(protocol, 50)), 3),
        "describe_campaign_p99_ms": round(float(np.percentile(protocol, 99)), 3),
        "server_cpu_ms_per_call": None if server_cpu is None else round(server_cpu * 1000, 3),
        "precision_at_25": round(metrics.get("precision_at_25", float("nan")), 4),
    }


def run(out_dir: pathlib.Path, quick: bool = False) -> dict:
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if quick:
        catalogues, users, interactions, warm_users, passes = (5_000,), 5_000, 50_000, 200, 2
    else:
        catalogues, users, interactions, warm_users, passes = (5_000, 100_000), 50_000, 1_000_000, 500, 4
    rows = []
    with tempfile.TemporaryDirectory(prefix="recsys-bench-latency-") as work:
        for items in catalogues:
            try:
                rows.append(one_catalogue(pathlib.Path(work), users, items, interactions, warm_users, passes))
            except RuntimeError as error:  # e.g. training not ACTIVE within the timeout: say so, go on
                rows.append({"items": items, "users": users, "interactions": interactions, "error": str(error)})
                print(f"  {items:>7,} items: {error}", flush=True)
                continue
            r = rows[-1]
            print(f"  {items:>7,} items, {r['interactions']:,} interactions: training {r['training_seconds']:.1f} s, "
                  f"GetRecommendations p50 {r['p50_ms']:.2f} ms p99 {r['p99_ms']:.2f} ms "
                  f"(DescribeCampaign p50 {r['describe_campaign_p50_ms']:.2f} ms; server CPU {r['server_cpu_ms_per_call']} ms "
                  "a call)", flush=True)
    result = {"rows": rows}
    (out_dir / "recommendations_latency.json").write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    import sys

    print(json.dumps(run(pathlib.Path(".recsys/bench/recommendations_latency"), quick="--quick" in sys.argv), indent=1))
