"""One BigQuery statement made ready for DuckDB: names resolved, parameters typed, wildcard tables and
`__TABLES__` expanded.

What sqlglot's BigQuery -> DuckDB transpilation and `shared.bigquery_on_duckdb` (GA4's UNNEST idioms)
cannot know, because it needs the catalog:

- `project.dataset.table` (or `dataset.table` in the job's project, or `table` with a default dataset)
  must exist, in the job's location; the reference becomes the DuckDB file's catalog and schema.
- `dataset.prefix*` is every table of the dataset starting with the prefix, each row carrying its
  `_TABLE_SUFFIX`. Tables whose suffix the WHERE clause excludes (`_TABLE_SUFFIX BETWEEN @a AND @b`, `=`,
  `IN`, `>=`, ...; literals or parameters) are pruned before DuckDB plans anything; the predicate itself
  stays, so pruning only ever drops rows the query would drop. The wildcard table's schema is the most
  recently created matching table's, as in BigQuery; older tables' rows are conformed to it.
- `dataset.__TABLES__` is the dataset's meta-table, materialised for the statement.
- `@name` and `?` become casts to the declared parameter types.
- DuckDB reads `1.5` as DECIMAL and `NUMERIC` as DECIMAL(18,3); BigQuery means FLOAT64 and
  NUMERIC(38,9). Unnamed result columns are named `f0_`, `f1_`, ... as BigQuery names them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp

from recsys_platform.shared.bigquery_on_duckdb import to_duckdb_sql
from recsys_platform.standins.bigquery_api.errors import invalid_query, not_found, table_name
from recsys_platform.standins.bigquery_api.params import Parameter
from recsys_platform.standins.bigquery_api.schema import Field, ShapeMismatch, conform_sql, quote
from recsys_platform.standins.bigquery_api.storage import META_TABLE, Session

META_FIELDS = [Field("project_id", "STRING"), Field("dataset_id", "STRING"), Field("table_id", "STRING"),
               Field("creation_time", "INTEGER"), Field("last_modified_time", "INTEGER"),
               Field("row_count", "INTEGER"), Field("size_bytes", "INTEGER"), Field("type", "INTEGER")]
# The dataset-level INFORMATION_SCHEMA views the stand-in serves (a subset of BigQuery's columns).
INFO_TABLES_FIELDS = [Field("table_catalog", "STRING"), Field("table_schema", "STRING"), Field("table_name", "STRING"),
                      Field("table_type", "STRING"), Field("is_insertable_into", "STRING"),
                      Field("creation_time", "TIMESTAMP")]
INFO_COLUMNS_FIELDS = [Field("table_catalog", "STRING"), Field("table_schema", "STRING"),
                       Field("table_name", "STRING"), Field("column_name", "STRING"),
                       Field("ordinal_position", "INTEGER"), Field("is_nullable", "STRING"),
                       Field("data_type", "STRING"), Field("is_partitioning_column", "STRING"),
                       Field("clustering_ordinal_position", "INTEGER")]
META_VIEWS = {"__TABLES__": META_FIELDS, "INFORMATION_SCHEMA.TABLES": INFO_TABLES_FIELDS,
              "INFORMATION_SCHEMA.COLUMNS": INFO_COLUMNS_FIELDS}
SUFFIX_COLUMN = "_TABLE_SUFFIX"


@dataclass
class Context:
    """What a statement's names and parameters resolve against."""

    project: str
    location: str | None  # None until the first dataset the job reads decides it, as in BigQuery
    default_dataset: tuple[str, str] | None = None
    named: dict[str, Parameter] = field(default_factory=dict)
    temp_tables: set[str] = field(default_factory=set)  # CREATE TEMP TABLE names of the running script


@dataclass
class TableRef:
    project: str
    dataset: str
    table: str
    kind: str  # "table", "wildcard" or "meta"
    node: exp.Table

    @property
    def key(self) -> tuple[str, str, str]:
        return self.project, self.dataset, self.table


def parameter_nodes(tree: exp.Expression, ctx: Context) -> list[Parameter]:
    """Replace each `@name` with a cast to its declared type; the parameters the statement uses.
    (Positional `?` parameters were numbered into `@__pN` names before parsing.)"""
    used: dict[str, Parameter] = {}
    by_lower = {k.lower(): p for k, p in ctx.named.items()}
    if any(True for _ in tree.find_all(exp.Placeholder)):
        raise invalid_query("Unexpected placeholder: this query has no positional parameters")
    for node in list(tree.find_all(exp.Parameter)):
        name = node.name
        parameter = ctx.named.get(name) or by_lower.get(name.lower())
        if parameter is None:
            raise invalid_query(f"Query parameter '{name}' not found")
        used[parameter.duckdb_name] = parameter
        typed = exp.Cast(this=exp.Parameter(this=exp.var(parameter.duckdb_name)),
                         to=exp.DataType.build(parameter.field.sql_type(), dialect="bigquery"))
        node.replace(typed)
    return list(used.values())


def resolve(tree: exp.Expression, session: Session, ctx: Context, skip: set[int] = frozenset()) -> list[TableRef]:
    """Fill in every table's project and dataset and check it exists; `skip` holds ids of nodes the
    caller resolves itself (a CREATE TABLE target)."""
    cte_names = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    refs = []
    for node in list(tree.find_all(exp.Table)):
        if id(node) in skip or not isinstance(node.this, exp.Identifier):
            continue
        project, dataset, table = qualify_name(node, ctx, cte_names)
        if dataset is None:
            continue  # a CTE or a temporary table of the script
        check_dataset(session, ctx, project, dataset)
        if table == META_TABLE or table.upper() in META_VIEWS:
            kind = "meta"
            table = META_TABLE if table == META_TABLE else table.upper()
        elif table.upper().startswith("INFORMATION_SCHEMA."):
            raise invalid_query(f"{table} is not served by this BigQuery stand-in (dataset-level "
                                "INFORMATION_SCHEMA.TABLES and INFORMATION_SCHEMA.COLUMNS are)")
        elif table.endswith("*"):
            kind = "wildcard"
            if not any(t.startswith(table[:-1]) for t in session.tables(project, dataset)):
                raise not_found(f"Table {table_name(project, dataset, table)} was not found in location "
                                f"{ctx.location}")
        else:
            kind = "table"
            if not session.table_exists(project, dataset, table):
                raise not_found(f"Table {table_name(project, dataset, table)} was not found in location "
                                f"{ctx.location}")
        node.set("catalog", exp.to_identifier(project, quoted=True))
        node.set("db", exp.to_identifier(dataset, quoted=True))
        refs.append(TableRef(project, dataset, table, kind, node))
    return refs


def qualify_name(node: exp.Table, ctx: Context, cte_names: set[str] = frozenset()) \
        -> tuple[str, str | None, str]:
    """(project, dataset, table) a table name means; dataset None for a CTE or temporary table."""
    table = node.name
    dataset = node.args.get("db")
    project = node.args.get("catalog")
    if dataset is None:
        if table.lower() in cte_names or table in ctx.temp_tables:
            return ctx.project, None, table
        if ctx.default_dataset is None:
            raise invalid_query(f'Table "{table}" must be qualified with a dataset (e.g. dataset.table).')
        return ctx.default_dataset[0], ctx.default_dataset[1], table
    return (project.name if project is not None else ctx.project), dataset.name, table


def check_dataset(session: Session, ctx: Context, project: str, dataset: str) -> None:
    """The dataset must exist in the job's location (a job without one takes its first dataset's)."""
    exists = session.dataset_exists(project, dataset)
    if exists and ctx.location is None:
        ctx.location = session.location(project, dataset)
    if not exists or session.location(project, dataset).lower() != ctx.location.lower():
        where = ctx.location or session.storage.default_location
        raise not_found(f"Dataset {project}:{dataset} was not found in location {where}")


def table_schemas(session: Session, refs: list[TableRef]) -> dict[tuple[str, str, str], list[Field]]:
    schemas = {}
    for ref in refs:
        if ref.key in schemas:
            continue
        if ref.kind == "meta":
            schemas[ref.key] = META_VIEWS[ref.table]
        elif ref.kind == "wildcard":
            # `_TABLE_SUFFIX` stays out: a pseudo-column, which `SELECT *` does not return.
            schemas[ref.key] = session.fields(ref.project, ref.dataset, wildcard_tables(session, ref)[-1])
        else:
            schemas[ref.key] = session.fields(ref.project, ref.dataset, ref.table)
    return schemas


def wildcard_tables(session: Session, ref: TableRef) -> list[str]:
    """The tables a wildcard matches, oldest first (so the last one's schema is the wildcard's)."""
    prefix = ref.table[:-1]
    physical = session.physical_meta(ref.project, ref.dataset)
    names = [t for t, kind in session.tables(ref.project, ref.dataset).items() if t.startswith(prefix)
             and kind == "TABLE"]
    return sorted(names, key=lambda t: (session.table_times(ref.project, ref.dataset, t, physical)[0], t))


def to_duckdb(tree: exp.Expression, refs: list[TableRef], session: Session) -> str:
    """DuckDB SQL for a resolved BigQuery tree (the tree is rewritten in place)."""
    for ref in refs:
        alias = ref.node.args.get("alias")
        if ref.kind == "table":
            catalog, schema, name = session.ref_parts(ref.project, ref.dataset, ref.table)
            ref.node.set("catalog", exp.to_identifier(catalog, quoted=True))
            ref.node.set("db", exp.to_identifier(schema, quoted=True))
            ref.node.set("this", exp.to_identifier(name, quoted=True))
        elif ref.kind == "meta":
            # Inline rows, not a temporary table: a DuckDB transaction may write only one database.
            fields = META_VIEWS[ref.table]
            ref.node.replace(exp.Subquery(
                this=sqlglot.parse_one(rows_sql(fields, _meta_view_rows(session, ref)), read="duckdb"),
                alias=alias or exp.TableAlias(this=exp.to_identifier(ref.table.split(".")[-1], quoted=True))))
        else:
            subquery = _wildcard_subquery(ref, session, alias)
            ref.node.replace(subquery)
            _hide_suffix_from_stars(subquery)
    _bigquery_literals(tree)
    _bigquery_result_types(tree)
    return to_duckdb_sql(tree)


# BigQuery functions whose DuckDB translation returns another type: DATE_ADD/DATE_SUB are DATE-only in
# BigQuery (DuckDB's date + interval is a TIMESTAMP); TIMESTAMP_SECONDS/MILLIS/MICROS return an instant
# (DuckDB's make_timestamp is a wall-clock TIMESTAMP, i.e. BigQuery's DATETIME).
_RESULT_TYPES = {exp.DateAdd: "DATE", exp.DateSub: "DATE", exp.UnixToTime: "TIMESTAMPTZ"}


def _bigquery_result_types(tree: exp.Expression) -> None:
    for node in reversed(list(tree.find_all(*_RESULT_TYPES))):  # innermost first
        cast = exp.Cast(to=exp.DataType.build(_RESULT_TYPES[type(node)]))
        node.replace(cast)
        cast.set("this", node)
    # TIMESTAMP(datetime_or_string, time_zone) reads a wall-clock time in that zone; sqlglot leaves the
    # call as is, which DuckDB cannot parse. DuckDB's timezone(zone, TIMESTAMP) means the same.
    for node in reversed(list(tree.find_all(exp.Timestamp))):
        zone = node.args.get("zone")
        if zone is not None:
            node.replace(exp.Anonymous(this="timezone", expressions=[
                zone, exp.Cast(this=node.this, to=exp.DataType.build("TIMESTAMP"))]))
    # COUNTIF counts TRUE values and is 0 when there are none; DuckDB's COUNT_IF is NULL when every
    # condition is NULL. COUNT(CASE WHEN cond THEN 1 END) is BigQuery's meaning on DuckDB.
    for node in reversed(list(tree.find_all(exp.CountIf))):
        condition = node.this
        count = exp.Count(this=exp.Case(ifs=[exp.If(this=condition, true=exp.Literal.number(1))]))
        node.replace(count)


def _meta_view_rows(session: Session, ref: TableRef) -> list[dict]:
    if ref.table == META_TABLE:
        return session.meta_rows(ref.project, ref.dataset)
    listing = session.meta_rows(ref.project, ref.dataset)
    if ref.table == "INFORMATION_SCHEMA.TABLES":
        return [{"table_catalog": ref.project, "table_schema": ref.dataset, "table_name": row["table_id"],
                 "table_type": "BASE TABLE" if row["type"] == 1 else "VIEW", "is_insertable_into": "YES",
                 "creation_time": _iso_from_ms(row["creation_time"])} for row in listing]
    rows = []
    for row in listing:
        table = row["table_id"]
        recorded = session.storage.catalog.table(ref.project, ref.dataset, table) or {}
        partition_field = (recorded.get("partitioning") or {}).get("field", "")
        clustering = [c.lower() for c in (recorded.get("clustering") or {}).get("fields") or ()]
        for position, f in enumerate(session.fields(ref.project, ref.dataset, table), start=1):
            rows.append({
                "table_catalog": ref.project, "table_schema": ref.dataset, "table_name": table,
                "column_name": f.name, "ordinal_position": position,
                "is_nullable": "NO" if f.mode == "REQUIRED" else "YES", "data_type": f.sql_type(quoted=False),
                "is_partitioning_column": "YES" if f.name.lower() == partition_field.lower() else "NO",
                "clustering_ordinal_position": clustering.index(f.name.lower()) + 1
                if f.name.lower() in clustering else None,
            })
    return rows


def _iso_from_ms(ms: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc).isoformat()


def rows_sql(fields: list[Field], rows: list[dict]) -> str:
    """A DuckDB query returning `rows` (scalars) with the columns and types of `fields`."""
    casts = ", ".join(f"CAST({quote(f.name)} AS {f.duckdb_type()}) AS {quote(f.name)}" for f in fields)
    if not rows:
        nulls = ", ".join(f"CAST(NULL AS {f.duckdb_type()}) AS {quote(f.name)}" for f in fields)
        return f"SELECT {nulls} WHERE FALSE"
    values = ", ".join("(" + ", ".join(_sql_value(row[f.name]) for f in fields) + ")" for row in rows)
    names = ", ".join(quote(f.name) for f in fields)
    return f"SELECT {casts} FROM (VALUES {values}) AS meta({names})"


def _sql_value(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    return _sql_string(str(value))


def _wildcard_subquery(ref: TableRef, session: Session, alias) -> exp.Subquery:
    tables = wildcard_tables(session, ref)
    newest = tables[-1]
    target = session.fields(ref.project, ref.dataset, newest)
    prefix = ref.table[:-1]
    alias_name = alias.name if alias is not None else ref.table
    allowed = suffix_filter(ref.node, alias_name)
    chosen = [t for t in tables if allowed(t[len(prefix):])]
    branches = []
    for name in chosen or [newest]:
        suffix = name[len(prefix):]
        source = {f.name.lower(): f for f in session.fields(ref.project, ref.dataset, name)}
        columns = []
        for column in target:
            match = source.get(column.name.lower())
            if match is None:
                columns.append(f"CAST(NULL AS {column.duckdb_type()}) AS {quote(column.name)}")
                continue
            try:
                columns.append(f"{conform_sql(quote(match.name), match, column)} AS {quote(column.name)}")
            except ShapeMismatch as error:
                raise invalid_query(
                    f"Cannot read field {error.path} of type {error.source.sql_type()} as "
                    f"{error.target.sql_type()} in table {table_name(ref.project, ref.dataset, name)}, part of "
                    f"wildcard table {table_name(ref.project, ref.dataset, ref.table)}") from None
        where = "" if chosen else " WHERE FALSE"  # nothing in range: no rows, but the wildcard's columns
        branches.append(f"SELECT {', '.join(columns)}, {_sql_string(suffix)} AS {SUFFIX_COLUMN} "
                        f"FROM {session.ref(ref.project, ref.dataset, name)}{where}")
    union = sqlglot.parse_one(" UNION ALL ".join(branches), read="duckdb")
    return exp.Subquery(this=union, alias=exp.TableAlias(this=exp.to_identifier(alias_name, quoted=True)))


def _hide_suffix_from_stars(subquery: exp.Subquery) -> None:
    """`SELECT *` (or `alias.*`) over a wildcard table does not return the `_TABLE_SUFFIX` pseudo-column,
    which the expansion made a real column."""
    select = subquery.parent.parent if isinstance(subquery.parent, (exp.From, exp.Join)) else None
    if not isinstance(select, exp.Select):
        return
    alias = subquery.alias
    for projection in select.expressions:
        star = projection
        if isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star):
            if projection.table != alias:
                continue
            star = projection.this
        if isinstance(star, exp.Star):
            star.set("except_", [*(star.args.get("except_") or []), exp.column(SUFFIX_COLUMN)])


def suffix_filter(node: exp.Table, alias_name: str) -> Callable[[str], bool]:
    """Which suffixes the enclosing WHERE clause can admit, from its AND-ed `_TABLE_SUFFIX` conditions."""
    select = node.find_ancestor(exp.Select)
    where = select.args.get("where") if select is not None else None
    if where is None:
        return lambda suffix: True
    checks = []
    for condition in _conjuncts(where.this):
        check = _suffix_condition(condition, alias_name)
        if check is not None:
            checks.append(check)
    return lambda suffix: all(check(suffix) for check in checks)


def _conjuncts(node: exp.Expression):
    node = node.unnest() if isinstance(node, exp.Paren) else node
    if isinstance(node, exp.And):
        yield from _conjuncts(node.left)
        yield from _conjuncts(node.right)
    else:
        yield node


def _is_suffix(node, alias_name: str) -> bool:
    return isinstance(node, exp.Column) and node.name.upper() == SUFFIX_COLUMN and \
        node.table in ("", alias_name)


def _constant(node) -> str | None:
    """A string the expression always equals: a literal, or a STRING parameter's bound value."""
    if isinstance(node, exp.Literal) and node.is_string:
        return node.this
    if isinstance(node, exp.Cast) and isinstance(node.this, exp.Parameter):
        value = node.this.meta.get("value")
        return value if isinstance(value, str) else None
    return None


def _suffix_condition(condition, alias_name: str):
    if isinstance(condition, exp.Between) and _is_suffix(condition.this, alias_name):
        low, high = _constant(condition.args["low"]), _constant(condition.args["high"])
        if low is not None and high is not None:
            return lambda s: low <= s <= high
        return None
    if isinstance(condition, exp.In) and _is_suffix(condition.this, alias_name) and not condition.args.get("query"):
        unnest = condition.args.get("unnest")
        if unnest is not None:  # `_TABLE_SUFFIX IN UNNEST(@suffixes)`
            array = unnest.expressions[0] if len(unnest.expressions) == 1 else None
            bound = array.this.meta.get("value") if isinstance(array, exp.Cast) and \
                isinstance(array.this, exp.Parameter) else None
            if not isinstance(bound, list):
                return None
            wanted = {v for v in bound if isinstance(v, str)}
            return lambda s: s in wanted
        values = [_constant(v) for v in condition.expressions]
        return None if any(v is None for v in values) else (lambda s: s in values)
    comparisons = {exp.EQ: "=", exp.GTE: ">=", exp.GT: ">=", exp.LTE: "<=", exp.LT: "<="}
    operator = comparisons.get(type(condition))
    if operator is None:
        return None
    left, right = condition.left, condition.right
    if _is_suffix(right, alias_name) and not _is_suffix(left, alias_name):
        left, right = right, left
        operator = {">=": "<=", "<=": ">=", "=": "="}[operator]
    if not _is_suffix(left, alias_name):
        return None
    value = _constant(right)
    if value is None:
        return None
    return {"=": lambda s: s == value, ">=": lambda s: s >= value, "<=": lambda s: s <= value}[operator]


def bind_parameter_values(tree: exp.Expression, parameters: list[Parameter]) -> None:
    """Let wildcard pruning see parameter values (stored on the nodes, not in the SQL)."""
    values = {p.duckdb_name: p.value for p in parameters}
    for node in tree.find_all(exp.Parameter):
        if node.name in values:
            node.meta["value"] = values[node.name]


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _bigquery_literals(tree: exp.Expression) -> None:
    for node in list(tree.find_all(exp.Literal)):
        if not node.is_string and any(c in node.this for c in ".eE") and \
                not isinstance(node.parent, (exp.DataTypeParam, exp.Interval)):
            node.replace(exp.Cast(this=node.copy(), to=exp.DataType.build("DOUBLE")))
    for node in tree.find_all(exp.DataType):
        if node.this == exp.DataType.Type.DECIMAL and not node.expressions:
            node.set("expressions", [exp.DataTypeParam(this=exp.Literal.number(38)),
                                     exp.DataTypeParam(this=exp.Literal.number(9))])
        elif node.this in (exp.DataType.Type.BIGDECIMAL,):
            raise invalid_query("BIGNUMERIC is not supported by this BigQuery stand-in")


def name_result_columns(query: exp.Expression) -> None:
    """Give unnamed result columns BigQuery's names `f0_`, `f1_`, ... (DuckDB would use the expression's text)."""
    select = query
    while isinstance(select, exp.SetOperation):
        select = select.left
    if isinstance(select, exp.Subquery):
        select = select.unnest()
    if not isinstance(select, exp.Select):
        return
    index = 0
    for projection in list(select.expressions):
        # Columns and struct fields keep their own names; `*` expands to named columns.
        if isinstance(projection, (exp.Alias, exp.Column, exp.Dot, exp.Star)):
            continue
        projection.replace(exp.alias_(projection.copy(), f"f{index}_", quoted=False))
        index += 1
