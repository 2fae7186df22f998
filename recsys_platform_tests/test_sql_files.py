"""Every SQL file of the package is BigQuery Standard SQL that sqlglot can carry to DuckDB unchanged in
meaning (an unsupported construct raises instead of being silently dropped)."""

from pathlib import Path

import pytest
import sqlglot
from sqlglot.errors import ErrorLevel

import recsys_platform
from recsys_platform.defs.interactions.interactions import interactions_sql
from recsys_platform.defs.ga4.taxonomy import load_taxonomy

SQL_FILES = sorted(Path(recsys_platform.__file__).parent.rglob("sql/*.sql"))


def test_there_are_sql_files():
    names = {p.name for p in SQL_FILES}
    assert {"ga4_events.sql", "ga4_item_events.sql", "interactions.sql"} <= names


@pytest.mark.parametrize("path", SQL_FILES, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_sql_file_parses_as_bigquery_and_transpiles_to_duckdb(path):
    trees = [t for t in sqlglot.parse(path.read_text(), read="bigquery", error_level=ErrorLevel.RAISE) if t]
    assert trees, f"{path} holds no statement"
    for tree in trees:
        tree.sql("duckdb", unsupported_level=ErrorLevel.RAISE)


def test_generated_interactions_sql_has_one_branch_per_tracked_event():
    sql = interactions_sql(load_taxonomy())
    tree = sqlglot.parse_one(sql, read="bigquery")
    tracked = next(c for c in tree.find_all(sqlglot.exp.CTE) if c.alias == "tracked_events")
    tables = sorted(t.name for t in tracked.find_all(sqlglot.exp.Table))
    assert tables == sorted(e.asset for e in load_taxonomy().events)
    tree.sql("duckdb", unsupported_level=ErrorLevel.RAISE)
