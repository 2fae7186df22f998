"""BigQuery's type rules where DuckDB would silently coerce.

DuckDB casts a VARCHAR to a number to compare them and unions STRING with INT64 into VARCHAR; BigQuery
refuses both, and a query that runs on the stand-in must fail on the stand-in if it would fail on
BigQuery. sqlglot qualifies the statement and annotates every expression's type from the referenced
tables' schemas; these rules then hold, with BigQuery's messages:

1. Comparisons (`=`, `!=`, `<`, `<=`, `>`, `>=`, `IS [NOT] DISTINCT FROM`, `BETWEEN`), `IN (list)` and
   `IN UNNEST(array)` need comparable operands: both numeric (INT64, NUMERIC, FLOAT64 coerce to each
   other), or the same type, or DATE with DATETIME. A NULL literal compares with anything; a STRING literal
   or STRING parameter also with DATE, DATETIME, TIMESTAMP and TIME (BigQuery coerces those).
   "No matching signature for operator = for argument types: STRING, INT64. Supported signature: ANY = ANY"
2. `x [NOT] IN (subquery)` needs the same comparability.
   "Cannot execute IN subquery with uncomparable types STRING and INT64"
3. Set operations (UNION ALL / DISTINCT, INTERSECT, EXCEPT) need the same column count and, column by
   column, a common supertype (numeric types widen; NULL and DATE->DATETIME coerce).
   "Column 2 in UNION ALL has incompatible types: STRING, INT64"
4. Functions on instants need a TIMESTAMP: `DATE(x, time_zone)`, `DATETIME(x, time_zone)`,
   `UNIX_SECONDS/MILLIS/MICROS(x)` refuse a DATETIME (or any non-TIMESTAMP), as BigQuery's signatures do.
   "No matching signature for function UNIX_SECONDS for argument types: DATETIME. Supported signature:
   UNIX_SECONDS(TIMESTAMP)"

A rule is applied only where both types are known: an expression sqlglot cannot type (UNKNOWN, such as
the `_TABLE_SUFFIX` pseudo-column or a function sqlglot does not know) is never an error here, so the
checks refuse what BigQuery refuses and never invent a refusal. If sqlglot cannot qualify a statement at
all, the statement is not checked (DuckDB's binder still runs). Column types for INSERT and for writes to
destination tables are checked separately, from DuckDB's own description of the query (execute.py).
"""

from __future__ import annotations

import logging
from functools import lru_cache

from sqlglot import exp
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify
from sqlglot.schema import MappingSchema

from recsys_platform.standins.bigquery_api.errors import invalid_query
from recsys_platform.standins.bigquery_api.schema import Field

log = logging.getLogger(__name__)

_NUMERIC = {"INT64", "FLOAT64", "NUMERIC", "BIGNUMERIC"}
_TEMPORAL = {"DATE", "DATETIME", "TIMESTAMP", "TIME"}
_OPERATORS = {exp.EQ: "=", exp.NEQ: "!=", exp.GT: ">", exp.GTE: ">=", exp.LT: "<", exp.LTE: "<=",
              exp.NullSafeEQ: "IS NOT DISTINCT FROM", exp.NullSafeNEQ: "IS DISTINCT FROM"}
_SET_OPERATIONS = {exp.Union: "UNION", exp.Intersect: "INTERSECT", exp.Except: "EXCEPT"}


def check(tree: exp.Expression, schemas: dict[tuple[str, str, str], list[Field]]) -> None:
    """Raise BigQuery's invalidQuery error if the resolved statement breaks a rule above."""
    query = tree.copy()
    mapping: dict = {}
    for (project, dataset, table), fields in schemas.items():
        mapping.setdefault(project, {}).setdefault(dataset, {})[table] = {f.name: _datatype(f.sql_type())
                                                                          for f in fields}
    try:
        schema = MappingSchema(mapping, dialect="bigquery")
        query = qualify(query, schema=schema, dialect="bigquery", validate_qualify_columns=False,
                        quote_identifiers=False)
        query = annotate_types(query, schema=schema, dialect="bigquery")
    except Exception as error:  # sqlglot cannot type this statement: leave it to DuckDB's binder
        log.debug("type checks skipped: %s", error)
        return
    for node in query.walk():
        rule = _RULES.get(type(node))
        if rule is not None:
            rule(node)


@lru_cache(maxsize=4096)
def _datatype(sql_type: str) -> exp.DataType:
    # Parsed once per distinct type: a GA4 table's nested types are long, and every statement names them.
    return exp.DataType.build(sql_type, dialect="bigquery")


def type_name(node: exp.Expression) -> str | None:
    """BigQuery's name of the node's type, or None when unknown or an untyped NULL."""
    if isinstance(node, exp.Null):
        return None
    kind = node.type
    if kind is None or kind.this in (exp.DataType.Type.UNKNOWN, exp.DataType.Type.NULL):
        return None
    if kind.this in (exp.DataType.Type.ARRAY, exp.DataType.Type.LIST):
        return "ARRAY"
    if kind.this == exp.DataType.Type.STRUCT:
        return "STRUCT"
    name = kind.sql("bigquery").upper()
    return name.split("(")[0]


def _coercible_string(node: exp.Expression) -> bool:
    """A STRING literal or STRING parameter: BigQuery coerces those to DATE, DATETIME, TIMESTAMP, TIME."""
    if isinstance(node, exp.Literal) and node.is_string:
        return True
    return isinstance(node, exp.Cast) and isinstance(node.this, exp.Parameter) and type_name(node) == "STRING"


def comparable(left: exp.Expression, right: exp.Expression) -> bool:
    a, b = type_name(left), type_name(right)
    if a is None or b is None or a in ("ARRAY", "STRUCT") or b in ("ARRAY", "STRUCT"):
        return True
    if a == b or (a in _NUMERIC and b in _NUMERIC) or {a, b} == {"DATE", "DATETIME"}:
        return True
    if (a == "STRING" and b in _TEMPORAL and _coercible_string(left)) or \
            (b == "STRING" and a in _TEMPORAL and _coercible_string(right)):
        return True
    return False


def _comparison(node: exp.Binary) -> None:
    if not comparable(node.left, node.right):
        symbol = _OPERATORS[type(node)]
        raise invalid_query(
            f"No matching signature for operator {symbol} for argument types: {type_name(node.left)}, "
            f"{type_name(node.right)}. Supported signature: ANY {symbol} ANY")


def _between(node: exp.Between) -> None:
    value, low, high = node.this, node.args["low"], node.args["high"]
    if not (comparable(value, low) and comparable(value, high) and comparable(low, high)):
        names = ", ".join(str(type_name(n) or "NULL") for n in (value, low, high))
        raise invalid_query(f"No matching signature for operator BETWEEN for argument types: {names}. "
                            "Supported signature: (ANY) BETWEEN (ANY) AND (ANY)")


def _in(node: exp.In) -> None:
    query = node.args.get("query")
    if query is not None:
        select = query.this if isinstance(query, exp.Subquery) else query
        selects = getattr(select, "selects", None) or []
        if len(selects) == 1 and not comparable(node.this, selects[0]):
            raise invalid_query(f"Cannot execute IN subquery with uncomparable types {type_name(node.this)} and "
                                f"{type_name(selects[0])}")
        return
    unnest = node.args.get("unnest")
    if unnest is not None and len(unnest.expressions) == 1:  # x IN UNNEST(array)
        array = unnest.expressions[0]
        kind = array.type
        if kind is not None and kind.this in (exp.DataType.Type.ARRAY, exp.DataType.Type.LIST) and kind.expressions:
            element = exp.Cast(this=exp.null(), to=kind.expressions[0])
            element.type = kind.expressions[0]
            if not comparable(node.this, element):
                raise invalid_query(f"No matching signature for operator IN UNNEST for argument types: "
                                    f"{type_name(node.this)}, {type_name(element)}. Supported signature: "
                                    "(ANY) IN UNNEST(ARRAY<ANY>)")
        return
    bad = [item for item in node.expressions if not comparable(node.this, item)]
    if bad:
        raise invalid_query(f"No matching signature for operator IN for argument types: {type_name(node.this)}, "
                            f"{{{type_name(bad[0])}}}. Supported signature: (ANY) IN (ANY)")


def set_operation_types(node: exp.Expression) -> list[tuple[str | None, exp.Expression]]:
    """(type, expression) of each result column of a query, checking nested set operations."""
    if isinstance(node, exp.Subquery):
        return set_operation_types(node.this)
    if isinstance(node, exp.SetOperation):
        left, right = set_operation_types(node.left), set_operation_types(node.right)
        label = _SET_OPERATIONS.get(type(node), "UNION") + (" DISTINCT" if node.args.get("distinct") else " ALL")
        if node.args.get("by_name"):
            # BY NAME pairs the columns by name (both sides must have the same names), in the left's order.
            names = [n.alias_or_name for _, n in left]
            right_by_name = {n.alias_or_name: (t, n) for t, n in right}
            if "*" in names or "*" in right_by_name:
                return left  # a star's columns are not known here: nothing to check
            if set(names) != set(right_by_name) or len(names) != len(right):
                differ = sorted(set(names) ^ set(right_by_name))
                raise invalid_query(f"Queries in {label} BY NAME have different column names: {', '.join(differ)}")
            right = [right_by_name[name] for name in names]
        if len(left) != len(right):
            raise invalid_query(f"Queries in {label} have mismatched column count; query 1 has {len(left)} "
                                f"columns, query 2 has {len(right)} columns")
        merged = []
        for index, ((a, a_node), (b, b_node)) in enumerate(zip(left, right), start=1):
            supertype = _supertype(a, b)
            if supertype is False:
                raise invalid_query(f"Column {index} in {label} has incompatible types: {a}, {b}")
            merged.append((supertype, a_node if supertype == a else b_node))
        return merged
    selects = getattr(node, "selects", None) or []
    return [(type_name(e.unalias() if isinstance(e, exp.Alias) else e), e) for e in selects]


def _supertype(a: str | None, b: str | None):
    """The common type of two set-operation columns, None if unknown, False if there is none."""
    if a is None or b is None:
        return a or b
    if a == b:
        return a
    if a in _NUMERIC and b in _NUMERIC:
        order = ["INT64", "NUMERIC", "BIGNUMERIC", "FLOAT64"]
        return max(a, b, key=order.index)
    if {a, b} == {"DATE", "DATETIME"}:
        return "DATETIME"
    if "ARRAY" in (a, b) or "STRUCT" in (a, b):
        return None  # nested types are compared by DuckDB only
    return False


def _set_operation(node: exp.SetOperation) -> None:
    if isinstance(node.parent, exp.SetOperation) and node.parent.left is node:
        return  # checked as part of the enclosing operation
    set_operation_types(node)


def _needs_timestamp(function: str, signature: str):
    def rule(node: exp.Expression) -> None:
        argument = node.this
        kind = type_name(argument)
        if kind is None or kind == "TIMESTAMP" or _coercible_string(argument):
            return
        if function in ("DATE", "DATETIME"):
            zone_node = node.args.get("zone") or node.args.get("expression")
            if zone_node is None or kind == "STRING":
                return  # DATE(datetime), DATE(date), DATE(string): other valid signatures
            zone = type_name(zone_node) or "STRING"
            if function == "DATETIME" and kind == "DATE":
                return  # DATETIME(date, time)
            raise invalid_query(f"No matching signature for function {function} for argument types: {kind}, {zone}. "
                                f"Supported signatures: {signature}")
        raise invalid_query(f"No matching signature for function {function} for argument types: {kind}. "
                            f"Supported signature: {signature}")

    return rule


_RULES = {
    **{kind: _comparison for kind in _OPERATORS},
    exp.Between: _between,
    exp.In: _in,
    exp.Union: _set_operation,
    exp.Intersect: _set_operation,
    exp.Except: _set_operation,
    exp.Date: _needs_timestamp("DATE", "DATE(TIMESTAMP, [STRING]); DATE(DATETIME); DATE(DATE); "
                                       "DATE(INT64, INT64, INT64)"),
    exp.UnixSeconds: _needs_timestamp("UNIX_SECONDS", "UNIX_SECONDS(TIMESTAMP)"),
    exp.UnixMillis: _needs_timestamp("UNIX_MILLIS", "UNIX_MILLIS(TIMESTAMP)"),
    exp.UnixMicros: _needs_timestamp("UNIX_MICROS", "UNIX_MICROS(TIMESTAMP)"),
}
if hasattr(exp, "Datetime"):
    _RULES[exp.Datetime] = _needs_timestamp("DATETIME", "DATETIME(TIMESTAMP, [STRING]); DATETIME(DATE, [TIME]); "
                                                        "DATETIME(INT64, INT64, INT64, INT64, INT64, INT64)")
