"""BigQuery column types on DuckDB: one mapping for tables, query results, rows and type checks.

    BigQuery (REST)   DuckDB            Arrow (query results)
    STRING            VARCHAR           string
    BYTES             BLOB              binary
    INTEGER (INT64)   BIGINT            int64
    FLOAT (FLOAT64)   DOUBLE            float64
    NUMERIC           DECIMAL(38,9)     decimal128(38, 9)
    BOOLEAN (BOOL)    BOOLEAN           bool
    TIMESTAMP         TIMESTAMPTZ       timestamp[us, UTC]   (an instant)
    DATETIME          TIMESTAMP         timestamp[us]        (a wall-clock time, no zone)
    DATE / TIME       DATE / TIME       date32 / time64[us]
    JSON              JSON              string
    RECORD            STRUCT(...)       struct
    mode REPEATED     T[]               list

DuckDB computes in more types than BigQuery has (INTEGER, HUGEINT for SUM, DECIMAL(18,3), UUID, ...); a
result column is cast to the canonical DuckDB type of its BigQuery type, so a client sees exactly
BigQuery's types. BIGNUMERIC, GEOGRAPHY and RANGE have no faithful DuckDB type and are refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache

from sqlglot import exp

from recsys_platform.standins.bigquery_api.errors import invalid, invalid_query

T = exp.DataType.Type

SCALAR_TO_DUCKDB = {
    "STRING": "VARCHAR",
    "BYTES": "BLOB",
    "INTEGER": "BIGINT",
    "FLOAT": "DOUBLE",
    "NUMERIC": "DECIMAL(38,9)",
    "BOOLEAN": "BOOLEAN",
    "TIMESTAMP": "TIMESTAMPTZ",
    "DATETIME": "TIMESTAMP",
    "DATE": "DATE",
    "TIME": "TIME",
    "JSON": "JSON",
    "INTERVAL": "INTERVAL",
}
# BigQuery's standard SQL spelling of each REST type (sqlglot's schema and error messages use these).
SQL_NAMES = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL", "RECORD": "STRUCT"}
API_ALIASES = {"INT64": "INTEGER", "FLOAT64": "FLOAT", "BOOL": "BOOLEAN", "STRUCT": "RECORD"}
UNSUPPORTED = {"BIGNUMERIC", "BIGDECIMAL", "GEOGRAPHY", "RANGE"}
MODES = ("NULLABLE", "REQUIRED", "REPEATED")

_FROM_DUCKDB = {
    **{t: "STRING" for t in (T.TEXT, T.VARCHAR, T.CHAR, T.NCHAR, T.NVARCHAR, T.UUID, T.ENUM, T.BPCHAR, T.NAME)},
    **{t: "INTEGER" for t in (T.BIGINT, T.INT, T.SMALLINT, T.TINYINT, T.UBIGINT, T.UINT, T.USMALLINT,
                              T.UTINYINT, T.INT128, T.UINT128, T.BIT)},
    T.DOUBLE: "FLOAT", T.FLOAT: "FLOAT",
    T.DECIMAL: "NUMERIC",
    T.BOOLEAN: "BOOLEAN",
    T.TIMESTAMPTZ: "TIMESTAMP", T.TIMESTAMPLTZ: "TIMESTAMP",
    **{t: "DATETIME" for t in (T.TIMESTAMP, T.TIMESTAMPNTZ, T.TIMESTAMP_S, T.TIMESTAMP_MS, T.TIMESTAMP_NS,
                               T.DATETIME)},
    T.DATE: "DATE",
    T.TIME: "TIME",
    **{t: "BYTES" for t in (T.VARBINARY, T.BINARY, T.BLOB)},
    T.JSON: "JSON",
    T.INTERVAL: "INTERVAL",
}


@dataclass(frozen=True)
class Field:
    """One column (or nested field) of a BigQuery schema, in the REST API's terms."""

    name: str
    type: str
    mode: str = "NULLABLE"
    fields: tuple[Field, ...] = field(default=())
    description: str | None = None

    @property
    def repeated(self) -> bool:
        return self.mode == "REPEATED"

    def element(self) -> Field:
        """The field's element type: the field itself, without REPEATED."""
        return replace(self, mode="NULLABLE") if self.repeated else self

    def sql_type(self, quoted: bool = True) -> str:
        """BigQuery standard SQL spelling: `ARRAY<STRUCT<a INT64>>` (member names in backticks if `quoted`)."""
        if self.type == "RECORD":
            inner = ", ".join(f"{f'`{f.name}`' if quoted else f.name} {f.sql_type(quoted)}" for f in self.fields)
            base = f"STRUCT<{inner}>"
        else:
            base = SQL_NAMES.get(self.type, self.type)
        return f"ARRAY<{base}>" if self.repeated else base

    def duckdb_type(self) -> str:
        if self.type == "RECORD":
            base = "STRUCT(" + ", ".join(f"{quote(f.name)} {f.duckdb_type()}" for f in self.fields) + ")"
        else:
            base = SCALAR_TO_DUCKDB[self.type]
        return base + "[]" if self.repeated else base

    def to_api(self) -> dict:
        out = {"name": self.name, "type": self.type, "mode": self.mode}
        if self.fields:
            out["fields"] = [f.to_api() for f in self.fields]
        if self.description:
            out["description"] = self.description
        return out

    def shape(self) -> tuple:
        """What a value of this field looks like, without names' case, descriptions or NULLABLE/REQUIRED."""
        return (self.type, self.repeated, tuple((f.name.lower(), f.shape()) for f in self.fields))


def quote(name: str) -> str:
    """A DuckDB identifier, always quoted (names come from clients)."""
    return '"' + name.replace('"', '""') + '"'


def field_from_api(resource: dict, path: str = "") -> Field:
    """A schema field from its REST representation, validated as BigQuery validates it."""
    name = resource.get("name")
    where = f"{path}{name}"
    if not isinstance(name, str) or not name:
        raise invalid(f"Invalid field name {name!r}: a field needs a name")
    kind = str(resource.get("type", "")).upper()
    kind = API_ALIASES.get(kind, kind)
    if kind in UNSUPPORTED:
        raise invalid(f"Field {where}: type {kind} is not supported by this BigQuery stand-in")
    if kind not in SCALAR_TO_DUCKDB and kind != "RECORD":
        raise invalid(f"Invalid value for type: {kind} is not a valid value (field {where})")
    mode = str(resource.get("mode") or "NULLABLE").upper()
    if mode not in MODES:
        raise invalid(f"Invalid value for mode: {mode} is not a valid value (field {where})")
    children = tuple(field_from_api(f, f"{where}.") for f in resource.get("fields") or ())
    if kind == "RECORD" and not children:
        raise invalid(f"Field {where} is type RECORD but has no schema")
    if kind != "RECORD" and children:
        raise invalid(f"Field {where} has subfields but is not a RECORD")
    check_unique([f.name for f in children], where)
    return Field(name, kind, mode, children, resource.get("description"))


def fields_from_api(schema: dict | None) -> list[Field]:
    fields = [field_from_api(f) for f in (schema or {}).get("fields") or ()]
    check_unique([f.name for f in fields], "")
    return fields


def check_unique(names: list[str], where: str) -> None:
    seen = set()
    for name in names:
        if name.lower() in seen:
            raise invalid(f"Field {where + '.' if where else ''}{name} already exists in schema")
        seen.add(name.lower())


@lru_cache(maxsize=4096)
def _parse_duckdb_type(text: str) -> exp.DataType:
    return exp.DataType.build(text, dialect="duckdb")


def field_from_duckdb(name: str, duckdb_type: str, nullable: bool = True) -> Field:
    """The BigQuery field a DuckDB column of `duckdb_type` holds (DESCRIBE's spelling)."""
    if duckdb_type.strip('"').upper() == "NULL":  # an untyped NULL: BigQuery types it INT64
        return Field(name, "INTEGER")
    result = _from_datatype(name, _parse_duckdb_type(duckdb_type))
    return result if nullable or result.repeated else replace(result, mode="REQUIRED")


def _from_datatype(name: str, dt: exp.DataType) -> Field:
    kind = dt.this
    if kind in (T.ARRAY, T.LIST):
        inner = dt.expressions[0] if dt.expressions else None
        if not isinstance(inner, exp.DataType):
            raise invalid_query(f"Column {name}: array without an element type")
        if inner.this in (T.ARRAY, T.LIST):
            raise invalid_query(f"Cannot construct array with element type {_from_datatype(name, inner).sql_type()} "
                                "because nested arrays are not supported")
        return replace(_from_datatype(name, inner), mode="REPEATED")
    if kind == T.STRUCT:
        children = []
        for i, member in enumerate(dt.expressions):
            if isinstance(member, exp.ColumnDef):
                children.append(_from_datatype(member.name, member.args["kind"]))
            else:  # an anonymous member
                children.append(_from_datatype(f"_field_{i + 1}", member))
        return Field(name, "RECORD", "NULLABLE", tuple(children))
    if kind in _FROM_DUCKDB:
        return Field(name, _FROM_DUCKDB[kind])
    raise invalid_query(f"Column {name} has DuckDB type {dt.sql('duckdb')}, which has no BigQuery equivalent")


@lru_cache(maxsize=4096)
def normalize_duckdb_type(text: str) -> str:
    """One spelling per DuckDB type, for comparisons (`TIMESTAMP WITH TIME ZONE` == `TIMESTAMPTZ`,
    quoted or unquoted struct member names)."""
    if text.strip('"').upper() == "NULL":
        return "NULL"
    parsed = _parse_duckdb_type(text).copy().transform(
        lambda node: exp.to_identifier(node.name, quoted=True) if isinstance(node, exp.Identifier) else node)
    return parsed.sql("duckdb")


def field_from_sql_type(name: str, datatype: exp.DataType) -> Field:
    """The field a column declared with a (BigQuery-parsed) SQL type holds."""
    return _from_datatype(name, datatype)


def needs_cast(duckdb_type: str, target: Field) -> bool:
    return normalize_duckdb_type(duckdb_type) != normalize_duckdb_type(target.duckdb_type())


# Implicit coercions BigQuery applies when a value of one type goes where another is expected
# (INSERT, query results written to a table, a wildcard table's older shards): INT64 widens to
# NUMERIC and FLOAT64, NUMERIC to FLOAT64, DATE to DATETIME. Anything else needs an explicit CAST.
COERCIONS = {("INTEGER", "FLOAT"), ("INTEGER", "NUMERIC"), ("NUMERIC", "FLOAT"), ("DATE", "DATETIME")}


class ShapeMismatch(Exception):
    """A value of one field cannot become a value of another; `path` names the nested field."""

    def __init__(self, path: str, source: Field, target: Field):
        super().__init__(f"{path}: {source.sql_type()} vs {target.sql_type()}")
        self.path, self.source, self.target = path, source, target


def conform_sql(expr: str, source: Field, target: Field, path: str = "", depth: int = 0) -> str:
    """DuckDB SQL turning `expr`, a value of `source`, into a value of `target`.

    RECORD fields are matched by name: a field the target lacks is dropped, a field the source lacks
    becomes NULL (so rows written before a field was added read as NULL, as in BigQuery)."""
    path = path or target.name
    if source.shape() == target.shape():
        return expr
    if source.repeated != target.repeated:
        raise ShapeMismatch(path, source, target)
    if target.repeated:
        var = f"__e{depth}"
        inner = conform_sql(var, source.element(), target.element(), path, depth + 1)
        return f"list_transform({expr}, lambda {var}: {inner})"
    if source.type == "RECORD" and target.type == "RECORD":
        by_name = {f.name.lower(): f for f in source.fields}
        members = []
        for sub in target.fields:
            match = by_name.get(sub.name.lower())
            value = (f"CAST(NULL AS {sub.duckdb_type()})" if match is None else
                     conform_sql(f"struct_extract({expr}, {_string(match.name)})", match, sub,
                                 f"{path}.{sub.name}", depth + 1))
            members.append(f"{quote(sub.name)} := {value}")
        return f"CASE WHEN {expr} IS NULL THEN NULL ELSE struct_pack({', '.join(members)}) END"
    if (source.type, target.type) in COERCIONS:
        return f"CAST({expr} AS {target.duckdb_type()})"
    raise ShapeMismatch(path, source, target)


def _string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def merge_for_write(table: list[Field], incoming: list[Field], table_name: str, allow_addition: bool,
                    allow_relaxation: bool) -> list[Field]:
    """The table's schema after writing rows of `incoming` into it, or BigQuery's refusal.

    New fields (top-level or nested) need ALLOW_FIELD_ADDITION and must not be REQUIRED; a field of
    the table the rows lack is fine unless it is REQUIRED; a changed type is always refused; a REQUIRED
    field the rows may leave NULL needs ALLOW_FIELD_RELAXATION."""
    return list(_merge(tuple(table), tuple(incoming), table_name, allow_addition, allow_relaxation, ""))


def _merge(table, incoming, table_name, allow_addition, allow_relaxation, prefix):
    from recsys_platform.standins.bigquery_api.errors import invalid

    def refuse(detail: str):
        return invalid(f"Provided Schema does not match Table {table_name}. {detail}")

    by_name = {f.name.lower(): f for f in incoming}
    merged = []
    for existing in table:
        path = f"{prefix}{existing.name}"
        new = by_name.pop(existing.name.lower(), None)
        if new is None:
            if existing.mode == "REQUIRED":
                if not allow_relaxation:
                    raise refuse(f"Field {path} is missing in new schema")
                existing = replace(existing, mode="NULLABLE")
            merged.append(existing)
            continue
        if existing.repeated != new.repeated:
            raise refuse(f"Field {path} has changed mode from {existing.mode} to {new.mode}")
        if existing.type != new.type and (new.type, existing.type) not in COERCIONS:
            raise refuse(f"Field {path} has changed type from {existing.type} to {new.type}")
        mode = existing.mode
        if existing.mode == "REQUIRED" and new.mode != "REQUIRED":
            if not allow_relaxation:
                raise refuse(f"Field {path} has changed mode from REQUIRED to NULLABLE")
            mode = "NULLABLE"
        children = existing.fields
        if existing.type == "RECORD":
            children = _merge(existing.fields, new.fields, table_name, allow_addition, allow_relaxation, f"{path}.")
        merged.append(replace(existing, mode=mode, fields=tuple(children)))
    for added in by_name.values():
        path = f"{prefix}{added.name}"
        if not allow_addition:
            raise refuse(f"Cannot add fields (field: {path})")
        if added.mode == "REQUIRED":
            raise refuse(f"Cannot add required fields to an existing schema. (field: {path})")
        merged.append(added)
    return merged
