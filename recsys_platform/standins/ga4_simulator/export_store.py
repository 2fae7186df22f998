"""Writing the GA4 export into a DuckDB file: tables of each kind, the `__TABLES__` listing, locks.

DuckDB lets one process open a file while it writes, so every write here opens the file, writes one
chunk or one table and closes it, retrying with backoff while another process holds the lock. A table is
built under a temporary name and swapped in by one transaction, so a reader never sees it half written,
and every write upserts the table's row in `__TABLES__` (BigQuery's meta-table, listing every table of
the dataset: daily, intraday and fresh alike, each with its own times), which is how the platform lists
shards in one query. One stream of chunks can feed several tables at once (a day's daily, intraday and
fresh tables, in one or several properties' datasets), each shaped to its own date and kind.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa

from recsys_platform.standins.ga4_simulator.ga4_schema import (
    DAILY,
    EVENTS_SCHEMA,
    INTRADAY,
    TABLE_KINDS,
    dataset_name,
    events_schema,
    parse_table_name,
    table_name,
)

TABLES_META = '"__TABLES__"'
LOCAL_PROJECT_ID = "local"
TABLE_TYPE = 1  # BigQuery's __TABLES__.type for a table
_BUILDING_PREFIX = "building__"  # not events_*: never mistaken for a shard
# Streaming tables are swapped in before the processed ones of the same day.
_SWAP_ORDER = {INTRADAY: 0, "fresh": 1, DAILY: 2}


@dataclass(frozen=True)
class TableTarget:
    """One table a day's chunks go to: a property's daily, intraday or fresh table."""

    property_id: str
    kind: str = DAILY


def is_lock_error(error: BaseException) -> bool:
    return isinstance(error, duckdb.IOException) and "Could not set lock" in str(error)


def connect_with_retry(path: Path | str, read_only: bool = False, timeout_seconds: float = 120.0):
    """Open a DuckDB file, waiting with exponential backoff (and jitter) while another process holds it."""
    deadline = time.monotonic() + timeout_seconds
    delay = 0.05
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as error:
            if not is_lock_error(error) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, 2.0)


@contextlib.contextmanager
def open_database(path: Path | str, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived connection to a DuckDB file (created with its folder when writing)."""
    if not read_only:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    connection = connect_with_retry(path, read_only=read_only)
    connection.execute("SET enable_progress_bar = false")
    try:
        yield connection
    finally:
        connection.close()


def ensure_dataset(connection, property_id: str) -> str:
    dataset = dataset_name(property_id)
    connection.execute(f"CREATE SCHEMA IF NOT EXISTS {dataset}")
    connection.execute(
        f"""CREATE TABLE IF NOT EXISTS {dataset}.{TABLES_META} (
            project_id VARCHAR, dataset_id VARCHAR, table_id VARCHAR, creation_time BIGINT,
            last_modified_time BIGINT, row_count BIGINT, size_bytes BIGINT, type INTEGER)"""
    )
    return dataset


def write_shard(path: Path | str, property_id: str, day: date, chunks: Iterable[pa.Table],
                kind: str = DAILY) -> dict:
    """Replace the day's `kind` table with the rows of `chunks`, atomically; returns its `__TABLES__` row.

    Chunks are Arrow tables in `EVENTS_SCHEMA` (shaped here to the table's date and kind) or already in
    `events_schema(day, kind)`. The rows go into a building table (a name the platform never reads), one
    short connection per chunk, so other processes (the platform's sensor and runs) can open the file
    between chunks and memory stays bounded; one final transaction swaps the building table in and
    upserts `__TABLES__`.
    """
    rows = write_tables(path, day, ({property_id: chunk} for chunk in chunks), [TableTarget(property_id, kind)])
    return rows[TableTarget(property_id, kind)]


def write_tables(
    path: Path | str,
    day: date,
    chunks: Iterable[Mapping[str, pa.Table]],
    targets: Sequence[TableTarget],
    daily_limit: int | None = None,
) -> dict[TableTarget, dict | None]:
    """Write one day's tables from one stream of chunks (each a mapping property id -> rows).

    Every target receives its property's rows, shaped to its date and kind. A daily table that would
    hold more than `daily_limit` rows is not created (a standard property's daily export stops at its
    limit; the streaming export has none). Each dataset's tables are swapped in by one transaction,
    streaming tables first. Returns each target's `__TABLES__` row, or None for a table not created.
    """
    for target in targets:
        if target.kind not in TABLE_KINDS:
            raise ValueError(f"table kind must be one of {TABLE_KINDS}, got {target.kind!r}")
    building = {t: f"{dataset_name(t.property_id)}.{_BUILDING_PREFIX}{os.getpid()}__{table_name(day, t.kind)}"
                for t in targets}
    with open_database(path) as connection:
        for target in targets:
            ensure_dataset(connection, target.property_id)
            connection.execute(f"DROP TABLE IF EXISTS {building[target]}")
            connection.execute(f"CREATE TABLE {building[target]} ({column_ddl(events_schema(day, target.kind))})")
    sizes = dict.fromkeys(targets, 0)
    counts = dict.fromkeys(targets, 0)
    try:
        for chunk in chunks:
            shaped = {}
            for target in targets:
                rows = chunk.get(target.property_id)
                if rows is not None and rows.num_rows:
                    shaped[target] = shape_rows(rows, day, target.kind)
            if not shaped:
                continue
            with open_database(path) as connection:
                for target, rows in shaped.items():
                    connection.register("table_chunk", rows)
                    connection.execute(f"INSERT INTO {building[target]} SELECT * FROM table_chunk")
                    connection.unregister("table_chunk")
                    sizes[target] += rows.nbytes
                    counts[target] += rows.num_rows
        written: dict[TableTarget, dict | None] = {}
        by_dataset: dict[str, list[TableTarget]] = {}
        for target in sorted(targets, key=lambda t: _SWAP_ORDER[t.kind]):
            by_dataset.setdefault(target.property_id, []).append(target)
        for property_id, group in by_dataset.items():
            dataset = dataset_name(property_id)
            with open_database(path) as connection:
                connection.execute("BEGIN TRANSACTION")
                try:
                    for target in group:
                        if target.kind == DAILY and daily_limit is not None and counts[target] > daily_limit:
                            connection.execute(f"DROP TABLE {building[target]}")
                            written[target] = None
                            continue
                        table = table_name(day, target.kind)
                        connection.execute(f"DROP TABLE IF EXISTS {dataset}.{table}")
                        connection.execute(f"ALTER TABLE {building[target]} RENAME TO {table}")
                        written[target] = touch_table(connection, dataset, table, size_bytes=sizes[target])
                    connection.execute("COMMIT")
                except BaseException:
                    connection.execute("ROLLBACK")
                    raise
    except BaseException:
        with open_database(path) as connection:
            for name in building.values():
                connection.execute(f"DROP TABLE IF EXISTS {name}")
        raise
    return written


def shape_rows(rows: pa.Table, day: date, kind: str = DAILY) -> pa.Table:
    """`rows` (in `EVENTS_SCHEMA`, or already in the table's own schema) as the `kind` table dated `day`
    stores them: only the columns that table has on that date. Intraday rows have no session-scoped
    last-click record (it is computed in the daily processing, like `is_active_user`)."""
    target = events_schema(day, kind)
    if rows.schema.equals(target, check_metadata=False):
        return rows
    if not rows.schema.equals(EVENTS_SCHEMA, check_metadata=False):
        raise ValueError("rows for a GA4 export table must have exactly the GA4 export schema (EVENTS_SCHEMA, "
                         f"or the {kind} table's schema of {day:%Y-%m-%d})")
    shaped = rows.select(target.names)
    name = "session_traffic_source_last_click"
    if kind == INTRADAY and name in target.names:
        index = target.get_field_index(name)
        shaped = shaped.set_column(index, target.field(index), pa.nulls(rows.num_rows, target.field(index).type))
    return shaped


def append_to_shard(path: Path | str, property_id: str, day: date, rows: pa.Table, kind: str = DAILY) -> dict:
    """Add rows to an existing table in one transaction (a re-export) and bump its last_modified_time."""
    with open_database(path) as connection:
        return append_rows(connection, property_id, day, rows, path, kind)


def append_rows(connection, property_id: str, day: date, rows: pa.Table, path: Path | str = "",
                kind: str = DAILY) -> dict:
    """`append_to_shard` on an open connection (for callers that read the table first). `rows` must
    have exactly the table's columns (its date's schema, or whatever drift the table has)."""
    dataset = ensure_dataset(connection, property_id)
    table = table_name(day, kind)
    require_shard(connection, dataset, table, path)
    columns = [r[0] for r in connection.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
        "ORDER BY ordinal_position", [dataset, table]).fetchall()]
    if rows.schema.names != columns:
        raise ValueError(f"rows for {dataset}.{table} must have exactly its columns (the GA4 export schema "
                         f"of that table): {columns}")
    connection.execute("BEGIN TRANSACTION")
    try:
        connection.register("late_rows", rows)
        connection.execute(f"INSERT INTO {dataset}.{table} SELECT * FROM late_rows")
        connection.unregister("late_rows")
        row = touch_table(connection, dataset, table, size_bytes_added=rows.nbytes)
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return row


def drop_shard(path: Path | str, property_id: str, day: date, kind: str = DAILY) -> None:
    """Remove a day's table and its `__TABLES__` row (as if GA4 never exported it, or deleted it)."""
    drop_table(path, property_id, table_name(day, kind))


def drop_table(path: Path | str, property_id: str, table: str) -> None:
    """Remove an export table by name, with its `__TABLES__` row."""
    with open_database(path) as connection:
        dataset = ensure_dataset(connection, property_id)
        require_shard(connection, dataset, table, path)
        connection.execute("BEGIN TRANSACTION")
        connection.execute(f'DROP TABLE {dataset}."{table}"')
        connection.execute(f"DELETE FROM {dataset}.{TABLES_META} WHERE table_id = ?", [table])
        connection.execute("COMMIT")


def finish_streaming(path: Path | str, property_id: str, day: date) -> bool:
    """Delete the day's intraday table once its daily table is complete, as GA4 does ("This table is
    deleted at the end of each day once events_YYYYMMDD is complete"). Returns whether one was deleted;
    a day without a daily table (over the export limit) keeps its intraday table."""
    dataset = dataset_name(property_id)
    with open_database(path) as connection:
        ensure_dataset(connection, property_id)
        if not (table_exists(connection, dataset, table_name(day, DAILY))
                and table_exists(connection, dataset, table_name(day, INTRADAY))):
            return False
    drop_table(path, property_id, table_name(day, INTRADAY))
    return True


def list_shards(path: Path | str, property_id: str) -> list[dict]:
    """The export's `__TABLES__` rows (every table: daily, intraday, fresh), ordered by table_id."""
    with open_database(path, read_only=True) as connection:
        dataset = dataset_name(property_id)
        result = connection.execute(f"SELECT * FROM {dataset}.{TABLES_META} ORDER BY table_id")
        names = [d[0] for d in result.description]
        return [dict(zip(names, row)) for row in result.fetchall()]


def list_tables(path: Path | str, property_id: str, kind: str | None = None) -> list[str]:
    """Names of the export tables of one kind (or all export tables), as `__TABLES__` lists them."""
    names = [row["table_id"] for row in list_shards(path, property_id)]
    parsed = {name: parse_table_name(name) for name in names}
    return [name for name in names if parsed[name] and (kind is None or parsed[name][0] == kind)]


def read_shard(path: Path | str, property_id: str, day: date, kind: str = DAILY) -> pa.Table:
    with open_database(path, read_only=True) as connection:
        return connection.sql(f"SELECT * FROM {dataset_name(property_id)}.{table_name(day, kind)}").to_arrow_table()


def table_exists(connection, dataset: str, table: str) -> bool:
    return bool(connection.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [dataset, table],
    ).fetchone()[0])


def require_shard(connection, dataset: str, table: str, path) -> None:
    if not table_exists(connection, dataset, table):
        raise LookupError(f"GA4 export {path} has no shard {dataset}.{table}")


def touch_table(connection, dataset: str, table: str, size_bytes: int | None = None,
                size_bytes_added: int = 0) -> dict:
    """Upsert the table's `__TABLES__` row after a write: row count, size, and a strictly later
    last_modified_time (creation_time kept). Returns the row."""
    previous = connection.execute(
        f"SELECT creation_time, last_modified_time, size_bytes FROM {dataset}.{TABLES_META} WHERE table_id = ?",
        [table],
    ).fetchone()
    now_ms = time.time_ns() // 1_000_000
    creation_time = previous[0] if previous else now_ms
    # Strictly increasing, even for two rewrites within one millisecond: the sensor keys runs on it.
    last_modified = max(now_ms, previous[1] + 1) if previous else now_ms
    if size_bytes is None:
        size_bytes = (previous[2] if previous else 0) + size_bytes_added
    row_count = connection.execute(f'SELECT count(*) FROM {dataset}."{table}"').fetchone()[0]
    row = {
        "project_id": LOCAL_PROJECT_ID,
        "dataset_id": dataset,
        "table_id": table,
        "creation_time": int(creation_time),
        "last_modified_time": int(last_modified),
        "row_count": int(row_count),
        "size_bytes": int(size_bytes),
        "type": TABLE_TYPE,
    }
    connection.execute(f"DELETE FROM {dataset}.{TABLES_META} WHERE table_id = ?", [table])
    connection.execute(f"INSERT INTO {dataset}.{TABLES_META} VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       list(row.values()))
    return row


_DDL: dict[tuple[str, ...], str] = {}


def column_ddl(schema: pa.Schema = EVENTS_SCHEMA) -> str:
    """CREATE TABLE columns for an Arrow schema, derived through DuckDB's own Arrow type mapping."""
    key = tuple(schema.names)
    if key not in _DDL:
        probe = duckdb.connect()
        try:
            probe.register("empty_events", schema.empty_table())
            described = probe.execute("DESCRIBE SELECT * FROM empty_events").fetchall()
        finally:
            probe.close()
        _DDL[key] = ", ".join(f'"{name}" {kind}' for name, kind, *_ in described)
    return _DDL[key]
