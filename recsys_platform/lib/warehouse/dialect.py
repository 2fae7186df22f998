"""The platform's SQL names tables by logical dataset; each engine maps those to its physical names.

Both engines qualify tables the same way (`qualify_tables`): `analytics`, `product_db` and `recsys` become
the engine's physical names. On DuckDB the statement then goes through `shared.bigquery_on_duckdb`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from recsys_platform.shared.bigquery_on_duckdb import ListTables, expand_wildcard, parse_bigquery, to_duckdb_sql

if TYPE_CHECKING:  # sqlglot is imported where SQL is built or translated, not when definitions load
    from sqlglot import exp


# analytics: the GA4 export (of the first property); product_db: the replica; recsys: the platform's tables;
# staged: rows of a replacement being validated before it is swapped in (see Warehouse.replace_partitions).
LOGICAL_DATASETS = ("analytics", "product_db", "recsys", "staged")
# analytics_<property id>: the export of one of the deployment's GA4 properties (the engine refuses others).
PROPERTY_DATASET = re.compile(r"^analytics_([0-9]+)$")
SUFFIX_COLUMN = "_TABLE_SUFFIX"

# logical dataset -> (catalog, schema) of the physical tables
PhysicalName = Callable[[str], tuple[str, str]]


def qualify_tables(tree: exp.Expression, physical: PhysicalName,
                   on_wildcard: Callable[[exp.Table, str, str], None] | None = None) -> None:
    """Replace each logical dataset by the engine's (catalog, schema); wildcard tables go to `on_wildcard`."""
    from sqlglot import exp

    for table in list(tree.find_all(exp.Table)):
        dataset = table.args.get("db")
        if dataset is None:
            continue  # CTE names and UNNEST aliases
        if dataset.name not in LOGICAL_DATASETS and not PROPERTY_DATASET.match(dataset.name):
            raise ValueError(f"table {table.sql('bigquery')} must be qualified with one of {LOGICAL_DATASETS} "
                             "or analytics_<property id>")
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

    A wildcard is pruned by `@first_suffix`/`@last_suffix`, or by a list of suffixes when its own SELECT
    filters `_TABLE_SUFFIX IN UNNEST(@<list>)` (one list per GA4 property and table kind when a statement
    reads several)."""
    from sqlglot import exp

    params = params or {}
    out = []
    for tree in parse_bigquery(sql):
        def expand(table: exp.Table, catalog: str, schema: str) -> None:
            listing, bounds = list_tables, params
            list_param = suffix_list_param(table)
            wanted = params.get(list_param) if list_param else None
            if wanted is not None:
                prefix = table.name[:-1]
                listing = lambda c, s, p: [n for n in list_tables(c, s, p) if n[len(prefix):] in wanted]  # noqa: E731
                bounds = {"first_suffix": "", "last_suffix": "\uffff"}
            union = expand_wildcard(table, catalog, schema, listing, bounds)
            table.replace(union)
            _hide_table_suffix_from_star(union)

        qualify_tables(tree, physical, on_wildcard=expand)
        _timestamp_in_zone(tree)
        _inline_ctes(tree)
        out.append(to_duckdb_sql(tree))
    return ";\n".join(out)


def suffix_list_param(table: exp.Table) -> str | None:
    """The parameter of a `_TABLE_SUFFIX IN UNNEST(@name)` condition AND-ed into the WHERE of the SELECT that
    reads the wildcard `table`, if there is one."""
    from sqlglot import exp

    select = table.find_ancestor(exp.Select)
    where = select.args.get("where") if select is not None else None
    if where is None:
        return None
    pending = [where.this]
    while pending:
        node = pending.pop()
        if isinstance(node, exp.Paren):
            pending.append(node.this)
        elif isinstance(node, exp.And):
            pending.extend((node.left, node.right))
        elif isinstance(node, exp.In) and isinstance(node.this, exp.Column) \
                and node.this.name.upper() == SUFFIX_COLUMN and node.args.get("unnest") is not None:
            arrays = node.args["unnest"].expressions
            if len(arrays) == 1 and isinstance(arrays[0], exp.Parameter):
                return arrays[0].name
    return None


def _inline_ctes(tree: exp.Expression) -> None:
    """DuckDB materialises a CTE that a statement reads more than once. The merge reads its wide event rows
    (every export column) twice; materialised, a 1M-event day spilled ~3 GB and took twice the copy.
    Inlined, each reader scans the export again (cheap, columnar) and keeps only what it needs. BigQuery
    inlines CTEs anyway. (The engine also turns off DuckDB's common-subplan optimizer, which would
    materialise the inlined copies again: `DuckDBWarehouse._duckdb_config`.)"""
    from sqlglot import exp

    for cte in tree.find_all(exp.CTE):
        cte.set("materialized", False)


def _timestamp_in_zone(tree: exp.Expression) -> None:
    """BigQuery's `TIMESTAMP(datetime, zone)` (wall-clock time of `zone` -> an instant) is DuckDB's
    `CAST(datetime AS TIMESTAMP) AT TIME ZONE zone`; sqlglot leaves the two-argument form untranslated."""
    from sqlglot import exp

    for node in list(tree.find_all(exp.Timestamp)):
        zone = node.args.get("zone")
        if zone is not None:
            node.replace(exp.AtTimeZone(this=exp.cast(node.this, exp.DataType.build("TIMESTAMP", dialect="duckdb")),
                                        zone=zone))


def _hide_table_suffix_from_star(union: exp.Expression) -> None:
    """In BigQuery `_TABLE_SUFFIX` is a pseudo-column that `SELECT *` does not return; the expansion makes it
    a real column, so a `*` read straight from the union excludes it again."""
    from sqlglot import exp

    select = union.parent.parent if isinstance(union.parent, exp.From) else None
    if not isinstance(select, exp.Select):
        return
    for star in select.expressions:
        if isinstance(star, exp.Star):
            excluded = list(star.args.get("except_") or [])
            star.set("except_", [*excluded, exp.column("_TABLE_SUFFIX")])
