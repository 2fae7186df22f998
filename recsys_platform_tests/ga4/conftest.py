import datetime as dt
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

from recsys_platform.lib.warehouse.duckdb_engine import DuckDBWarehouse
from recsys_platform_tests.ga4_fixtures import PROPERTY_ID, TIMEZONE, event, write_product_db, write_shard

DAY = dt.date(2026, 3, 2)
NEXT_DAY = DAY + dt.timedelta(days=1)


@pytest.fixture
def warehouse(recsys_home, tmp_path, monkeypatch) -> DuckDBWarehouse:
    with warehouse_on("duckdb", recsys_home, tmp_path, monkeypatch) as on_duckdb:
        yield on_duckdb


# The warehouses a GA4 test can run on: the embedded DuckDB one, and the production BigQueryWarehouse
# through the real google-cloud-bigquery client against the BigQuery stand-in serving the same files.
ENGINES = ["duckdb", "bigquery"]


@contextmanager
def warehouse_on(engine: str, recsys_home: Path, folder: Path, monkeypatch, **fields):
    """The warehouse on `engine` over the test's export and product DB files (`fields`: more warehouse
    settings, e.g. additional_ga4_property_ids). The stand-in attaches the files per request, so shards a
    test writes later are seen; the platform's tables live in a fresh dataset of the platform's project."""
    if engine == "duckdb":
        yield DuckDBWarehouse(ga4_property_id=PROPERTY_ID, warehouse_path=str(recsys_home / "warehouse.duckdb"),
                              export_path=str(recsys_home / "ga4_export.duckdb"),
                              product_db_path=str(recsys_home / "product_db.duckdb"), lock_timeout_seconds=30,
                              **fields)
        return
    from dagster_gcp import BigQueryResource

    from recsys_platform.lib.warehouse.bigquery_engine import BigQueryWarehouse
    from recsys_platform.standins.bigquery_api import start_in_background

    handle = start_in_background(folder / "bigquery", projects={"shop-analytics": recsys_home / "ga4_export.duckdb"},
                                 datasets={("shop-platform", "product_db"): (recsys_home / "product_db.duckdb",
                                                                             "product_db")})
    try:
        key = handle.write_credentials(folder / "bigquery-key.json", "shop-platform")
        for name, value in handle.client_environment(key).items():
            monkeypatch.setenv(name, value)
        warehouse = BigQueryWarehouse(ga4_property_id=PROPERTY_ID, bigquery=BigQueryResource(project="shop-platform"),
                                      platform_dataset=f"recsys_{uuid.uuid4().hex[:8]}", product_dataset="product_db",
                                      export_project="shop-analytics", **fields)
        with warehouse.bigquery.get_client() as client:
            client.create_dataset(warehouse.platform_dataset)
        yield warehouse
    finally:
        handle.stop()


def day_one_events() -> list[dict]:
    """A day with every case the merge and refinement must handle."""
    a, b, c = {"item_id": "A"}, {"item_id": "B", "price": 20.0}, {"item_id": "C", "price": 5.0}
    view_a = event(DAY, 10, "view_item", "p1", items=[a])
    return [
        view_a,
        dict(view_a),  # exact re-delivery: must collapse
        event(DAY, 11, "view_item", "p1", user_id="U1", session=2, items=[b]),
        event(DAY, 11, "add_to_cart", "p1", user_id="U1", session=2, minute=5, items=[b]),
        event(DAY, 11, "purchase", "p1", user_id="U1", session=2, minute=10, items=[b], transaction_id="T1"),
        event(DAY, 12, "view_item", "p2", user_id="U2", items=[c]),
        event(DAY, 12, "view_item", "p2", user_id="U2", minute=1, items=[]),  # no items
        event(DAY, 12, "view_item", "p2", user_id="U2", minute=2, items=[{"item_id": None}]),
        event(DAY, 12, "view_item", "p2", user_id="U2", minute=3, items=[{"item_id": "(not set)"}]),
        event(DAY, 12, "page_view", "p2", user_id="U2", minute=4),  # not tracked
        event(DAY, 12, "add_to_wishlist", "p2", user_id="U2", minute=5, items=[c]),
        event(DAY, 12, "purchase", "p2", user_id="U2", minute=6, items=[c], transaction_id="T2"),  # GA4 only
        event(DAY, 13, None, "p3", items=[a]),  # malformed: no event name
        event(DAY, 13, "view_item", None, items=[a]),  # malformed: no pseudo id
    ]


def product_db_orders() -> list[dict]:
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(TIMEZONE)
    return [
        {"order_id": "T1", "user_id": "U1", "ordered_at": dt.datetime(2026, 3, 2, 11, 10, tzinfo=tz),
         "lines": [("B", 1, 20.0)]},
        # A phone order GA4 never saw: 00:30 local on DAY is the previous day in UTC.
        {"order_id": "T3", "user_id": "U3", "ordered_at": dt.datetime(2026, 3, 2, 0, 30, tzinfo=tz),
         "lines": [("A", 2, 10.0), ("C", 1, 5.0)]},
        {"order_id": "T4", "user_id": "U3", "ordered_at": dt.datetime(2026, 3, 2, 15, 0, tzinfo=tz),
         "status": "cancelled", "lines": [("A", 1, 10.0)]},
    ]


@pytest.fixture
def export_two_days(recsys_home):
    write_shard(recsys_home / "ga4_export.duckdb", DAY, day_one_events())
    write_shard(recsys_home / "ga4_export.duckdb", NEXT_DAY, [
        event(NEXT_DAY, 9, "view_item", "p1", user_id="U1", items=[{"item_id": "C"}]),
    ])
    write_product_db(recsys_home / "product_db.duckdb", product_db_orders(), ["A", "B", "C"], ["U1", "U2", "U3"])
    return recsys_home
