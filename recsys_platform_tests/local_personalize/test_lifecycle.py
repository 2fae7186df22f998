"""The whole path a pipeline and a shop's app take, through boto3 only."""

from __future__ import annotations

import json

import pytest

from recsys_platform_tests.local_personalize.conftest import (
    BUCKET,
    ITEMS_SCHEMA,
    wait_for,
    write_interactions,
)

METRIC_KEYS = {
    "coverage",
    "mean_reciprocal_rank_at_25",
    "normalized_discounted_cumulative_gain_at_5",
    "normalized_discounted_cumulative_gain_at_10",
    "normalized_discounted_cumulative_gain_at_25",
    "precision_at_5",
    "precision_at_10",
    "precision_at_25",
}


def test_dataset_group_to_recommendations(personalize, runtime, shop, lake):
    group = shop.dataset_group()
    assert group == "arn:aws:personalize:us-east-1:000000000000:dataset-group/shop"
    dataset = shop.interactions_dataset(group)
    assert dataset == "arn:aws:personalize:us-east-1:000000000000:dataset/shop/INTERACTIONS"
    write_interactions(lake / BUCKET / "snapshots/2026-01-01/interactions.csv")
    job = shop.import_csv(dataset, "snapshots/2026-01-01/interactions.csv", "import-2026-01-01")
    assert job["status"] == "ACTIVE" and job["importMode"] == "FULL"
    assert job["dataSource"]["dataLocation"] == f"s3://{BUCKET}/snapshots/2026-01-01/interactions.csv"

    solution = shop.solution(group, recipe="aws-user-personalization-v2")
    described = personalize.describe_solution(solutionArn=solution)["solution"]
    assert described["recipeArn"] == "arn:aws:personalize:::recipe/aws-user-personalization-v2"
    assert described["performAutoTraining"] is False

    version = shop.train(solution)
    assert version["status"] == "ACTIVE", version.get("failureReason")
    assert version["solutionVersionArn"].startswith(solution + "/")
    assert version["trainingMode"] == "FULL" and version["trainingHours"] >= 0
    latest = personalize.describe_solution(solutionArn=solution)["solution"]["latestSolutionVersion"]
    assert latest["solutionVersionArn"] == version["solutionVersionArn"]

    metrics = personalize.get_solution_metrics(solutionVersionArn=version["solutionVersionArn"])["metrics"]
    assert set(metrics) == METRIC_KEYS
    assert all(0.0 <= value <= 1.0 for value in metrics.values())
    assert metrics["precision_at_25"] > 0  # users stick to their item group: a real model finds targets

    campaign = shop.campaign(version["solutionVersionArn"])

    answer = runtime.get_recommendations(campaignArn=campaign, userId="u0")
    items = answer["itemList"]
    assert len(items) == 25  # numResults defaults to 25
    assert answer["recommendationId"]
    scores = [item["score"] for item in items]
    assert scores == sorted(scores, reverse=True)
    assert len({item["itemId"] for item in items}) == 25
    # u0 belongs to group 0 (items i0..i9): most of a personalised top 10 comes from that group
    assert sum(int(item["itemId"][1:]) < 10 for item in items[:10]) >= 6

    everything = runtime.get_recommendations(campaignArn=campaign, userId="u0", numResults=500)
    assert len(everything["itemList"]) == 40
    assert len(runtime.get_recommendations(campaignArn=campaign, userId="u1", numResults=3)["itemList"]) == 3
    unknown = runtime.get_recommendations(campaignArn=campaign, userId="never-seen", numResults=5)["itemList"]
    assert len(unknown) == 5  # the popular fallback


def test_popularity_recipe_serves_the_most_popular_items(personalize, runtime, shop, lake):
    _, version = shop.trained_group("aws-popularity-count")
    campaign = shop.campaign(version["solutionVersionArn"])
    counts: dict[str, int] = {}
    for line in (lake / BUCKET / "snapshots/interactions.csv").read_text().splitlines()[1:]:
        item = line.split(",")[1]
        counts[item] = counts.get(item, 0) + 1
    expected_top = sorted(counts, key=lambda item: (-counts[item], item))[:3]
    answer = runtime.get_recommendations(campaignArn=campaign, userId="u3", numResults=3)["itemList"]
    assert [item["itemId"] for item in answer] == expected_top
    assert [item["score"] for item in answer] == [float(counts[item]) for item in expected_top]


def test_update_campaign_moves_to_the_new_version(personalize, runtime, shop):
    group, first = shop.trained_group()
    solution = first["solutionArn"]
    campaign = shop.campaign(first["solutionVersionArn"])
    second = shop.train(solution)
    assert second["status"] == "ACTIVE"
    personalize.update_campaign(campaignArn=campaign, solutionVersionArn=second["solutionVersionArn"])
    pending = personalize.describe_campaign(campaignArn=campaign)["campaign"]
    assert pending["latestCampaignUpdate"]["solutionVersionArn"] == second["solutionVersionArn"]
    assert pending["status"] in ("UPDATE PENDING", "UPDATE IN_PROGRESS", "ACTIVE")
    # the campaign keeps serving while it updates
    assert runtime.get_recommendations(campaignArn=campaign, userId="u1", numResults=2)["itemList"]
    done = wait_for(lambda: personalize.describe_campaign(campaignArn=campaign), "campaign")
    assert done["status"] == "ACTIVE"
    assert done["solutionVersionArn"] == second["solutionVersionArn"]
    assert done["latestCampaignUpdate"]["status"] == "ACTIVE"
    listed = personalize.list_campaigns(solutionArn=solution)["campaigns"]
    assert [c["campaignArn"] for c in listed] == [campaign]


def test_a_campaign_whose_creation_failed_can_be_updated(personalize, runtime, shop, state_dir):
    _, first = shop.trained_group()
    for model_file in (state_dir / "models").rglob("model.npz"):
        model_file.unlink()  # the first version's model is gone: its campaign cannot go ACTIVE
    created = personalize.create_campaign(name="broken", solutionVersionArn=first["solutionVersionArn"])
    arn = created["campaignArn"]
    failed = wait_for(lambda: personalize.describe_campaign(campaignArn=arn), "campaign")
    assert failed["status"] == "CREATE FAILED" and "no trained model" in failed["failureReason"]
    with pytest.raises(runtime.exceptions.InvalidInputException, match="CREATE FAILED"):
        runtime.get_recommendations(campaignArn=arn, userId="u1")
    second = shop.train(first["solutionArn"])
    # the service accepts UpdateCampaign on an ACTIVE or a CREATE FAILED campaign
    personalize.update_campaign(campaignArn=arn, solutionVersionArn=second["solutionVersionArn"])
    updated = wait_for(lambda: personalize.describe_campaign(campaignArn=arn), "campaign")
    assert updated["status"] == "ACTIVE" and updated["solutionVersionArn"] == second["solutionVersionArn"]
    assert len(runtime.get_recommendations(campaignArn=arn, userId="u1", numResults=3)["itemList"]) == 3


def test_a_failed_update_keeps_serving_the_old_version(personalize, runtime, shop, state_dir):
    _, first = shop.trained_group()
    campaign = shop.campaign(first["solutionVersionArn"])
    before = runtime.get_recommendations(campaignArn=campaign, userId="u1", numResults=5)["itemList"]
    second = shop.train(first["solutionArn"])
    second_model = next(
        path for path in (state_dir / "models").rglob("model.npz")
        if second["solutionVersionArn"].rsplit("/", 1)[-1] in path.parent.name
    )
    second_model.unlink()
    personalize.update_campaign(campaignArn=campaign, solutionVersionArn=second["solutionVersionArn"])
    failed = wait_for(lambda: personalize.describe_campaign(campaignArn=campaign), "campaign")
    assert failed["status"] == "UPDATE FAILED"
    assert failed["solutionVersionArn"] == first["solutionVersionArn"]
    update = failed["latestCampaignUpdate"]
    assert update["status"] == "UPDATE FAILED" and "no trained model" in update["failureReason"]
    after = runtime.get_recommendations(campaignArn=campaign, userId="u1", numResults=5)["itemList"]
    assert after == before
    # a failed update may be retried, e.g. back to the version being served
    personalize.update_campaign(campaignArn=campaign, solutionVersionArn=first["solutionVersionArn"])
    retried = wait_for(lambda: personalize.describe_campaign(campaignArn=campaign), "campaign")
    assert retried["status"] == "ACTIVE"


def test_incremental_import_appends_and_full_replaces(personalize, shop, lake):
    group = shop.dataset_group()
    dataset = shop.interactions_dataset(group)
    write_interactions(lake / BUCKET / "a.csv", users=30, events_per_user=20, seed=1)  # 600 rows
    write_interactions(lake / BUCKET / "small.csv", users=37, events_per_user=27, seed=2)  # 999 rows
    write_interactions(lake / BUCKET / "b.csv", users=40, events_per_user=25, seed=3)  # 1,000 rows
    solution = shop.solution(group)
    assert shop.import_csv(dataset, "a.csv", "import-a")["status"] == "ACTIVE"
    first = shop.train(solution)
    assert first["status"] == "CREATE FAILED" and "600 interactions" in first["failureReason"]
    # the service: "To append data to an item interactions dataset ... you must have at minimum 1000
    # new item interaction ... records"
    small = shop.import_csv(dataset, "small.csv", "import-small", mode="INCREMENTAL")
    assert small["status"] == "CREATE FAILED"
    assert "at least 1000 new records" in small["failureReason"] and "has 999" in small["failureReason"]
    assert shop.import_csv(dataset, "b.csv", "import-b", mode="INCREMENTAL")["status"] == "ACTIVE"
    assert shop.train(solution)["status"] == "ACTIVE"  # 1600 rows now: appended, not replaced
    assert shop.import_csv(dataset, "a.csv", "import-a-again", mode="FULL")["status"] == "ACTIVE"
    third = shop.train(solution)
    assert third["status"] == "CREATE FAILED" and "600 interactions" in third["failureReason"]
    jobs = personalize.list_dataset_import_jobs(datasetArn=dataset)["datasetImportJobs"]
    assert {job["jobName"]: job["importMode"] for job in jobs} == {
        "import-a": "FULL", "import-small": "INCREMENTAL", "import-b": "INCREMENTAL", "import-a-again": "FULL",
    }


def test_items_dataset_import_and_coverage_over_catalogue(personalize, shop, lake):
    group = shop.dataset_group()
    dataset = shop.interactions_dataset(group)
    write_interactions(lake / BUCKET / "interactions.csv")
    shop.import_csv(dataset, "interactions.csv", "import-interactions")
    items_schema = personalize.create_schema(name="items", schema=ITEMS_SCHEMA)["schemaArn"]
    items = personalize.create_dataset(
        name="items", schemaArn=items_schema, datasetGroupArn=group, datasetType="Items"
    )["datasetArn"]
    wait_for(lambda: personalize.describe_dataset(datasetArn=items), "dataset")
    rows = "\n".join(f"i{n},{'shoes|bags' if n % 2 else ''}" for n in range(400))
    (lake / BUCKET / "items.csv").write_text("ITEM_ID,CATEGORY\n" + rows + "\n")
    assert shop.import_csv(items, "items.csv", "import-items")["status"] == "ACTIVE"
    version = shop.train(shop.solution(group))
    metrics = personalize.get_solution_metrics(solutionVersionArn=version["solutionVersionArn"])["metrics"]
    # popularity recommends 25 items to everyone: 25 of a 400-item catalogue
    assert metrics["coverage"] == 25 / 400


def test_batch_inference_writes_personalize_output(personalize, shop, lake):
    _, version = shop.trained_group()
    lines = [
        json.dumps({"userId": "u1"}),
        json.dumps({"userId": "never-seen"}),
        "{not json",
        json.dumps({"itemId": "i1"}),
    ]
    (lake / BUCKET / "batch/in/users.json").parent.mkdir(parents=True)
    (lake / BUCKET / "batch/in/users.json").write_text("\n".join(lines) + "\n")
    arn = personalize.create_batch_inference_job(
        jobName="gate-2026-01-02",
        solutionVersionArn=version["solutionVersionArn"],
        numResults=10,
        jobInput={"s3DataSource": {"path": f"s3://{BUCKET}/batch/in/users.json"}},
        jobOutput={"s3DataDestination": {"path": f"s3://{BUCKET}/batch/out/"}},
        roleArn="arn:aws:iam::000000000000:role/PersonalizeRole",
    )["batchInferenceJobArn"]
    describe = personalize.describe_batch_inference_job
    job = wait_for(lambda: describe(batchInferenceJobArn=arn), "batchInferenceJob")
    assert job["status"] == "ACTIVE", job.get("failureReason")
    assert job["numResults"] == 10
    assert job["jobOutput"]["s3DataDestination"]["path"] == f"s3://{BUCKET}/batch/out/"
    out = [json.loads(line) for line in (lake / BUCKET / "batch/out/users.json.out").read_text().splitlines()]
    assert len(out) == 4
    assert out[0]["input"] == {"userId": "u1"} and out[0]["error"] is None
    assert len(out[0]["output"]["recommendedItems"]) == 10 == len(out[0]["output"]["scores"])
    assert out[1]["error"] is None and len(out[1]["output"]["recommendedItems"]) == 10
    assert out[2]["output"] is None and "not a JSON object" in out[2]["error"]
    assert out[3]["output"] is None and "userId" in out[3]["error"]
    listed = personalize.list_batch_inference_jobs(solutionVersionArn=version["solutionVersionArn"])
    assert [j["batchInferenceJobArn"] for j in listed["batchInferenceJobs"]] == [arn]


def test_region_comes_from_the_client(server, shop):
    from recsys_platform_tests.local_personalize.conftest import make_clients

    seoul, _ = make_clients(server.endpoint_url, region="ap-northeast-2")
    arn = seoul.create_dataset_group(name="seoul-shop")["datasetGroupArn"]
    assert arn == "arn:aws:personalize:ap-northeast-2:000000000000:dataset-group/seoul-shop"
    assert [g["name"] for g in seoul.list_dataset_groups()["datasetGroups"]] == ["seoul-shop"]
    assert shop.personalize.list_dataset_groups()["datasetGroups"] == []


def test_solution_settings_in_describe(personalize, shop, lake):
    group = shop.dataset_group()
    auto = personalize.create_solution(
        name="auto",
        datasetGroupArn=group,
        recipeArn="arn:aws:personalize:::recipe/aws-user-personalization-v2",
        solutionConfig={"eventsConfig": {"eventParametersList": [
            {"eventType": "purchase", "weight": 1.0}, {"eventType": "view", "weight": 0.2},
        ]}},
    )["solutionArn"]
    described = wait_for(lambda: personalize.describe_solution(solutionArn=auto), "solution")
    assert described["performAutoTraining"] is True  # the service's default
    assert described["solutionConfig"]["autoTrainingConfig"] == {"schedulingExpression": "rate(7 days)"}
    events = described["solutionConfig"]["eventsConfig"]["eventParametersList"]
    assert events[1] == {"eventType": "view", "weight": 0.2}
    listed = personalize.list_solutions(datasetGroupArn=group)["solutions"]
    assert [s["recipeArn"] for s in listed] == ["arn:aws:personalize:::recipe/aws-user-personalization-v2"]


def test_update_training_mode(personalize, shop):
    # CreateSolutionVersion: UPDATE only for aws-user-personalization and aws-hrnn-coldstart solutions.
    group, first = shop.trained_group("aws-user-personalization")
    created = personalize.create_solution_version(solutionArn=first["solutionArn"], trainingMode="UPDATE")
    updated = shop.wait_for_version(created["solutionVersionArn"])
    assert updated["status"] == "ACTIVE" and updated["trainingMode"] == "UPDATE"
    for name, recipe in (("popular", "aws-popularity-count"), ("v2", "aws-user-personalization-v2")):
        solution = shop.solution(group, name=name, recipe=recipe)
        with pytest.raises(personalize.exceptions.InvalidInputException, match="UPDATE"):
            personalize.create_solution_version(solutionArn=solution, trainingMode="UPDATE")


def test_import_from_a_folder_reads_every_csv_in_it(personalize, shop, lake):
    group = shop.dataset_group()
    dataset = shop.interactions_dataset(group)
    write_interactions(lake / BUCKET / "daily/part-1.csv", users=30, events_per_user=20, seed=1)
    write_interactions(lake / BUCKET / "daily/part-2.csv", users=30, events_per_user=20, seed=2)
    (lake / BUCKET / "daily/_SUCCESS").write_text("")  # not a CSV: ignored
    assert shop.import_csv(dataset, "daily/", "import-folder")["status"] == "ACTIVE"
    version = shop.train(shop.solution(group))
    assert version["status"] == "ACTIVE", version.get("failureReason")  # 2 x 600 rows pass the minimum
