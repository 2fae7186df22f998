"""A small synthetic shop in DuckDB files: interactions with every event type, and the product DB.

Shared by the chain's tests and its benchmark."""

import datetime as dt
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import pyarrow as pa

from recsys_platform.lib.warehouse.duckdb_engine import DuckDBWarehouse

TRAINING_DATE = "2026-02-28"
DAYS = 30
EVENT_TYPES = np.array(["view", "view", "view", "cart", "like", "purchase"])


def synthetic_interactions(n_users=120, n_items=60, n_events=4000, seed=7) -> pa.Table:
    """Users prefer one of four item clusters; every event type, spread over DAYS days."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, n_events)
    cluster = users % 4
    items = (cluster * (n_items // 4) + rng.integers(0, n_items // 4, n_events)) % n_items
    last = dt.date.fromisoformat(TRAINING_DATE)
    day_offsets = rng.integers(0, DAYS, n_events)
    seconds = rng.integers(0, 86_400, n_events)
    tz = ZoneInfo("Asia/Seoul")
    dates = [last - dt.timedelta(days=int(d)) for d in day_offsets]
    stamps = [
        int(dt.datetime.combine(day, dt.time(), tzinfo=tz).timestamp()) + int(s) for day, s in zip(dates, seconds)
    ]
    event_types = EVENT_TYPES[rng.integers(0, len(EVENT_TYPES), n_events)]
    return pa.table({
        "event_date": pa.array(dates, pa.date32()),
        "USER_ID": [f"u{u}" for u in users],
        "ITEM_ID": [f"i{i}" for i in items],
        "TIMESTAMP": pa.array(stamps, pa.int64()),
        "EVENT_TYPE": event_types.tolist(),
        "EVENT_VALUE": rng.uniform(1, 100, n_events).round(2),
        "source": ["ga4"] * n_events,
    })


def fill_warehouse(root, interactions: pa.Table, n_items=60, n_users=120) -> DuckDBWarehouse:
    root.mkdir(parents=True, exist_ok=True)
    platform = duckdb.connect(str(root / "warehouse.duckdb"))
    platform.execute("CREATE SCHEMA recsys")
    platform.register("interactions_arrow", interactions)
    platform.execute("CREATE TABLE recsys.interactions AS SELECT * FROM interactions_arrow")
    platform.close()
    product = duckdb.connect(str(root / "product_db.duckdb"))
    product.execute("CREATE SCHEMA product_db")
    product.execute(
        f"""CREATE TABLE product_db.product_db.items AS SELECT
              'i' || i AS item_id, 'Item ' || i AS item_name, 10.0 + i AS price,
              CASE WHEN i % 2 = 0 THEN 'Shoes' ELSE 'Bags|Totes' END AS category_l1,
              CASE WHEN i % 3 = 0 THEN NULL ELSE 'L2-' || (i % 5) END AS category_l2,
              i % 7 <> 0 AS is_available, TIMESTAMP '2025-06-01 00:00:00' + i * INTERVAL 1 HOUR AS created_at
            FROM range({n_items}) t(i)"""
    )
    product.execute(
        f"""CREATE TABLE product_db.product_db.users AS SELECT 'u' || u AS user_id,
              TIMESTAMP '2025-01-01 00:00:00' + u * INTERVAL 1 DAY AS created_at FROM range({n_users}) t(u)"""
    )
    product.close()
    return DuckDBWarehouse(
        warehouse_path=str(root / "warehouse.duckdb"),
        export_path=str(root / "ga4_export.duckdb"),
        product_db_path=str(root / "product_db.duckdb"),
        ga4_property_id="123456789",
    )
