"""Tiny, hand-written GA4 export shards and product DB tables for exact assertions.

Only the export columns the platform reads are written; the simulator writes the full schema."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pyarrow as pa

PROPERTY_ID = "123456789"
TIMEZONE = "Asia/Seoul"

_PARAM = pa.struct([
    ("key", pa.string()),
    ("value", pa.struct([("string_value", pa.string()), ("int_value", pa.int64()),
                         ("float_value", pa.float64()), ("double_value", pa.float64())])),
])
_ITEM = pa.struct([
    ("item_id", pa.string()), ("item_name", pa.string()), ("item_category", pa.string()),
    ("item_category2", pa.string()), ("price", pa.float64()), ("quantity", pa.int64()),
    ("item_revenue", pa.float64()),
])
SHARD_SCHEMA = pa.schema([
    ("event_date", pa.string()),
    ("event_timestamp", pa.int64()),
    ("event_name", pa.string()),
    ("event_params", pa.list_(_PARAM)),
    ("event_previous_timestamp", pa.int64()),
    ("event_bundle_sequence_id", pa.int64()),
    ("event_server_timestamp_offset", pa.int64()),
    ("user_id", pa.string()),
    ("user_pseudo_id", pa.string()),
    ("user_first_touch_timestamp", pa.int64()),
    ("device", pa.struct([("category", pa.string())])),
    ("geo", pa.struct([("country", pa.string())])),
    ("traffic_source", pa.struct([("name", pa.string()), ("medium", pa.string()), ("source", pa.string())])),
    ("stream_id", pa.string()),
    ("platform", pa.string()),
    ("ecommerce", pa.struct([("transaction_id", pa.string()), ("purchase_revenue", pa.float64())])),
    ("items", pa.list_(_ITEM)),
])
# The same with the fields of a 2024 export: consent (privacy_info) and the batch fields GA4 added in July 2024.
BATCHED_SHARD_SCHEMA = pa.schema([
    *SHARD_SCHEMA,
    ("privacy_info", pa.struct([("analytics_storage", pa.string()), ("ads_storage", pa.string()),
                                ("uses_transient_token", pa.string())])),
    ("batch_event_index", pa.int64()),
    ("batch_page_id", pa.int64()),
    ("batch_ordering_id", pa.int64()),
])
TABLE_PREFIXES = {"daily": "events_", "intraday": "events_intraday_", "fresh": "events_fresh_"}


def micros(day: dt.date, hour: int, minute: int = 0, second: int = 0) -> int:
    local = dt.datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=ZoneInfo(TIMEZONE))
    return int(local.timestamp() * 1_000_000)


def event(day: dt.date, hour: int, name: str, pseudo: str, *, user_id: str | None = None, session: int = 1,
          items: list[dict] | None = None, transaction_id: str | None = None, minute: int = 0,
          second: int = 0, **overrides) -> dict:
    row = {
        "event_date": day.strftime("%Y%m%d"),
        "event_timestamp": micros(day, hour, minute, second),
        "event_name": name,
        "event_params": [
            {"key": "ga_session_id", "value": {"string_value": None, "int_value": session,
                                               "float_value": None, "double_value": None}},
            {"key": "page_location", "value": {"string_value": f"https://shop.example/{name}",
                                               "int_value": None, "float_value": None, "double_value": None}},
        ],
        "event_previous_timestamp": None,
        "event_bundle_sequence_id": 1,
        "event_server_timestamp_offset": None,
        "user_id": user_id,
        "user_pseudo_id": pseudo,
        "user_first_touch_timestamp": None,
        "device": {"category": "mobile"},
        "geo": {"country": "South Korea"},
        "traffic_source": {"name": "(direct)", "medium": "(none)", "source": "(direct)"},
        "stream_id": "1000",
        "platform": "WEB",
        "ecommerce": {"transaction_id": transaction_id, "purchase_revenue": None},
        "items": [
            {"item_id": it.get("item_id"), "item_name": it.get("item_name", "name"), "item_category": "c1",
             "item_category2": "c2", "price": it.get("price", 10.0), "quantity": it.get("quantity", 1),
             "item_revenue": it.get("item_revenue")}
            for it in (items or [])
        ],
    }
    row.update(overrides)
    return row


def write_shard(export_db: Path, day: dt.date, events: list[dict], property_id: str = PROPERTY_ID,
                kind: str = "daily", schema: pa.Schema = SHARD_SCHEMA, last_modified_ms: int | None = None) -> None:
    """Write (or rewrite) one day's table (daily, intraday or fresh) in the property's dataset and bump its row
    in `__TABLES__`, as GA4 does (`last_modified_ms` sets the modification time instead)."""
    table = pa.Table.from_pylist(events, schema=schema)
    dataset = f"analytics_{property_id}"
    name = f"{TABLE_PREFIXES[kind]}{day.strftime('%Y%m%d')}"
    now_ms = int(time.time() * 1000)
    with duckdb.connect(str(export_db)) as con:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {dataset}")
        con.execute(
            f'CREATE TABLE IF NOT EXISTS {dataset}."__TABLES__" (project_id VARCHAR, dataset_id VARCHAR, '
            "table_id VARCHAR, creation_time BIGINT, last_modified_time BIGINT, row_count BIGINT, "
            "size_bytes BIGINT, type INTEGER)"
        )
        previous = con.execute(
            f'SELECT max(last_modified_time) FROM {dataset}."__TABLES__" WHERE table_id = ?', [name]
        ).fetchall()[0][0]
        modified = last_modified_ms if last_modified_ms is not None else max(now_ms, (previous or 0) + 1)
        con.register("shard_rows", table)
        con.execute(f"CREATE OR REPLACE TABLE {dataset}.{name} AS SELECT * FROM shard_rows")
        con.execute(f'DELETE FROM {dataset}."__TABLES__" WHERE table_id = ?', [name])
        con.execute(
            f'INSERT INTO {dataset}."__TABLES__" VALUES (?, ?, ?, ?, ?, ?, 0, 1)',
            ["local", dataset, name, modified, modified, len(events)],
        )


def write_product_db(product_db: Path, orders: list[dict], items: list[str], users: list[str]) -> None:
    """orders: {order_id, user_id, ordered_at (aware datetime), status, lines: [(item_id, qty, price)]}."""
    with duckdb.connect() as con:
        # Attached under a neutral name: the file stem equals the schema name, which DuckDB finds ambiguous.
        con.execute("ATTACH ? AS db", [str(product_db)])
        con.execute("CREATE SCHEMA IF NOT EXISTS db.product_db")
        con.execute("CREATE OR REPLACE TABLE db.product_db.items (item_id VARCHAR, item_name VARCHAR, price DOUBLE, "
                    "category_l1 VARCHAR, category_l2 VARCHAR, is_available BOOLEAN, created_at TIMESTAMP)")
        con.execute("CREATE OR REPLACE TABLE db.product_db.users (user_id VARCHAR, created_at TIMESTAMP)")
        con.execute("CREATE OR REPLACE TABLE db.product_db.orders (order_id VARCHAR, user_id VARCHAR, "
                    "ordered_at TIMESTAMP, status VARCHAR)")
        con.execute("CREATE OR REPLACE TABLE db.product_db.order_items (order_id VARCHAR, item_id VARCHAR, "
                    "quantity BIGINT, unit_price DOUBLE)")
        for item in items:
            con.execute("INSERT INTO db.product_db.items VALUES (?, ?, 10.0, 'c1', 'c2', true, TIMESTAMP '2025-01-01')",
                        [item, f"name {item}"])
        for user in users:
            con.execute("INSERT INTO db.product_db.users VALUES (?, TIMESTAMP '2025-01-01')", [user])
        for order in orders:
            utc = order["ordered_at"].astimezone(dt.timezone.utc).replace(tzinfo=None)
            con.execute("INSERT INTO db.product_db.orders VALUES (?, ?, ?, ?)",
                        [order["order_id"], order["user_id"], utc, order.get("status", "paid")])
            for item_id, quantity, price in order["lines"]:
                con.execute("INSERT INTO db.product_db.order_items VALUES (?, ?, ?, ?)",
                            [order["order_id"], item_id, quantity, price])


def drop_table(export_db: Path, table_id: str, property_id: str = PROPERTY_ID) -> None:
    """GA4 deletes a day's intraday table once its daily table is complete."""
    dataset = f"analytics_{property_id}"
    with duckdb.connect(str(export_db)) as con:
        con.execute(f"DROP TABLE IF EXISTS {dataset}.{table_id}")
        con.execute(f'DELETE FROM {dataset}."__TABLES__" WHERE table_id = ?', [table_id])
