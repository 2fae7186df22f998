"""The GA4 half of the graph on DuckDB: merge, refine, interactions, on hand-written shards."""

import datetime as dt

from dagster import materialize

from recsys_platform_tests.code_location import GA4_ASSET_NAMES, assets
from recsys_platform_tests.ga4.conftest import DAY, NEXT_DAY
from recsys_platform_tests.ga4_fixtures import event, write_shard

GA4_ASSETS = assets(*GA4_ASSET_NAMES)
[ga4_events] = assets("ga4_events")


def run_day(warehouse, day: dt.date, assets=GA4_ASSETS, instance=None, raise_on_error=True):
    return materialize(assets, partition_key=day.isoformat(), resources={"warehouse": warehouse},
                       instance=instance, raise_on_error=raise_on_error)


def rows(warehouse, sql, **params):
    return warehouse.query(sql, params).to_pylist()


def materialization(result, key):
    [mat] = [e.materialization for e in result.get_asset_materialization_events()
             if e.materialization.asset_key.to_user_string() == key]
    return mat.metadata


def test_merge_deduplicates_and_counts_dropped_rows(warehouse, export_two_days):
    result = run_day(warehouse, DAY, [ga4_events])
    meta = materialization(result, "ga4_events")
    # 14 rows read: 1 exact duplicate, 1 without event name; the cookieless ping (no pseudo id) is kept.
    assert meta["rows_read"].value == 14
    assert meta["dagster/row_count"].value == 12
    assert meta["duplicates_removed"].value == 1
    assert meta["dropped_without_event_name"].value == 1
    assert sum(meta[k].value for k in meta if k.startswith("dropped_")) == 1  # each left-out row counted once
    assert meta["consent_denied_rows"].value == 1
    assert meta["sources"].value == {DAY.isoformat(): f"events_{DAY.strftime('%Y%m%d')}"}
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"has_rows_every_day": True, "event_keys_unique": True, "volume_within_guard": True,
                      "dropped_share_small": False, "consent_denied_share": True}
    [day] = rows(warehouse, "SELECT DISTINCT event_date FROM recsys.ga4_events")
    assert day["event_date"] == DAY


def test_the_merge_streams_the_wide_rows_instead_of_materialising_them(warehouse, recsys_home):
    """The merge reads its wide event rows in two places (every row once, the rows at a repeated timestamp
    again). DuckDB's common-subplan optimizer would materialise them: a 1M-event day's 2 GB spilled to disk
    and was read back twice. The plan must read the export twice instead (a day large enough for the
    optimizer to act: 20k events)."""
    from recsys_platform.defs.ga4.events import plan_merge
    from recsys_platform.defs.ga4.ga4_setup import load_ga4_setup
    from recsys_platform.defs.product_db.contract import load_contract
    from recsys_platform.lib.partitions import PartitionRange
    from recsys_platform.settings import PlatformSettings
    from recsys_platform.shared.bigquery_on_duckdb import used_params
    from recsys_platform.standins.ga4_simulator.simulation import SimulationConfig, simulate

    simulate(SimulationConfig(home=recsys_home, days=1, start_date=DAY, events_per_day=20_000, seed=7))
    setup, contract = load_ga4_setup(), load_contract(PlatformSettings.from_environment().product_db_contract)
    merge = plan_merge(warehouse, PartitionRange(DAY, DAY), setup, contract, "UTC")
    with warehouse._connect() as con:
        select = warehouse._translate(con, merge.statement("ga4_events.sql"), merge.params)
        plan = con.execute(f"EXPLAIN SELECT * FROM ({select})", used_params(select, merge.params)).fetchall()[0][1]
    assert "─ CTE ─" not in plan and plan.count("events_" + DAY.strftime("%Y%m%d")) >= 2, plan


def test_rerunning_a_day_leaves_identical_rows(warehouse, export_two_days):
    run_day(warehouse, DAY)
    order = "ORDER BY event_key"
    before = rows(warehouse, f"SELECT * EXCEPT (items, event_params) FROM recsys.ga4_events {order}")
    interactions_before = rows(warehouse, "SELECT * FROM recsys.interactions ORDER BY USER_ID, ITEM_ID, `TIMESTAMP`, EVENT_TYPE")
    run_day(warehouse, DAY)
    assert rows(warehouse, f"SELECT * EXCEPT (items, event_params) FROM recsys.ga4_events {order}") == before
    assert rows(warehouse, "SELECT * FROM recsys.interactions ORDER BY USER_ID, ITEM_ID, `TIMESTAMP`, EVENT_TYPE") \
        == interactions_before


def test_other_days_are_untouched_by_a_partition_run(warehouse, export_two_days):
    run_day(warehouse, DAY)
    run_day(warehouse, NEXT_DAY)
    counts = {r["event_date"]: r["n"] for r in
              rows(warehouse, "SELECT event_date, COUNT(*) AS n FROM recsys.ga4_events GROUP BY 1")}
    assert counts == {DAY: 12, NEXT_DAY: 1}
    run_day(warehouse, NEXT_DAY)
    counts_again = {r["event_date"]: r["n"] for r in
                    rows(warehouse, "SELECT event_date, COUNT(*) AS n FROM recsys.ga4_events GROUP BY 1")}
    assert counts_again == counts


def test_missing_shard_fails_with_its_name(warehouse, export_two_days):
    missing = DAY + dt.timedelta(days=5)
    result = run_day(warehouse, missing, [ga4_events], raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.event_specific_data.error.message + str(failure.event_specific_data.user_failure_data)
    assert f"analytics_123456789.events_{missing.strftime('%Y%m%d')}" in message


def test_refined_tables_are_item_grain_and_stitched(warehouse, export_two_days):
    result = run_day(warehouse, DAY)
    views = rows(warehouse, "SELECT user_id, user_pseudo_id, item_id, is_stitched, session_id "
                            "FROM recsys.ga4_item_views ORDER BY event_ts")
    # The anonymous view of A is credited to U1, who logged in with the same pseudo id later that day.
    assert views == [
        {"user_id": "U1", "user_pseudo_id": "p1", "item_id": "A", "is_stitched": True, "session_id": 1},
        {"user_id": "U1", "user_pseudo_id": "p1", "item_id": "B", "is_stitched": False, "session_id": 2},
        {"user_id": "U2", "user_pseudo_id": "p2", "item_id": "C", "is_stitched": False, "session_id": 1},
    ]
    meta = materialization(result, "ga4_item_views")
    assert meta["events_without_items"].value == 1
    assert meta["items_without_item_id"].value == 2
    assert meta["rows_stitched_to_user_id"].value == 1
    assert [r["item_id"] for r in rows(warehouse, "SELECT item_id FROM recsys.ga4_cart_adds")] == ["B"]
    assert [r["item_id"] for r in rows(warehouse, "SELECT item_id FROM recsys.ga4_wishlist_adds")] == ["C"]
    purchases = rows(warehouse, "SELECT transaction_id, item_revenue FROM recsys.ga4_purchases ORDER BY 1")
    assert purchases == [{"transaction_id": "T1", "item_revenue": 20.0}, {"transaction_id": "T2", "item_revenue": 5.0}]


def test_interactions_unite_ga4_and_db_purchases_without_double_counting(warehouse, export_two_days):
    result = run_day(warehouse, DAY)
    got = rows(warehouse, "SELECT USER_ID, ITEM_ID, EVENT_TYPE, source, EVENT_VALUE FROM recsys.interactions "
                          "ORDER BY source, USER_ID, EVENT_TYPE, ITEM_ID")
    assert got == [
        {"USER_ID": "U1", "ITEM_ID": "B", "EVENT_TYPE": "cart", "source": "ga4", "EVENT_VALUE": 20.0},
        {"USER_ID": "U1", "ITEM_ID": "A", "EVENT_TYPE": "view", "source": "ga4", "EVENT_VALUE": 10.0},
        {"USER_ID": "U1", "ITEM_ID": "B", "EVENT_TYPE": "view", "source": "ga4", "EVENT_VALUE": 20.0},
        {"USER_ID": "U2", "ITEM_ID": "C", "EVENT_TYPE": "like", "source": "ga4", "EVENT_VALUE": 5.0},
        # T2 is not in the product DB (replica lag): GA4's purchase stands.
        {"USER_ID": "U2", "ITEM_ID": "C", "EVENT_TYPE": "purchase", "source": "ga4", "EVENT_VALUE": 5.0},
        {"USER_ID": "U2", "ITEM_ID": "C", "EVENT_TYPE": "view", "source": "ga4", "EVENT_VALUE": 5.0},
        # T1 once (from the DB, not also from GA4); T3 phone order at 00:30 local; cancelled T4 absent.
        {"USER_ID": "U1", "ITEM_ID": "B", "EVENT_TYPE": "purchase", "source": "product_db", "EVENT_VALUE": 20.0},
        {"USER_ID": "U3", "ITEM_ID": "A", "EVENT_TYPE": "purchase", "source": "product_db", "EVENT_VALUE": 20.0},
        {"USER_ID": "U3", "ITEM_ID": "C", "EVENT_TYPE": "purchase", "source": "product_db", "EVENT_VALUE": 5.0},
    ]
    [ts] = rows(warehouse, "SELECT `TIMESTAMP` AS ts FROM recsys.interactions WHERE ITEM_ID = 'A' AND source = 'ga4'")
    assert ts["ts"] == int(dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.timezone.utc).timestamp())  # 10:00 KST
    checks = {(c.asset_key.to_user_string(), c.check_name): c.passed for c in result.get_asset_check_evaluations()}
    assert checks[("interactions", "keys_not_null")] and checks[("interactions", "event_types_known")]


def test_reexported_day_is_merged_without_duplicates(warehouse, export_two_days):
    run_day(warehouse, DAY)
    from recsys_platform_tests.ga4.conftest import day_one_events

    late = event(DAY, 23, "view_item", "p9", user_id="U9", items=[{"item_id": "A"}])
    write_shard(export_two_days / "ga4_export.duckdb", DAY, [*day_one_events(), late])
    run_day(warehouse, DAY)
    [n] = rows(warehouse, "SELECT COUNT(*) AS n FROM recsys.ga4_events WHERE event_date = @d", d=DAY)
    assert n["n"] == 13
    [u] = rows(warehouse, "SELECT COUNT(*) AS n FROM recsys.interactions WHERE USER_ID = 'U9'")
    assert u["n"] == 1


def test_backfill_range_runs_in_one_step(warehouse, export_two_days):
    """A backfill over a range is one run (BackfillPolicy.single_run): the range arrives as run tags."""
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    result = materialize(
        GA4_ASSETS, resources={"warehouse": warehouse},
        tags={ASSET_PARTITION_RANGE_START_TAG: DAY.isoformat(), ASSET_PARTITION_RANGE_END_TAG: NEXT_DAY.isoformat()},
    )
    assert result.success
    counts = {r["event_date"]: r["n"] for r in
              rows(warehouse, "SELECT event_date, COUNT(*) AS n FROM recsys.ga4_events GROUP BY 1")}
    assert counts == {DAY: 12, NEXT_DAY: 1}
    partitions = sorted(m.partition for m in result.asset_materializations_for_node("interactions"))
    assert partitions == [DAY.isoformat(), NEXT_DAY.isoformat()]
    # One step covered both days: the step's metadata names the whole range.
    assert {m.metadata["days"].value for m in result.asset_materializations_for_node("interactions")} == {
        f"{DAY.isoformat()}..{NEXT_DAY.isoformat()}"}
