"""Datasets, tables and table data through the client's own resource methods, and BigQuery's errors."""

from __future__ import annotations

import datetime as dt

import pytest
import requests
from google.api_core import exceptions
from google.cloud import bigquery

from recsys_platform_tests.bigquery_api.conftest import PROJECT, run

PARAM = bigquery.SchemaField("value", "RECORD", fields=[bigquery.SchemaField("string_value", "STRING"),
                                                        bigquery.SchemaField("int_value", "INTEGER")])
ITEM_PARAMS = bigquery.SchemaField("item_params", "RECORD", mode="REPEATED",
                                   fields=[bigquery.SchemaField("key", "STRING"), PARAM])
EVENTS_SCHEMA = [
    bigquery.SchemaField("event_date", "DATE", mode="REQUIRED", description="property-local day"),
    bigquery.SchemaField("event_name", "STRING"),
    bigquery.SchemaField("event_timestamp", "TIMESTAMP"),
    bigquery.SchemaField("items", "RECORD", mode="REPEATED", fields=[
        bigquery.SchemaField("item_id", "STRING", mode="REQUIRED"), bigquery.SchemaField("price", "FLOAT"),
    ]),
]


def test_dataset_keeps_its_location_and_is_listed(client):
    dataset = bigquery.Dataset(f"{PROJECT}.located_in_eu")
    dataset.location = "EU"
    dataset.description = "events in Europe"
    created = client.create_dataset(dataset)
    assert created.location == "EU"
    fetched = client.get_dataset(f"{PROJECT}.located_in_eu")
    assert (fetched.location, fetched.description) == ("EU", "events in Europe")
    assert fetched.created is not None and fetched.created.year >= 2024
    assert "located_in_eu" in [d.dataset_id for d in client.list_datasets()]
    with pytest.raises(exceptions.Conflict, match="Already Exists: Dataset shop-platform:located_in_eu"):
        client.create_dataset(f"{PROJECT}.located_in_eu")
    client.create_dataset(f"{PROJECT}.located_in_eu", exists_ok=True)  # the client's Conflict handling


def test_missing_dataset_is_bigquerys_404(client, standin):
    with pytest.raises(exceptions.NotFound, match="Not found: Dataset shop-platform:no_such_dataset"):
        client.get_dataset(f"{PROJECT}.no_such_dataset")
    token = client._credentials.token  # the raw answer, as the REST reference shows it
    answer = requests.get(f"{standin.endpoint_url}/bigquery/v2/projects/{PROJECT}/datasets/no_such_dataset",
                          headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 404
    assert answer.json() == {"error": {
        "code": 404, "message": "Not found: Dataset shop-platform:no_such_dataset", "status": "NOT_FOUND",
        "errors": [{"reason": "notFound", "message": "Not found: Dataset shop-platform:no_such_dataset",
                    "domain": "global"}]}}


def test_table_with_nested_schema_partitioning_and_clustering_round_trips(client, dataset):
    table = bigquery.Table(f"{dataset}.events", schema=EVENTS_SCHEMA)
    table.time_partitioning = bigquery.TimePartitioning(field="event_date")
    table.clustering_fields = ["event_name"]
    table.description = "merged events"
    before = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=5)
    client.create_table(table)
    fetched = client.get_table(f"{dataset}.events")
    assert fetched.schema == EVENTS_SCHEMA  # nested RECORD/REPEATED, REQUIRED, descriptions
    assert fetched.time_partitioning.field == "event_date" and fetched.time_partitioning.type_ == "DAY"
    assert fetched.clustering_fields == ["event_name"]
    assert fetched.description == "merged events" and fetched.table_type == "TABLE"
    assert fetched.num_rows == 0 and fetched.created >= before and fetched.modified >= fetched.created
    assert [t.table_id for t in client.list_tables(dataset)] == ["events"]
    with pytest.raises(exceptions.Conflict, match="Already Exists: Table"):
        client.create_table(table)


def test_required_fields_refuse_nulls_and_rows_page_through_tabledata_list(client, dataset):
    client.create_table(bigquery.Table(f"{dataset}.events", schema=EVENTS_SCHEMA))
    run(client, f"INSERT INTO `{dataset}.events` (event_date, event_name, event_timestamp, items) "
                "SELECT DATE_ADD(DATE '2026-03-02', INTERVAL x DAY), CONCAT('e', CAST(x AS STRING)), TIMESTAMP_SECONDS(1772400000 + x), "
                "[STRUCT(CAST(x AS STRING) AS item_id, 1.5 AS price)] FROM UNNEST(GENERATE_ARRAY(0, 1199)) AS x")
    rows = client.list_rows(f"{dataset}.events", page_size=500)
    pages = list(rows.pages)
    assert [page.num_items for page in pages] == [500, 500, 200]  # followed pageToken twice
    first = next(iter(client.list_rows(f"{dataset}.events", max_results=1)))
    assert first["items"] == [{"item_id": "0", "price": 1.5}]
    assert first["event_timestamp"] == dt.datetime(2026, 3, 1, 21, 20, tzinfo=dt.timezone.utc)
    with pytest.raises(exceptions.BadRequest):
        run(client, f"INSERT INTO `{dataset}.events` (event_date, event_name) VALUES (NULL, 'x')")


def test_patch_adds_nested_fields_but_refuses_removals_and_type_changes(client, dataset):
    stale = client.create_table(bigquery.Table(f"{dataset}.events", schema=EVENTS_SCHEMA))
    run(client, f"INSERT INTO `{dataset}.events` (event_date, items) VALUES (DATE '2026-03-02', "
                "[STRUCT('A' AS item_id, 2.0 AS price)])")
    # The insert modified the table: an update conditioned on the old etag is refused, as in BigQuery.
    stale.description = "changed"
    with pytest.raises(exceptions.PreconditionFailed):
        client.update_table(stale, ["description"])
    table = client.get_table(f"{dataset}.events")
    items = EVENTS_SCHEMA[3]
    grown = EVENTS_SCHEMA[:3] + [bigquery.SchemaField("items", "RECORD", mode="REPEATED",
                                                      fields=[*items.fields, ITEM_PARAMS])]
    table.schema = grown + [bigquery.SchemaField("user_id", "STRING")]
    updated = client.update_table(table, ["schema"])
    assert [f.name for f in updated.schema] == ["event_date", "event_name", "event_timestamp", "items", "user_id"]
    assert [f.name for f in updated.schema[3].fields] == ["item_id", "price", "item_params"]
    # The existing row reads the added fields as NULL / empty.
    assert run(client, f"SELECT items, user_id FROM `{dataset}.events`") == [
        {"items": [{"item_id": "A", "price": 2.0, "item_params": []}], "user_id": None}]
    table = client.get_table(f"{dataset}.events")
    table.schema = table.schema[1:]
    with pytest.raises(exceptions.BadRequest, match="Field event_date is missing in new schema"):
        client.update_table(table, ["schema"])
    table = client.get_table(f"{dataset}.events")
    table.schema = [bigquery.SchemaField("event_date", "STRING", mode="REQUIRED"), *table.schema[1:]]
    with pytest.raises(exceptions.BadRequest, match="Field event_date has changed type from DATE to STRING"):
        client.update_table(table, ["schema"])


def test_delete_table_and_dataset(client, dataset):
    client.create_table(bigquery.Table(f"{dataset}.gone", schema=EVENTS_SCHEMA))
    client.delete_table(f"{dataset}.gone")
    with pytest.raises(exceptions.NotFound, match=f"Not found: Table {PROJECT}:{dataset.split('.')[1]}.gone"):
        client.get_table(f"{dataset}.gone")
    client.delete_table(f"{dataset}.gone", not_found_ok=True)
    client.create_table(bigquery.Table(f"{dataset}.kept", schema=EVENTS_SCHEMA))
    with pytest.raises(exceptions.BadRequest, match="still in use"):
        client.delete_dataset(dataset)
    client.delete_dataset(dataset, delete_contents=True)
    with pytest.raises(exceptions.NotFound):
        client.get_dataset(dataset)
