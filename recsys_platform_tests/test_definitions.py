"""The code location loads, with every asset, check, job, schedule and sensor the platform promises."""

import pytest
from dagster import AssetKey


@pytest.fixture(scope="module")
def defs():
    from recsys_platform.definitions import defs

    return defs


GA4_ASSETS = {"ga4_export", "ga4_events", "ga4_item_views", "ga4_cart_adds", "ga4_wishlist_adds", "ga4_purchases",
              "interactions", "product_db/items", "product_db/users", "product_db/orders", "product_db/order_items"}


def test_every_asset_is_defined(defs):
    keys = {k.to_user_string() for k in defs.resolve_all_asset_keys()}
    assert GA4_ASSETS <= keys


def test_graph_flows_from_the_export_to_interactions(defs):
    graph = defs.resolve_asset_graph()
    assert AssetKey("ga4_export") in graph.get(AssetKey("ga4_events")).parent_keys
    for refined in ("ga4_item_views", "ga4_cart_adds", "ga4_wishlist_adds", "ga4_purchases"):
        assert graph.get(AssetKey(refined)).parent_keys == {AssetKey("ga4_events")}
        assert AssetKey(refined) in graph.get(AssetKey("interactions")).parent_keys
    assert AssetKey(["product_db", "order_items"]) in graph.get(AssetKey("interactions")).parent_keys


def test_checks_sensors_schedules_and_jobs(defs):
    check_keys = {(k.asset_key.to_user_string(), k.name) for k in defs.resolve_asset_graph().asset_check_keys}
    assert {("ga4_events", "event_keys_unique"), ("ga4_events", "has_rows_every_day"),
            ("ga4_item_views", "keys_not_null"), ("interactions", "event_types_known")} <= check_keys
    assert any(name == "ga4_events" for name, check in check_keys if "freshness" in check)
    assert defs.resolve_sensor_def("ga4_export_sensor")
    assert defs.resolve_sensor_def("ga4_merge_deadline_sensor")
    assert defs.resolve_schedule_def("ga4_daily_job_schedule")
    assert defs.resolve_job_def("ga4_daily_job")


def test_warehouse_steps_share_one_pool(defs):
    graph = defs.resolve_asset_graph()
    for key in ("ga4_events", "ga4_item_views", "interactions"):
        assert graph.get(AssetKey(key)).pools == {"warehouse"}


def test_production_resources_need_no_local_state(monkeypatch):
    from recsys_platform.resources import build_resources
    from recsys_platform.resources.warehouse import BigQueryWarehouse

    resources = build_resources("aws")
    assert isinstance(resources["warehouse"], BigQueryWarehouse)


def test_unknown_environment_is_refused(monkeypatch):
    from recsys_platform.settings import recsys_env

    monkeypatch.setenv("RECSYS_ENV", "staging")
    with pytest.raises(ValueError, match="RECSYS_ENV"):
        recsys_env()
