"""Event trackers and the personalize-events service: PutEvents changes a user's next recommendations
without retraining and feeds the next training; PutItems / PutUsers add records."""

from __future__ import annotations

import json
import time

import pytest

from recsys_platform_tests.local_personalize.conftest import (
    BUCKET,
    CATALOGUE_SCHEMA,
    USERS_SCHEMA,
    wait_for,
    write_interactions,
)


def top(runtime, campaign, user, count=5) -> list[str]:
    answer = runtime.get_recommendations(campaignArn=campaign, userId=user, numResults=count)
    return [item["itemId"] for item in answer["itemList"]]


def views(*items: str, start: int = 1_800_000_000) -> list[dict]:
    return [{"eventType": "view", "itemId": item, "sentAt": start + n} for n, item in enumerate(items)]


def test_event_tracker_lifecycle(personalize, events, shop):
    group = shop.dataset_group()
    shop.interactions_dataset(group)
    created = personalize.create_event_tracker(name="clicks", datasetGroupArn=group)
    assert created["eventTrackerArn"] == "arn:aws:personalize:us-east-1:000000000000:event-tracker/clicks"
    arn, tracking_id = created["eventTrackerArn"], created["trackingId"]
    assert len(tracking_id) == 36  # a UUID
    tracker = wait_for(lambda: personalize.describe_event_tracker(eventTrackerArn=arn), "eventTracker")
    assert tracker["status"] == "ACTIVE" and tracker["trackingId"] == tracking_id
    assert tracker["datasetGroupArn"] == group and tracker["accountId"] == "000000000000"
    with pytest.raises(personalize.exceptions.ResourceAlreadyExistsException, match="only one"):
        personalize.create_event_tracker(name="second", datasetGroupArn=group)
    assert [t["name"] for t in personalize.list_event_trackers(datasetGroupArn=group)["eventTrackers"]] == ["clicks"]
    with pytest.raises(personalize.exceptions.ResourceInUseException, match="event tracker"):
        personalize.delete_dataset_group(datasetGroupArn=group)
    events.put_events(trackingId=tracking_id, userId="u1", sessionId="s1", eventList=views("i1"))
    personalize.delete_event_tracker(eventTrackerArn=arn)
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.describe_event_tracker(eventTrackerArn=arn)
    with pytest.raises(events.exceptions.InvalidInputException, match="belongs to no event tracker"):
        events.put_events(trackingId=tracking_id, userId="u1", sessionId="s1", eventList=views("i1"))
    assert personalize.list_event_trackers()["eventTrackers"] == []


def test_put_events_changes_the_users_next_recommendations_without_retraining(personalize, runtime, events, shop):
    group, version = shop.trained_group("aws-user-personalization-v2")
    campaign = shop.campaign(version["solutionVersionArn"])
    popular_version = shop.train(shop.solution(group, name="popular", recipe="aws-popularity-count"))
    popular = shop.campaign(popular_version["solutionVersionArn"], name="popular")
    _, tracking_id = shop.event_tracker(group)
    before, neighbour, stranger = top(runtime, campaign, "u0"), top(runtime, campaign, "u1"), top(runtime, campaign, "stranger")
    popular_before = top(runtime, popular, "u0")
    assert all(int(item[1:]) < 10 for item in before[:3])  # u0 shops items i0..i9
    started = time.monotonic()
    # u0 now looks at three items of another group (i30..i39), newest last
    events.put_events(trackingId=tracking_id, userId="u0", sessionId="session-u0", eventList=views("i31", "i32", "i33"))
    after = top(runtime, campaign, "u0")
    assert time.monotonic() - started < 5
    assert after[0] == "i33" and set(after[:3]) == {"i31", "i32", "i33"}  # the recorded events lead, newest first
    assert after != before
    assert top(runtime, campaign, "u1") == neighbour  # for that user only
    assert top(runtime, popular, "u0") == popular_before  # Popularity-Count waits for a retraining
    # a user the model never saw is served from their recorded events
    events.put_events(trackingId=tracking_id, userId="stranger", sessionId="s9", eventList=views("i21", "i22"))
    served = top(runtime, campaign, "stranger")
    assert served[0] == "i22" and set(served[:2]) == {"i21", "i22"} and served[:2] != stranger[:2]
    # an anonymous visitor: recommendations for the sessionId
    events.put_events(trackingId=tracking_id, sessionId="anonymous-1", eventList=views("i11"))
    assert top(runtime, campaign, "anonymous-1")[0] == "i11"
    # items the model does not know yet are recorded but need a retraining to be recommended
    events.put_events(trackingId=tracking_id, userId="u5", sessionId="s5", eventList=views("brand-new"))
    assert "brand-new" not in top(runtime, campaign, "u5", count=40)
    # nothing was retrained
    assert len(personalize.list_solution_versions(solutionArn=version["solutionArn"])["solutionVersions"]) == 1


def test_recorded_events_feed_the_next_training(personalize, runtime, events, shop, lake):
    group = shop.dataset_group()
    dataset = shop.interactions_dataset(group)
    write_interactions(lake / BUCKET / "bulk.csv", users=30, events_per_user=20, items=40)  # 600 rows
    assert shop.import_csv(dataset, "bulk.csv", "bulk")["status"] == "ACTIVE"
    solution = shop.solution(group, recipe="aws-user-personalization-v2")
    first = shop.train(solution)
    assert first["status"] == "CREATE FAILED" and "600 interactions" in first["failureReason"]
    _, tracking_id = shop.event_tracker(group)
    for call in range(40):  # 400 more interactions, 10 per call (PutEvents' maximum)
        user = f"u{call % 30}"
        events.put_events(trackingId=tracking_id, userId=user, sessionId=f"s-{user}", eventList=[
            {"eventType": "purchase", "itemId": f"i{(call + k) % 40}", "sentAt": 1_800_000_000 + call * 10 + k,
             "eventValue": 9.5}
            for k in range(10)
        ])
    # an anonymous session, then the same session logs in: training ties the session's events to the user
    events.put_events(trackingId=tracking_id, sessionId="visit-7", eventList=views("i37", "i38", "i39", start=1_900_000_000))
    events.put_events(trackingId=tracking_id, userId="newcomer", sessionId="visit-7",
                      eventList=views("i0", start=1_900_000_010))
    second = shop.train(solution)
    assert second["status"] == "ACTIVE", second.get("failureReason")  # 600 + 404 >= 1000
    campaign = shop.campaign(second["solutionVersionArn"])
    # the newcomer's history in the new model includes the anonymous visit's items
    assert set(top(runtime, campaign, "newcomer", count=4)) == {"i0", "i37", "i38", "i39"}
    # events that the model was trained on are not folded in again at request time
    assert top(runtime, campaign, "newcomer", count=4)[0] == "i0"


def test_put_events_checks_its_input(personalize, events, shop):
    group = shop.dataset_group()
    _, tracking_id = shop.event_tracker(group)
    with pytest.raises(events.exceptions.InvalidInputException, match="has no Interactions dataset"):
        events.put_events(trackingId=tracking_id, userId="u", sessionId="s", eventList=views("i1"))
    shop.interactions_dataset(group)
    with pytest.raises(events.exceptions.InvalidInputException, match=r"eventList\[1\].itemId is required"):
        events.put_events(trackingId=tracking_id, userId="u", sessionId="s",
                          eventList=[*views("i1"), {"eventType": "view", "sentAt": 1}])
    with pytest.raises(events.exceptions.InvalidInputException, match="'colour' is not a field"):
        events.put_events(trackingId=tracking_id, userId="u", sessionId="s",
                          eventList=[{**views("i1")[0], "properties": json.dumps({"colour": "red"})}])
    with pytest.raises(events.exceptions.InvalidInputException, match="belongs to no event tracker") as raised:
        events.put_events(trackingId="not-a-tracker", userId="u", sessionId="s", eventList=views("i1"))
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_put_items_and_put_users(personalize, events, shop):
    group = shop.dataset_group()
    items = shop.dataset(group, "Items", CATALOGUE_SCHEMA)
    users = shop.dataset(group, "Users", USERS_SCHEMA)
    events.put_items(datasetArn=items, items=[
        {"itemId": "i1", "properties": json.dumps({"category": ["shoes", "sale"], "price": "12.5", "inStock": True})},
        {"itemId": "i2", "properties": json.dumps({"CATEGORY": "bags"})},
        {"itemId": "i3"},
    ])
    events.put_users(datasetArn=users, users=[{"userId": "u1", "properties": json.dumps({"age": "31"})}])
    for wrong, named in (
        ({"colour": "red"}, "'colour' is not a field"),
        ({"price": "cheap"}, "PRICE 'cheap' is not a number"),
        ({"itemId": "i9"}, "'itemId' is not a field"),  # the ID is the request's own member
        ({"inStock": "maybe"}, "IN_STOCK must be true or false"),
    ):
        with pytest.raises(events.exceptions.InvalidInputException, match=named):
            events.put_items(datasetArn=items, items=[{"itemId": "i9", "properties": json.dumps(wrong)}])
    with pytest.raises(events.exceptions.InvalidInputException, match="AGE 'old' is not an integer"):
        events.put_users(datasetArn=users, users=[{"userId": "u2", "properties": json.dumps({"age": "old"})}])
    with pytest.raises(events.exceptions.InvalidInputException, match="is a Users dataset, not Items"):
        events.put_items(datasetArn=users, items=[{"itemId": "i9"}])
    with pytest.raises(events.exceptions.InvalidInputException, match="not JSON"):
        events.put_items(datasetArn=items, items=[{"itemId": "i9", "properties": "{not json"}])
    with pytest.raises(events.exceptions.ResourceNotFoundException) as raised:
        events.put_users(datasetArn=users.replace("/shop/", "/gone/"), users=[{"userId": "u9"}])
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404  # the events model's status
