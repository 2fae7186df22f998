"""Rows in BigQuery's JSON format: `{"f": [{"v": cell}, ...]}`, as tabledata.list and getQueryResults send.

Every scalar is a string (INT64 too: JSON numbers lose precision past 2^53); a RECORD is a nested
`{"f": [...]}`; a REPEATED field is a list of `{"v": element}` and never null (BigQuery returns an empty
array for a NULL array). TIMESTAMP is microseconds since the epoch when the client asks for
`formatOptions.useInt64Timestamp` (google-cloud-bigquery always does), otherwise seconds as a
floating-point string, BigQuery's historical format. DATETIME is `YYYY-MM-DDTHH:MM:SS[.ffffff]`.
Cells are encoded column by column from Arrow, which keeps pages of nested GA4 rows affordable.
"""

from __future__ import annotations

import base64
import math
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc

from recsys_platform.standins.bigquery_api.schema import Field


def encode_rows(table: pa.Table | pa.RecordBatch, fields: list[Field], int64_timestamp: bool) -> list[dict]:
    if table.num_rows == 0:
        return []
    columns = []
    for i, f in enumerate(fields):
        column = table.column(i)
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        columns.append(_encode(column, f, int64_timestamp))
    return [{"f": [{"v": column[r]} for column in columns]} for r in range(table.num_rows)]


def _encode(array: pa.Array, f: Field, int64_timestamp: bool) -> list:
    if f.repeated:
        elements = _encode(array.flatten(), f.element(), int64_timestamp)
        lengths = array.value_lengths().to_pylist()
        out, position = [], 0
        for length in lengths:
            if not length:  # NULL or empty array: BigQuery never returns a NULL array
                out.append([])
                continue
            out.append([{"v": v} for v in elements[position:position + length]])
            position += length
        return out
    if f.type == "RECORD":
        children = [_encode(child, sub, int64_timestamp) for child, sub in zip(array.flatten(), f.fields)]
        valid = array.is_valid().to_pylist()
        return [{"f": [{"v": child[r]} for child in children]} if ok else None for r, ok in enumerate(valid)]
    return _SCALARS[f.type](array, int64_timestamp)


def _integers(array, _):
    return pc.cast(array, pa.string()).to_pylist()


def _floats(array, _):
    return [None if v is None else _float(v) for v in array.to_pylist()]


def _float(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return repr(v)


def _numerics(array, _):
    return [None if v is None else _decimal(v) for v in array.to_pylist()]


def _decimal(v: Decimal) -> str:
    text = format(v, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def _booleans(array, _):
    return [None if v is None else ("true" if v else "false") for v in array.to_pylist()]


def _timestamps(array, int64_timestamp):
    micros = pc.cast(array.cast(pa.timestamp("us", tz="UTC")), pa.int64()).to_pylist()
    if int64_timestamp:
        return [None if v is None else str(v) for v in micros]
    return [None if v is None else seconds_string(v) for v in micros]


def seconds_string(micros: int) -> str:
    """Seconds since the epoch in BigQuery's float notation, e.g. `1.7724E9`, exact to the microsecond."""
    value = Decimal(micros).scaleb(-6)
    if value == 0:
        return "0.0"
    sign, digits, exponent = value.as_tuple()
    text = "".join(map(str, digits)).rstrip("0") or "0"
    power = len(digits) + exponent - 1
    mantissa = text[0] + "." + (text[1:] or "0")
    return ("-" if sign else "") + f"{mantissa}E{power}"


def _datetimes(array, _):
    return [None if v is None else v.isoformat() for v in array.cast(pa.timestamp("us")).to_pylist()]


def _isoformat(array, _):
    return [None if v is None else v.isoformat() for v in array.to_pylist()]


def _strings(array, _):
    return array.cast(pa.string()).to_pylist() if pa.types.is_large_string(array.type) else array.to_pylist()


def _bytes(array, _):
    return [None if v is None else base64.b64encode(v).decode() for v in array.to_pylist()]


def _intervals(array, _):
    return [None if v is None else _interval(v) for v in array.to_pylist()]


def _interval(v) -> str:
    """BigQuery's canonical interval text `Y-M D H:M:S[.F]` from an Arrow month-day-nano value."""
    months, days, nanos = v.months, v.days, v.nanoseconds
    sign = "-" if nanos < 0 else ""
    nanos = abs(nanos)
    seconds, fraction = divmod(nanos // 1000, 1_000_000)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{months // 12}-{months % 12} {days} {sign}{hours}:{minutes}:{seconds}"
    return text + (f".{fraction:06d}".rstrip("0") if fraction else "")


_SCALARS = {
    "STRING": _strings,
    "JSON": _strings,
    "INTEGER": _integers,
    "FLOAT": _floats,
    "NUMERIC": _numerics,
    "BOOLEAN": _booleans,
    "TIMESTAMP": _timestamps,
    "DATETIME": _datetimes,
    "DATE": _isoformat,
    "TIME": _isoformat,
    "BYTES": _bytes,
    "INTERVAL": _intervals,
}
