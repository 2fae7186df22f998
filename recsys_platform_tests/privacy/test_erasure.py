"""The right to erasure on the embedded default: a request reaches every derived table, later snapshots and
Personalize, is idempotent, and a re-merge of an old day does not bring the user back."""

import csv
import datetime as dt
import io

import duckdb
import pytest
from dagster import DagsterInstance, materialize

from recsys_platform.defs.privacy.erasure import _left_behind, build_erasure
from recsys_platform.defs.ga4.taxonomy import load_taxonomy
from recsys_platform.defs.personalize.job_waiting import WaitPolicy
from recsys_platform.defs.personalize.personalize_setup import load_setup
from recsys_platform.defs.product_db.contract import load_contract
from recsys_platform.standins.ga4_simulator.simulation import SimulationConfig, simulate
from recsys_platform.standins.local_personalize.server import start_in_background
from recsys_platform_tests.code_location import GA4_ASSET_NAMES, SNAPSHOT_NAMES, assets, platform_definitions

FIRST = dt.date(2026, 3, 1)
DAYS = 3
LAST = FIRST + dt.timedelta(days=DAYS - 1)
TABLES = ["ga4_events", "ga4_item_views", "ga4_cart_adds", "ga4_wishlist_adds", "ga4_purchases"]
FAST = {"poll_seconds": 0.05, "deadline_seconds": 120}


def _range_tags():
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    return {ASSET_PARTITION_RANGE_START_TAG: FIRST.isoformat(), ASSET_PARTITION_RANGE_END_TAG: LAST.isoformat()}


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """A shop whose days were merged and imported into Personalize before anyone asked to be forgotten."""
    home = tmp_path_factory.mktemp("erasure") / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RECSYS_HOME", str(home))
        simulate(SimulationConfig(home=home, days=DAYS, start_date=FIRST, events_per_day=4_000, users=300, items=120,
                                  seed=5, erasure_request_share=0.0))
        server = start_in_background(home / "personalize", home / "lake", step_delay=0.0)
        patch.setenv("RECSYS_PERSONALIZE_ENDPOINT_URL", server.endpoint_url)
        defs = platform_definitions()
        instance = DagsterInstance.ephemeral()
        ga4 = materialize(assets(*GA4_ASSET_NAMES, defs=defs), instance=instance, tags=_range_tags(),
                          resources={"warehouse": defs.resources["warehouse"]})
        assert ga4.success
        chain = assets(*SNAPSHOT_NAMES, "personalize_dataset_import", defs=defs)
        imported = materialize(chain, instance=instance, partition_key=LAST.isoformat(), resources=defs.resources,
                               run_config={"ops": {"personalize_dataset_import": {"config": FAST}}})
        assert imported.success
        yield home, defs, instance, server
        server.stop()


def _most_active_user(warehouse) -> tuple[str, str]:
    row = warehouse.query(
        "SELECT user_id, ANY_VALUE(user_pseudo_id) AS pseudo, COUNT(*) AS n FROM recsys.ga4_events "
        "WHERE user_id IS NOT NULL GROUP BY user_id ORDER BY n DESC, user_id LIMIT 1").to_pylist()[0]
    return row["user_id"], row["pseudo"]


def _user_ids_in(snapshot_csv: str) -> set[str]:
    return {row["USER_ID"] for row in csv.DictReader(io.StringIO(snapshot_csv))}


def _rows_of(warehouse, user_id: str, pseudo_id: str) -> dict[str, int]:
    counts = {}
    for table in TABLES:
        counts[table] = warehouse.query(
            f"SELECT COUNT(*) AS n FROM recsys.{table} WHERE user_id = @u OR user_pseudo_id = @p",
            {"u": user_id, "p": pseudo_id}).to_pylist()[0]["n"]
    counts["interactions"] = warehouse.query(
        "SELECT COUNT(*) AS n FROM recsys.interactions WHERE USER_ID = @u OR ENDS_WITH(USER_ID, CONCAT(':', @p))",
        {"u": user_id, "p": pseudo_id}).to_pylist()[0]["n"]
    return counts


def test_a_request_reaches_every_table_personalize_and_later_snapshots(shop):
    home, defs, instance, server = shop
    warehouse = defs.resources["warehouse"]
    user_id, pseudo_id = _most_active_user(warehouse)
    before = _rows_of(warehouse, user_id, pseudo_id)
    assert before["ga4_events"] > 0 and before["interactions"] > 0
    with duckdb.connect(str(home / "product_db.duckdb")) as con:  # the shop records the request
        con.execute("INSERT INTO product_db.product_db.erasure_requests VALUES (?, NULL, TIMESTAMP '2026-03-04 08:00:00')",
                    [user_id])

    erasure = build_erasure(load_taxonomy(), load_setup(), load_contract("simulator"),
                            wait=WaitPolicy(poll_seconds=0.05, deadline_seconds=120))
    first = materialize([erasure], instance=instance, resources=defs.resources)
    assert first.success
    meta = first.asset_materializations_for_node("erasure_requests_applied")[0].metadata
    assert meta["requests"].value == 1
    deleted = meta["rows_deleted"].value
    assert deleted["ga4_events"] == before["ga4_events"] and deleted["interactions"] == before["interactions"]
    assert all(n == 0 for n in _rows_of(warehouse, user_id, pseudo_id).values())
    ledger = warehouse.query("SELECT user_pseudo_id FROM recsys.erased_visitors").column("user_pseudo_id").to_pylist()
    assert pseudo_id in ledger and len(ledger) == len(set(ledger))
    deletion = meta["personalize_data_deletion"].value
    assert deletion["resumed"] is False and deletion["records_deleted"] > 0
    [check] = first.get_asset_check_evaluations()
    assert check.passed
    [outcome] = meta["outcome_per_request"].value
    assert (outcome["user_id"], outcome["status"]) == (user_id, "applied")
    assert outcome["requested_at"].startswith("2026-03-04 08:00")

    # Again: nothing left to delete, and the same Personalize job is found, not started twice.
    again = materialize([erasure], instance=instance, resources=defs.resources)
    meta = again.asset_materializations_for_node("erasure_requests_applied")[0].metadata
    assert set(meta["rows_deleted"].value.values()) == {0}
    assert meta["personalize_data_deletion"].value["arn"] == deletion["arn"]
    client = defs.resources["personalize"].get_client()
    group = client.describe_data_deletion_job(dataDeletionJobArn=deletion["arn"])["dataDeletionJob"]["datasetGroupArn"]
    assert len(client.list_data_deletion_jobs(datasetGroupArn=group)["dataDeletionJobs"]) == 1

    # The export still holds the user (GA4's deletion does not rewrite it): a re-merge must not bring them back,
    # and the next training snapshot has none of their rows.
    remerged = materialize(assets(*GA4_ASSET_NAMES, defs=defs), instance=instance, tags=_range_tags(),
                           resources={"warehouse": warehouse})
    assert remerged.success
    merged = next(e.materialization for e in remerged.get_asset_materialization_events()
                  if e.materialization.asset_key.to_user_string() == "ga4_events")
    assert merged.metadata["dropped_erased_on_request"].value >= before["ga4_events"]
    assert all(n == 0 for n in _rows_of(warehouse, user_id, pseudo_id).values())
    snapshot = materialize(assets("personalize_interactions_csv", "personalize_users_csv", defs=defs),
                           instance=instance, partition_key=LAST.isoformat(), resources=defs.resources)
    lake = defs.resources["lake"]
    interactions = _user_ids_in(lake.read_text(snapshot.asset_value("personalize_interactions_csv").key))
    assert len(interactions) > 10 and user_id not in interactions
    assert not any(i.startswith("anon:") and i.endswith(f":{pseudo_id}") for i in interactions)
    users = _user_ids_in(lake.read_text(snapshot.asset_value("personalize_users_csv").key))
    assert len(users) > 10 and user_id not in users

    # A row of the erased user planted back (a restore from an old backup): the check's query names the
    # table, and the next erasure run deletes it again.
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        con.execute("INSERT INTO recsys.ga4_item_views (event_date, user_id, item_id) "
                    "VALUES (DATE '2026-03-02', ?, 'planted')", [user_id])
    erased = {"user_ids": [user_id], "user_pseudo_ids": [pseudo_id]}
    assert _left_behind(warehouse, ["ga4_item_views"], erased, []) == {"ga4_item_views": 1}
    cleaned = materialize([erasure], instance=instance, resources=defs.resources)
    assert cleaned.asset_materializations_for_node("erasure_requests_applied")[0].metadata[
        "rows_deleted"].value["ga4_item_views"] == 1
    assert all(c.passed for c in cleaned.get_asset_check_evaluations())
