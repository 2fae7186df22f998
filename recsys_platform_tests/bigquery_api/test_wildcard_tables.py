"""Wildcard tables (`events_*` with `_TABLE_SUFFIX`) and the `__TABLES__` meta-table."""

from __future__ import annotations

import time

import pytest
from google.api_core import exceptions
from google.cloud import bigquery

from recsys_platform_tests.bigquery_api.conftest import run


def _suffix_range(first: str, last: str) -> list:
    return [bigquery.ScalarQueryParameter("first", "STRING", first),
            bigquery.ScalarQueryParameter("last", "STRING", last)]


@pytest.fixture
def shards(client, dataset) -> str:
    # An old shard whose event_name is an INT64: reading it as the newest shards' STRING fails, so a
    # query that succeeds proves the shard was never read (pruned by _TABLE_SUFFIX).
    run(client, f"CREATE TABLE `{dataset}.events_20260228` AS SELECT 99 AS event_name, 1 AS n")
    run(client, f"CREATE TABLE `{dataset}.events_20260301` AS SELECT 'view_item' AS event_name, 1 AS n")
    run(client, f"CREATE TABLE `{dataset}.events_20260302` AS "
                "SELECT 'add_to_cart' AS event_name, 2 AS n UNION ALL SELECT 'purchase', 3")
    time.sleep(0.01)  # the newest table (by creation time) gives the wildcard its schema
    run(client, f"CREATE TABLE `{dataset}.events_intraday_20260303` AS "
                "SELECT 'view_item' AS event_name, 4 AS n, 'web' AS platform")
    run(client, f"CREATE TABLE `{dataset}.users` AS SELECT 'u1' AS user_id")
    return dataset


def test_table_suffix_selects_and_prunes_shards(client, shards):
    rows = run(client, f"""
        SELECT _TABLE_SUFFIX AS suffix, event_name, n FROM `{shards}.events_*`
        WHERE _TABLE_SUFFIX BETWEEN @first AND @last ORDER BY n""", *_suffix_range("20260301", "20260302"))
    assert rows == [{"suffix": "20260301", "event_name": "view_item", "n": 1},
                    {"suffix": "20260302", "event_name": "add_to_cart", "n": 2},
                    {"suffix": "20260302", "event_name": "purchase", "n": 3}]
    # Without the suffix filter the INT64 shard is read, and BigQuery cannot read it as STRING.
    with pytest.raises(exceptions.BadRequest, match="events_20260228"):
        run(client, f"SELECT event_name FROM `{shards}.events_*`")


def test_wildcard_schema_is_the_newest_tables_and_includes_intraday_tables(client, shards):
    rows = run(client, f"""
        SELECT DISTINCT _TABLE_SUFFIX AS suffix, platform FROM `{shards}.events_*`
        WHERE _TABLE_SUFFIX >= '20260301' ORDER BY suffix""")
    # events_* matches events_intraday_*: its suffix is `intraday_...`; older shards lack `platform`.
    assert rows == [{"suffix": "20260301", "platform": None}, {"suffix": "20260302", "platform": None},
                    {"suffix": "intraday_20260303", "platform": "web"}]
    in_list = run(client, f"""
        SELECT COUNT(*) AS n FROM `{shards}.events_*` AS e
        WHERE e._TABLE_SUFFIX IN UNNEST(@suffixes)""",
                  bigquery.ArrayQueryParameter("suffixes", "STRING", ["20260302", "intraday_20260303"]))
    assert in_list == [{"n": 3}]
    star = client.query(f"SELECT * FROM `{shards}.events_*` WHERE _TABLE_SUFFIX = '20260301'").result()
    assert [f.name for f in star.schema] == ["event_name", "n", "platform"]  # no _TABLE_SUFFIX in `*`
    nothing = run(client, f"SELECT COUNT(*) AS n FROM `{shards}.events_*` WHERE _TABLE_SUFFIX = '20991231'")
    assert nothing == [{"n": 0}]
    with pytest.raises(exceptions.NotFound, match=r"events_none_\* was not found"):
        run(client, f"SELECT * FROM `{shards}.events_none_*`")


def test_tables_meta_table_lists_every_table_with_times_and_counts(client, shards):
    before_insert = {r["table_id"]: r for r in run(client, f"SELECT * FROM `{shards}.__TABLES__`")}
    assert sorted(before_insert) == ["events_20260228", "events_20260301", "events_20260302",
                                     "events_intraday_20260303", "users"]
    row = before_insert["events_20260302"]
    project, dataset = shards.split(".")
    assert (row["project_id"], row["dataset_id"], row["row_count"], row["type"]) == (project, dataset, 2, 1)
    assert row["creation_time"] <= row["last_modified_time"] and row["size_bytes"] > 0
    table = client.get_table(f"{shards}.events_20260302")
    assert int(table.created.timestamp() * 1000) == row["creation_time"]
    run(client, f"INSERT INTO `{shards}.events_20260302` VALUES ('purchase', 5)")
    after = run(client, f"""
        SELECT table_id, row_count, last_modified_time FROM `{shards}.__TABLES__`
        WHERE STARTS_WITH(table_id, 'events_') AND NOT STARTS_WITH(table_id, 'events_intraday_')
        ORDER BY table_id""")
    changed = next(r for r in after if r["table_id"] == "events_20260302")
    assert changed["row_count"] == 3 and changed["last_modified_time"] > row["last_modified_time"]
    assert [r["table_id"] for r in after] == ["events_20260228", "events_20260301", "events_20260302"]
