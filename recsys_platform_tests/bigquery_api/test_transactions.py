"""Multi-statement scripts and transactions: all of a transaction or nothing, as in BigQuery."""

from __future__ import annotations

import datetime as dt

import pytest
from google.api_core import exceptions
from google.cloud import bigquery

from recsys_platform_tests.bigquery_api.conftest import run

DAY = dt.date(2026, 3, 2)


@pytest.fixture
def events(client, dataset) -> str:
    table = f"`{dataset}.events`"
    run(client, f"CREATE TABLE {table} (event_date DATE, n INT64)")
    run(client, f"INSERT INTO {table} VALUES (DATE '2026-03-01', 1), (DATE '2026-03-02', 2), (DATE '2026-03-02', 3)")
    return table


def _day_params():
    return bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter("day", "DATE", DAY)])


def test_committed_transaction_replaces_a_day(client, events):
    job = client.query(
        "BEGIN TRANSACTION;\n"
        f"DELETE FROM {events} WHERE event_date = @day;\n"
        f"INSERT INTO {events} SELECT @day, 10;\n"
        "COMMIT TRANSACTION;", job_config=_day_params())
    job.result()
    assert job.statement_type == "SCRIPT"
    assert run(client, f"SELECT event_date, n FROM {events} ORDER BY n") == [
        {"event_date": dt.date(2026, 3, 1), "n": 1}, {"event_date": DAY, "n": 10}]


def test_a_failing_statement_rolls_back_the_whole_transaction(client, events):
    with pytest.raises(exceptions.BadRequest, match="Bad int64 value|Could not convert"):
        client.query(
            "BEGIN TRANSACTION;\n"
            f"DELETE FROM {events} WHERE event_date = @day;\n"
            f"INSERT INTO {events} SELECT @day, CAST('not a number' AS INT64);\n"
            "COMMIT TRANSACTION;", job_config=_day_params()).result()
    # The DELETE that ran before the failure is undone.
    assert run(client, f"SELECT n FROM {events} ORDER BY n") == [{"n": 1}, {"n": 2}, {"n": 3}]


def test_a_script_that_ends_inside_a_transaction_is_rolled_back(client, events):
    client.query(f"BEGIN TRANSACTION; DELETE FROM {events} WHERE TRUE;").result()
    assert run(client, f"SELECT COUNT(*) AS n FROM {events}") == [{"n": 3}]


def test_ddl_inside_a_transaction_is_refused_and_nothing_changes(client, events, dataset):
    with pytest.raises(exceptions.BadRequest, match="CREATE TABLE statement is not supported inside a transaction"):
        client.query(
            "BEGIN TRANSACTION;\n"
            f"DELETE FROM {events} WHERE TRUE;\n"
            f"CREATE TABLE `{dataset}.other` (a INT64);\n"
            "COMMIT TRANSACTION;").result()
    assert run(client, f"SELECT COUNT(*) AS n FROM {events}") == [{"n": 3}]
    with pytest.raises(exceptions.NotFound):
        client.get_table(f"{dataset}.other")


def test_statements_outside_a_transaction_commit_one_by_one(client, events):
    # As in BigQuery: without BEGIN, an error stops the script but earlier statements stay done.
    with pytest.raises(exceptions.BadRequest):
        client.query(f"DELETE FROM {events} WHERE n = 1; SELECT CAST('x' AS INT64);").result()
    assert run(client, f"SELECT n FROM {events} ORDER BY n") == [{"n": 2}, {"n": 3}]


def test_a_script_returns_its_last_select_and_temp_tables_live_for_the_script(client, events):
    rows = client.query(
        f"CREATE TEMP TABLE recent AS SELECT n FROM {events} WHERE event_date = @day;\n"
        "INSERT INTO recent VALUES (4);\n"
        "SELECT SUM(n) AS total FROM recent;", job_config=_day_params()).result()
    assert [dict(r) for r in rows] == [{"total": 9}]
