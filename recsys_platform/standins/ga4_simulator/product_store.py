"""Writing the shop's product database (schema `product_db`) into its own DuckDB file.

The catalogue and the users are replaced whole; orders and order lines are upserted by order_id, so
simulating more days later adds to the orders already there (a replayed log replaces them instead).
One transaction per write.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from recsys_platform.standins.ga4_simulator.export_store import open_database

SCHEMA = "product_db"
ITEMS_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("item_name", pa.string()),
        ("price", pa.float64()),
        ("category_l1", pa.string()),
        ("category_l2", pa.string()),
        ("is_available", pa.bool_()),
        ("created_at", pa.timestamp("us")),
    ]
)
USERS_SCHEMA = pa.schema([("user_id", pa.string()), ("created_at", pa.timestamp("us"))])
ORDERS_SCHEMA = pa.schema(
    [("order_id", pa.string()), ("user_id", pa.string()), ("ordered_at", pa.timestamp("us")),
     ("status", pa.string())]
)
ORDER_ITEMS_SCHEMA = pa.schema(
    [("order_id", pa.string()), ("item_id", pa.string()), ("quantity", pa.int64()), ("unit_price", pa.float64())]
)


def write_product_db(
    path: Path | str,
    items: pa.Table,
    users: pa.Table,
    orders: pa.Table,
    order_items: pa.Table,
    replace_orders: bool = False,
) -> None:
    """Replace items and users; upsert orders and their lines, or replace them too (timestamps naive UTC)."""
    tables = {
        "items": items.cast(ITEMS_SCHEMA),
        "users": users.cast(USERS_SCHEMA),
        "orders": orders.cast(ORDERS_SCHEMA),
        "order_items": order_items.cast(ORDER_ITEMS_SCHEMA),
    }
    with open_database(path) as connection:
        # The file's catalog is also called product_db: qualify names fully to stay unambiguous.
        schema = f'"{connection.execute("SELECT current_database()").fetchone()[0]}".{SCHEMA}'
        connection.execute("BEGIN TRANSACTION")
        try:
            connection.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            for name, table in tables.items():
                connection.register(f"new_{name}", table)
            connection.execute(f"CREATE OR REPLACE TABLE {schema}.items AS SELECT * FROM new_items")
            connection.execute(f"CREATE OR REPLACE TABLE {schema}.users AS SELECT * FROM new_users")
            for name in ("orders", "order_items"):
                if replace_orders:
                    connection.execute(f"DROP TABLE IF EXISTS {schema}.{name}")
                connection.execute(
                    f"CREATE TABLE IF NOT EXISTS {schema}.{name} AS SELECT * FROM new_{name} LIMIT 0")
                connection.execute(
                    f"DELETE FROM {schema}.{name} WHERE order_id IN (SELECT order_id FROM new_orders)"
                )
                connection.execute(f"INSERT INTO {schema}.{name} SELECT * FROM new_{name}")
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
