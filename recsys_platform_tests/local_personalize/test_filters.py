"""Filters: the expression grammar, checks against the schemas, and what filtered recommendations
contain (real time and batch), through boto3."""

from __future__ import annotations

import csv
import json

import pytest

from recsys_platform_tests.local_personalize.conftest import (
    BUCKET,
    CATALOGUE_SCHEMA,
    ROLE,
    USERS_SCHEMA,
    wait_for,
    write_interactions,
)

ITEMS = 40


def category(n: int) -> str:
    return "shoes" if n < 20 else ("bags|sale" if n % 2 else "bags")


class Catalogue:
    """A dataset group with interactions, an Items dataset (CATEGORY, PRICE = n), a Users dataset,
    a popularity campaign (the same ranked list for everyone: easy to see what a filter removed)."""

    def __init__(self, shop, lake, personalize) -> None:
        self.shop, self.personalize = shop, personalize
        self.group = shop.dataset_group()
        self.interactions = shop.interactions_dataset(self.group)
        path = write_interactions(lake / BUCKET / "interactions.csv", items=ITEMS)
        assert shop.import_csv(self.interactions, "interactions.csv", "interactions")["status"] == "ACTIVE"
        self.items = shop.dataset(self.group, "Items", CATALOGUE_SCHEMA)
        rows = [f"i{n},{category(n)},{n}.0,{'true' if n % 3 else 'false'},a fine item" for n in range(ITEMS)]
        (lake / BUCKET / "items.csv").write_text("ITEM_ID,CATEGORY,PRICE,IN_STOCK,DESCRIPTION\n" + "\n".join(rows) + "\n")
        assert shop.import_csv(self.items, "items.csv", "items")["status"] == "ACTIVE"
        self.users = shop.dataset(self.group, "Users", USERS_SCHEMA)
        version = shop.train(shop.solution(self.group))
        self.version = version["solutionVersionArn"]
        self.campaign = shop.campaign(self.version)
        self.rows = list(csv.DictReader(path.open()))

    def bought(self, user: str, event_type: str = "purchase") -> set[str]:
        return {row["ITEM_ID"] for row in self.rows if row["USER_ID"] == user and row["EVENT_TYPE"] == event_type}


@pytest.fixture
def catalogue(shop, lake, personalize) -> Catalogue:
    return Catalogue(shop, lake, personalize)


def items(runtime, catalogue, user="u0", **request) -> list[str]:
    answer = runtime.get_recommendations(campaignArn=catalogue.campaign, userId=user, numResults=ITEMS, **request)
    return [item["itemId"] for item in answer["itemList"]]


def test_filter_lifecycle(personalize, catalogue):
    group = catalogue.group
    expression = 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")'
    arn = personalize.create_filter(name="no-purchases", datasetGroupArn=group, filterExpression=expression)["filterArn"]
    assert arn == "arn:aws:personalize:us-east-1:000000000000:filter/no-purchases"
    pending = personalize.describe_filter(filterArn=arn)["filter"]
    assert pending["status"] in ("CREATE PENDING", "CREATE IN_PROGRESS", "ACTIVE")
    active = wait_for(lambda: personalize.describe_filter(filterArn=arn), "filter")
    assert active["status"] == "ACTIVE" and active["datasetGroupArn"] == group
    assert active["filterExpression"] == expression
    listed = personalize.list_filters(datasetGroupArn=group)["Filters"]
    assert [(f["name"], f["status"]) for f in listed] == [("no-purchases", "ACTIVE")]
    with pytest.raises(personalize.exceptions.ResourceAlreadyExistsException):
        personalize.create_filter(name="no-purchases", datasetGroupArn=group, filterExpression=expression)
    with pytest.raises(personalize.exceptions.ResourceInUseException, match="filters"):
        personalize.delete_dataset_group(datasetGroupArn=group)
    personalize.delete_filter(filterArn=arn)
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.describe_filter(filterArn=arn)
    with pytest.raises(personalize.exceptions.ResourceNotFoundException):
        personalize.create_filter(name="f", datasetGroupArn=group.replace("/shop", "/nope"), filterExpression=expression)
    for n in range(10):
        catalogue.shop.filter(group, f'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("type-{n}")', name=f"f{n}")
    with pytest.raises(personalize.exceptions.LimitExceededException, match="at most 10"):
        personalize.create_filter(name="eleventh", datasetGroupArn=group, filterExpression=expression)


@pytest.mark.parametrize(
    ("expression", "named"),
    [
        ('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase"', "expected ',' or ')'"),
        ('EXCLUDE ItemID Interactions.EVENT_TYPE IN ("purchase")', "expected WHERE, found 'Interactions' at position 16"),
        ("EXCLUDE ItemID WHERE Items.CATEGORY IN ('shoes')", "strings take double quotes"),
        ('REMOVE ItemID WHERE Items.CATEGORY IN ("shoes")', "expected INCLUDE or EXCLUDE"),
        ('EXCLUDE ItemID WHERE Items.CATEGORY IN ("shoes") AND Interactions.EVENT_TYPE IN ("view")',
         "Items and Interactions cannot share one expression"),
        ('EXCLUDE ItemID WHERE Items.CATEGORY IN ("shoes") extra', "found 'extra' at position"),
        ('EXCLUDE ItemID WHERE Items.PRICE > "10"', "comparators test numbers"),
        ('EXCLUDE ItemID WHERE Items.CATEGORY > 3', "CATEGORY is a string field; comparators"),
        ('EXCLUDE ItemID WHERE Items.COLOUR IN ("red")', "the Items schema has no field COLOUR"),
        ('EXCLUDE ItemID WHERE Items.IN_STOCK IN ("true")', "IN_STOCK is boolean"),
        ('EXCLUDE ItemID WHERE Items.DESCRIPTION IN ("fine")', "DESCRIPTION is textual"),
        ('EXCLUDE ItemID WHERE Items.CATEGORY IN ("*")', "for Interactions.EVENT_TYPE only"),
        ('EXCLUDE ItemID WHERE Interactions.ITEM_ID IN ("i1")', "filter by event type only"),
        ('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE > 3', "takes IN or NOT IN"),
        ('EXCLUDE ItemID WHERE CurrentUser.AGE > 18', "CurrentUser may be used only in the IF condition"),
        ('EXCLUDE ItemID WHERE Items.CATEGORY IN ("bags") IF CurrentUser.AGE > 1 OR CurrentUser.AGE < 0',
         "extends only with AND"),
        ('EXCLUDE ItemID WHERE Items.CATEGORY IN ("bags") IF Items.PRICE > 3', "checks CurrentUser.<field> only"),
        ('INCLUDE UserID WHERE Users.AGE < $AGE', "UserID filters"),
        ('EXCLUDE ItemID WHERE Actions.X IN ("y")', "unknown dataset 'Actions'"),
        ('EXCLUDE ItemID WHERE Items.CATEGORY IN ($CATEGORY, "*")', "must be alone"),
    ],
)
def test_malformed_or_unfit_expressions_are_refused_naming_the_problem(personalize, catalogue, expression, named):
    with pytest.raises(personalize.exceptions.InvalidInputException, match=named.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")):
        personalize.create_filter(name="bad", datasetGroupArn=catalogue.group, filterExpression=expression)
    assert personalize.list_filters(datasetGroupArn=catalogue.group)["Filters"] == []


def test_fields_and_datasets_must_exist(personalize, shop):
    bare = shop.dataset_group("bare")
    with pytest.raises(personalize.exceptions.InvalidInputException, match="has no Interactions dataset"):
        personalize.create_filter(name="f", datasetGroupArn=bare,
                                  filterExpression='EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("view")')
    shop.interactions_dataset(bare)
    with pytest.raises(personalize.exceptions.InvalidInputException, match="has no Items dataset"):
        personalize.create_filter(name="f", datasetGroupArn=bare,
                                  filterExpression='EXCLUDE ItemID WHERE Items.CATEGORY IN ("x")')
    with pytest.raises(personalize.exceptions.InvalidInputException, match="has no Users dataset"):
        personalize.create_filter(
            name="f", datasetGroupArn=bare,
            filterExpression='EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("x") IF CurrentUser.AGE > 3',
        )
    wide = json.dumps({"type": "record", "name": "Items", "fields": [{"name": "ITEM_ID", "type": "string"}]
                       + [{"name": f"F{n}", "type": ["null", "string"]} for n in range(12)]})
    shop.dataset(bare, "Items", wide)
    six = " AND ".join(f'Items.F{n} IN ("x")' for n in range(6))
    with pytest.raises(personalize.exceptions.InvalidInputException, match="6 distinct dataset fields.*at most 5"):
        personalize.create_filter(name="six", datasetGroupArn=bare, filterExpression=f"EXCLUDE ItemID WHERE {six}")
    for start in (0, 5):
        fields = " AND ".join(f'Items.F{n} IN ("x")' for n in range(start, start + 5))
        shop.filter(bare, f"EXCLUDE ItemID WHERE {fields}", name=f"five-{start}")
    with pytest.raises(personalize.exceptions.LimitExceededException, match="11 distinct dataset fields"):
        personalize.create_filter(name="more", datasetGroupArn=bare,
                                  filterExpression='EXCLUDE ItemID WHERE Items.F10 IN ("x")')


def test_excluding_what_the_user_bought(runtime, catalogue):
    plain = items(runtime, catalogue)
    bought = catalogue.bought("u0")
    assert bought and bought & set(plain)  # popularity recommends some of them
    no_purchases = catalogue.shop.filter(catalogue.group, 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")')
    filtered = items(runtime, catalogue, filterArn=no_purchases)
    assert filtered == [item for item in plain if item not in bought]  # the same order, minus purchases
    five = runtime.get_recommendations(campaignArn=catalogue.campaign, userId="u0", numResults=5, filterArn=no_purchases)
    assert [i["itemId"] for i in five["itemList"]] == filtered[:5]  # still 5 items after filtering
    # event types match case-insensitively, and * is every type
    upper = catalogue.shop.filter(catalogue.group, 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("PURCHASE")', name="upper")
    assert items(runtime, catalogue, filterArn=upper) == filtered
    anything = catalogue.shop.filter(catalogue.group, 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")', name="any")
    touched = {row["ITEM_ID"] for row in catalogue.rows if row["USER_ID"] == "u0"}
    assert set(items(runtime, catalogue, filterArn=anything)) == set(plain) - touched
    only_viewed = catalogue.shop.filter(catalogue.group, 'INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("view")', name="viewed")
    assert set(items(runtime, catalogue, filterArn=only_viewed)) == catalogue.bought("u0", "view")
    # a user without interactions: EXCLUDE removes nothing, INCLUDE keeps nothing
    assert items(runtime, catalogue, user="new-user", filterArn=no_purchases) == items(runtime, catalogue, user="new-user")
    assert items(runtime, catalogue, user="new-user", filterArn=only_viewed) == []


def test_items_filters_with_parameters(runtime, catalogue, events):
    shop = catalogue.shop
    by_category = shop.filter(catalogue.group, "INCLUDE ItemID WHERE Items.CATEGORY IN ($CATEGORY)", name="category")
    shoes = items(runtime, catalogue, filterArn=by_category, filterValues={"CATEGORY": '"shoes"'})
    assert shoes and set(shoes) == {f"i{n}" for n in range(20)} & set(items(runtime, catalogue))
    on_sale = items(runtime, catalogue, filterArn=by_category, filterValues={"CATEGORY": '"sale"'})
    assert on_sale and all(int(item[1:]) >= 20 and int(item[1:]) % 2 for item in on_sale)  # categorical: bags|sale
    both = items(runtime, catalogue, filterArn=by_category, filterValues={"CATEGORY": '"shoes","sale"'})
    assert set(both) == set(shoes) | set(on_sale)
    with pytest.raises(runtime.exceptions.InvalidInputException, match=r"\$CATEGORY: an INCLUDE expression"):
        items(runtime, catalogue, filterArn=by_category)
    with pytest.raises(runtime.exceptions.InvalidInputException, match="not a comma-separated list"):
        items(runtime, catalogue, filterArn=by_category, filterValues={"CATEGORY": '"shoes'})
    with pytest.raises(runtime.exceptions.InvalidInputException, match="COLOUR, which the filter's expression does not use"):
        items(runtime, catalogue, filterArn=by_category, filterValues={"CATEGORY": '"shoes"', "COLOUR": '"red"'})
    cheap = shop.filter(catalogue.group, "INCLUDE ItemID WHERE Items.PRICE <= $PRICE", name="cheap")
    assert sorted(int(i[1:]) for i in items(runtime, catalogue, filterArn=cheap, filterValues={"PRICE": "5"})) == [
        n for n in range(6) if f"i{n}" in items(runtime, catalogue)
    ]
    sale_or_cheap = shop.filter(catalogue.group, 'INCLUDE ItemID WHERE Items.CATEGORY IN ("sale") OR Items.PRICE <= 5',
                                name="sale-or-cheap")
    cheap_five = set(items(runtime, catalogue, filterArn=cheap, filterValues={"PRICE": "5"}))
    assert set(items(runtime, catalogue, filterArn=sale_or_cheap)) == set(on_sale) | cheap_five
    assert cheap_five - set(on_sale) and set(on_sale) - cheap_five  # both sides of the OR contribute
    not_bags = shop.filter(catalogue.group, 'EXCLUDE ItemID WHERE Items.CATEGORY NOT IN ("bags")', name="bags-only")
    assert all(int(item[1:]) >= 20 for item in items(runtime, catalogue, filterArn=not_bags))
    # an EXCLUDE expression whose parameters have no values is not used ...
    hide = shop.filter(catalogue.group, "EXCLUDE ItemID WHERE Items.CATEGORY IN ($HIDE)", name="hide")
    assert items(runtime, catalogue, filterArn=hide) == items(runtime, catalogue)
    # ... and INCLUDE | EXCLUDE keeps the first minus the second
    combined = shop.filter(
        catalogue.group,
        'INCLUDE ItemID WHERE Items.CATEGORY IN ("shoes") | EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")',
        name="shoes-not-bought",
    )
    assert set(items(runtime, catalogue, filterArn=combined)) == set(shoes) - catalogue.bought("u0")
    # PutItems: the next request sees the new category
    events.put_items(datasetArn=catalogue.items, items=[{"itemId": "i25", "properties": json.dumps({"category": "shoes"})}])
    assert "i25" in items(runtime, catalogue, filterArn=by_category, filterValues={"CATEGORY": '"shoes"'})
    # a filter of another dataset group, and values without a filter
    other = shop.dataset_group("other")
    shop.interactions_dataset(other, schema_name="other-interactions")
    foreign = shop.filter(other, 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("view")', name="foreign")
    with pytest.raises(runtime.exceptions.InvalidInputException, match="belongs to dataset group"):
        items(runtime, catalogue, filterArn=foreign)
    with pytest.raises(runtime.exceptions.InvalidInputException, match="filterValues needs a filterArn"):
        items(runtime, catalogue, filterValues={"CATEGORY": '"shoes"'})
    with pytest.raises(runtime.exceptions.ResourceNotFoundException):
        items(runtime, catalogue, filterArn=foreign.replace("foreign", "gone"))


def test_conditions_on_the_current_user_and_the_current_item(runtime, events, catalogue):
    shop = catalogue.shop
    events.put_users(datasetArn=catalogue.users, users=[
        {"userId": "u1", "properties": json.dumps({"age": 15, "membership": "basic"})},
        {"userId": "u2", "properties": json.dumps({"age": 40, "membership": "gold|early"})},
    ])
    minors = shop.filter(catalogue.group, 'EXCLUDE ItemID WHERE Items.CATEGORY IN ("bags") IF CurrentUser.AGE < 18', name="minors")
    assert all(int(i[1:]) < 20 for i in items(runtime, catalogue, user="u1", filterArn=minors))
    assert items(runtime, catalogue, user="u2", filterArn=minors) == items(runtime, catalogue, user="u2")
    assert items(runtime, catalogue, user="u3", filterArn=minors) == items(runtime, catalogue, user="u3")  # no record
    gold = shop.filter(
        catalogue.group,
        'INCLUDE ItemID WHERE Items.PRICE >= 30 IF CurrentUser.MEMBERSHIP IN ("gold") AND CurrentUser.AGE > $AGE',
        name="gold",
    )
    assert all(int(i[1:]) >= 30 for i in items(runtime, catalogue, user="u2", filterArn=gold, filterValues={"AGE": "21"}))
    assert len(items(runtime, catalogue, user="u2", filterArn=gold, filterValues={"AGE": "50"})) == ITEMS
    similar = shop.filter(
        catalogue.group, "INCLUDE ItemID WHERE Items.CATEGORY IN CurrentItem.CATEGORY AND Items.PRICE < CurrentItem.PRICE",
        name="similar-cheaper",
    )
    like_i27 = items(runtime, catalogue, filterArn=similar, itemId="i27")  # bags|sale, price 27
    assert like_i27 and all(20 <= int(i[1:]) < 27 for i in like_i27)
    with pytest.raises(runtime.exceptions.InvalidInputException, match="give itemId"):
        items(runtime, catalogue, filterArn=similar)


def test_interactions_filters_see_the_100_most_recent_per_event_type(personalize, runtime, events, shop, lake):
    """The guide: "Amazon Personalize considers up to 100 of the most recent interactions per user per
    event type" -- bulk data and recorded events alike."""
    group = shop.dataset_group()
    dataset = shop.interactions_dataset(group)
    path = lake / BUCKET / "heavy.csv"
    path.parent.mkdir(parents=True)
    with path.open("w") as handle:
        handle.write("USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE\n")
        for n in range(150):  # p000 is the oldest purchase, p149 the newest
            handle.write(f"heavy,p{n:03d},{1_700_000_000 + n},purchase,\n")
            handle.write(f"heavy,p{n:03d},{1_700_000_000 + n},view,\n")
        for user in range(40):
            for k in range(25):
                handle.write(f"filler{user},p{(user * 7 + k * 3) % 200:03d},{1_600_000_000 + k},purchase,\n")
    assert shop.import_csv(dataset, "heavy.csv", "heavy")["status"] == "ACTIVE"
    campaign = shop.campaign(shop.train(shop.solution(group))["solutionVersionArn"])
    no_purchases = shop.filter(group, 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")')

    def recommended() -> set[str]:
        answer = runtime.get_recommendations(campaignArn=campaign, userId="heavy", numResults=500, filterArn=no_purchases)
        return {item["itemId"] for item in answer["itemList"]}

    shown = recommended()
    assert {f"p{n:03d}" for n in range(50)} <= shown  # the 50 oldest purchases are beyond the newest 100
    assert not {f"p{n:03d}" for n in range(50, 150)} & shown
    _, tracking_id = shop.event_tracker(group)
    events.put_events(trackingId=tracking_id, userId="heavy", sessionId="s",
                      eventList=[{"eventType": "purchase", "itemId": "p000", "sentAt": 1_800_000_000}])
    shown = recommended()
    assert "p000" not in shown  # the newest purchase now ...
    assert "p050" in shown  # ... and p050 the 101st newest


def test_batch_inference_applies_the_filter_per_line(personalize, catalogue, lake):
    shop = catalogue.shop
    by_category = shop.filter(
        catalogue.group,
        "INCLUDE ItemID WHERE Items.CATEGORY IN ($CATEGORY) | EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN (\"purchase\")",
        name="batch",
    )
    lines = [
        {"userId": "u0", "filterValues": {"CATEGORY": '"shoes"'}},
        {"userId": "u1", "filterValues": {"CATEGORY": '"bags"'}},
        {"userId": "u2"},  # INCLUDE without its value: this line cannot be answered
    ]
    (lake / BUCKET / "batch.json").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    arn = personalize.create_batch_inference_job(
        jobName="filtered", solutionVersionArn=catalogue.version, filterArn=by_category, numResults=10, roleArn=ROLE,
        jobInput={"s3DataSource": {"path": f"s3://{BUCKET}/batch.json"}},
        jobOutput={"s3DataDestination": {"path": f"s3://{BUCKET}/batch-out/"}},
    )["batchInferenceJobArn"]
    job = wait_for(lambda: personalize.describe_batch_inference_job(batchInferenceJobArn=arn), "batchInferenceJob")
    assert job["status"] == "ACTIVE" and job["filterArn"] == by_category
    out = [json.loads(line) for line in (lake / BUCKET / "batch-out/batch.json.out").read_text().splitlines()]
    shoes = out[0]["output"]["recommendedItems"]
    assert shoes and all(int(i[1:]) < 20 for i in shoes) and not set(shoes) & catalogue.bought("u0")
    bags = out[1]["output"]["recommendedItems"]
    assert bags and all(int(i[1:]) >= 20 for i in bags) and not set(bags) & catalogue.bought("u1")
    assert out[2]["output"] is None and "$CATEGORY" in out[2]["error"]
    other = shop.dataset_group("other")
    shop.interactions_dataset(other, schema_name="other-interactions")
    foreign = shop.filter(other, 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("view")', name="foreign")
    with pytest.raises(personalize.exceptions.InvalidInputException, match="belongs to dataset group"):
        personalize.create_batch_inference_job(
            jobName="foreign", solutionVersionArn=catalogue.version, filterArn=foreign, roleArn=ROLE,
            jobInput={"s3DataSource": {"path": f"s3://{BUCKET}/batch.json"}},
            jobOutput={"s3DataDestination": {"path": f"s3://{BUCKET}/batch-out/"}},
        )
