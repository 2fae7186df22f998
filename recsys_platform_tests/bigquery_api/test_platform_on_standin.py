"""The platform's production warehouse code (BigQueryWarehouse, via dagster-gcp) against the stand-in,
on a simulated GA4 export served from the simulator's DuckDB files, checked against the embedded default
(DuckDBWarehouse) on the very same files."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from dagster import materialize
from dagster_gcp import BigQueryResource
from google.cloud import bigquery


from recsys_platform.defs.ga4.events import _volume_guard, plan_merge
from recsys_platform.defs.ga4.ga4_setup import load_ga4_setup
from recsys_platform.defs.product_db.contract import load_contract
from recsys_platform.lib.partitions import PartitionRange
from recsys_platform.lib.table_stats import rows_per_day
from recsys_platform.lib.warehouse.bigquery_engine import BigQueryWarehouse
from recsys_platform.lib.warehouse.duckdb_engine import DuckDBWarehouse
from recsys_platform.lib.warehouse.interface import StagedPartitions
from recsys_platform.standins.bigquery_api import start_in_background
from recsys_platform_tests.code_location import GA4_ASSET_NAMES, assets

from recsys_platform_tests.bigquery_api.conftest import PROPERTY, SHOP_FIRST_DAY, TIMEZONE

DAY = SHOP_FIRST_DAY + dt.timedelta(days=1)
INTERACTIONS_SUMMARY = ("SELECT EVENT_TYPE, source, COUNT(*) AS n, ROUND(SUM(EVENT_VALUE), 2) AS value, "
                        "SUM(`TIMESTAMP`) AS seconds FROM recsys.interactions GROUP BY 1, 2 ORDER BY 1, 2")


@pytest.fixture(scope="module")
def bq(shop, tmp_path_factory):
    """The stand-in serving the export as project shop-analytics and the product DB as a dataset of the
    platform's project, and a client configured the way a deployment configures one."""
    folder = tmp_path_factory.mktemp("platform")
    handle = start_in_background(
        folder / "state", projects={"shop-analytics": shop.export_db},
        datasets={("shop-platform", "product_db"): (shop.product_db, "product_db")})
    key = handle.write_credentials(folder / "key.json", "shop-platform")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in handle.client_environment(key).items():
            patch.setenv(name, value)
        with bigquery.Client(project="shop-platform") as client:
            yield client
    handle.stop()


@pytest.fixture(scope="module")
def ga4_assets():
    """The GA4 half of the code location, built once (building the definitions takes seconds)."""
    return assets(*GA4_ASSET_NAMES)


def _bigquery_warehouse(client) -> BigQueryWarehouse:
    dataset = f"recsys_{uuid.uuid4().hex[:8]}"  # a fresh platform dataset per test
    client.create_dataset(dataset)
    return BigQueryWarehouse(ga4_property_id=PROPERTY, bigquery=BigQueryResource(project="shop-platform"),
                             platform_dataset=dataset, product_dataset="product_db", export_project="shop-analytics")


def _duckdb_warehouse(shop, folder) -> DuckDBWarehouse:
    return DuckDBWarehouse(ga4_property_id=PROPERTY, warehouse_path=str(folder / "warehouse.duckdb"),
                           export_path=str(shop.export_db), product_db_path=str(shop.product_db))


def _merge(warehouse, validate=None, day=DAY) -> int:
    """What the ga4_events asset asks of its warehouse for one day (checks: `validate`)."""
    merge = plan_merge(warehouse, PartitionRange(day, day), load_ga4_setup(), load_contract("simulator"), TIMEZONE)
    return warehouse.replace_partitions("ga4_events", merge.statement("ga4_events.sql"), merge.params, "event_date",
                                        day, day, cluster_by=["event_name"], validate=validate)


def test_the_first_ga4_events_merge_into_a_fresh_dataset(bq):
    """The target is created (empty) before the checks run: the volume guard reads the stored days, which a
    fresh dataset does not have yet (this used to fail with 404 on BigQuery only)."""
    warehouse = _bigquery_warehouse(bq)
    days = PartitionRange(DAY, DAY)
    guard = {}

    def validate(staged: StagedPartitions) -> None:  # the part of the asset's validate() that reads history
        guard.update(_volume_guard(staged, rows_per_day(staged, "ga4_events", days, dataset="staged"), days,
                                   load_ga4_setup()))

    assert _merge(warehouse, validate) > 0
    assert guard["passed"] and guard["trailing_median"] is None  # nothing stored before: nothing to compare


def test_the_ga4_graph_on_the_standin_matches_the_embedded_default(bq, shop, tmp_path, ga4_assets):
    warehouse = _bigquery_warehouse(bq)
    assert f"events_{DAY:%Y%m%d}" in [t.table_id for t in warehouse.list_export_tables().tables]
    # The merge SQL through BigQueryWarehouse.replace_partitions, as the asset calls it, then the assets.
    merged = _merge(warehouse)
    remote = materialize(ga4_assets, partition_key=DAY.isoformat(),
                         resources={"warehouse": warehouse})
    local_warehouse = _duckdb_warehouse(shop, tmp_path)
    local = materialize(ga4_assets, partition_key=DAY.isoformat(),
                        resources={"warehouse": local_warehouse})
    assert remote.success and local.success
    keys = "SELECT event_key FROM recsys.ga4_events ORDER BY event_key"
    remote_keys = warehouse.query(keys).column("event_key").to_pylist()
    assert remote_keys == local_warehouse.query(keys).column("event_key").to_pylist()
    assert len(remote_keys) == merged > 0  # the asset's re-run replaced the day, never duplicated it
    table = bq.get_table(f"shop-platform.{warehouse.platform_dataset}.ga4_events")
    assert (table.time_partitioning.field, table.clustering_fields) == ("event_date", ["event_name"])
    batches = list(warehouse.iter_batches("SELECT event_key, event_date FROM recsys.ga4_events", batch_rows=100))
    assert [b.num_rows for b in batches][:-1] == [100] * (len(batches) - 1) and \
        sum(b.num_rows for b in batches) == merged
    remote_checks = {(c.asset_key.to_user_string(), c.check_name): c.passed
                     for c in remote.get_asset_check_evaluations()}
    local_checks = {(c.asset_key.to_user_string(), c.check_name): c.passed
                    for c in local.get_asset_check_evaluations()}
    assert remote_checks == local_checks
    summary = warehouse.query(INTERACTIONS_SUMMARY).to_pylist()
    assert summary == local_warehouse.query(INTERACTIONS_SUMMARY).to_pylist()
    assert {r["EVENT_TYPE"] for r in summary} >= {"view", "purchase"}
