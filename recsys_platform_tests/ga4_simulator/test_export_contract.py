"""The export's shape: schema, local days, session parameters, __TABLES__, product DB tables."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from recsys_platform_tests.ga4_simulator.conftest import PROPERTY_ID

DATASET = f"analytics_{PROPERTY_ID}"
PARAMS = "STRUCT(\"key\" VARCHAR, \"value\" STRUCT(string_value VARCHAR, int_value BIGINT, float_value DOUBLE, " \
         "double_value DOUBLE))[]"
# Column -> DuckDB type, written out independently of the simulator's own schema definition.
EXPECTED_TYPES = {
    "event_date": "VARCHAR",
    "event_timestamp": "BIGINT",
    "event_name": "VARCHAR",
    "event_params": PARAMS,
    "event_previous_timestamp": "BIGINT",
    "event_value_in_usd": "DOUBLE",
    "event_bundle_sequence_id": "BIGINT",
    "event_server_timestamp_offset": "BIGINT",
    "user_id": "VARCHAR",
    "user_pseudo_id": "VARCHAR",
    "user_first_touch_timestamp": "BIGINT",
    "stream_id": "VARCHAR",
    "platform": "VARCHAR",
    "is_active_user": "BOOLEAN",
    "batch_event_index": "BIGINT",
    "batch_page_id": "BIGINT",
    "batch_ordering_id": "BIGINT",
    "traffic_source": "STRUCT(\"name\" VARCHAR, medium VARCHAR, \"source\" VARCHAR)",
    "ecommerce": "STRUCT(total_item_quantity BIGINT, purchase_revenue_in_usd DOUBLE, purchase_revenue DOUBLE, "
                 "refund_value_in_usd DOUBLE, refund_value DOUBLE, shipping_value_in_usd DOUBLE, shipping_value DOUBLE, "
                 "tax_value_in_usd DOUBLE, tax_value DOUBLE, unique_items BIGINT, transaction_id VARCHAR)",
}
ITEM_FIELD_TYPES = {
    "item_id": "VARCHAR", "item_name": "VARCHAR", "item_brand": "VARCHAR", "item_variant": "VARCHAR",
    "item_category": "VARCHAR", "item_category2": "VARCHAR", "item_category3": "VARCHAR",
    "item_category4": "VARCHAR", "item_category5": "VARCHAR", "price_in_usd": "DOUBLE", "price": "DOUBLE",
    "quantity": "BIGINT", "item_revenue_in_usd": "DOUBLE", "item_revenue": "DOUBLE", "coupon": "VARCHAR",
    "affiliation": "VARCHAR", "item_list_id": "VARCHAR", "item_list_name": "VARCHAR", "item_list_index": "VARCHAR",
    "promotion_id": "VARCHAR", "promotion_name": "VARCHAR", "creative_name": "VARCHAR", "creative_slot": "VARCHAR",
    "item_params": PARAMS,
}
STRUCT_FIELDS = {
    "device": ["category", "mobile_brand_name", "operating_system", "language", "web_info"],
    "geo": ["continent", "country", "region", "city"],
    "privacy_info": ["analytics_storage", "ads_storage", "uses_transient_token"],
    "user_ltv": ["revenue", "currency"],
    "app_info": ["id", "version"],
    "collected_traffic_source": ["manual_source", "manual_medium", "gclid"],
    "session_traffic_source_last_click": ["manual_campaign", "cross_channel_campaign"],
}


def shard(day: str) -> str:
    return f"{DATASET}.events_{day}"


def column_types(export, day="20260301") -> dict[str, str]:
    return {row[0]: row[1] for row in export.execute(f"DESCRIBE {shard(day)}").fetchall()}


def test_columns_and_nested_types_match_the_ga4_export(export):
    types = column_types(export)
    for name, kind in EXPECTED_TYPES.items():
        assert types[name] == kind, name
    items_type = types["items"]
    assert items_type.startswith("STRUCT(") and items_type.endswith(")[]")
    for name, kind in ITEM_FIELD_TYPES.items():
        assert f"{name} {kind}" in items_type or f'"{name}" {kind}' in items_type, name
    for column, names in STRUCT_FIELDS.items():
        assert types[column].startswith("STRUCT(")
        for name in names:
            assert f"{name} " in types[column] or f'"{name}" ' in types[column], (column, name)
    assert "web_info STRUCT(browser VARCHAR, browser_version VARCHAR, hostname VARCHAR)" in types["device"]


def test_shards_hold_property_local_days(export, small_run):
    tz = ZoneInfo("Asia/Seoul")
    for day in small_run.days:
        start = int(datetime(day.day.year, day.day.month, day.day.day, tzinfo=tz).timestamp()) * 1_000_000
        dates, low, high, platforms = export.execute(
            f"SELECT list(DISTINCT event_date), min(event_timestamp), max(event_timestamp), list(DISTINCT platform) "
            f"FROM {shard(f'{day.day:%Y%m%d}')}"
        ).fetchone()
        assert dates == [f"{day.day:%Y%m%d}"]
        assert start <= low and high < start + 86_400 * 1_000_000
        assert platforms == ["WEB"]


def test_every_event_carries_the_session_parameters(export):
    # Cookieless pings (consent denied) carry no session parameters: test_consent_and_pii covers them.
    missing = export.execute(
        f"""SELECT count(*) FROM {shard('20260302')} WHERE privacy_info.analytics_storage = 'Yes' AND (
            (SELECT p.value.int_value FROM UNNEST(event_params) AS t(p) WHERE p.key = 'ga_session_id') IS NULL
         OR (SELECT p.value.int_value FROM UNNEST(event_params) AS t(p) WHERE p.key = 'ga_session_number') IS NULL
         OR (SELECT p.value.string_value FROM UNNEST(event_params) AS t(p) WHERE p.key = 'page_location') IS NULL
         OR (SELECT p.value.int_value FROM UNNEST(event_params) AS t(p) WHERE p.key = 'engagement_time_msec') IS NULL)"""
    ).fetchone()[0]
    assert missing == 0
    sessions, numbers = export.execute(
        f"""SELECT count(DISTINCT (user_pseudo_id, (SELECT p.value.int_value FROM UNNEST(event_params) AS t(p)
                                                    WHERE p.key = 'ga_session_id'))),
                   max((SELECT p.value.int_value FROM UNNEST(event_params) AS t(p) WHERE p.key = 'ga_session_number'))
            FROM {shard('20260303')}"""
    ).fetchone()
    assert sessions > 100
    assert numbers > 1  # returning visitors count their sessions across days


def test_tables_meta_lists_every_shard_with_its_row_count(export, small_run):
    rows = export.execute(f'SELECT * FROM {DATASET}."__TABLES__" ORDER BY table_id').fetchall()
    names = [d[0] for d in export.description]
    assert names == ["project_id", "dataset_id", "table_id", "creation_time", "last_modified_time", "row_count",
                     "size_bytes", "type"]
    # Every table is listed: the three daily tables and the last day's streaming (intraday) table.
    assert [r[2] for r in rows] == ["events_20260301", "events_20260302", "events_20260303",
                                    "events_intraday_20260303"]
    for project, dataset, table, created, modified, row_count, size_bytes, kind in rows:
        assert dataset == DATASET and kind == 1 and size_bytes > 0
        assert row_count == export.execute(f"SELECT count(*) FROM {DATASET}.{table}").fetchone()[0]
        assert modified >= created
    types = {r[0]: r[1] for r in export.execute(f'DESCRIBE {DATASET}."__TABLES__"').fetchall()}
    assert types["creation_time"] == "BIGINT" and types["type"] == "INTEGER"


def test_late_events_were_reexported_into_earlier_days(export, small_run):
    first = small_run.days[0]
    created, modified, row_count = export.execute(
        f'SELECT creation_time, last_modified_time, row_count FROM {DATASET}."__TABLES__" '
        "WHERE table_id = 'events_20260301'"
    ).fetchone()
    assert row_count == first.events + 2 * 20  # 1% of 4000 over two re-exports, 20 each
    assert modified > created
    late = export.execute(
        f"SELECT count(*), count(*) FILTER (WHERE event_name = 'purchase') FROM {shard('20260301')} "
        "WHERE event_server_timestamp_offset >= 3600000000"
    ).fetchone()
    assert late == (40, 0)
    assert small_run.days[2].late_events == 40


def test_product_db_tables(product):
    def types(table):
        return {r[0]: r[1] for r in product.execute(f"DESCRIBE product_db.product_db.{table}").fetchall()}

    assert types("items") == {"item_id": "VARCHAR", "item_name": "VARCHAR", "price": "DOUBLE",
                              "category_l1": "VARCHAR", "category_l2": "VARCHAR", "is_available": "BOOLEAN",
                              "created_at": "TIMESTAMP"}
    assert types("users") == {"user_id": "VARCHAR", "created_at": "TIMESTAMP"}
    assert types("orders") == {"order_id": "VARCHAR", "user_id": "VARCHAR", "ordered_at": "TIMESTAMP",
                               "status": "VARCHAR"}
    assert types("order_items") == {"order_id": "VARCHAR", "item_id": "VARCHAR", "quantity": "BIGINT",
                                    "unit_price": "DOUBLE"}
    assert product.execute("SELECT count(*) FROM product_db.product_db.items").fetchone()[0] == 200
    assert product.execute("SELECT count(*) FROM product_db.product_db.users").fetchone()[0] == 300
    statuses = dict(product.execute("SELECT status, count(*) FROM product_db.product_db.orders GROUP BY 1").fetchall())
    assert set(statuses) <= {"paid", "cancelled"} and statuses["paid"] > 0
    orphan_lines = product.execute(
        "SELECT count(*) FROM product_db.product_db.order_items l ANTI JOIN product_db.product_db.orders o "
        "USING (order_id)"
    ).fetchone()[0]
    assert orphan_lines == 0


def test_summary_counts(small_run):
    assert [d.day for d in small_run.days] == [date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)]
    for day in small_run.days:
        assert 3_900 <= day.events <= 4_200  # whole sessions up to the target, plus ~1% duplicates
        assert day.users > 50 and day.items > 50 and day.orders > 0
    assert small_run.shards == ("events_20260301", "events_20260302", "events_20260303")


@pytest.mark.parametrize("bad, message", [
    (dict(property_id="G-123"), "property id is numeric"),
    (dict(timezone="Mars/Olympus"), "unknown time zone"),
    (dict(start_date="03/01/2026"), "start_date must be YYYY-MM-DD"),
    (dict(days=0), "days must be at least 1"),
    (dict(late_event_share=1.5), "late_event_share"),
])
def test_bad_configuration_is_named(tmp_path, bad, message):
    from recsys_platform.standins.ga4_simulator.simulation import SimulationConfig, simulate

    with pytest.raises(ValueError, match=message):
        simulate(SimulationConfig(home=tmp_path, **bad))
