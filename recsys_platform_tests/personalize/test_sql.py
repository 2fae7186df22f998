from pathlib import Path

import pytest
import sqlglot
from sqlglot.errors import ErrorLevel

from recsys_platform.lib.sql_files import expand_macros, read_sql

SQL_DIR = Path(__file__).resolve().parents[2] / "recsys_platform" / "defs" / "personalize" / "sql"
SQL_FILES = sorted(SQL_DIR.glob("*.sql"))
ANCHOR = str(SQL_DIR.parent / "snapshots.py")


# The logical datasets each statement reads (shop: the product DB through its contract; analytics: the GA4
# export; none: a statement over its parameters only).
DATASETS = {
    "personalize_interactions.sql": {"recsys"}, "personalize_interactions_minimums.sql": {"recsys"},
    "personalize_items.sql": {"shop"}, "personalize_purchase_holdout.sql": {"recsys"},
    "personalize_users.sql": {"shop"}, "personalize_intraday_events.sql": {"analytics"},
    "personalize_held_out_users.sql": set(),
}


def test_every_statement_is_covered():
    assert {p.name for p in SQL_FILES} == set(DATASETS)


@pytest.mark.parametrize("path", SQL_FILES, ids=lambda p: p.name)
def test_parses_as_bigquery_and_names_tables_by_dataset(path):
    (tree,) = sqlglot.parse(read_sql(ANCHOR, path.name), read="bigquery", error_level=ErrorLevel.RAISE)
    tables = {t.db for t in tree.find_all(sqlglot.exp.Table) if t.db}
    assert tables == DATASETS[path.name]
    assert "IS_HELD_OUT" not in tree.sql("bigquery").upper()  # every macro call was expanded


def test_the_holdout_predicate_is_written_once():
    """Training, the minimums and the scored holdout must agree on who is held out: one definition."""
    users_of_the_hash = [p.name for p in SQL_DIR.rglob("*.sql") if "MD5(" in p.read_text().upper()]
    assert users_of_the_hash == ["is_held_out.sql"]
    callers = [p.name for p in SQL_FILES if "IS_HELD_OUT(" in p.read_text().upper()]
    assert callers == ["personalize_held_out_users.sql", "personalize_interactions.sql",
                       "personalize_interactions_minimums.sql", "personalize_intraday_events.sql",
                       "personalize_purchase_holdout.sql"]
    expanded = read_sql(ANCHOR, "personalize_purchase_holdout.sql")
    assert "MD5(CONCAT(@holdout_seed, USER_ID))" in expanded


def test_macro_calls_are_checked():
    macros = {"TWICE": (["x"], sqlglot.parse_one("x * 2", read="bigquery"))}
    expanded = expand_macros("SELECT TWICE(a) FROM t", macros)
    assert "a * 2" in expanded and "TWICE" not in expanded
    with pytest.raises(ValueError, match="macro TWICE takes 1 argument"):
        expand_macros("SELECT TWICE(a, b) FROM t", macros)
