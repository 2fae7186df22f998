"""Query results written to a destination table: dispositions, partition decorators, schema updates."""

from __future__ import annotations

import datetime as dt

import pytest
from google.api_core import exceptions
from google.cloud import bigquery

from recsys_platform_tests.bigquery_api.conftest import run

# One GA4-like day: `items` is a REPEATED RECORD; the later export adds `items.item_params`.
DAY_ROWS = """
SELECT DATE '{day}' AS event_date, name AS event_name,
       [STRUCT(CONCAT(name, '-item') AS item_id, 9.5 AS price)] AS items
FROM UNNEST(['view_item', 'purchase']) AS name
"""
DAY_ROWS_WITH_ITEM_PARAMS = """
SELECT DATE '{day}' AS event_date, 'view_item' AS event_name,
       [STRUCT('new-item' AS item_id, 1.0 AS price,
               [STRUCT('color' AS key, STRUCT('red' AS string_value) AS value)] AS item_params)] AS items
"""


def _write(client, sql: str, destination: str, disposition: str, *, options=(), partitioning=None):
    config = bigquery.QueryJobConfig(destination=destination, write_disposition=disposition,
                                     schema_update_options=list(options), time_partitioning=partitioning)
    return client.query(sql, job_config=config).result()


@pytest.fixture
def partitioned(client, dataset) -> str:
    """`events` partitioned by event_date, with two days written through the query API."""
    table = f"{dataset}.events"
    by_day = bigquery.TimePartitioning(field="event_date")
    _write(client, DAY_ROWS.format(day="2026-03-01"), table, "WRITE_APPEND", partitioning=by_day)
    _write(client, DAY_ROWS.format(day="2026-03-02"), f"{table}$20260302", "WRITE_APPEND")
    return table


def test_write_truncate_on_a_partition_replaces_only_that_day(client, partitioned):
    _write(client, "SELECT DATE '2026-03-02' AS event_date, 'refund' AS event_name, "
                   "[STRUCT('r' AS item_id, 1.0 AS price)] AS items", f"{partitioned}$20260302", "WRITE_TRUNCATE")
    rows = run(client, f"SELECT event_date, event_name FROM `{partitioned}` ORDER BY event_date, event_name")
    assert rows == [{"event_date": dt.date(2026, 3, 1), "event_name": "purchase"},
                    {"event_date": dt.date(2026, 3, 1), "event_name": "view_item"},
                    {"event_date": dt.date(2026, 3, 2), "event_name": "refund"}]
    assert client.get_table(partitioned).time_partitioning.field == "event_date"


def test_a_nested_field_is_added_only_with_allow_field_addition(client, partitioned):
    grown = DAY_ROWS_WITH_ITEM_PARAMS.format(day="2026-03-02")
    with pytest.raises(exceptions.BadRequest, match=r"Cannot add fields \(field: items.item_params\)"):
        _write(client, grown, f"{partitioned}$20260302", "WRITE_TRUNCATE")
    _write(client, grown, f"{partitioned}$20260302", "WRITE_TRUNCATE", options=["ALLOW_FIELD_ADDITION"])
    items = client.get_table(partitioned).schema[2]
    assert [f.name for f in items.fields] == ["item_id", "price", "item_params"]
    assert items.fields[2].mode == "REPEATED" and items.fields[2].field_type == "RECORD"
    rows = run(client, f"SELECT event_date, items FROM `{partitioned}` ORDER BY event_date, event_name")
    # The untouched day keeps its rows; their new nested field reads as empty.
    assert rows[0]["items"] == [{"item_id": "purchase-item", "price": 9.5, "item_params": []}]
    assert rows[-1]["items"] == [{"item_id": "new-item", "price": 1.0,
                                  "item_params": [{"key": "color", "value": {"string_value": "red"}}]}]
    assert [r["event_date"] for r in rows] == [dt.date(2026, 3, 1)] * 2 + [dt.date(2026, 3, 2)]


def test_rows_outside_the_decorated_partition_are_refused(client, partitioned):
    with pytest.raises(exceptions.BadRequest, match="Some rows belong to different partitions rather than "
                                                    "destination partition 20260302"):
        _write(client, DAY_ROWS.format(day="2026-03-05"), f"{partitioned}$20260302", "WRITE_TRUNCATE")
    assert run(client, f"SELECT COUNT(*) AS n FROM `{partitioned}`") == [{"n": 4}]


def test_dispositions_and_their_refusals(client, partitioned, dataset):
    with pytest.raises(exceptions.Conflict, match="Already Exists"):
        _write(client, DAY_ROWS.format(day="2026-03-02"), partitioned, "WRITE_EMPTY")
    _write(client, DAY_ROWS.format(day="2026-03-03"), f"{partitioned}$20260303", "WRITE_EMPTY")  # empty partition
    with pytest.raises(exceptions.BadRequest, match="Schema update options should only be specified with "
                                                    "WRITE_APPEND disposition"):
        _write(client, DAY_ROWS.format(day="2026-03-03"), partitioned, "WRITE_TRUNCATE",
               options=["ALLOW_FIELD_ADDITION"])
    with pytest.raises(exceptions.BadRequest, match="Field event_name has changed type from STRING to INTEGER"):
        _write(client, "SELECT DATE '2026-03-03' AS event_date, 1 AS event_name", partitioned, "WRITE_APPEND")
    # WRITE_TRUNCATE without a decorator replaces the whole table, schema included.
    _write(client, "SELECT DATE '2026-03-09' AS event_date, 1 AS n", partitioned, "WRITE_TRUNCATE")
    assert [f.name for f in client.get_table(partitioned).schema] == ["event_date", "n"]
    assert run(client, f"SELECT * FROM `{partitioned}`") == [{"event_date": dt.date(2026, 3, 9), "n": 1}]
    with pytest.raises(exceptions.NotFound):
        client.query("SELECT 1 AS a", job_config=bigquery.QueryJobConfig(
            destination=f"{dataset}.never", create_disposition="CREATE_NEVER")).result()
