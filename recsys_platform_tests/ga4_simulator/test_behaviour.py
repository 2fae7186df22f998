"""What a recommender (and the pipeline's cleaning) will find in the simulated export."""

from __future__ import annotations

import hashlib

import duckdb

from recsys_platform.standins.ga4_simulator.simulation import SimulationConfig, simulate
from recsys_platform_tests.ga4_simulator.conftest import PROPERTY_ID, SMALL

ALL_EVENTS = (
    f"(SELECT * FROM analytics_{PROPERTY_ID}.events_20260301 UNION ALL "
    f"SELECT * FROM analytics_{PROPERTY_ID}.events_20260302 UNION ALL "
    f"SELECT * FROM analytics_{PROPERTY_ID}.events_20260303)"
)
ITEM_ROWS = f"(SELECT e.*, item FROM {ALL_EVENTS} AS e, UNNEST(e.items) AS t(item))"


def one(connection, sql):
    return connection.execute(sql).fetchone()


def test_exact_duplicates_are_about_one_percent(export):
    total, distinct = one(export, f"SELECT count(*), (SELECT count(*) FROM (SELECT DISTINCT * FROM {ALL_EVENTS})) "
                                  f"FROM {ALL_EVENTS}")
    share = (total - distinct) / total
    assert 0.004 < share < 0.02, share


def test_untracked_event_names_are_present(export):
    names = {r[0] for r in export.execute(f"SELECT DISTINCT event_name FROM {ALL_EVENTS}").fetchall()}
    assert {"page_view", "session_start", "scroll", "user_engagement"} <= names
    assert names - {"page_view", "session_start", "scroll", "user_engagement", "view_item", "add_to_cart",
                    "add_to_wishlist", "purchase"}  # custom events too


def test_some_views_arrive_without_items(export):
    views, empty = one(export, f"SELECT count(*), count(*) FILTER (WHERE len(items) = 0) FROM {ALL_EVENTS} "
                               "WHERE event_name = 'view_item'")
    assert 0.002 < empty / views < 0.03


def test_a_small_share_of_item_rows_is_malformed(export):
    rows, null_id, not_set, null_price = one(
        export,
        f"SELECT count(*), count(*) FILTER (WHERE item.item_id IS NULL), "
        f"count(*) FILTER (WHERE item.item_id = '(not set)'), count(*) FILTER (WHERE item.price IS NULL) "
        f"FROM {ITEM_ROWS}",
    )
    assert null_id > 0 and not_set > 0 and null_price > 0
    assert (null_id + not_set + null_price) / rows < 0.02


def test_anonymous_visitors_and_later_logins(export):
    anonymous_share = one(export, f"SELECT avg((user_id IS NULL)::INT) FROM {ALL_EVENTS}")[0]
    assert 0.2 < anonymous_share < 0.75
    # The same browser (user_pseudo_id) is seen anonymous in one session and logged in in another.
    switching = one(
        export,
        f"""SELECT count(*) FROM (
              SELECT user_pseudo_id FROM {ALL_EVENTS}
              GROUP BY user_pseudo_id
              HAVING count(*) FILTER (WHERE user_id IS NULL) > 0 AND count(DISTINCT user_id) = 1)""",
    )[0]
    assert switching > 10
    # Only logged-in sessions buy; a purchase without user_id is a consent-denied cookieless ping.
    anonymous_purchases = one(export, f"SELECT count(*) FROM {ALL_EVENTS} WHERE event_name = 'purchase' "
                                      "AND user_id IS NULL AND privacy_info.analytics_storage = 'Yes'")[0]
    assert anonymous_purchases == 0


def test_purchased_items_were_viewed_and_carted_first(export):
    purchased, viewed_before = one(
        export,
        f"""WITH lines AS (SELECT DISTINCT user_pseudo_id, event_timestamp, item.item_id AS item_id
                          FROM {ITEM_ROWS} WHERE event_name = 'purchase' AND item.item_id <> '(not set)'),
                 views AS (SELECT user_pseudo_id, event_timestamp, item.item_id AS item_id
                           FROM {ITEM_ROWS} WHERE event_name = 'view_item')
            SELECT count(*), count(*) FILTER (WHERE EXISTS (
                SELECT 1 FROM views v WHERE v.user_pseudo_id = l.user_pseudo_id AND v.item_id = l.item_id
                  AND v.event_timestamp < l.event_timestamp))
            FROM lines l""",
    )
    assert purchased > 50
    assert viewed_before / purchased > 0.9


def test_views_follow_category_preferences_and_popularity(export):
    # A visitor's views concentrate on one top-level category (75% by design; 1/8 if random).
    top_share = one(
        export,
        f"""SELECT avg(top / total) FROM (
              SELECT user_pseudo_id, max(n) AS top, sum(n) AS total FROM (
                SELECT user_pseudo_id, item.item_category, count(*) AS n FROM {ITEM_ROWS}
                WHERE event_name = 'view_item' GROUP BY ALL) GROUP BY user_pseudo_id HAVING sum(n) >= 10)""",
    )[0]
    assert top_share > 0.5
    # Popularity is skewed: the top 10% of items draw far more than 10% of views.
    top_decile = one(
        export,
        f"""SELECT sum(n) FILTER (WHERE rank <= 20) / sum(n) FROM (
              SELECT count(*) AS n, row_number() OVER (ORDER BY count(*) DESC) AS rank FROM {ITEM_ROWS}
              WHERE event_name = 'view_item' GROUP BY item.item_id)""",
    )[0]
    assert top_decile > 0.3


def test_ga4_purchases_match_product_db_orders(export, product, small_run):
    transactions = export.execute(
        f"SELECT DISTINCT ecommerce.transaction_id, user_id FROM {ALL_EVENTS} WHERE event_name = 'purchase'"
    ).fetchall()
    orders = dict(product.execute("SELECT order_id, user_id FROM product_db.product_db.orders").fetchall())
    users = {r[0] for r in product.execute("SELECT user_id FROM product_db.product_db.users").fetchall()}
    assert transactions and all(tid in orders for tid, _ in transactions)
    # The buyer's GA4 user_id is the DB's, except on cookieless pings (none) and for the few users the
    # site identifies by their login email (test_consent_and_pii covers both).
    identified = [(tid, uid) for tid, uid in transactions if uid is not None and "@" not in uid]
    assert len(identified) > 0.8 * len(transactions)
    assert all(orders[tid] == uid for tid, uid in identified)
    assert all(uid in users for _, uid in identified)
    untracked = 1 - len(transactions) / len(orders)
    assert 0.02 < untracked < 0.25, untracked
    assert len(orders) == sum(d.orders for d in small_run.days)
    # A tracked order's GA4 items are its DB lines (malformed item rows aside).
    tid = transactions[0][0]
    ga4_items = {r[0] for r in export.execute(
        f"SELECT item.item_id FROM {ITEM_ROWS} WHERE ecommerce.transaction_id = ? AND item.item_id <> '(not set)' "
        "AND item.item_id IS NOT NULL", [tid]).fetchall()}
    db_items = {r[0] for r in product.execute(
        "SELECT item_id FROM product_db.product_db.order_items WHERE order_id = ?", [tid]).fetchall()}
    assert ga4_items and ga4_items <= db_items


def fingerprint(home) -> str:
    """SHA-256 over every shard's and product DB table's rows, each table as its sorted rows' text."""
    digest = hashlib.sha256()

    def add(connection, table):
        digest.update(connection.execute(
            f"SELECT md5(string_agg(CAST(t AS VARCHAR), chr(10) ORDER BY CAST(t AS VARCHAR))) FROM {table} AS t"
        ).fetchone()[0].encode())

    with duckdb.connect(str(home / "ga4_export.duckdb"), read_only=True) as export:
        for (table,) in export.execute(
                f"SELECT table_id FROM analytics_{PROPERTY_ID}.\"__TABLES__\" ORDER BY table_id").fetchall():
            add(export, f"analytics_{PROPERTY_ID}.{table}")
    with duckdb.connect(str(home / "product_db.duckdb"), read_only=True) as product:
        for table in ("items", "users", "orders", "order_items"):
            add(product, f"product_db.product_db.{table}")
    return digest.hexdigest()


def test_same_seed_same_data_other_seed_other_data(tmp_path):
    prints = []
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        simulate(SimulationConfig(home=tmp_path / name, days=2, events_per_day=800, seed=seed,
                                  late_event_share=0.02, **SMALL))
        prints.append(fingerprint(tmp_path / name))
    assert prints[0] == prints[1]
    assert prints[0] != prints[2]
