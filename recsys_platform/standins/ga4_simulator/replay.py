"""Replay a real interaction log (see `real_logs`) as a GA4 export plus a product DB.

Every log row becomes one GA4 event of its mapped name with one item, by a logged-in user whose
`user_id` is the log's user id. Sessions are cut at 30 minutes of inactivity, as GA4 does; rows with
the same user and second keep their file order through microsecond offsets. Events are grouped into
property-local days, one shard per day. The product DB holds the items and users seen (prices are
synthetic but deterministic per item; categories come from the log when it has them) and one paid
order per purchase row, whose order_id is the purchase's transaction_id. Nothing is invented beyond
that: no extra events, no duplicates, no late re-exports, no intraday tables, no consent-denied pings, no
query strings (every event consented, on the web stream). Each shard has the columns of its date
(`ga4_schema.events_schema`): a 2017 log gives tables without the fields added since 2023. The product
DB is written in the simulator layout, with an empty erasure_requests table.
"""

from __future__ import annotations

import zlib
from datetime import date, datetime
from datetime import timezone as dt_timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recsys_platform.standins.ga4_simulator.behaviour import prefixed_ids
from recsys_platform.standins.ga4_simulator.export_store import write_shard
from recsys_platform.standins.ga4_simulator.ga4_rows import (
    CHANNELS,
    DEVICE_PROFILES,
    GEO_PROFILES,
    EventBatch,
    build_events_table,
)
from recsys_platform.standins.ga4_simulator.ga4_schema import shard_name
from recsys_platform.standins.ga4_simulator.product_store import write_product_db
from recsys_platform.standins.ga4_simulator.real_logs import REAL_LOG_SCHEMA
from recsys_platform.standins.ga4_simulator.timezones import zone

SESSION_GAP_SECONDS = 30 * 60
UNKNOWN_CATEGORY = "unknown"


def replay_log(log: pa.Table, export_db, product_db, property_id: str, timezone: str, seed: int = 0):
    """Write `log` (REAL_LOG_SCHEMA) as shards and a product DB; returns a list of per-day dicts."""
    if not log.schema.equals(REAL_LOG_SCHEMA, check_metadata=False):
        raise ValueError("a replayed log must have the columns of REAL_LOG_SCHEMA (use read_real_log)")
    if log.num_rows == 0:
        raise ValueError("the log has no interactions to replay")
    rng = np.random.default_rng([seed, 3])
    users, user_code = _encode(log.column("user_id"))
    items, item_code = _encode(log.column("item_id"))
    seconds = log.column("timestamp").to_numpy()
    order = np.lexsort((np.arange(log.num_rows), seconds, user_code))
    user_code, item_code, seconds = user_code[order], item_code[order], seconds[order]
    events = log.column("ga4_event").take(pa.array(order)).combine_chunks()
    n = len(order)

    same_user = np.r_[False, user_code[1:] == user_code[:-1]]
    new_session = ~same_user | (np.r_[0, np.diff(seconds)] > SESSION_GAP_SECONDS)
    session = np.cumsum(new_session) - 1
    session_first = np.flatnonzero(new_session)
    position = np.arange(n) - session_first[session]
    session_start = seconds[session_first][session]
    user_first = np.flatnonzero(~same_user)
    user_first_seen = seconds[user_first]  # per user code, as codes are sorted and every user appears
    session_number = session - session[user_first][user_code] + 1
    # Rows in the same second keep their order: +1 µs each.
    same_second = same_user & np.r_[False, seconds[1:] == seconds[:-1]]
    tie = np.arange(n) - np.maximum.accumulate(np.where(same_second, 0, np.arange(n)))
    micros = seconds * 1_000_000 + tie

    category_by_item = _category_by_item(log, order, item_code, len(items))
    price = _synthetic_prices(items)
    local_day = _local_days(seconds, timezone)
    pseudo_ids = pc.binary_join_element_wise(
        pa.array(1_000_000_000 + np.arange(len(users))).cast(pa.string()),
        pa.array(user_first_seen).cast(pa.string()), ".",
    )
    item_names = pc.binary_join_element_wise("Item ", items, "")

    is_purchase = pc.equal(events, "purchase").to_numpy(zero_copy_only=False)
    day_summaries = []
    orders, order_lines = [], []
    for day_number in np.unique(local_day):
        day = date.fromordinal(int(day_number))
        rows = np.flatnonzero(local_day == day_number)
        purchases = rows[is_purchase[rows]]
        order_ids = prefixed_ids(f"R{day:%Y%m%d}-", np.arange(1, len(purchases) + 1), 6)
        purchase_index = np.full(n, -1)
        purchase_index[purchases] = np.arange(len(purchases))
        codes = user_code[rows]
        batch = EventBatch(
            event_date=f"{day:%Y%m%d}",
            event_name=events.take(pa.array(rows)),
            event_timestamp=micros[rows],
            user_id=users.take(pa.array(codes)),
            user_pseudo_id=pseudo_ids.take(pa.array(codes)),
            user_first_touch_timestamp=user_first_seen[codes] * 1_000_000,
            session_id=session_start[rows],
            session_number=session_number[rows],
            engagement_time_msec=rng.integers(100, 30_000, len(rows)),
            page_path=pc.binary_join_element_wise("/products/", items.take(pa.array(item_code[rows])), ""),
            bundle_sequence_id=rows.astype(np.int64) + 1,
            server_timestamp_offset=rng.integers(50_000, 3_000_000, len(rows)),
            profile_index=codes % (len(DEVICE_PROFILES) * len(GEO_PROFILES)),
            first_channel_index=codes % len(CHANNELS),
            channel_index=session[rows] % len(CHANNELS),
            batch_event_index=position[rows],
            batch_page_id=session_start[rows] * 1_000,
            batch_ordering_id=position[rows] + 1,
            transaction_id=order_ids.take(pa.array(np.maximum(purchase_index[rows], 0),
                                                   mask=purchase_index[rows] < 0)) if len(purchases)
            else pa.nulls(len(rows), pa.string()),
            shipping_value=np.zeros(len(rows)),
            item_offsets=np.arange(len(rows) + 1),
            item_id=items.take(pa.array(item_code[rows])),
            item_name=item_names.take(pa.array(item_code[rows])),
            item_category=category_by_item.take(pa.array(item_code[rows])),
            item_category2=pa.nulls(len(rows), pa.string()),
            item_price=pa.array(price[item_code[rows]]),
            item_quantity=np.ones(len(rows), np.int64),
        )
        written = write_shard(export_db, property_id, day, [build_events_table(batch)])
        orders.append(pa.table({
            "order_id": order_ids,
            "user_id": users.take(pa.array(user_code[purchases])),
            "ordered_at": pa.array(micros[purchases], pa.timestamp("us")),
            "status": pa.repeat(pa.scalar("paid"), len(purchases)),
        }))
        order_lines.append(pa.table({
            "order_id": order_ids,
            "item_id": items.take(pa.array(item_code[purchases])),
            "quantity": pa.array(np.ones(len(purchases), np.int64)),
            "unit_price": pa.array(price[item_code[purchases]]),
        }))
        day_summaries.append({
            "day": day,
            "shard": shard_name(day),
            "events": written["row_count"],
            "users": len(np.unique(codes)),
            "items": len(np.unique(item_code[rows])),
            "orders": len(purchases),
        })

    first_seen_items = np.full(len(items), np.iinfo(np.int64).max)
    np.minimum.at(first_seen_items, item_code, seconds)
    write_product_db(
        product_db,
        pa.table({
            "item_id": items,
            "item_name": item_names,
            "price": pa.array(price),
            "category_l1": pc.fill_null(category_by_item, UNKNOWN_CATEGORY),
            "category_l2": pa.nulls(len(items), pa.string()),
            "is_available": pa.repeat(pa.scalar(True), len(items)),
            "created_at": pa.array(first_seen_items * 1_000_000, pa.timestamp("us")),
        }),
        pa.table({"user_id": users, "created_at": pa.array(user_first_seen * 1_000_000, pa.timestamp("us"))}),
        pa.concat_tables(orders),
        pa.concat_tables(order_lines),
        replace_orders=True,
    )
    return day_summaries


def _encode(values: pa.ChunkedArray) -> tuple[pa.Array, np.ndarray]:
    """Sorted distinct values and each row's index into them."""
    distinct = pc.unique(values)
    distinct = distinct.take(pc.sort_indices(distinct))
    return distinct, pc.index_in(values, value_set=distinct).to_numpy(zero_copy_only=False).astype(np.int64)


def _category_by_item(log: pa.Table, order: np.ndarray, item_code: np.ndarray, item_count: int) -> pa.Array:
    """The first category the log gives each item (null when it never gives one)."""
    categories = log.column("category").take(pa.array(order)).combine_chunks()
    known = np.flatnonzero(pc.is_valid(categories).to_numpy(zero_copy_only=False))
    first_row = np.full(item_count, -1)
    # Reverse assignment leaves the earliest row per item.
    first_row[item_code[known][::-1]] = known[::-1]
    return categories.take(pa.array(np.maximum(first_row, 0), mask=first_row < 0))


def _synthetic_prices(items: pa.Array) -> np.ndarray:
    """A stable price per item id between 5 and 200 (the logs carry no prices)."""
    checksums = np.array([zlib.crc32(item.encode()) for item in items.to_pylist()], dtype=np.int64)
    return np.round(5.0 + (checksums % 19_500) / 100.0, 2)


def _local_days(seconds: np.ndarray, timezone: str) -> np.ndarray:
    """Proleptic ordinal of each timestamp's property-local date (offsets looked up once per hour)."""
    tz = zone(timezone)
    hours, hour_index = np.unique(seconds // 3600, return_inverse=True)
    epoch = date(1970, 1, 1)
    offsets = np.array(
        [int(datetime.fromtimestamp(int(h) * 3600, dt_timezone.utc).astimezone(tz).utcoffset().total_seconds())
         for h in hours],
        dtype=np.int64,
    )
    local_seconds = seconds + offsets[hour_index]
    return epoch.toordinal() + local_seconds // 86_400

