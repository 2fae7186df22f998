"""The product DB as a replica looks: the simulator layout, or a Datastream replica of a MySQL shop DB (INT64
keys, DATETIME as TIMESTAMP without time zone, TINYINT(1) as INT64, `<schema>_<table>` names, a
`datastream_metadata` record); and the erasure requests source in both."""

from __future__ import annotations

import re
from datetime import datetime

import duckdb
import pytest

from recsys_platform.standins.ga4_simulator.simulation import SimulationConfig, simulate
from recsys_platform_tests.ga4_simulator.conftest import PROPERTY_ID, SMALL

DATASET = f"analytics_{PROPERTY_ID}"
METADATA = "STRUCT(uuid VARCHAR, source_timestamp BIGINT)"
# The contract, written out independently of the simulator's code.
DATASTREAM_TYPES = {
    "shop_items": {"id": "BIGINT", "name": "VARCHAR", "price": "DECIMAL(12,2)", "category_l1": "VARCHAR",
                   "category_l2": "VARCHAR", "is_available": "BIGINT", "created_at": "TIMESTAMP",
                   "datastream_metadata": METADATA},
    "shop_users": {"id": "BIGINT", "created_at": "TIMESTAMP", "datastream_metadata": METADATA},
    "shop_orders": {"id": "BIGINT", "user_id": "BIGINT", "ordered_at": "TIMESTAMP", "status": "VARCHAR",
                    "datastream_metadata": METADATA},
    "shop_order_items": {"order_id": "BIGINT", "item_id": "BIGINT", "quantity": "BIGINT",
                         "unit_price": "DECIMAL(12,2)", "datastream_metadata": METADATA},
    "shop_erasure_requests": {"user_id": "BIGINT", "user_pseudo_id": "VARCHAR", "requested_at": "TIMESTAMP",
                              "datastream_metadata": METADATA},
}


@pytest.fixture(scope="module")
def datastream_run(tmp_path_factory):
    home = tmp_path_factory.mktemp("datastream")
    return simulate(SimulationConfig(home=home, days=2, events_per_day=2_000, seed=41, replica_layout="datastream",
                                     erasure_request_share=0.05, **SMALL))


def sql(path, query, params=()):
    with duckdb.connect(str(path), read_only=True) as connection:
        return connection.execute(query, params).fetchall()


def types(path, table):
    return {r[0]: r[1] for r in sql(path, f"DESCRIBE product_db.product_db.{table}")}


def test_datastream_tables_and_types(datastream_run):
    tables = {r[0] for r in sql(datastream_run.product_db, "SELECT table_name FROM information_schema.tables "
                                                           "WHERE table_schema = 'product_db'")}
    assert tables == set(DATASTREAM_TYPES)  # no simulator-layout tables beside them
    for table, expected in DATASTREAM_TYPES.items():
        assert types(datastream_run.product_db, table) == expected, table


def test_ga4_ids_are_the_decimal_strings_of_the_int64_keys(datastream_run):
    product = datastream_run.product_db
    items = {str(r[0]) for r in sql(product, "SELECT id FROM product_db.product_db.shop_items")}
    users = {str(r[0]) for r in sql(product, "SELECT id FROM product_db.product_db.shop_users")}
    orders = dict(sql(product, "SELECT CAST(id AS VARCHAR), CAST(user_id AS VARCHAR) FROM product_db.product_db.shop_orders"))
    with duckdb.connect(str(datastream_run.export_db), read_only=True) as export:
        ga4_items = {r[0] for r in export.execute(
            f"SELECT DISTINCT item.item_id FROM {DATASET}.events_20260301, UNNEST(items) AS t(item) "
            "WHERE item.item_id IS NOT NULL AND item.item_id <> '(not set)'").fetchall()}
        purchases = export.execute(
            f"SELECT ecommerce.transaction_id, user_id FROM {DATASET}.events_20260301 WHERE event_name = 'purchase' "
            "AND user_id IS NOT NULL").fetchall()
    assert ga4_items and all(re.fullmatch(r"[1-9]\d*", i) for i in ga4_items) and ga4_items <= items
    assert purchases
    for transaction, user in purchases:
        assert re.fullmatch(r"20260301\d{6}", transaction) and orders[transaction] == user
        assert user in users or "@" in user


def test_datastream_values(datastream_run):
    product = datastream_run.product_db
    assert {r[0] for r in sql(product, "SELECT DISTINCT is_available FROM product_db.product_db.shop_items")} == {0, 1}
    uuids, stale = sql(product, """SELECT list(DISTINCT datastream_metadata.uuid),
        count(*) FILTER (WHERE datastream_metadata.source_timestamp <> epoch_ms(ordered_at))
        FROM product_db.product_db.shop_orders""")[0]
    assert stale == 0  # the change time of an order is its placement
    assert all(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", u) for u in uuids)
    orphans = sql(product, "SELECT count(*) FROM product_db.product_db.shop_order_items l "
                           "ANTI JOIN product_db.product_db.shop_orders o ON o.id = l.order_id")
    assert orphans == [(0,)]


def test_datastream_orders_accumulate_across_runs(datastream_run, tmp_path):
    first = simulate(SimulationConfig(home=tmp_path, days=1, events_per_day=1_000, seed=42,
                                      replica_layout="datastream", **SMALL))
    second = simulate(SimulationConfig(home=tmp_path, days=1, events_per_day=1_000, seed=42,
                                       replica_layout="datastream", **dict(SMALL, start_date="2026-03-02")))
    count = sql(second.product_db, "SELECT count(*), count(DISTINCT id) FROM product_db.product_db.shop_orders")[0]
    assert count == (first.orders + second.orders,) * 2


def test_erasure_requests_list_simulated_users(small_run, product, export):
    assert types(small_run.product_db, "erasure_requests") == {
        "user_id": "VARCHAR", "user_pseudo_id": "VARCHAR", "requested_at": "TIMESTAMP"}
    requests = product.execute("SELECT user_id, user_pseudo_id, requested_at FROM product_db.product_db.erasure_requests"
                               ).fetchall()
    users = {r[0] for r in product.execute("SELECT user_id FROM product_db.product_db.users").fetchall()}
    pseudo_ids = {r[0] for r in export.execute(
        f"SELECT DISTINCT user_pseudo_id FROM analytics_{PROPERTY_ID}.events_20260301 UNION "
        f"SELECT DISTINCT user_pseudo_id FROM analytics_{PROPERTY_ID}.events_20260302 UNION "
        f"SELECT DISTINCT user_pseudo_id FROM analytics_{PROPERTY_ID}.events_20260303").fetchall()}
    # 300 users and 0.5%: a handful; each names a known user (or only a browser), during the simulated days.
    assert 0 < len(requests) < 10
    for user_id, pseudo_id, requested_at in requests:
        assert user_id is None or user_id in users
        assert pseudo_id is not None
        assert datetime(2026, 2, 28, 15) <= requested_at < datetime(2026, 3, 3, 15)  # Seoul days, in UTC
    assert any(p in pseudo_ids for _, p, _ in requests)


def test_erasure_requests_in_the_datastream_layout(datastream_run):
    rows = sql(datastream_run.product_db, """SELECT r.user_id, u.id FROM product_db.product_db.shop_erasure_requests r
        LEFT JOIN product_db.product_db.shop_users u ON u.id = r.user_id""")
    assert len(rows) > 10  # 5% of 300 users, and 2.5% of the never-registered browsers
    assert all(user is None or user == known for user, known in rows)
    assert any(user is None for user, _ in rows) and any(user is not None for user, _ in rows)


def test_a_replay_keeps_the_simulator_layout(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("1,10,100,pv,1511658000\n")
    with pytest.raises(ValueError, match="simulator layout"):
        simulate(SimulationConfig(home=tmp_path / "h", from_log=log, log_format="taobao",
                                  replica_layout="datastream"))


def test_an_unknown_layout_is_named(tmp_path):
    with pytest.raises(ValueError, match="replica_layout"):
        simulate(SimulationConfig(home=tmp_path, replica_layout="fivetran", **SMALL))
