"""The platform's SQL names tables by logical dataset; each engine maps those to its physical names.

Both engines qualify tables the same way (`qualify_tables`): `analytics`, `product_db` and `recsys` become
the engine's physical names. On DuckDB the statement then goes through `shared.bigquery_on_duckdb`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlglot import exp

from recsys_platform.shared.bigquery_on_duckdb import ListTables, expand_wildcard, parse_bigquery, to_duckdb_sql

# analytics: the GA4 export; product_db: the replica; recsys: the platform's tables; staged: rows of a
# replacement being validated before it is swapped in (see Warehouse.replace_partitions).
LOGICAL_DATASETS = ("analytics", "product_db", "recsys", "staged")
SUFFIX_LIST_PARAM = "table_suffixes"

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
    """The DuckDB statement(s) for BigQuery `sql`; `list_tables` resolves wildcard tables.

    A wildcard is pruned by `@first_suffix`/`@last_suffix`, or by the list `@table_suffixes` when the SQL
    filters `_TABLE_SUFFIX IN UNNEST(@table_suffixes)` (a mix of daily and intraday tables)."""
    params = params or {}
    wanted = params.get(SUFFIX_LIST_PARAM)
    out = []
    for tree in parse_bigquery(sql):
        def expand(table: exp.Table, catalog: str, schema: str) -> None:
            listing, bounds = list_tables, params
            if wanted is not None:
                prefix = table.name[:-1]
                listing = lambda c, s, p: [n for n in list_tables(c, s, p) if n[len(prefix):] in wanted]  # noqa: E731
                bounds = {"first_suffix": "", "last_suffix": "\uffff"}
            union = expand_wildcard(table, catalog, schema, listing, bounds)
            table.replace(union)
            _hide_table_suffix_from_star(union)

        qualify_tables(tree, physical, on_wildcard=expand)
        _timestamp_in_zone(tree)
        out.append(to_duckdb_sql(tree))
    return ";\n".join(out)


def _timestamp_in_zone(tree: exp.Expression) -> None:
    """BigQuery's `TIMESTAMP(datetime, zone)` (wall-clock time of `zone` -> an instant) is DuckDB's
    `CAST(datetime AS TIMESTAMP) AT TIME ZONE zone`; sqlglot leaves the two-argument form untranslated."""
    for node in list(tree.find_all(exp.Timestamp)):
        zone = node.args.get("zone")
        if zone is not None:
            node.replace(exp.AtTimeZone(this=exp.cast(node.this, exp.DataType.build("TIMESTAMP", dialect="duckdb")),
                                        zone=zone))


def _hide_table_suffix_from_star(union: exp.Expression) -> None:
    """In BigQuery `_TABLE_SUFFIX` is a pseudo-column that `SELECT *` does not return; the expansion makes it
    a real column, so a `*` read straight from the union excludes it again."""
    select = union.parent.parent if isinstance(union.parent, exp.From) else None
    if not isinstance(select, exp.Select):
        return
    for star in select.expressions:
        if isinstance(star, exp.Star):
            excluded = list(star.args.get("except_") or [])
            star.set("except_", [*excluded, exp.column("_TABLE_SUFFIX")])
