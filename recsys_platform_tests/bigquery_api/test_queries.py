"""Query jobs through QueryJob.result(): parameters, result types, paging, DDL and DML statistics."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest
from google.api_core import exceptions
from google.cloud import bigquery

from recsys_platform_tests.bigquery_api.conftest import PROJECT, run

UTC = dt.timezone.utc


def test_every_parameter_type_binds_with_its_declared_type(client):
    P, A = bigquery.ScalarQueryParameter, bigquery.ArrayQueryParameter
    moment = dt.datetime(2026, 3, 2, 1, 2, 3, 456789, tzinfo=UTC)
    rows = run(
        client,
        "SELECT @s AS s, @i + 1 AS i, @f * 2 AS f, @n AS n, NOT @b AS b, DATE_ADD(@d, INTERVAL 1 DAY) AS d, "
        "TIMESTAMP_ADD(@ts, INTERVAL 1 SECOND) AS ts, @dtm AS dtm, ARRAY_LENGTH(@ints) AS ints, "
        "(SELECT STRING_AGG(x, '|') FROM UNNEST(@strs) AS x) AS strs, @days[OFFSET(1)] AS second_day, "
        "@null_string IS NULL AS null_string",
        P("s", "STRING", "shop"), P("i", "INT64", 41), P("f", "FLOAT64", 1.25), P("n", "NUMERIC", Decimal("1.5")),
        P("b", "BOOL", False), P("d", "DATE", dt.date(2026, 3, 2)), P("ts", "TIMESTAMP", moment),
        P("dtm", "DATETIME", dt.datetime(2026, 3, 2, 10, 0)), A("ints", "INT64", [1, 2, 3]),
        A("strs", "STRING", ["a", "b"]), A("days", "DATE", [dt.date(2026, 1, 1), dt.date(2026, 1, 2)]),
        P("null_string", "STRING", None),
    )
    assert rows == [{
        "s": "shop", "i": 42, "f": 2.5, "n": Decimal("1.5"), "b": True, "d": dt.date(2026, 3, 3),
        "ts": moment + dt.timedelta(seconds=1), "dtm": dt.datetime(2026, 3, 2, 10, 0), "ints": 3, "strs": "a|b",
        "second_day": dt.date(2026, 1, 2), "null_string": True,
    }]


def test_positional_parameters_and_undeclared_ones(client):
    positional = [bigquery.ScalarQueryParameter(None, "INT64", 2), bigquery.ScalarQueryParameter(None, "STRING", "b")]
    assert run(client, "SELECT ? * 10 AS n, ? AS s", *positional) == [{"n": 20, "s": "b"}]
    with pytest.raises(exceptions.BadRequest, match="Query parameter 'missing' not found"):
        run(client, "SELECT @missing AS x")


def test_result_schema_uses_bigquerys_types_and_arrow_follows(client):
    job = client.query("SELECT 1 AS i, SUM(x) AS total, 1.5 AS f, NUMERIC '2.25' AS n, 'a' AS s, TRUE AS b, "
                       "DATE '2026-03-02' AS d, TIMESTAMP_MICROS(1772400000000001) AS ts, "
                       "DATETIME '2026-03-02 10:00:00' AS dtm, [STRUCT('k' AS key, 1 AS v)] AS params, "
                       "CAST(NULL AS STRING) AS nothing, COUNT(*) + 1, STRUCT(1 AS a) AS rec "
                       "FROM UNNEST([1, 2]) AS x")
    table = job.result().to_arrow(create_bqstorage_client=False)
    schema = {f.name: (f.field_type, f.mode) for f in job.result().schema}
    assert schema == {
        "i": ("INTEGER", "NULLABLE"), "total": ("INTEGER", "NULLABLE"), "f": ("FLOAT", "NULLABLE"),
        "n": ("NUMERIC", "NULLABLE"), "s": ("STRING", "NULLABLE"), "b": ("BOOLEAN", "NULLABLE"),
        "d": ("DATE", "NULLABLE"), "ts": ("TIMESTAMP", "NULLABLE"), "dtm": ("DATETIME", "NULLABLE"),
        "params": ("RECORD", "REPEATED"), "nothing": ("STRING", "NULLABLE"), "f0_": ("INTEGER", "NULLABLE"),
        "rec": ("RECORD", "NULLABLE"),
    }
    assert table.schema.field("total").type == pa.int64()  # DuckDB's SUM is HUGEINT; BigQuery's is INT64
    assert table.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("dtm").type == pa.timestamp("us")
    assert table.schema.field("params").type == pa.list_(pa.struct([("key", pa.string()), ("v", pa.int64())]))
    row = table.to_pylist()[0]
    assert row["ts"] == dt.datetime(2026, 3, 1, 21, 20, 0, 1, tzinfo=UTC) and row["n"] == Decimal("2.25")
    assert row["params"] == [{"key": "k", "v": 1}] and row["rec"] == {"a": 1} and row["f0_"] == 3


def test_large_results_page_through_to_arrow_and_to_arrow_iterable(client):
    sql = "SELECT x, CONCAT('row', CAST(x AS STRING)) AS label FROM UNNEST(GENERATE_ARRAY(1, 2300)) AS x ORDER BY x"
    rows = client.query(sql).result()  # no page size: the stand-in's pages (500 rows here) and pageTokens
    table = rows.to_arrow(create_bqstorage_client=False)
    assert table.num_rows == 2300 and table.column("x").to_pylist() == list(range(1, 2301))
    batches = list(client.query(sql).result(page_size=1000).to_arrow_iterable(bqstorage_client=None))
    assert [b.num_rows for b in batches] == [1000, 1000, 300]
    assert batches[2].column(1).to_pylist()[-1] == "row2300"
    empty = client.query("SELECT x FROM UNNEST([1]) AS x WHERE FALSE").result()
    assert empty.total_rows == 0 and empty.to_arrow(create_bqstorage_client=False).num_rows == 0


def test_ddl_and_dml_report_what_they_did(client, dataset):
    create = client.query(f"CREATE TABLE `{dataset}.t` (id INT64, name STRING)")
    create.result()
    assert (create.statement_type, create.ddl_operation_performed) == ("CREATE_TABLE", "CREATE")
    assert create.ddl_target_table.table_id == "t"
    again = client.query(f"CREATE TABLE IF NOT EXISTS `{dataset}.t` (id INT64)")
    again.result()
    assert again.ddl_operation_performed == "SKIP"
    insert = client.query(f"INSERT INTO `{dataset}.t` VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    assert insert.result().num_dml_affected_rows == 3
    assert insert.statement_type == "INSERT" and insert.dml_stats.inserted_row_count == 3
    update = client.query(f"UPDATE `{dataset}.t` SET name = 'z' WHERE id >= 2")
    assert update.result().num_dml_affected_rows == 2 and update.dml_stats.updated_row_count == 2
    delete = client.query(f"DELETE FROM `{dataset}.t` WHERE id = @id",
                          job_config=bigquery.QueryJobConfig(
                              query_parameters=[bigquery.ScalarQueryParameter("id", "INT64", 1)]))
    assert delete.result().num_dml_affected_rows == 1 and delete.statement_type == "DELETE"
    assert run(client, f"SELECT id, name FROM `{dataset}.t` ORDER BY id") == [
        {"id": 2, "name": "z"}, {"id": 3, "name": "z"}]
    with pytest.raises(exceptions.BadRequest, match="DELETE must have a WHERE clause"):
        run(client, f"DELETE FROM `{dataset}.t`")
    drop = client.query(f"DROP TABLE `{dataset}.t`")
    drop.result()
    assert (drop.statement_type, drop.ddl_operation_performed) == ("DROP_TABLE", "DROP")


def test_create_table_as_select_keeps_partitioning_and_clustering(client, dataset):
    job = client.query(
        f"CREATE TABLE IF NOT EXISTS `{dataset}.events` PARTITION BY event_date CLUSTER BY event_name AS "
        "SELECT * FROM (SELECT DATE '2026-03-02' AS event_date, 'view_item' AS event_name, 7 AS n) WHERE FALSE")
    job.result()
    assert job.statement_type == "CREATE_TABLE_AS_SELECT"
    table = client.get_table(f"{dataset}.events")
    assert table.time_partitioning.field == "event_date" and table.clustering_fields == ["event_name"]
    assert [(f.name, f.field_type) for f in table.schema] == [
        ("event_date", "DATE"), ("event_name", "STRING"), ("n", "INTEGER")]
    assert table.num_rows == 0
    with pytest.raises(exceptions.BadRequest, match="PARTITION BY expression must be DATE"):
        run(client, f"CREATE TABLE `{dataset}.by_instant` PARTITION BY ts AS SELECT CURRENT_TIMESTAMP() AS ts")
    run(client, f"CREATE TABLE `{dataset}.by_day_of_instant` PARTITION BY DATE(ts) AS "
                "SELECT CURRENT_TIMESTAMP() AS ts")
    assert client.get_table(f"{dataset}.by_day_of_instant").time_partitioning.field == "ts"


def test_schema_statements_and_unqualified_names(client):
    job = client.query("CREATE SCHEMA IF NOT EXISTS made_by_ddl OPTIONS (location = 'US')")
    job.result()
    assert job.statement_type == "CREATE_SCHEMA"
    assert client.get_dataset(f"{PROJECT}.made_by_ddl").location == "US"
    with pytest.raises(exceptions.BadRequest, match='Table "t" must be qualified with a dataset'):
        run(client, "SELECT * FROM t")
    run(client, "CREATE TABLE made_by_ddl.t AS SELECT 1 AS a")
    config = bigquery.QueryJobConfig(default_dataset=f"{PROJECT}.made_by_ddl")
    assert [dict(r) for r in client.query("SELECT a FROM t", job_config=config).result()] == [{"a": 1}]
    run(client, "DROP SCHEMA made_by_ddl CASCADE")
    with pytest.raises(exceptions.NotFound):
        client.get_dataset(f"{PROJECT}.made_by_ddl")


def test_missing_table_fails_the_job_with_not_found(client, dataset):
    with pytest.raises(exceptions.NotFound, match=f"Not found: Table {PROJECT}:.*\\.absent was not found in "
                                                   "location US"):
        run(client, f"SELECT * FROM `{dataset}.absent`")
    job = client.query("SELEC 1")
    with pytest.raises(exceptions.BadRequest, match="Syntax error"):
        job.result()
    assert job.error_result["reason"] == "invalidQuery"  # kept on the job, as jobs.get reports it
    assert client.get_job(job.job_id).state == "DONE"


def test_a_job_in_another_location_does_not_see_the_dataset(client):
    dataset = bigquery.Dataset(f"{PROJECT}.in_tokyo")
    dataset.location = "asia-northeast1"
    client.create_dataset(dataset, exists_ok=True)
    run(client, "CREATE TABLE IF NOT EXISTS in_tokyo.t AS SELECT 1 AS a")  # location taken from the dataset
    assert client.query("SELECT a FROM in_tokyo.t").result().total_rows == 1
    with pytest.raises(exceptions.NotFound, match="Dataset shop-platform:in_tokyo was not found in location US"):
        client.query("SELECT a FROM in_tokyo.t", location="US").result()


def test_query_and_wait_uses_jobs_query(client):
    rows = client.query_and_wait("SELECT @x * 2 AS y", job_config=bigquery.QueryJobConfig(
        query_parameters=[bigquery.ScalarQueryParameter("x", "INT64", 21)]))
    assert [dict(r) for r in rows] == [{"y": 42}]


def test_wire_format_of_rows_and_jobs(client, standin):
    """The raw JSON, as BigQuery's REST reference describes it (the client's conversions hide it)."""
    import requests

    job = client.query("SELECT 7 AS i, TIMESTAMP '2026-03-02 00:00:00.5+00' AS ts, [1, 2] AS arr, "
                       "STRUCT('a' AS s, [STRUCT(1.5 AS x)] AS inner_list) AS rec, CAST(NULL AS INT64) AS nothing")
    job.result()
    headers = {"Authorization": f"Bearer {client._credentials.token}"}
    base = f"{standin.endpoint_url}/bigquery/v2/projects/{PROJECT}"
    resource = requests.get(f"{base}/jobs/{job.job_id}", headers=headers).json()
    assert resource["status"] == {"state": "DONE"}
    assert resource["jobReference"] == {"projectId": PROJECT, "jobId": job.job_id, "location": "US"}
    assert resource["statistics"]["query"]["statementType"] == "SELECT"
    assert [f["name"] for f in resource["statistics"]["query"]["schema"]["fields"]] == [
        "i", "ts", "arr", "rec", "nothing"]
    page = requests.get(f"{base}/queries/{job.job_id}", headers=headers).json()  # no useInt64Timestamp
    assert page["jobComplete"] is True and page["totalRows"] == "1"
    assert page["rows"] == [{"f": [
        {"v": "7"},  # INT64 as a string
        {"v": "1.7724096005E9"},  # TIMESTAMP as float seconds
        {"v": [{"v": "1"}, {"v": "2"}]},  # REPEATED: a list of {"v": ...}
        {"v": {"f": [{"v": "a"}, {"v": [{"v": {"f": [{"v": "1.5"}]}}]}]}},  # RECORD: a nested {"f": [...]}
        {"v": None},
    ]}]
    micros = requests.get(f"{base}/queries/{job.job_id}", params={"formatOptions.useInt64Timestamp": "true"},
                          headers=headers).json()
    assert micros["rows"][0]["f"][1] == {"v": "1772409600500000"}
