"""The right to erasure on the production warehouse code (BigQueryWarehouse through the real client) against
the BigQuery stand-in: DELETE statements, the erased-visitors ledger written as a day partition, and a
re-merge that leaves the user out."""

import datetime as dt
import uuid

import duckdb
import pytest
from dagster import DagsterInstance, materialize
from dagster_gcp import BigQueryResource
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from recsys_platform.defs.ga4.taxonomy import load_taxonomy
from recsys_platform.defs.personalize.personalize_setup import load_setup
from recsys_platform.defs.privacy.erasure import build_erasure
from recsys_platform.defs.product_db.contract import load_contract
from recsys_platform.lib.lake import LocalLake
from recsys_platform.lib.warehouse.bigquery_engine import BigQueryWarehouse
from recsys_platform.standins.bigquery_api import start_in_background as start_bigquery
from recsys_platform.standins.ga4_simulator.simulation import SimulationConfig, simulate
from recsys_platform.standins.local_personalize.server import start_in_background as start_personalize
from recsys_platform_tests.code_location import GA4_ASSET_NAMES, assets, local_personalize_resource

FIRST = dt.date(2026, 3, 1)
LAST = FIRST + dt.timedelta(days=1)
PROPERTY = "123456789"


@pytest.fixture(scope="module")
def shop_on_bigquery(tmp_path_factory):
    folder = tmp_path_factory.mktemp("erasure_bq")
    shop = simulate(SimulationConfig(home=folder / "shop", days=2, start_date=FIRST, events_per_day=600, users=80,
                                     items=30, seed=11, property_id=PROPERTY, erasure_request_share=0.0))
    handle = start_bigquery(folder / "state", projects={"shop-analytics": shop.export_db},
                            datasets={("shop-platform", "product_db"): (shop.product_db, "product_db")})
    key = handle.write_credentials(folder / "key.json", "shop-platform")
    personalize = start_personalize(folder / "personalize", folder / "lake", step_delay=0.0)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in handle.client_environment(key).items():
            patch.setenv(name, value)
        dataset = f"recsys_{uuid.uuid4().hex[:8]}"
        warehouse = BigQueryWarehouse(ga4_property_id=PROPERTY, bigquery=BigQueryResource(project="shop-platform"),
                                      platform_dataset=dataset, product_dataset="product_db",
                                      export_project="shop-analytics")
        with warehouse.bigquery.get_client() as client:
            client.create_dataset(dataset)
        yield shop, warehouse, local_personalize_resource(personalize.endpoint_url), folder
    personalize.stop()
    handle.stop()


def _merge(warehouse, instance):
    return materialize(assets(*GA4_ASSET_NAMES), instance=instance, resources={"warehouse": warehouse},
                       tags={ASSET_PARTITION_RANGE_START_TAG: FIRST.isoformat(),
                             ASSET_PARTITION_RANGE_END_TAG: LAST.isoformat()})


def _rows_of(warehouse, user_id: str, pseudo_id: str) -> int:
    return sum(warehouse.query(f"SELECT COUNT(*) AS n FROM recsys.{table} WHERE user_id = @u OR user_pseudo_id = @p",
                               {"u": user_id, "p": pseudo_id}).to_pylist()[0]["n"]
               for table in ("ga4_events", "ga4_item_views", "ga4_purchases"))


def test_an_erased_user_leaves_the_bigquery_tables_and_a_remerge_keeps_them_out(shop_on_bigquery):
    shop, warehouse, personalize, folder = shop_on_bigquery
    instance = DagsterInstance.ephemeral()
    assert _merge(warehouse, instance).success
    row = warehouse.query("SELECT user_id, ANY_VALUE(user_pseudo_id) AS pseudo, COUNT(*) AS n FROM recsys.ga4_events "
                          "WHERE user_id IS NOT NULL GROUP BY user_id ORDER BY n DESC, user_id LIMIT 1").to_pylist()[0]
    user_id, pseudo_id = row["user_id"], row["pseudo"]
    assert _rows_of(warehouse, user_id, pseudo_id) > 0
    with duckdb.connect(str(shop.product_db)) as con:  # the stand-in serves the file as it is now
        con.execute("INSERT INTO product_db.product_db.erasure_requests VALUES (?, NULL, TIMESTAMP '2026-03-04 08:00:00')",
                    [user_id])

    erasure = build_erasure(load_taxonomy(), load_setup(), load_contract("simulator"))
    result = materialize([erasure], instance=instance, resources={
        "warehouse": warehouse, "personalize": personalize, "lake": LocalLake(root=str(folder / "lake"))})
    assert result.success
    meta = result.asset_materializations_for_node("erasure_requests_applied")[0].metadata
    assert meta["rows_deleted"].value["ga4_events"] > 0
    assert meta["personalize_data_deletion"].value["status"].startswith("no dataset group")  # nothing imported
    [check] = result.get_asset_check_evaluations()
    assert check.passed and _rows_of(warehouse, user_id, pseudo_id) == 0
    ledger = warehouse.query("SELECT user_pseudo_id, erased_on FROM recsys.erased_visitors").to_pylist()
    assert pseudo_id in {r["user_pseudo_id"] for r in ledger}

    assert _merge(warehouse, instance).success  # the export still holds the user
    assert _rows_of(warehouse, user_id, pseudo_id) == 0
