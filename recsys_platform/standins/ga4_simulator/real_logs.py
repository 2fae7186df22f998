"""Readers for real, public e-commerce interaction logs, normalised to one Arrow table.

Every reader returns `REAL_LOG_SCHEMA`: one row per interaction with the GA4 recommended event it
corresponds to, so a real log can be replayed as a GA4 export or fed to a recommender directly.
Rows of kinds that have no GA4 counterpart (a JD "remove from cart", a GA4 purchase row whose item is
'(not set)') are dropped on purpose and counted in the table's metadata (`rows_read`, `rows_dropped`);
anything that cannot be parsed is an error naming the file, the line and the column.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

GA4_EVENTS = ("view_item", "add_to_cart", "add_to_wishlist", "purchase")
LOG_FORMATS = ("taobao", "tmall", "jd", "ga4_purchase_items", "otto", "csv")
TIMESTAMP_UNITS = {"s": 1, "ms": 1_000, "us": 1_000_000}
# Columns the generic CSV reader needs mapped (category is optional).
CSV_REQUIRED_COLUMNS = ("user_id", "item_id", "timestamp", "event")
CSV_OPTIONAL_COLUMNS = ("category",)

REAL_LOG_SCHEMA = pa.schema(
    [
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("timestamp", pa.int64(), nullable=False),  # epoch seconds, UTC
        pa.field("ga4_event", pa.string(), nullable=False),
        pa.field("category", pa.string()),
    ]
)

# Taobao, Tmall and JD write local China time (UTC+8, no daylight saving since 1991).
_CHINA_UTC_OFFSET_SECONDS = 8 * 3600
# A value mapped to DROP is a known event kind with no GA4 counterpart: the row is skipped.
DROP = ""

_TAOBAO_EVENTS = {"pv": "view_item", "cart": "add_to_cart", "fav": "add_to_wishlist", "buy": "purchase"}
_TMALL_EVENTS = {"0": "view_item", "1": "add_to_cart", "2": "purchase", "3": "add_to_wishlist"}
_JD_EVENTS = {
    "1": "view_item",  # browse
    "2": "add_to_cart",
    "3": DROP,  # remove from cart
    "4": "purchase",  # order
    "5": "add_to_wishlist",  # follow
    "6": "view_item",  # click
}
_OTTO_EVENTS = {"clicks": "view_item", "carts": "add_to_cart", "orders": "purchase"}


class RealLogError(ValueError):
    """A log file that cannot be read; says which file, line (1-based) and column."""

    def __init__(self, path: Path | str, message: str, line: int | None = None, column: str | None = None):
        self.path = Path(path)
        self.line = line
        self.column = column
        where = str(self.path)
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column!r}"
        super().__init__(f"{where}: {message}")


def read_real_log(
    path: Path | str,
    format: str = "csv",
    *,
    columns: Mapping[str, str] | None = None,
    event_map: Mapping[str, str] | None = None,
    timestamp_unit: str = "s",
    tmall_year: int = 2014,
) -> pa.Table:
    """Read an interaction log as `REAL_LOG_SCHEMA` (user_id, item_id, timestamp, ga4_event, category).

    `format` is one of `LOG_FORMATS`. For `csv` (a file with a header row), `columns` maps the
    platform's names (`user_id`, `item_id`, `timestamp`, `event`, optional `category`) to the file's
    header names, `event_map` maps the file's event values to GA4 events (values that already are GA4
    event names pass through; a value mapped to "" drops the row), and `timestamp_unit` is s, ms or us.
    `tmall_year` places the Tmall log, which records month and day only.
    """
    path = Path(path)
    if format not in LOG_FORMATS:
        raise ValueError(f"unknown log format {format!r}; expected one of {', '.join(LOG_FORMATS)}")
    if not path.is_file():
        raise RealLogError(path, "no such file")
    if format == "otto":
        table = _read_otto(path)
    elif format == "csv":
        table = _read_mapped_csv(path, columns or {}, event_map or {}, timestamp_unit)
    else:
        table = {
            "taobao": _read_taobao,
            "tmall": lambda p: _read_tmall(p, tmall_year),
            "jd": _read_jd,
            "ga4_purchase_items": _read_ga4_purchase_items,
        }[format](path)
    return table.replace_schema_metadata({**table.schema.metadata, b"format": format.encode()})


def parse_column_mapping(text: str) -> dict[str, str]:
    """Parse `user_id=uid,item_id=sku,timestamp=ts,event=type[,category=cat]` (the CLI's --columns)."""
    mapping = _parse_pairs(text, "--columns")
    unknown = set(mapping) - set(CSV_REQUIRED_COLUMNS) - set(CSV_OPTIONAL_COLUMNS)
    if unknown:
        raise ValueError(
            f"--columns: unknown target(s) {sorted(unknown)}; expected "
            f"{', '.join(CSV_REQUIRED_COLUMNS + CSV_OPTIONAL_COLUMNS)}"
        )
    return mapping


def parse_event_map(text: str) -> dict[str, str]:
    """Parse `pv=view_item,cart=add_to_cart,remove=` (the CLI's --event-map); an empty target drops."""
    mapping = _parse_pairs(text, "--event-map", allow_empty_value=True)
    for source, target in mapping.items():
        if target != DROP and target not in GA4_EVENTS:
            raise ValueError(
                f"--event-map: {source}={target}: target must be one of {', '.join(GA4_EVENTS)} "
                "(or empty to drop)"
            )
    return mapping


def _parse_pairs(text: str, option: str, allow_empty_value: bool = False) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or (not value and not allow_empty_value):
            raise ValueError(f"{option}: expected name=value, got {part!r}")
        pairs[key] = value
    return pairs


# --- format readers -------------------------------------------------------------------------------


def _read_taobao(path: Path) -> pa.Table:
    names = ["user_id", "item_id", "category_id", "behavior", "unix_ts"]
    raw = _read_csv_strings(path, names=names)
    return _assemble(
        path,
        raw,
        first_line=1,
        user_column="user_id",
        item_column="item_id",
        timestamps=_parse_int(path, raw, "unix_ts", first_line=1),
        event_column="behavior",
        event_map=_TAOBAO_EVENTS,
        category_column="category_id",
    )


def _read_tmall(path: Path, year: int) -> pa.Table:
    raw = _read_csv_strings(path, header=True)
    _require_columns(path, raw, ("user_id", "item_id", "cat_id", "month", "day", "action"))
    month = _parse_int(path, raw, "month", first_line=2)
    day = _parse_int(path, raw, "day", first_line=2)
    try:
        local_midnight = np.array(
            [f"{year:04d}-{m:02d}-{d:02d}" for m, d in zip(month.tolist(), day.tolist())], dtype="datetime64[s]"
        )
    except ValueError:
        bad = next(
            i for i, (m, d) in enumerate(zip(month.tolist(), day.tolist())) if not _is_date(year, m, d)
        )
        raise RealLogError(path, f"month/day {month[bad]}/{day[bad]} is not a date in {year}", line=bad + 2,
                           column="day") from None
    # Day granularity only: events are placed at local midnight.
    timestamps = local_midnight.astype(np.int64) - _CHINA_UTC_OFFSET_SECONDS
    return _assemble(
        path,
        raw,
        first_line=2,
        user_column="user_id",
        item_column="item_id",
        timestamps=timestamps,
        event_column="action",
        event_map=_TMALL_EVENTS,
        category_column="cat_id",
    )


def _read_jd(path: Path) -> pa.Table:
    raw = _read_csv_strings(path, header=True)
    _require_columns(path, raw, ("user_id", "sku_id", "time", "type", "cate"))
    # JD writes user ids as floats ("266079.0").
    user_ids = pc.replace_substring_regex(raw["user_id"], pattern=r"\.0+$", replacement="")
    raw = raw.set_column(raw.schema.get_field_index("user_id"), "user_id", user_ids)
    try:
        local = pc.strptime(raw["time"], format="%Y-%m-%d %H:%M:%S", unit="s")
    except pa.ArrowInvalid:
        bad = _first_false(pc.is_valid(pc.strptime(raw["time"], format="%Y-%m-%d %H:%M:%S", unit="s",
                                                   error_is_null=True)))
        raise RealLogError(path, f"expected YYYY-MM-DD HH:MM:SS, got {raw['time'][bad].as_py()!r}",
                           line=bad + 2, column="time") from None
    timestamps = local.cast(pa.int64()).to_numpy() - _CHINA_UTC_OFFSET_SECONDS
    return _assemble(
        path,
        raw,
        first_line=2,
        user_column="user_id",
        item_column="sku_id",
        timestamps=timestamps,
        event_column="type",
        event_map=_JD_EVENTS,
        category_column="cate",
    )


def _read_ga4_purchase_items(path: Path) -> pa.Table:
    raw = _read_csv_strings(path, header=True)
    _require_columns(path, raw, ("user_pseudo_id", "item_id", "event_timestamp"))
    micros = _parse_int(path, raw, "event_timestamp", first_line=2)
    rows_read = raw.num_rows
    # GA4 writes '(not set)' when the tag sent no item id: no interaction to learn from.
    has_item = pc.and_(pc.not_equal(raw["item_id"], "(not set)"), pc.not_equal(raw["item_id"], ""))
    raw, micros = raw.filter(has_item), micros[has_item.to_numpy(zero_copy_only=False)]
    raw = raw.append_column("event", pa.array(["purchase"] * raw.num_rows, pa.string()))
    table = _assemble(
        path,
        raw,
        first_line=2,
        user_column="user_pseudo_id",
        item_column="item_id",
        timestamps=micros // 1_000_000,
        event_column="event",
        event_map={"purchase": "purchase"},
        category_column=None,
        check_lines=False,
    )
    return _with_counts(table, path, rows_read)


def _read_otto(path: Path) -> pa.Table:
    users: list[str] = []
    items: list[str] = []
    millis: list[int] = []
    kinds: list[str] = []
    with path.open("r", encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise RealLogError(path, f"invalid JSON: {error.msg} (character {error.pos + 1})",
                                   line=line_number) from None
            if not isinstance(record, dict) or "session" not in record or not isinstance(
                    record.get("events"), list):
                raise RealLogError(path, "expected an object with 'session' and an 'events' list",
                                   line=line_number)
            for event in record["events"]:
                for key in ("aid", "ts", "type"):
                    if not isinstance(event, dict) or key not in event:
                        raise RealLogError(path, f"an event lacks {key!r}", line=line_number, column=key)
                if not isinstance(event["ts"], int):
                    raise RealLogError(path, f"ts must be integer milliseconds, got {event['ts']!r}",
                                       line=line_number, column="ts")
                if event["type"] not in _OTTO_EVENTS:
                    raise RealLogError(path, f"unknown event type {event['type']!r}; expected "
                                       f"{', '.join(_OTTO_EVENTS)}", line=line_number, column="type")
                users.append(str(record["session"]))
                items.append(str(event["aid"]))
                millis.append(event["ts"])
                kinds.append(_OTTO_EVENTS[event["type"]])
    table = pa.table(
        {
            "user_id": pa.array(users, pa.string()),
            "item_id": pa.array(items, pa.string()),
            "timestamp": pa.array(np.asarray(millis, dtype=np.int64) // 1_000, pa.int64()),
            "ga4_event": pa.array(kinds, pa.string()),
            "category": pa.nulls(len(users), pa.string()),
        },
        schema=REAL_LOG_SCHEMA,
    )
    return _with_counts(table, path, len(users))


def _read_mapped_csv(
    path: Path, columns: Mapping[str, str], event_map: Mapping[str, str], timestamp_unit: str
) -> pa.Table:
    missing = [name for name in CSV_REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise ValueError(
            f"reading {path} as csv needs a column mapping for {', '.join(missing)} "
            "(e.g. --columns user_id=uid,item_id=sku,timestamp=ts,event=type)"
        )
    if timestamp_unit not in TIMESTAMP_UNITS:
        raise ValueError(f"timestamp unit must be one of {', '.join(TIMESTAMP_UNITS)}, got {timestamp_unit!r}")
    raw = _read_csv_strings(path, header=True)
    _require_columns(path, raw, [columns[name] for name in columns])
    ticks = _parse_int(path, raw, columns["timestamp"], first_line=2)
    full_map = {event: event for event in GA4_EVENTS}
    full_map.update(event_map)
    return _assemble(
        path,
        raw,
        first_line=2,
        user_column=columns["user_id"],
        item_column=columns["item_id"],
        timestamps=ticks // TIMESTAMP_UNITS[timestamp_unit],
        event_column=columns["event"],
        event_map=full_map,
        category_column=columns.get("category"),
    )


# --- shared helpers --------------------------------------------------------------------------------


def _read_csv_strings(path: Path, names: list[str] | None = None, header: bool = False) -> pa.Table:
    """Read every column as a string, so conversion errors can be reported with their line."""
    read_options = pacsv.ReadOptions(column_names=names, autogenerate_column_names=False) if names else (
        pacsv.ReadOptions()
    )
    try:
        probe = pacsv.open_csv(path, read_options=read_options)
        column_names = probe.schema.names
        probe.close()
        convert = pacsv.ConvertOptions(column_types={name: pa.string() for name in column_names})
        return pacsv.read_csv(path, read_options=read_options, convert_options=convert)
    except pa.ArrowInvalid as error:
        expected = len(names) if names else None
        line, found, want = _find_ragged_line(path, expected)
        if line is not None:
            raise RealLogError(path, f"expected {want} fields, found {found}", line=line) from None
        raise RealLogError(path, f"not a readable CSV file: {error}") from None


def _find_ragged_line(path: Path, expected: int | None) -> tuple[int | None, int, int]:
    with path.open("r", encoding="utf-8", errors="replace", newline="") as handle:
        for line_number, row in enumerate(csv.reader(handle), start=1):
            if expected is None:
                expected = len(row)
                continue
            if row and len(row) != expected:
                return line_number, len(row), expected
    return None, 0, expected or 0


def _require_columns(path: Path, raw: pa.Table, needed) -> None:
    missing = [name for name in needed if name not in raw.column_names]
    if missing:
        raise RealLogError(
            path, f"missing column(s) {', '.join(missing)}; the header has {', '.join(raw.column_names)}", line=1
        )


def _parse_int(path: Path, raw: pa.Table, column: str, first_line: int) -> np.ndarray:
    values = raw[column]
    looks_integer = pc.match_substring_regex(values, r"^\s*[+-]?\d+\s*$")
    if not pc.all(looks_integer).as_py():
        bad = _first_false(looks_integer)
        raise RealLogError(path, f"expected an integer, got {values[bad].as_py()!r}", line=bad + first_line,
                           column=column)
    return pc.cast(pc.utf8_trim_whitespace(values), pa.int64()).to_numpy()


def _first_false(mask) -> int:
    array = np.asarray(mask.to_numpy(zero_copy_only=False) if hasattr(mask, "to_numpy") else mask)
    return int(np.flatnonzero(~array.astype(bool))[0])


def _is_date(year: int, month: int, day: int) -> bool:
    try:
        np.datetime64(f"{year:04d}-{month:02d}-{day:02d}")
        return True
    except ValueError:
        return False


def _assemble(
    path: Path,
    raw: pa.Table,
    *,
    first_line: int,
    user_column: str,
    item_column: str,
    timestamps: np.ndarray,
    event_column: str,
    event_map: Mapping[str, str],
    category_column: str | None,
    check_lines: bool = True,
) -> pa.Table:
    """Map events, drop rows of unmapped kinds, check ids are present, and build `REAL_LOG_SCHEMA`."""
    rows_read = raw.num_rows
    raw_events = raw[event_column]
    known = pc.is_in(raw_events, value_set=pa.array(list(event_map), pa.string()))
    if not pc.all(known).as_py():
        bad = _first_false(known)
        raise RealLogError(
            path,
            f"unknown event value {raw_events[bad].as_py()!r}; known: {', '.join(map(repr, event_map))}",
            line=bad + first_line if check_lines else None,
            column=event_column,
        )
    for column in (user_column, item_column):
        present = pc.not_equal(pc.utf8_length(pc.utf8_trim_whitespace(raw[column])), 0)
        if not pc.all(present).as_py():
            bad = _first_false(present)
            raise RealLogError(path, "empty id", line=bad + first_line if check_lines else None, column=column)
    mapped = pc.take(
        pa.array(list(event_map.values()), pa.string()),
        pc.index_in(raw_events, value_set=pa.array(list(event_map), pa.string())),
    )
    keep = pc.not_equal(mapped, DROP)
    category = (
        pc.if_else(pc.equal(raw[category_column], ""), pa.scalar(None, pa.string()), raw[category_column])
        if category_column
        else pa.nulls(rows_read, pa.string())
    )
    table = pa.table(
        {
            "user_id": raw[user_column],
            "item_id": raw[item_column],
            "timestamp": pa.array(np.asarray(timestamps, dtype=np.int64), pa.int64()),
            "ga4_event": mapped,
            "category": category,
        }
    ).filter(keep)
    return _with_counts(table.cast(REAL_LOG_SCHEMA), path, rows_read)


def _with_counts(table: pa.Table, path: Path, rows_read: int) -> pa.Table:
    metadata = dict(table.schema.metadata or {})
    metadata.update(
        {
            b"source": str(path).encode(),
            b"rows_read": str(rows_read).encode(),
            b"rows_dropped": str(rows_read - table.num_rows).encode(),
        }
    )
    return table.replace_schema_metadata(metadata)


__all__ = [
    "GA4_EVENTS",
    "LOG_FORMATS",
    "REAL_LOG_SCHEMA",
    "RealLogError",
    "parse_column_mapping",
    "parse_event_map",
    "read_real_log",
]
