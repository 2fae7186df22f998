"""Writing the shop's product database (schema `product_db`) into its own DuckDB file, in one of two layouts.

The catalogue and the users are replaced whole; orders and order lines are upserted by order id, so
simulating more days later adds to the orders already there (a replayed log replaces them instead);
erasure requests are upserted by (user_id, user_pseudo_id). One transaction per write. Timestamps are
naive UTC wall-clock times in both layouts.

Layout "simulator" (the default), tables in `product_db`:
    items(item_id VARCHAR, item_name VARCHAR, price DOUBLE, category_l1 VARCHAR, category_l2 VARCHAR,
          is_available BOOLEAN, created_at TIMESTAMP)
    users(user_id VARCHAR, created_at TIMESTAMP)
    orders(order_id VARCHAR, user_id VARCHAR, ordered_at TIMESTAMP, status VARCHAR)  -- 'paid' | 'cancelled'
    order_items(order_id VARCHAR, item_id VARCHAR, quantity BIGINT, unit_price DOUBLE)
    erasure_requests(user_id VARCHAR, user_pseudo_id VARCHAR, requested_at TIMESTAMP)
  Ids are prefixed strings, the same in GA4: user_id 'U0000042', items.item_id 'I000123',
  ecommerce.transaction_id = order_id 'O20260301-000012'.

Layout "datastream": what a Datastream replica of a MySQL shop database looks like in BigQuery: INT64
keys, MySQL DATETIME as TIMESTAMP without time zone, TINYINT(1) as INT64, DECIMAL kept, tables named
`<mysql schema>_<table>` (schema `shop`) and a `datastream_metadata` record on every row. Tables in
`product_db`:
    shop_items(id BIGINT, name VARCHAR, price DECIMAL(12,2), category_l1 VARCHAR, category_l2 VARCHAR,
               is_available BIGINT /* 0 or 1 */, created_at TIMESTAMP, datastream_metadata ...)
    shop_users(id BIGINT, created_at TIMESTAMP, datastream_metadata ...)
    shop_orders(id BIGINT, user_id BIGINT, ordered_at TIMESTAMP /* UTC wall-clock */, status VARCHAR,
                datastream_metadata ...)
    shop_order_items(order_id BIGINT, item_id BIGINT, quantity BIGINT, unit_price DECIMAL(12,2),
                     datastream_metadata ...)
    shop_erasure_requests(user_id BIGINT, user_pseudo_id VARCHAR, requested_at TIMESTAMP, datastream_metadata ...)
  where datastream_metadata is STRUCT(uuid VARCHAR, source_timestamp BIGINT /* epoch ms of the change */).
  GA4 carries the decimal strings of the INT64 ids: user_id '42', items.item_id '123',
  ecommerce.transaction_id '20260301000012' (an order id is YYYYMMDD * 1,000,000 + the day's number).

In both layouts an erasure request names a registered user (user_id and the pseudo id of their browser)
or only a browser (user_id NULL) whose owner asked for their data to be deleted.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from recsys_platform.standins.ga4_simulator.export_store import open_database

SCHEMA = "product_db"
SIMULATOR, DATASTREAM = "simulator", "datastream"
REPLICA_LAYOUTS = (SIMULATOR, DATASTREAM)
DATASTREAM_SOURCE_SCHEMA = "shop"  # the MySQL schema: Datastream names tables <schema>_<table>
# Logical table -> its name in each layout.
TABLE_NAMES = {
    SIMULATOR: {"items": "items", "users": "users", "orders": "orders", "order_items": "order_items",
                "erasure_requests": "erasure_requests"},
    DATASTREAM: {name: f"{DATASTREAM_SOURCE_SCHEMA}_{name}"
                 for name in ("items", "users", "orders", "order_items", "erasure_requests")},
}

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
ERASURE_REQUESTS_SCHEMA = pa.schema(
    [("user_id", pa.string()), ("user_pseudo_id", pa.string()), ("requested_at", pa.timestamp("us"))]
)

_METADATA_TYPE = "STRUCT(uuid VARCHAR, source_timestamp BIGINT)"
# Datastream replica tables as SELECTs over the simulator-shaped new_* tables.
_DATASTREAM_SELECT = {
    "items": """SELECT CAST(item_id AS BIGINT) AS id, item_name AS name, CAST(price AS DECIMAL(12,2)) AS price,
                       category_l1, category_l2, CAST(is_available AS BIGINT) AS is_available, created_at,
                       {metadata} AS datastream_metadata
                FROM new_items""",
    "users": """SELECT CAST(user_id AS BIGINT) AS id, created_at, {metadata} AS datastream_metadata FROM new_users""",
    "orders": """SELECT CAST(order_id AS BIGINT) AS id, CAST(user_id AS BIGINT) AS user_id, ordered_at, status,
                        {metadata} AS datastream_metadata
                 FROM new_orders""",
    "order_items": """SELECT CAST(l.order_id AS BIGINT) AS order_id, CAST(l.item_id AS BIGINT) AS item_id, l.quantity,
                             CAST(l.unit_price AS DECIMAL(12,2)) AS unit_price, {metadata} AS datastream_metadata
                      FROM new_order_items AS l LEFT JOIN new_orders AS o USING (order_id)""",
    "erasure_requests": """SELECT CAST(user_id AS BIGINT) AS user_id, user_pseudo_id, requested_at,
                                  {metadata} AS datastream_metadata
                           FROM new_erasure_requests""",
}
# (key expression, change time) of each table's rows, for their datastream_metadata.
_METADATA_SOURCE = {
    "items": ("item_id", "created_at"),
    "users": ("user_id", "created_at"),
    "orders": ("order_id", "ordered_at"),
    "order_items": ("l.order_id || '/' || l.item_id", "o.ordered_at"),
    "erasure_requests": ("coalesce(user_id, '') || '/' || coalesce(user_pseudo_id, '')", "requested_at"),
}


def write_product_db(
    path: Path | str,
    items: pa.Table,
    users: pa.Table,
    orders: pa.Table,
    order_items: pa.Table,
    replace_orders: bool = False,
    erasure_requests: pa.Table | None = None,
    layout: str = SIMULATOR,
) -> None:
    """Replace items and users; upsert orders and their lines (or replace them too) and erasure requests.

    Inputs are in the simulator layout's columns (timestamps naive UTC); `layout` says how the tables
    are stored (see the module docstring). The erasure requests table exists after any write, empty
    when there are none.
    """
    if layout not in REPLICA_LAYOUTS:
        raise ValueError(f"replica_layout must be one of {REPLICA_LAYOUTS}, got {layout!r}")
    if erasure_requests is None:
        erasure_requests = ERASURE_REQUESTS_SCHEMA.empty_table()
    tables = {
        "items": items.cast(ITEMS_SCHEMA),
        "users": users.cast(USERS_SCHEMA),
        "orders": orders.cast(ORDERS_SCHEMA),
        "order_items": order_items.cast(ORDER_ITEMS_SCHEMA),
        "erasure_requests": erasure_requests.cast(ERASURE_REQUESTS_SCHEMA),
    }
    names = TABLE_NAMES[layout]
    with open_database(path) as connection:
        # The file's catalog is also called product_db: qualify names fully to stay unambiguous.
        schema = f'"{connection.execute("SELECT current_database()").fetchone()[0]}".{SCHEMA}'
        connection.execute("BEGIN TRANSACTION")
        try:
            connection.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            for name, table in tables.items():
                connection.register(f"new_{name}", table)
                connection.execute(f"CREATE OR REPLACE TEMP VIEW stored_{name} AS {_stored(layout, name)}")
            for name in ("items", "users"):
                connection.execute(f"CREATE OR REPLACE TABLE {schema}.{names[name]} AS SELECT * FROM stored_{name}")
            key = "order_id" if layout == SIMULATOR else "id"
            for name in ("orders", "order_items"):
                target = f"{schema}.{names[name]}"
                if replace_orders:
                    connection.execute(f"DROP TABLE IF EXISTS {target}")
                connection.execute(f"CREATE TABLE IF NOT EXISTS {target} AS SELECT * FROM stored_{name} LIMIT 0")
                column = key if name == "orders" else "order_id"
                connection.execute(f"DELETE FROM {target} WHERE {column} IN (SELECT {key} FROM stored_orders)")
                connection.execute(f"INSERT INTO {target} SELECT * FROM stored_{name}")
            target = f"{schema}.{names['erasure_requests']}"
            connection.execute(f"CREATE TABLE IF NOT EXISTS {target} AS SELECT * FROM stored_erasure_requests LIMIT 0")
            connection.execute(
                f"DELETE FROM {target} AS t WHERE EXISTS (SELECT 1 FROM stored_erasure_requests AS n "
                "WHERE n.user_id IS NOT DISTINCT FROM t.user_id AND n.user_pseudo_id IS NOT DISTINCT FROM t.user_pseudo_id)")
            connection.execute(f"INSERT INTO {target} SELECT * FROM stored_erasure_requests")
            connection.execute("COMMIT")
        except duckdb.ConversionException as error:
            connection.execute("ROLLBACK")
            raise ValueError(f"the datastream layout stores INT64 ids, and an id is not an integer: {error}") from None
        except BaseException:
            connection.execute("ROLLBACK")
            raise


def product_table(connection, logical: str) -> str:
    """The fully qualified name of a logical product DB table ('orders', ...) in whichever layout the
    file holds (the datastream one when its tables exist)."""
    catalog = connection.execute("SELECT current_database()").fetchone()[0]
    found = {r[0] for r in connection.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [SCHEMA]).fetchall()}
    layout = DATASTREAM if TABLE_NAMES[DATASTREAM][logical] in found else SIMULATOR
    return f'"{catalog}".{SCHEMA}.{TABLE_NAMES[layout][logical]}'


def _stored(layout: str, name: str) -> str:
    if layout == SIMULATOR:
        return f"SELECT * FROM new_{name}"
    key, changed = _METADATA_SOURCE[name]
    digest = f"md5('{name}/' || {key})"
    uuid = (f"concat_ws('-', substr({digest}, 1, 8), substr({digest}, 9, 4), substr({digest}, 13, 4), "
            f"substr({digest}, 17, 4), substr({digest}, 21, 12))")
    metadata = f"CAST(struct_pack(uuid := {uuid}, source_timestamp := epoch_ms({changed})) AS {_METADATA_TYPE})"
    return _DATASTREAM_SELECT[name].format(metadata=metadata)
