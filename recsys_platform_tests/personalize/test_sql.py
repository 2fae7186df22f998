from pathlib import Path

import pytest
import sqlglot
from sqlglot.errors import ErrorLevel

from recsys_platform.lib.sql_files import expand_macros, read_sql

SQL_DIR = Path(__file__).resolve().parents[2] / "recsys_platform" / "defs" / "personalize" / "sql"
SQL_FILES = sorted(SQL_DIR.glob("*.sql"))
ANCHOR = str(SQL_DIR.parent / "snapshots.py")


def test_every_statement_is_covered():
    assert {p.name for p in SQL_FILES} == {
        "personalize_interactions.sql", "personalize_interactions_minimums.sql", "personalize_items.sql",
        "personalize_purchase_holdout.sql", "personalize_users.sql",
    }


@pytest.mark.parametrize("path", SQL_FILES, ids=lambda p: p.name)
def test_parses_as_bigquery_and_names_tables_by_dataset(path):
    (tree,) = sqlglot.parse(read_sql(ANCHOR, path.name), read="bigquery", error_level=ErrorLevel.RAISE)
    tables = {t.db for t in tree.find_all(sqlglot.exp.Table) if t.db}
    assert tables and tables <= {"recsys", "shop"}  # shop: the product DB through its contract
    assert "IS_HELD_OUT" not in tree.sql("bigquery").upper()  # every macro call was expanded


def test_the_holdout_predicate_is_written_once():
    """Training, the minimums and the scored holdout must agree on who is held out: one definition."""
    users_of_the_hash = [p.name for p in SQL_DIR.rglob("*.sql") if "MD5(" in p.read_text().upper()]
    assert users_of_the_hash == ["is_held_out.sql"]
    callers = [p.name for p in SQL_FILES if "IS_HELD_OUT(USER_ID)" in p.read_text()]
    assert callers == ["personalize_interactions.sql", "personalize_interactions_minimums.sql",
                       "personalize_purchase_holdout.sql"]
    expanded = read_sql(ANCHOR, "personalize_purchase_holdout.sql")
    assert "MD5(CONCAT(@holdout_seed, USER_ID))" in expanded


def test_macro_calls_are_checked():
    macros = {"TWICE": (["x"], sqlglot.parse_one("x * 2", read="bigquery"))}
    expanded = expand_macros("SELECT TWICE(a) FROM t", macros)
    assert "a * 2" in expanded and "TWICE" not in expanded
    with pytest.raises(ValueError, match="macro TWICE takes 1 argument"):
        expand_macros("SELECT TWICE(a, b) FROM t", macros)
