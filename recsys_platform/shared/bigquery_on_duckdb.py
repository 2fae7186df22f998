"""BigQuery Standard SQL on DuckDB: what sqlglot's transpilation leaves to do.

Four rewrites no library provides, each documented where it is: a wildcard table (`events_*` with
`_TABLE_SUFFIX`) becomes a union of the tables in range; GA4's `(SELECT … FROM UNNEST(params) …)` idiom
becomes list functions; `CROSS JOIN UNNEST` becomes a select-list `UNNEST`; a NUMERIC cast to STRING is
written as BigQuery writes it. Everything else is sqlglot's BigQuery -> DuckDB transpilation. The
platform's DuckDB warehouse and the BigQuery stand-in both use it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # sqlglot is imported where SQL is built or translated, not when definitions load
    from sqlglot import exp


_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# (catalog, schema, table prefix) -> names of the tables that start with the prefix
ListTables = Callable[[str, str, str], list[str]]


def parse_bigquery(sql: str) -> list[exp.Expression]:
    import sqlglot

    return [tree for tree in sqlglot.parse(sql, read="bigquery") if tree is not None]


def to_duckdb_sql(tree: exp.Expression) -> str:
    """DuckDB SQL for a BigQuery syntax tree whose tables already name DuckDB catalogs and schemas."""
    _unnest_subqueries_to_list_functions(tree)
    _cross_join_unnest_to_select_list(tree)
    _numeric_text_as_bigquery_writes_it(tree)
    return tree.sql("duckdb")


def used_params(duckdb_sql: str, params: Mapping[str, Any] | None) -> dict:
    """The subset of `params` a DuckDB statement names (`$name`): DuckDB rejects unused ones."""
    return {k: v for k, v in (params or {}).items() if re.search(rf"\${re.escape(k)}\b", duckdb_sql)}


def expand_wildcard(table: exp.Table, catalog: str, schema: str, list_tables: ListTables,
                    params: Mapping[str, Any]) -> exp.Expression:
    """`dataset.events_*` -> a UNION ALL BY NAME of the tables whose suffix lies in
    [@first_suffix, @last_suffix], each with its `_TABLE_SUFFIX` (DuckDB has no wildcard tables)."""
    import sqlglot
    from sqlglot import exp

    prefix = table.name[:-1]
    first = str(params.get("first_suffix", ""))
    last = str(params.get("last_suffix", "99999999"))
    # Only plain identifiers become part of the statement (the names come from the export file).
    suffixes = sorted(
        name[len(prefix):] for name in list_tables(catalog, schema, prefix)
        if first <= name[len(prefix):] <= last and _PLAIN_NAME.match(name)
    )
    if not suffixes:
        raise LookupError(f"no table matches {schema}.{table.name} for suffixes {first}..{last}")
    branches = " UNION ALL BY NAME ".join(
        f"SELECT *, '{suffix}' AS _TABLE_SUFFIX FROM {catalog}.{schema}.{prefix}{suffix}" for suffix in suffixes
    )
    alias = table.alias or table.name.rstrip("*")
    return exp.Subquery(this=sqlglot.parse_one(branches, read="duckdb"),
                        alias=exp.TableAlias(this=exp.to_identifier(alias)))


def _cross_join_unnest_to_select_list(tree: exp.Expression) -> None:
    """Rewrite `FROM t AS e CROSS JOIN UNNEST(e.items) AS item` into
    `FROM (SELECT *, UNNEST(e.items) AS item FROM t AS e) AS e` for DuckDB.

    Same rows; but DuckDB plans a lateral UNNEST whose elements are filtered or joined later as a
    correlated (delim) join, ~30x slower on a 1M-event GA4 day, while a select-list UNNEST is a plain
    vectorised operator. `item.field` still resolves: `item` becomes a struct column of `e`."""
    import sqlglot
    from sqlglot import exp

    for select in list(tree.find_all(exp.Select)):
        source = select.args.get("from_")
        joins = select.args.get("joins") or []
        if source is None or len(joins) != 1 or not isinstance(source.this, exp.Table):
            continue
        join = joins[0]
        unnest = join.this
        if not isinstance(unnest, exp.Unnest) or join.args.get("on") or len(unnest.expressions) != 1:
            continue
        column, alias = unnest.expressions[0], unnest.args.get("alias")
        table_alias = source.this.alias_or_name
        if alias is None or not isinstance(column, exp.Column) or column.table != table_alias:
            continue
        name = alias.columns[0].name if alias.columns else alias.name
        subquery = sqlglot.parse_one(
            f"(SELECT *, UNNEST({column.sql('duckdb')}) AS {name} FROM {source.this.sql('duckdb')}) AS {table_alias}",
            read="duckdb",
        )
        source.set("this", subquery)
        select.set("joins", None)


def _numeric_text_as_bigquery_writes_it(tree: exp.Expression) -> None:
    """`CAST(x AS STRING)` of a NUMERIC is its shortest decimal on BigQuery ("7", "1.5"); DuckDB writes every
    digit of the DECIMAL's scale ("7.000000000"), so a NUMERIC key would never equal GA4's id "7". Only DuckDB
    knows x's type, so the choice is left to it: `typeof(x)` is folded when the statement is planned, and a
    cast of any other type stays the plain cast."""
    import sqlglot
    from sqlglot import exp

    template = sqlglot.parse_one("CASE WHEN TYPEOF(x) LIKE 'DECIMAL%' AND STRPOS(t, '.') > 0 "
                                 "THEN RTRIM(RTRIM(t, '0'), '.') ELSE t END", read="duckdb")
    for cast in reversed(list(tree.find_all(exp.Cast))):  # innermost first
        if not cast.to.is_type(exp.DataType.Type.TEXT, exp.DataType.Type.VARCHAR) \
                or isinstance(cast.this, exp.Literal) or cast.this.meta.get("bigquery_text"):
            continue  # a literal, or text already written as BigQuery writes it
        value, text = cast.this.copy(), cast.copy()
        written = template.transform(
            lambda node: (value.copy() if node.name == "x" else text.copy())
            if isinstance(node, exp.Column) and node.name in ("x", "t") else node)
        written.meta["bigquery_text"] = True
        cast.replace(written)


def _unnest_subqueries_to_list_functions(tree: exp.Expression) -> None:
    """Rewrite GA4's idiom `(SELECT f(p) FROM UNNEST(arr) AS p WHERE cond(p))` into DuckDB list functions.

    The two mean the same, but DuckDB runs the scalar subquery as a correlated join per row (about 100x
    slower on a GA4 day); `LIST_FILTER`/`LIST_TRANSFORM` stay vectorised. `COUNT(*)` becomes the filtered
    list's length."""
    import sqlglot
    from sqlglot import exp

    for subquery in list(tree.find_all(exp.Subquery)):
        select = subquery.this
        if not isinstance(select, exp.Select) or len(select.expressions) != 1:
            continue
        source = select.args.get("from_")
        if source is None or not isinstance(source.this, exp.Unnest):
            continue
        if any(select.args.get(k) for k in ("joins", "group", "having", "order", "limit", "qualify")):
            continue
        projected = select.expressions[0]
        if projected.find(exp.AggFunc) is not None and not (
                isinstance(projected.unalias(), exp.Count) and isinstance(projected.unalias().this, exp.Star)):
            continue  # an aggregate over the array (STRING_AGG, SUM, ...) is no element-wise transform
        unnest = source.this
        alias = unnest.args.get("alias")
        if alias is None or len(unnest.expressions) != 1:
            continue
        name = alias.columns[0].name if alias.columns else alias.name
        array = unnest.expressions[0].sql("duckdb")
        where = select.args.get("where")
        filtered = f"LIST_FILTER({array}, LAMBDA {name} : {where.this.sql('duckdb')})" if where else array
        projection = select.expressions[0]
        projection = projection.this if isinstance(projection, exp.Alias) else projection
        if isinstance(projection, exp.Count) and isinstance(projection.this, exp.Star):
            replacement = f"COALESCE(LEN({filtered}), 0)"
        else:
            replacement = f"LIST_TRANSFORM({filtered}, LAMBDA {name} : {projection.sql('duckdb')})[1]"
        subquery.replace(sqlglot.parse_one(replacement, read="duckdb"))
