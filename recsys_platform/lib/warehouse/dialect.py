"""The platform's SQL names tables by logical dataset; each engine maps those to its physical names.

Both engines qualify tables the same way (`qualify_tables`): `analytics`, `product_db` and `recsys` become
the engine's physical names. On DuckDB the statement then goes through `shared.bigquery_on_duckdb`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlglot import exp

from recsys_platform.shared.bigquery_on_duckdb import ListTables, expand_wildcard, parse_bigquery, to_duckdb_sql

LOGICAL_DATASETS = ("analytics", "product_db", "recsys")

# logical dataset -> (catalog, schema) of the physical tables
PhysicalName = Callable[[str], tuple[str, str]]


def qualify_tables(tree: exp.Expression, physical: PhysicalName,
                   on_wildcard: Callable[[exp.Table, str, str], None] | None = None) -> None:
    """Replace each logical dataset by the engine's (catalog, schema); wildcard tables go to `on_wildcard`."""
    for table in list(tree.find_all(exp.Table)):
        dataset = table.args.get("db")
        if dataset is None:
            continue  # CTE names and UNNEST aliases
        if dataset.name not in LOGICAL_DATASETS:
            raise ValueError(f"table {table.sql('bigquery')} must be qualified with one of {LOGICAL_DATASETS}")
        catalog, schema = physical(dataset.name)
        if table.name.endswith("*") and on_wildcard is not None:
            on_wildcard(table, catalog, schema)
            continue
        table.set("catalog", exp.to_identifier(catalog))
        table.set("db", exp.to_identifier(schema))


def to_bigquery(sql: str, physical: PhysicalName) -> str:
    out = []
    for tree in parse_bigquery(sql):
        qualify_tables(tree, physical)
        out.append(tree.sql("bigquery"))
    return ";\n".join(out)


def to_duckdb(sql: str, physical: PhysicalName, list_tables: ListTables, params: Mapping[str, Any] | None) -> str:
    """The DuckDB statement(s) for BigQuery `sql`; `list_tables` resolves wildcard tables."""
    params = params or {}
    out = []
    for tree in parse_bigquery(sql):
        def expand(table: exp.Table, catalog: str, schema: str) -> None:
            table.replace(expand_wildcard(table, catalog, schema, list_tables, params))

        qualify_tables(tree, physical, on_wildcard=expand)
        out.append(to_duckdb_sql(tree))
    return ";\n".join(out)
