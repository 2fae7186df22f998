"""Writing the GA4 export into a DuckDB file: shards, the `__TABLES__` listing, locks.

DuckDB lets one process open a file while it writes, so every write here opens the file, writes one
shard and closes it, retrying with backoff while another process holds the lock. A shard is built
under a temporary name and swapped in by one transaction, so a reader never sees it half written, and
every write upserts the shard's row in `__TABLES__` (BigQuery's meta-table), which is how the platform
lists shards in one query.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import time
from collections.abc import Iterable, Iterator
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa

from recsys_platform.standins.ga4_simulator.ga4_schema import EVENTS_SCHEMA, dataset_name, shard_name

TABLES_META = '"__TABLES__"'
LOCAL_PROJECT_ID = "local"
TABLE_TYPE = 1  # BigQuery's __TABLES__.type for a table
_BUILDING_PREFIX = "building__"  # not events_*: never mistaken for a shard


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


def write_shard(path: Path | str, property_id: str, day: date, chunks: Iterable[pa.Table]) -> dict:
    """Replace the day's shard with the rows of `chunks` (Arrow tables in `EVENTS_SCHEMA`), atomically.

    The rows go into a building table (a name the platform never reads), one short connection per
    chunk, so other processes (the platform's sensor and runs) can open the file between chunks and
    memory stays bounded; one final transaction swaps the building table in and upserts `__TABLES__`.
    Returns the shard's new `__TABLES__` row.
    """
    table = shard_name(day)
    dataset = dataset_name(property_id)
    building = f"{dataset}.{_BUILDING_PREFIX}{os.getpid()}__{table}"
    with open_database(path) as connection:
        ensure_dataset(connection, property_id)
        connection.execute(f"DROP TABLE IF EXISTS {building}")
        connection.execute(f"CREATE TABLE {building} ({_column_ddl()})")
    size_bytes = 0
    try:
        for chunk in chunks:
            _check_schema(chunk)
            with open_database(path) as connection:
                connection.register("shard_chunk", chunk)
                connection.execute(f"INSERT INTO {building} SELECT * FROM shard_chunk")
                connection.unregister("shard_chunk")
            size_bytes += chunk.nbytes
        with open_database(path) as connection:
            connection.execute("BEGIN TRANSACTION")
            try:
                connection.execute(f"DROP TABLE IF EXISTS {dataset}.{table}")
                connection.execute(f"ALTER TABLE {building} RENAME TO {table}")
                row = _upsert_tables_row(connection, dataset, table, size_bytes=size_bytes)
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
    except BaseException:
        with open_database(path) as connection:
            connection.execute(f"DROP TABLE IF EXISTS {building}")
        raise
    return row


def append_to_shard(path: Path | str, property_id: str, day: date, rows: pa.Table) -> dict:
    """Add rows to an existing shard in one transaction (a re-export) and bump its last_modified_time."""
    with open_database(path) as connection:
        return append_rows(connection, property_id, day, rows, path)


def append_rows(connection, property_id: str, day: date, rows: pa.Table, path: Path | str = "") -> dict:
    """`append_to_shard` on an open connection (for callers that read the shard first)."""
    _check_schema(rows)
    dataset = ensure_dataset(connection, property_id)
    table = shard_name(day)
    require_shard(connection, dataset, table, path)
    connection.execute("BEGIN TRANSACTION")
    try:
        connection.register("late_rows", rows)
        connection.execute(f"INSERT INTO {dataset}.{table} SELECT * FROM late_rows")
        connection.unregister("late_rows")
        row = _upsert_tables_row(connection, dataset, table, size_bytes_added=rows.nbytes)
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return row


def drop_shard(path: Path | str, property_id: str, day: date) -> None:
    """Remove a day's shard and its `__TABLES__` row (as if GA4 never exported that day)."""
    with open_database(path) as connection:
        dataset = ensure_dataset(connection, property_id)
        table = shard_name(day)
        require_shard(connection, dataset, table, path)
        connection.execute("BEGIN TRANSACTION")
        connection.execute(f"DROP TABLE {dataset}.{table}")
        connection.execute(f"DELETE FROM {dataset}.{TABLES_META} WHERE table_id = ?", [table])
        connection.execute("COMMIT")


def list_shards(path: Path | str, property_id: str) -> list[dict]:
    """The export's `__TABLES__` rows, oldest shard first."""
    with open_database(path, read_only=True) as connection:
        dataset = dataset_name(property_id)
        result = connection.execute(f"SELECT * FROM {dataset}.{TABLES_META} ORDER BY table_id")
        names = [d[0] for d in result.description]
        return [dict(zip(names, row)) for row in result.fetchall()]


def read_shard(path: Path | str, property_id: str, day: date) -> pa.Table:
    with open_database(path, read_only=True) as connection:
        return connection.sql(f"SELECT * FROM {dataset_name(property_id)}.{shard_name(day)}").to_arrow_table()


def require_shard(connection, dataset: str, table: str, path) -> None:
    found = connection.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [dataset, table],
    ).fetchone()[0]
    if not found:
        raise LookupError(f"GA4 export {path} has no shard {dataset}.{table}")


def _upsert_tables_row(connection, dataset: str, table: str, size_bytes: int | None = None,
                       size_bytes_added: int = 0) -> dict:
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
    row_count = connection.execute(f"SELECT count(*) FROM {dataset}.{table}").fetchone()[0]
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


def _check_schema(table: pa.Table) -> None:
    if not table.schema.equals(EVENTS_SCHEMA, check_metadata=False):
        raise ValueError("rows for a GA4 export shard must have exactly the GA4 export schema (EVENTS_SCHEMA)")


@functools.cache
def _column_ddl() -> str:
    """CREATE TABLE columns for `EVENTS_SCHEMA`, derived through DuckDB's own Arrow type mapping."""
    probe = duckdb.connect()
    try:
        empty = EVENTS_SCHEMA.empty_table()
        probe.register("empty_events", empty)
        described = probe.execute("DESCRIBE SELECT * FROM empty_events").fetchall()
    finally:
        probe.close()
    return ", ".join(f'"{name}" {kind}' for name, kind, *_ in described)
