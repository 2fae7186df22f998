from pathlib import Path

import pytest
import sqlglot
from sqlglot.errors import ErrorLevel

SQL_DIR = Path(__file__).resolve().parents[2] / "recsys_platform" / "personalize" / "sql"
SQL_FILES = sorted(SQL_DIR.glob("*.sql"))


def test_every_statement_is_covered():
    assert {p.name for p in SQL_FILES} == {
        "personalize_interactions.sql", "personalize_interactions_minimums.sql", "personalize_items.sql",
        "personalize_purchase_holdout.sql", "personalize_users.sql", "personalize_demo_users.sql",
    }


@pytest.mark.parametrize("path", SQL_FILES, ids=lambda p: p.name)
def test_parses_as_bigquery_and_names_tables_by_dataset(path):
    (tree,) = sqlglot.parse(path.read_text(), read="bigquery", error_level=ErrorLevel.RAISE)
    tables = {t.db for t in tree.find_all(sqlglot.exp.Table) if t.db}
    assert tables and tables <= {"recsys", "product_db"}
