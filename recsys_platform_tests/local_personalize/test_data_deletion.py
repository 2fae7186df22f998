"""Data deletion jobs: a CSV of USER_IDs in the lake; the users' data leaves every dataset of the group
(bulk rows, recorded events, PutUsers records), so the next training no longer sees them."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from recsys_platform_tests.local_personalize.conftest import BUCKET, ROLE, USERS_SCHEMA, make_clients, wait_for

DONE = ("COMPLETED", "FAILED")


def deletion_job(personalize, group, key, name="forget"):
    arn = personalize.create_data_deletion_job(
        jobName=name, datasetGroupArn=group, roleArn=ROLE, dataSource={"dataLocation": f"s3://{BUCKET}/{key}"}
    )["dataDeletionJobArn"]
    return arn, wait_for(lambda: personalize.describe_data_deletion_job(dataDeletionJobArn=arn), "dataDeletionJob", done=DONE)


def test_deleted_users_leave_every_dataset_and_the_next_training(
    personalize, runtime, events, shop, lake, state_dir
):
    group, version = shop.trained_group("aws-user-personalization-v2")
    users = shop.dataset(group, "Users", USERS_SCHEMA)
    (lake / BUCKET / "users.csv").write_text("USER_ID,AGE,MEMBERSHIP\nu0,30,gold\nu1,40,\nu2,50,\n")
    assert shop.import_csv(users, "users.csv", "users")["status"] == "ACTIVE"
    events.put_users(datasetArn=users, users=[{"userId": "u0", "properties": json.dumps({"age": 31})}])
    _, tracking_id = shop.event_tracker(group)
    events.put_events(trackingId=tracking_id, sessionId="visit-u0", eventList=[
        {"eventType": "view", "itemId": "i39", "sentAt": 1_800_000_000}])  # anonymous, then u0 logs in
    events.put_events(trackingId=tracking_id, userId="u0", sessionId="visit-u0", eventList=[
        {"eventType": "view", "itemId": f"i{n}", "sentAt": 1_800_000_001 + n} for n in (30, 31, 32)])
    events.put_events(trackingId=tracking_id, userId="u5", sessionId="visit-u5", eventList=[
        {"eventType": "view", "itemId": "i20", "sentAt": 1_800_000_000}])
    (lake / BUCKET / "forget.csv").write_text("USER_ID\nu0\nu1\n")

    arn, job = deletion_job(personalize, group, "forget.csv")
    assert arn == "arn:aws:personalize:us-east-1:000000000000:data-deletion-job/forget"
    assert job["status"] == "COMPLETED", job.get("failureReason")
    # 25 + 25 interactions, 2 bulk users, 1 PutUsers record, 4 events (one of them anonymous)
    assert job["numDeleted"] == 57
    assert job["dataSource"]["dataLocation"] == f"s3://{BUCKET}/forget.csv" and job["roleArn"] == ROLE
    listed = personalize.list_data_deletion_jobs(datasetGroupArn=group)["dataDeletionJobs"]
    assert [(j["jobName"], j["status"]) for j in listed] == [("forget", "COMPLETED")]

    # nothing of theirs is left in the state folder
    for part in state_dir.rglob("*.parquet"):
        assert not {"u0", "u1"} & set(pq.read_table(part).column("USER_ID").to_pylist()), part.name
    for lines in state_dir.rglob("*.jsonl"):
        text = lines.read_text()
        assert '"u0"' not in text and '"u1"' not in text and "visit-u0" not in text and '"i39"' not in text
    assert '"u5"' in (next(state_dir.rglob("events.jsonl"))).read_text()  # others' events stay

    # the next training does not know them: they get what a stranger gets
    retrained = shop.train(version["solutionArn"])
    campaign = shop.campaign(retrained["solutionVersionArn"], name="after-deletion")
    stranger = runtime.get_recommendations(campaignArn=campaign, userId="never-seen", numResults=10)["itemList"]
    for user in ("u0", "u1"):
        assert runtime.get_recommendations(campaignArn=campaign, userId=user, numResults=10)["itemList"] == stranger
    assert runtime.get_recommendations(campaignArn=campaign, userId="u2", numResults=10)["itemList"] != stranger


def test_deletion_job_input_and_quota(personalize, shop, lake, start_server):
    group = shop.dataset_group()
    shop.interactions_dataset(group)
    with pytest.raises(personalize.exceptions.InvalidInputException, match="no such object"):
        personalize.create_data_deletion_job(jobName="j", datasetGroupArn=group, roleArn=ROLE,
                                              dataSource={"dataLocation": f"s3://{BUCKET}/missing.csv"})
    (lake / BUCKET).mkdir(parents=True, exist_ok=True)
    (lake / BUCKET / "wrong.csv").write_text("CUSTOMER\nu0\n")
    _, failed = deletion_job(personalize, group, "wrong.csv", name="wrong-header")
    assert failed["status"] == "FAILED" and "single column USER_ID" in failed["failureReason"]
    (lake / BUCKET / "ok.csv").write_text("USER_ID\nu0\n")
    with pytest.raises(personalize.exceptions.ResourceAlreadyExistsException):
        personalize.create_data_deletion_job(jobName="wrong-header", datasetGroupArn=group, roleArn=ROLE,
                                              dataSource={"dataLocation": f"s3://{BUCKET}/ok.csv"})
    # at most 5 PENDING per dataset group: a server that runs one job at a time, slowly
    slow, _ = make_clients(start_server(step_delay=5.0, max_running_jobs=1).endpoint_url)
    for n in range(5):
        slow.create_data_deletion_job(jobName=f"queued-{n}", datasetGroupArn=group, roleArn=ROLE,
                                      dataSource={"dataLocation": f"s3://{BUCKET}/ok.csv"})
    statuses = [j["status"] for j in slow.list_data_deletion_jobs(datasetGroupArn=group)["dataDeletionJobs"]]
    assert statuses.count("PENDING") == 5
    with pytest.raises(slow.exceptions.LimitExceededException, match="at most 5"):
        slow.create_data_deletion_job(jobName="one-too-many", datasetGroupArn=group, roleArn=ROLE,
                                      dataSource={"dataLocation": f"s3://{BUCKET}/ok.csv"})
