"""BigQuery's type rules, where DuckDB would have coerced silently: each refusal, and what stays allowed."""

from __future__ import annotations

import pytest
from google.api_core import exceptions

from recsys_platform_tests.bigquery_api.conftest import run


@pytest.fixture(scope="module")
def typed(client) -> str:
    """One row of each type the rules involve (created once: the refusals never change it)."""
    client.create_dataset("type_rules", exists_ok=True)
    table = "`shop-platform.type_rules.typed`"
    run(client, f"DROP TABLE IF EXISTS {table}")
    run(client, f"CREATE TABLE {table} (s STRING, i INT64, f FLOAT64, d DATE, dtm DATETIME, ts TIMESTAMP)")
    run(client, f"INSERT INTO {table} VALUES ('1', 1, 1.0, DATE '2026-03-02', DATETIME '2026-03-02 10:00:00', "
                "TIMESTAMP '2026-03-02 01:00:00+00')")
    return table


@pytest.mark.parametrize("sql, message", [
    ("SELECT s, i FROM {t} UNION ALL SELECT i, s FROM {t}", "Column 1 in UNION ALL has incompatible types: STRING, INT64"),
    ("SELECT i, s FROM {t} UNION ALL SELECT i, i FROM {t}", "Column 2 in UNION ALL has incompatible types: STRING, INT64"),
    ("SELECT i FROM {t} UNION DISTINCT SELECT d FROM {t}", "Column 1 in UNION DISTINCT has incompatible types: INT64, DATE"),
    ("SELECT i FROM {t} UNION ALL SELECT i, s FROM {t}", "Queries in UNION ALL have mismatched column count"),
    ("SELECT * FROM {t} WHERE s = i", "No matching signature for operator = for argument types: STRING, INT64"),
    ("SELECT * FROM {t} WHERE i = '1'", "No matching signature for operator = for argument types: INT64, STRING"),
    ("SELECT * FROM {t} WHERE s > 0", "No matching signature for operator > for argument types: STRING, INT64"),
    ("SELECT * FROM {t} WHERE s IN (1, 2)", "No matching signature for operator IN for argument types: STRING, {INT64}"),
    ("SELECT * FROM {t} WHERE s NOT IN (SELECT i FROM {t})", "Cannot execute IN subquery with uncomparable types STRING and INT64"),
    ("SELECT DATE(dtm, 'Asia/Seoul') FROM {t}", "No matching signature for function DATE for argument types: DATETIME, STRING"),
    ("SELECT UNIX_SECONDS(dtm) FROM {t}", "No matching signature for function UNIX_SECONDS for argument types: DATETIME"),
    ("SELECT * FROM {t} WHERE s = @n", "No matching signature for operator = for argument types: STRING, INT64"),
])
def test_refused_as_bigquery_refuses(client, typed, sql, message):
    from google.cloud import bigquery

    parameters = [bigquery.ScalarQueryParameter("n", "INT64", 1)] if "@n" in sql else []
    with pytest.raises(exceptions.BadRequest) as raised:
        run(client, sql.format(t=typed), *parameters)
    assert message in raised.value.message
    assert raised.value.errors[0]["reason"] == "invalidQuery"


def test_coercions_bigquery_allows_still_run(client, typed):
    rows = run(client, f"""
        SELECT i FROM {typed} UNION ALL SELECT f FROM {typed} UNION ALL SELECT NULL FROM {typed}""")
    assert sorted(r["i"] for r in rows if r["i"] is not None) == [1.0, 1.0]  # INT64 widened to FLOAT64
    assert run(client, f"""
        SELECT COUNT(*) AS n FROM {typed}
        WHERE i = f AND i IN (1, 2.0) AND d = '2026-03-02' AND ts > '2026-01-01' AND d < dtm AND (s = NULL) IS NULL
          AND DATE(ts, 'Asia/Seoul') = DATE '2026-03-02' AND UNIX_SECONDS(ts) > 0
          AND s NOT IN (SELECT CAST(i AS STRING) FROM {typed} WHERE FALSE)""") == [{"n": 1}]


def test_insert_refuses_a_column_of_another_type(client, dataset):
    table = f"`{dataset}.target`"
    run(client, f"CREATE TABLE {table} (s STRING, f FLOAT64)")
    with pytest.raises(exceptions.BadRequest, match="Query column 1 has type INT64 which cannot be inserted into "
                                                    "column s, which has type STRING"):
        run(client, f"INSERT INTO {table} (s) SELECT 5")
    run(client, f"INSERT INTO {table} (f) SELECT 5")  # INT64 -> FLOAT64 is a coercion BigQuery makes
    assert run(client, f"SELECT COUNT(*) AS n FROM {table} WHERE f = 5") == [{"n": 1}]
