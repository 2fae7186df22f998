"""The GA4 export as a real property delivers it: intraday and fresh tables, over-limit days, the batch
fields of July 2024, consent mode, personal data in URLs and user ids, several streams.

Each test runs on both warehouses: the embedded DuckDB one, and the production BigQueryWarehouse through
the real google-cloud-bigquery client against the BigQuery stand-in serving the same files."""

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest
from dagster import DagsterInstance, build_sensor_context, materialize

from recsys_platform.defs.ga4 import events as events_module
from recsys_platform.lib.lake import LocalLake
from recsys_platform_tests.code_location import GA4_ASSET_NAMES, assets, platform_definitions
from recsys_platform_tests.ga4.conftest import DAY, ENGINES, NEXT_DAY, warehouse_on
from recsys_platform_tests.ga4_fixtures import (
    BATCHED_SHARD_SCHEMA,
    SHARD_SCHEMA,
    TIMEZONE,
    drop_table,
    event,
    write_product_db,
    write_shard,
)

GA4_ASSETS = assets(*GA4_ASSET_NAMES)
[ga4_events] = assets("ga4_events")
sensor = platform_definitions().resolve_sensor_def("ga4_export_sensor")


@pytest.fixture(params=ENGINES)
def warehouse(request, recsys_home, tmp_path, monkeypatch):
    with warehouse_on(request.param, recsys_home, tmp_path, monkeypatch) as on_engine:
        yield on_engine


@pytest.fixture
def shop(recsys_home):
    write_product_db(recsys_home / "product_db.duckdb", [], ["A", "B", "C"], ["U1", "U2"])
    return recsys_home


def _merged(result) -> dict:
    mat = next(e.materialization for e in result.get_asset_materialization_events()
               if e.materialization.asset_key.to_user_string() == "ga4_events")
    return {k: v.value for k, v in mat.metadata.items()}


def _failure(result) -> str:
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return failure.event_specific_data.error.message + str(failure.event_specific_data.user_failure_data)


def _rows(warehouse, sql, **params):
    return warehouse.query(sql, params).to_pylist()


def _tick(warehouse, instance):
    # As a context manager: BigQueryWarehouse's client resource is opened and closed around the tick.
    with build_sensor_context(instance=instance, resources={"warehouse": warehouse}) as context:
        return sensor(context)


def _views(day, n, pseudo="p1", **kw):
    return [event(day, 10, "view_item", pseudo, minute=i, items=[{"item_id": "A"}], **kw) for i in range(n)]


def test_an_over_limit_day_is_merged_from_intraday_and_again_from_daily_without_counting_twice(warehouse, shop):
    export = shop / "ga4_export.duckdb"
    write_shard(export, DAY, _views(DAY, 3), kind="intraday")  # no daily table: over the export limit
    instance = DagsterInstance.ephemeral()
    first = materialize([ga4_events], instance=instance, partition_key=DAY.isoformat(),
                        resources={"warehouse": warehouse})
    meta = _merged(first)
    assert meta["sources"] == {DAY.isoformat(): f"events_intraday_{DAY:%Y%m%d}"}
    assert meta["dagster/row_count"] == 3

    tick = _tick(warehouse, instance)
    assert not getattr(tick, "run_requests", None)  # an empty cursor is seeded from what was merged
    # The daily table lands (late events included) and GA4 deletes the intraday one.
    write_shard(export, DAY, _views(DAY, 4))
    drop_table(export, f"events_intraday_{DAY:%Y%m%d}")
    later = _tick(warehouse, instance)
    [request] = later.run_requests
    assert request.partition_key == DAY.isoformat() and request.tags["recsys/ga4_table_kind"] == "daily"
    again = materialize([ga4_events], instance=instance, partition_key=DAY.isoformat(),
                        resources={"warehouse": warehouse})
    assert _merged(again)["sources"] == {DAY.isoformat(): f"events_{DAY:%Y%m%d}"}
    [count] = _rows(warehouse, "SELECT COUNT(*) AS n FROM recsys.ga4_events")
    assert count["n"] == 4  # the day's rows come from one table, never both


def test_an_intraday_table_within_its_grace_period_is_waited_for(warehouse, shop):
    yesterday = dt.datetime.now(ZoneInfo(TIMEZONE)).date() - dt.timedelta(days=1)
    write_shard(shop / "ga4_export.duckdb", yesterday, _views(yesterday, 2), kind="intraday")
    result = materialize([ga4_events], partition_key=yesterday.isoformat(), resources={"warehouse": warehouse},
                         raise_on_error=False)
    assert not result.success
    message = _failure(result)
    assert f"events_{yesterday:%Y%m%d}" in message and "daily one is awaited" in message
    assert not warehouse.has_table("ga4_events")  # nothing stored


def test_a_fresh_table_stands_in_until_the_daily_one_lands(warehouse, shop):
    write_shard(shop / "ga4_export.duckdb", DAY, _views(DAY, 2), kind="fresh")
    write_shard(shop / "ga4_export.duckdb", DAY, _views(DAY, 1), kind="intraday")
    instance = DagsterInstance.ephemeral()
    result = materialize([ga4_events], instance=instance, partition_key=DAY.isoformat(),
                         resources={"warehouse": warehouse})
    assert _merged(result)["sources"] == {DAY.isoformat(): f"events_fresh_{DAY:%Y%m%d}"}
    # The daily table lands: the sensor asks for the day again, and the merge reads the daily table alone.
    write_shard(shop / "ga4_export.duckdb", DAY, _views(DAY, 3))
    tick = _tick(warehouse, instance)
    [request] = tick.run_requests
    assert request.partition_key == DAY.isoformat() and request.tags["recsys/ga4_table_kind"] == "daily"
    again = materialize([ga4_events], instance=instance, partition_key=DAY.isoformat(),
                        resources={"warehouse": warehouse})
    assert _merged(again)["sources"] == {DAY.isoformat(): f"events_{DAY:%Y%m%d}"}
    [count] = _rows(warehouse, "SELECT COUNT(*) AS n FROM recsys.ga4_events")
    assert count["n"] == 3


# A daily (or fresh) table's columns: GA4 writes `is_active_user` into those only, never into intraday tables.
DAILY_SHARD_SCHEMA = pa.schema([*SHARD_SCHEMA, ("is_active_user", pa.bool_())])


def _active_views(day, flags):
    return [event(day, 10, "view_item", f"p{i}", items=[{"item_id": "A"}], is_active_user=flag)
            for i, flag in enumerate(flags)]


def test_a_daily_day_merged_while_a_newer_intraday_table_exists_keeps_is_active_user(warehouse, shop):
    """BigQuery reads a wildcard with the schema of the newest table its prefix matches: were a daily day read
    through `events_*` while today's intraday table (no `is_active_user`) is the newest, the column would be
    lost (a retry, a backfill or a re-export merged after midnight)."""
    export = shop / "ga4_export.duckdb"
    write_shard(export, DAY, _active_views(DAY, [True, False, True]), schema=DAILY_SHARD_SCHEMA)
    write_shard(export, NEXT_DAY, _views(NEXT_DAY, 2), kind="intraday")  # created after the daily table
    result = materialize([ga4_events], partition_key=DAY.isoformat(), resources={"warehouse": warehouse})
    assert _merged(result)["sources"] == {DAY.isoformat(): f"events_{DAY:%Y%m%d}"}
    rows = _rows(warehouse, "SELECT user_pseudo_id, is_active_user, source_table FROM recsys.ga4_events "
                            "ORDER BY user_pseudo_id")
    assert rows == [{"user_pseudo_id": f"p{i}", "is_active_user": flag, "source_table": f"{DAY:%Y%m%d}"}
                    for i, flag in enumerate([True, False, True])]


def test_a_range_mixing_daily_and_intraday_days_keeps_is_active_user_of_the_daily_days(warehouse, shop):
    """An over-limit day read from its intraday table among daily days, while a newer intraday table exists:
    the daily days keep `is_active_user`, the intraday day's rows have it NULL."""
    export = shop / "ga4_export.duckdb"
    later = NEXT_DAY + dt.timedelta(days=1)
    write_shard(export, DAY, _active_views(DAY, [True, False]), schema=DAILY_SHARD_SCHEMA)
    write_shard(export, NEXT_DAY, _views(NEXT_DAY, 2), kind="intraday")  # over the limit: no daily table
    write_shard(export, later, _active_views(later, [False]), schema=DAILY_SHARD_SCHEMA)
    write_shard(export, later + dt.timedelta(days=1), _views(later, 1), kind="intraday")  # the newest table
    result = materialize([ga4_events], resources={"warehouse": warehouse},
                         tags={"dagster/asset_partition_range_start": DAY.isoformat(),
                               "dagster/asset_partition_range_end": later.isoformat()})
    assert _merged(result)["sources"] == {DAY.isoformat(): f"events_{DAY:%Y%m%d}",
                                          NEXT_DAY.isoformat(): f"events_intraday_{NEXT_DAY:%Y%m%d}",
                                          later.isoformat(): f"events_{later:%Y%m%d}"}
    rows = _rows(warehouse, "SELECT source_table, is_active_user, COUNT(*) AS n FROM recsys.ga4_events "
                            "GROUP BY ALL ORDER BY source_table, is_active_user")
    assert rows == [{"source_table": f"{DAY:%Y%m%d}", "is_active_user": False, "n": 1},
                    {"source_table": f"{DAY:%Y%m%d}", "is_active_user": True, "n": 1},
                    {"source_table": f"{later:%Y%m%d}", "is_active_user": False, "n": 1},
                    {"source_table": f"intraday_{NEXT_DAY:%Y%m%d}", "is_active_user": None, "n": 2}]


def test_batch_fields_identify_events_from_july_2024_and_the_older_key_before(warehouse, shop, monkeypatch):
    old, new = dt.date(2024, 7, 1), dt.date(2024, 7, 20)
    monkeypatch.setenv("RECSYS_START_DATE", "2024-01-01")
    [merge] = assets("ga4_events")
    # The older table first, as GA4 creates them (BigQuery reads a wildcard with the newest table's schema).
    # The same two views on an older table, without batch fields: the older identity cannot tell them apart.
    write_shard(shop / "ga4_export.duckdb", old, [event(old, 10, "view_item", "p1", items=[{"item_id": "A"}])] * 2)
    # Two views in one batch at the same microsecond: only the batch fields tell them apart.
    twins = [event(new, 10, "view_item", "p1", items=[{"item_id": "A"}], batch_page_id=7, batch_ordering_id=1,
                   batch_event_index=i, privacy_info={"analytics_storage": "Yes"}) for i in (0, 1)]
    write_shard(shop / "ga4_export.duckdb", new, [*twins, dict(twins[0])], schema=BATCHED_SHARD_SCHEMA)
    for day in (old, new):
        result = materialize([merge], partition_key=day.isoformat(), resources={"warehouse": warehouse})
        assert result.success
    counts = {r["event_date"]: r["n"] for r in _rows(
        warehouse, "SELECT event_date, COUNT(*) AS n FROM recsys.ga4_events GROUP BY 1")}
    assert counts == {old: 1, new: 2}  # the exact re-delivery of a twin collapsed; the twins did not


def test_of_an_events_copies_the_first_delivered_is_kept_and_its_neighbours_are_untouched(warehouse, shop):
    """Re-deliveries that differ (a later batch with another device) collapse to the first delivery, whatever
    the order in the table; an event of another visitor at the same microsecond, and a page view of the same
    visitor at that microsecond, are not copies and stay whole."""
    [merge] = assets("ga4_events")
    first = event(DAY, 10, "view_item", "p1", items=[{"item_id": "A"}], event_bundle_sequence_id=3,
                  event_server_timestamp_offset=5)
    later = dict(first, event_bundle_sequence_id=9, device={"category": "desktop"})
    same_batch_later_offset = dict(first, event_server_timestamp_offset=8, device={"category": "tablet"})
    neighbours = [event(DAY, 10, "view_item", "p2", items=[{"item_id": "B"}]),
                  event(DAY, 10, "page_view", "p1")]
    write_shard(shop / "ga4_export.duckdb", DAY, [later, same_batch_later_offset, neighbours[0], first,
                                                  neighbours[1], dict(later)])
    result = materialize([merge], partition_key=DAY.isoformat(), resources={"warehouse": warehouse})
    assert result.success
    rows = _rows(warehouse, "SELECT user_pseudo_id, event_name, event_bundle_sequence_id AS bundle, "
                            "event_server_timestamp_offset AS server_offset, device.category AS device "
                            "FROM recsys.ga4_events ORDER BY user_pseudo_id, event_name")
    assert rows == [
        {"user_pseudo_id": "p1", "event_name": "page_view", "bundle": 1, "server_offset": None, "device": "mobile"},
        {"user_pseudo_id": "p1", "event_name": "view_item", "bundle": 3, "server_offset": 5, "device": "mobile"},
        {"user_pseudo_id": "p2", "event_name": "view_item", "bundle": 1, "server_offset": None, "device": "mobile"},
    ]
    assert _merged(result)["duplicates_removed"] == 3


def test_cookieless_pings_are_kept_but_never_stitched_or_in_interactions(warehouse, shop):
    denied = {"analytics_storage": "No", "ads_storage": "No", "uses_transient_token": "Yes"}
    granted = {"analytics_storage": "Yes", "ads_storage": "Yes", "uses_transient_token": "No"}
    rows = [
        event(DAY, 9, "view_item", "p1", items=[{"item_id": "A"}], privacy_info=granted),
        event(DAY, 10, "view_item", "p1", user_id="U1", items=[{"item_id": "B"}], privacy_info=granted),
        event(DAY, 11, "view_item", None, items=[{"item_id": "C"}], privacy_info=denied),  # cookieless ping
        event(DAY, 12, "view_item", None, minute=1, items=[{"item_id": "C"}], privacy_info=denied),
    ]
    write_shard(shop / "ga4_export.duckdb", DAY, rows, schema=BATCHED_SHARD_SCHEMA)
    result = materialize(GA4_ASSETS, partition_key=DAY.isoformat(), resources={"warehouse": warehouse})
    meta = _merged(result)
    assert meta["dagster/row_count"] == 4 and meta["consent_denied_rows"] == 2
    assert meta["consent_denied_share"] == 0.5
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()
              if c.asset_key.to_user_string() == "ga4_events"}
    assert checks["consent_denied_share"] is False  # above the configured 25%: a warning
    views = _rows(warehouse, "SELECT item_id, user_id FROM recsys.ga4_item_views ORDER BY item_id")
    assert views == [{"item_id": "A", "user_id": "U1"}, {"item_id": "B", "user_id": "U1"}]
    items = {r["ITEM_ID"] for r in _rows(warehouse, "SELECT ITEM_ID FROM recsys.interactions")}
    assert items == {"A", "B"}


# (URL as exported, as ga4_events keeps it): a URL without '?', '#' or '@' takes the macro's shortcut.
SCRUBBED_URLS = [
    ("https://shop.example/p/123-blue-shoe", "https://shop.example/p/123-blue-shoe"),
    ("https://shop.example/u/jane.doe@example.com/orders", "https://shop.example/u/(email)/orders"),
    ("https://shop.example/cart#access_token=zzz", "https://shop.example/cart"),
    ("https://shop.example/?utm_source=news&email=a%40b.c&gclid=x1#top", "https://shop.example/?utm_source=news&gclid=x1"),
    ("https://shop.example/search?q=jane", "https://shop.example/search"),
    ("", ""),
    (None, None),
]


def test_scrub_url_keeps_scheme_host_path_and_the_allowed_parameters_only(warehouse):
    from recsys_platform.defs.ga4.ga4_setup import load_ga4_setup
    from recsys_platform.lib.sql_files import _macros, expand_macros

    macros = _macros(str(Path(events_module.__file__).parent / "sql" / "macros"))
    sql = expand_macros("SELECT n, SCRUB_URL(url) AS kept FROM UNNEST(@urls) AS url WITH OFFSET AS n ORDER BY n",
                        macros)
    urls = [url for url, _ in SCRUBBED_URLS]
    kept = warehouse.query(sql, {"urls": urls, "url_params_kept": load_ga4_setup().url_params_pattern})
    assert kept.column("kept").to_pylist() == [scrubbed for _, scrubbed in SCRUBBED_URLS]


def test_personal_data_never_reaches_a_table_derived_from_the_export_or_a_csv(warehouse, shop):
    email = "jane.doe@example.com"
    url = (f"https://shop.example/account/{email}/orders?email=jane%40example.com&token=s3cr3t&order_id=42"
           "&utm_source=news&utm_medium=mail#access_token=zzz")
    params = [{"key": "page_location", "value": {"string_value": url}},
              {"key": "page_referrer", "value": {"string_value": url}},
              {"key": "ga_session_id", "value": {"int_value": 1}}]
    rows = [
        event(DAY, 10, "view_item", "p1", user_id=email, items=[{"item_id": "A"}], event_params=params),
        event(DAY, 11, "view_item", "p2", user_id="U2", items=[{"item_id": "B"}], event_params=params),
        event(DAY, 12, "add_to_cart", "p2", user_id="U2", items=[{"item_id": "B"}], event_params=params),
    ]
    write_shard(shop / "ga4_export.duckdb", DAY, rows)
    result = materialize(GA4_ASSETS, partition_key=DAY.isoformat(), resources={"warehouse": warehouse})
    meta = _merged(result)
    assert meta["user_ids_refused_as_email"] == 1 and meta["page_locations_scrubbed"] == 3
    kept = {r["page_location"] for r in _rows(warehouse, "SELECT page_location FROM recsys.ga4_item_views")}
    assert kept == {"https://shop.example/account/(email)/orders?utm_source=news&utm_medium=mail"}
    for table in ("ga4_item_views", "ga4_cart_adds", "interactions"):
        dumped = json.dumps(_rows(warehouse, f"SELECT * FROM recsys.{table}"), default=str)
        assert "@" not in dumped and "s3cr3t" not in dumped and "order_id=42" not in dumped, table
    lake = LocalLake(root=str(shop / "lake"))
    defs = platform_definitions()
    snapshots = materialize(assets("personalize_interactions_csv", "personalize_users_csv", defs=defs),
                            partition_key=DAY.isoformat(), raise_on_error=False,
                            resources={**defs.resources, "warehouse": warehouse, "lake": lake})
    written = [snapshots.asset_value(name).key for name in ("personalize_interactions_csv", "personalize_users_csv")]
    for key in written:
        text = lake.read_text(key)
        assert "@" not in text and "s3cr3t" not in text, key


def test_anonymous_visitors_are_scoped_by_data_stream(warehouse, shop):
    rows = [
        event(DAY, 10, "view_item", "p1", items=[{"item_id": "A"}], stream_id="web"),
        event(DAY, 11, "view_item", "p1", items=[{"item_id": "B"}], stream_id="app"),
        event(DAY, 12, "view_item", "p1", user_id="U1", items=[{"item_id": "C"}], stream_id="web"),
    ]
    write_shard(shop / "ga4_export.duckdb", DAY, rows)
    materialize(GA4_ASSETS, partition_key=DAY.isoformat(), resources={"warehouse": warehouse})
    users = {r["ITEM_ID"]: r["USER_ID"] for r in _rows(warehouse, "SELECT ITEM_ID, USER_ID FROM recsys.interactions")}
    # p1 logged in on the web stream: its web browsing is U1's; the app's p1 is another visitor.
    assert users == {"A": "U1", "C": "U1", "B": "anon:app:p1"}


def test_a_nested_field_ga4_adds_later_merges_and_older_days_stay_readable(warehouse, shop):
    # GA4 added items.item_params to the export in 2023: a later table's items are wider than the stored ones.
    [items_field] = [f for f in SHARD_SCHEMA if f.name == "items"]
    item = items_field.type.value_type
    param = pa.struct([("key", pa.string()), ("value", pa.struct([("string_value", pa.string())]))])
    wider = pa.schema([pa.field("items", pa.list_(pa.struct([*item, ("item_params", pa.list_(param))])))
                       if f.name == "items" else f for f in SHARD_SCHEMA])
    export = shop / "ga4_export.duckdb"
    write_shard(export, DAY, _views(DAY, 2))
    assert materialize([ga4_events], partition_key=DAY.isoformat(), resources={"warehouse": warehouse}).success
    later = _views(NEXT_DAY, 3)
    for row in later:
        row["items"] = [{**i, "item_params": [{"key": "size", "value": {"string_value": "XL"}}]} for i in row["items"]]
    write_shard(export, NEXT_DAY, later, schema=wider)
    assert materialize([ga4_events], partition_key=NEXT_DAY.isoformat(), resources={"warehouse": warehouse}).success
    # Re-merging the older day (a re-export within 72 hours) still works against the wider table.
    assert materialize([ga4_events], partition_key=DAY.isoformat(), resources={"warehouse": warehouse}).success
    sizes = _rows(warehouse, "SELECT e.event_date, p.value.string_value AS size, COUNT(*) AS n "
                             "FROM recsys.ga4_events AS e CROSS JOIN UNNEST(e.items) AS i "
                             "LEFT JOIN UNNEST(i.item_params) AS p ON TRUE GROUP BY 1, 2 ORDER BY 1")
    assert sizes == [{"event_date": DAY, "size": None, "n": 2}, {"event_date": NEXT_DAY, "size": "XL", "n": 3}]
