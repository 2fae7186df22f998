"""Query parameters: BigQuery's REST `queryParameters` as typed values DuckDB can bind.

A parameter has a declared BigQuery type (`parameterType`) and a value written as a string
(`parameterValue.value`, or `arrayValues` for an ARRAY). In the statement each `@name` (or `?`) becomes
`CAST(@name AS <declared type>)`, so type checks and DuckDB both see the declared type, as BigQuery does,
and DuckDB binds the Python value. STRUCT parameters are not supported.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from recsys_platform.standins.bigquery_api.errors import invalid, invalid_query
from recsys_platform.standins.bigquery_api.schema import API_ALIASES, Field

_SCALARS = {"STRING", "BYTES", "INTEGER", "FLOAT", "NUMERIC", "BOOLEAN", "TIMESTAMP", "DATETIME", "DATE", "TIME",
            "JSON"}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TIMESTAMP = re.compile(
    r"^(\d{4}-\d{1,2}-\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?\s*(Z|UTC|[+-]\d{1,2}(?::?\d{2})?)?$")


@dataclass(frozen=True)
class Parameter:
    name: str  # for a positional parameter: its 1-based position as a string
    field: Field  # declared type (mode REPEATED for an ARRAY)
    value: Any

    @property
    def duckdb_name(self) -> str:
        return self.name if _NAME.match(self.name) else f"__p{self.name}"


def parse_parameters(config: dict) -> tuple[dict[str, Parameter], list[Parameter]]:
    """(named, positional) parameters of a query job configuration."""
    named: dict[str, Parameter] = {}
    positional: list[Parameter] = []
    mode = (config.get("parameterMode") or "").upper()
    for i, resource in enumerate(config.get("queryParameters") or ()):
        name = resource.get("name")
        if name:
            if mode == "POSITIONAL":
                raise invalid("Positional parameters must not have names (parameterMode is POSITIONAL)")
            if not _NAME.match(name):
                raise invalid(f"Invalid query parameter name: {name}")
            if name.lower() in {k.lower() for k in named}:
                raise invalid(f"Duplicate query parameter name: {name}")
            named[name] = _parameter(name, resource)
        else:
            if mode == "NAMED":
                raise invalid("Named query parameters need a name (parameterMode is NAMED)")
            positional.append(_parameter(str(len(positional) + 1), resource))
    return named, positional


def number_positional(sql: str, positional: list[Parameter]) -> str:
    """`?` placeholders -> `@__p1`, `@__p2`, ... in the order they appear in the text (a syntax tree's
    traversal order is not the text's: a WITH clause comes last), so each binds its own value."""
    from sqlglot.dialects.dialect import Dialect
    from sqlglot.tokens import TokenType

    marks = [t for t in Dialect.get_or_raise("bigquery").tokenize(sql) if t.token_type == TokenType.PLACEHOLDER
             and t.text == "?"]
    if len(marks) != len(positional):
        raise invalid_query(f"The query has {len(marks)} positional parameter(s) (?) but {len(positional)} "
                            "were given")
    for number, token in reversed(list(enumerate(marks, start=1))):
        sql = sql[:token.start] + f"@{positional[number - 1].duckdb_name}" + sql[token.end + 1:]
    return sql


def _parameter(name: str, resource: dict) -> Parameter:
    kind = resource.get("parameterType") or {}
    value = resource.get("parameterValue") or {}
    type_name = _type_name(kind.get("type"), name)
    if type_name == "ARRAY":
        element = _type_name((kind.get("arrayType") or {}).get("type"), name)
        if element not in _SCALARS:
            raise invalid(f"Query parameter '{name}': ARRAY<{element}> parameters are not supported here")
        values = value.get("arrayValues")
        converted = None if values is None else [_scalar(element, v.get("value"), name) for v in values]
        return Parameter(name, Field(name, element, "REPEATED"), converted)
    if type_name not in _SCALARS:
        raise invalid(f"Query parameter '{name}': {type_name} parameters are not supported by this stand-in")
    return Parameter(name, Field(name, type_name), _scalar(type_name, value.get("value"), name))


def _type_name(raw, name: str) -> str:
    if not raw:
        raise invalid(f"Query parameter '{name}' has no parameterType.type")
    raw = str(raw).upper()
    return API_ALIASES.get(raw, raw)


def _scalar(kind: str, text, name: str):
    if text is None:
        return None
    try:
        if kind in ("STRING", "JSON"):
            return str(text)
        if kind == "INTEGER":
            return int(str(text))
        if kind == "FLOAT":
            return float(text)
        if kind == "NUMERIC":
            return Decimal(str(text))
        if kind == "BOOLEAN":
            lowered = str(text).lower()
            if lowered not in ("true", "false"):
                raise ValueError(text)
            return lowered == "true"
        if kind == "DATE":
            return dt.date.fromisoformat(str(text))
        if kind == "TIME":
            return dt.time.fromisoformat(str(text))
        if kind == "BYTES":
            return base64.b64decode(str(text), validate=True)
        if kind in ("TIMESTAMP", "DATETIME"):
            return _datetime(str(text).strip(), with_zone=kind == "TIMESTAMP")
    except (ValueError, InvalidOperation, TypeError):
        pass
    raise invalid_query(f"Invalid {kind} value for query parameter '{name}': {text}")


def _datetime(text: str, with_zone: bool) -> dt.datetime:
    match = _TIMESTAMP.match(text)
    if not match:
        raise ValueError(text)
    day, hour, minute, second, fraction, zone = match.groups()
    year, month, day_of_month = (int(x) for x in day.split("-"))
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    value = dt.datetime(year, month, day_of_month, int(hour or 0), int(minute or 0), int(second or 0), micros)
    if not with_zone:
        if zone:
            raise ValueError(text)
        return value
    offset = dt.timedelta(0)
    if zone and zone not in ("Z", "UTC"):
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        hours, minutes = (int(digits[:-2]), int(digits[-2:])) if len(digits) > 2 else (int(digits), 0)
        offset = sign * dt.timedelta(hours=hours, minutes=minutes)
    return value.replace(tzinfo=dt.timezone(offset)).astimezone(dt.timezone.utc)
