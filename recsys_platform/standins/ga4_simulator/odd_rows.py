"""Odd rows a production day brings, planted one at a time into an existing export or product DB.

For fault-injection tests: each function plants ONE oddity, the way it reaches a real warehouse, and
returns what it changed (the table's new `__TABLES__` row, or the planted row). Export changes are
rewrites of a table, so they bump its `last_modified_time` as a GA4 re-export does (a sensor keyed on it
sees them). Nothing here runs unless a caller asks for it.

    order_with_null_order_id     product DB: a cancelled order whose order id is NULL
    out_of_range_timestamps      two events with event_timestamp negative and in the year 294247
    malformed_event_date         a few events whose event_date is not YYYYMMDD
    drop_items_column            a table without the `items` column (schema drift)
    empty_reexport               a re-export that leaves the day with 0 rows
    shrunk_reexport              a re-export that leaves 10% of the day's rows
    invalid_date_table           a table named events_20260230 (a date that does not exist)
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from recsys_platform.standins.ga4_simulator.export_store import (
    TABLES_META,
    ensure_dataset,
    open_database,
    require_shard,
    table_exists,
    touch_table,
)
from recsys_platform.standins.ga4_simulator.ga4_schema import DAILY, table_name
from recsys_platform.standins.ga4_simulator.product_store import DATASTREAM, TABLE_NAMES, product_table

NEGATIVE_TIMESTAMP_US = -86_400_000_000  # 1969-12-31: a device clock (or a bug) gone wrong
# 294247-01-01T00:00:00Z in µs: near the top of int64 µs (DuckDB's and BigQuery's TIMESTAMP end in 294247
# and 9999 respectively), as a client sending nanoseconds or garbage produces.
YEAR_294247_TIMESTAMP_US = 9_223_371_244_800_000_000
INVALID_DATE_TABLE = "events_20260230"


def order_with_null_order_id(product_db: Path | str, status: str = "cancelled") -> dict:
    """Add an order whose order id is NULL (status cancelled, no lines), in either replica layout: a
    row the source DB's bookkeeping left half-written. Returns the planted row."""
    with open_database(product_db) as connection:
        orders = product_table(connection, "orders")
        layout_is_datastream = orders.endswith(TABLE_NAMES[DATASTREAM]["orders"])
        if layout_is_datastream:
            connection.execute(
                f"""INSERT INTO {orders} SELECT NULL, user_id, ordered_at, ?,
                        struct_pack(uuid := '00000000-0000-0000-0000-000000000000',
                                    source_timestamp := epoch_ms(ordered_at))
                    FROM {orders} WHERE id IS NOT NULL ORDER BY ordered_at DESC, id LIMIT 1""", [status])
            row = connection.execute(f"SELECT id, user_id, ordered_at, status FROM {orders} WHERE id IS NULL").fetchone()
        else:
            connection.execute(
                f"""INSERT INTO {orders} SELECT NULL, user_id, ordered_at, ? FROM {orders}
                    WHERE order_id IS NOT NULL ORDER BY ordered_at DESC, order_id LIMIT 1""", [status])
            row = connection.execute(
                f"SELECT order_id, user_id, ordered_at, status FROM {orders} WHERE order_id IS NULL").fetchone()
    return dict(zip(("order_id", "user_id", "ordered_at", "status"), row))


def out_of_range_timestamps(export_db: Path | str, property_id: str, day: date, kind: str = DAILY) -> dict:
    """Rewrite two of the day's events: one with a negative event_timestamp, one in the year 294247
    (both fit INT64 microseconds; neither is the day). Returns the table's new `__TABLES__` row."""
    def rewrite(connection, table):
        first_two = f"SELECT rowid FROM {table} WHERE event_name = 'view_item' ORDER BY rowid LIMIT 2"
        rows = [r[0] for r in connection.execute(first_two).fetchall()]
        if len(rows) < 2:
            raise LookupError(f"{table} has fewer than two view_item events to rewrite")
        connection.execute(f"UPDATE {table} SET event_timestamp = ? WHERE rowid = ?", [NEGATIVE_TIMESTAMP_US, rows[0]])
        connection.execute(f"UPDATE {table} SET event_timestamp = ? WHERE rowid = ?",
                           [YEAR_294247_TIMESTAMP_US, rows[1]])
    return _rewrite(export_db, property_id, table_name(day, kind), rewrite)


def malformed_event_date(export_db: Path | str, property_id: str, day: date, value: str | None = None,
                         rows: int = 3, kind: str = DAILY) -> dict:
    """Rewrite `rows` of the day's events with an event_date that is not YYYYMMDD (by default the ISO
    form '2026-03-01' a hand-made backfill writes). Returns the table's new `__TABLES__` row."""
    value = f"{day:%Y-%m-%d}" if value is None else value

    def rewrite(connection, table):
        connection.execute(f"UPDATE {table} SET event_date = ? WHERE rowid IN "
                           f"(SELECT rowid FROM {table} ORDER BY rowid LIMIT ?)", [value, rows])
    return _rewrite(export_db, property_id, table_name(day, kind), rewrite)


def drop_items_column(export_db: Path | str, property_id: str, day: date, kind: str = DAILY) -> dict:
    """Rewrite the day's table without its `items` column: schema drift (a table of another schema, as
    a broken export or a hand-made copy produces). Returns the table's new `__TABLES__` row."""
    def rewrite(connection, table):
        connection.execute(f"ALTER TABLE {table} DROP COLUMN items")
    return _rewrite(export_db, property_id, table_name(day, kind), rewrite)


def empty_reexport(export_db: Path | str, property_id: str, day: date, kind: str = DAILY) -> dict:
    """Re-export the day with 0 rows (the table stays, its `__TABLES__` row is bumped with row_count 0)."""
    def rewrite(connection, table):
        connection.execute(f"DELETE FROM {table}")
    return _rewrite(export_db, property_id, table_name(day, kind), rewrite, size_share=0.0)


def shrunk_reexport(export_db: Path | str, property_id: str, day: date, keep_share: float = 0.1,
                    seed: int = 0, kind: str = DAILY) -> dict:
    """Re-export the day with only `keep_share` of its rows (rounded, at least one), chosen by a seeded
    hash so the same call keeps the same rows. Returns the table's new `__TABLES__` row."""
    if not 0 < keep_share < 1:
        raise ValueError(f"keep_share must be in (0, 1), got {keep_share}")

    def rewrite(connection, table):
        total = connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        keep = max(1, round(total * keep_share))
        connection.execute(f"DELETE FROM {table} WHERE rowid NOT IN "
                           f"(SELECT rowid FROM {table} ORDER BY hash(rowid + ?), rowid LIMIT ?)", [seed, keep])
    return _rewrite(export_db, property_id, table_name(day, kind), rewrite, size_share=keep_share)


def invalid_date_table(export_db: Path | str, property_id: str, source_day: date, name: str = INVALID_DATE_TABLE,
                       rows: int = 10) -> dict:
    """Add a table whose name is `events_` and a date that does not exist (February 30th), holding
    `rows` events copied from the daily table of `source_day` with their event_date set to the name's
    suffix, and list it in `__TABLES__`. Returns its `__TABLES__` row."""
    with open_database(export_db) as connection:
        dataset = ensure_dataset(connection, property_id)
        source = table_name(source_day, DAILY)
        require_shard(connection, dataset, source, export_db)
        if table_exists(connection, dataset, name):
            raise ValueError(f"{dataset}.{name} exists already")
        suffix = name.rsplit("_", 1)[-1]
        connection.execute("BEGIN TRANSACTION")
        try:
            connection.execute(f'CREATE TABLE {dataset}."{name}" AS SELECT * REPLACE (? AS event_date) '
                               f"FROM {dataset}.{source} ORDER BY rowid LIMIT ?", [suffix, rows])
            row = touch_table(connection, dataset, name, size_bytes=rows * 2_000)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
    return row


def _rewrite(export_db, property_id: str, table: str, rewrite, size_share: float | None = None) -> dict:
    """Apply `rewrite(connection, qualified_table)` and bump the table's `__TABLES__` row, in one
    transaction."""
    with open_database(export_db) as connection:
        dataset = ensure_dataset(connection, property_id)
        require_shard(connection, dataset, table, export_db)
        qualified = f'{dataset}."{table}"'
        size = connection.execute(f"SELECT size_bytes FROM {dataset}.{TABLES_META} WHERE table_id = ?",
                                  [table]).fetchone()
        connection.execute("BEGIN TRANSACTION")
        try:
            rewrite(connection, qualified)
            new_size = None if size is None or size_share is None else int(size[0] * size_share)
            row = touch_table(connection, dataset, table, size_bytes=new_size)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
    return row
