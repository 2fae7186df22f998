"""ga4_export_sensor evaluated tick by tick with build_sensor_context."""

import datetime as dt
import json

from dagster import DagsterInstance, SkipReason, build_sensor_context

from recsys_platform_tests.code_location import assets, platform_definitions
from recsys_platform_tests.ga4_fixtures import event, write_shard

FIRST = dt.date(2026, 2, 1)


ga4_export_sensor = platform_definitions().resolve_sensor_def("ga4_export_sensor")


def tick(warehouse, cursor=None):
    context = build_sensor_context(instance=DagsterInstance.ephemeral(), cursor=cursor,
                                   resources={"warehouse": warehouse})
    return ga4_export_sensor(context)


def write_days(export_db, days: int):
    for i in range(days):
        day = FIRST + dt.timedelta(days=i)
        write_shard(export_db, day, [event(day, 10, "view_item", f"p{i}", items=[{"item_id": "A"}])])


def test_new_days_request_one_run_each_and_report_the_export(warehouse, recsys_home):
    write_days(recsys_home / "ga4_export.duckdb", 5)
    result = tick(warehouse)
    keys = sorted(r.partition_key for r in result.run_requests)
    assert keys == [(FIRST + dt.timedelta(days=i)).isoformat() for i in range(5)]
    assert len({r.run_key for r in result.run_requests}) == 5
    assert all(r.run_key.startswith(f"events_{r.partition_key.replace('-', '')}@") for r in result.run_requests)
    reported = sorted(e.partition for e in result.asset_events)
    assert reported == keys and all(e.asset_key.to_user_string() == "ga4_export" for e in result.asset_events)
    assert len(json.loads(result.cursor)) == 5


def test_a_first_deployment_becomes_one_backfill_run_not_one_run_per_day(warehouse, recsys_home):
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    write_days(recsys_home / "ga4_export.duckdb", 30)
    result = tick(warehouse)
    [request] = result.run_requests
    assert request.partition_key is None
    assert request.tags[ASSET_PARTITION_RANGE_START_TAG] == "2026-02-01"
    assert request.tags[ASSET_PARTITION_RANGE_END_TAG] == "2026-03-02"
    assert len(result.asset_events) == 30 and len(json.loads(result.cursor)) == 30
    assert isinstance(tick(warehouse, cursor=result.cursor), SkipReason)


def test_unchanged_shards_request_nothing(warehouse, recsys_home):
    write_days(recsys_home / "ga4_export.duckdb", 5)
    first = tick(warehouse)
    again = tick(warehouse, cursor=first.cursor)
    assert isinstance(again, SkipReason)


def test_reexported_shard_is_requested_again_with_a_new_run_key(warehouse, recsys_home):
    export_db = recsys_home / "ga4_export.duckdb"
    write_days(export_db, 5)
    first = tick(warehouse)
    day = FIRST + dt.timedelta(days=3)
    write_shard(export_db, day, [event(day, 10, "view_item", "p3", items=[{"item_id": "A"}]),
                                 event(day, 23, "view_item", "late", items=[{"item_id": "B"}])])
    second = tick(warehouse, cursor=first.cursor)
    [request] = second.run_requests
    assert request.partition_key == day.isoformat()
    [report] = [e for e in second.asset_events]
    assert report.metadata["change"].value == "rewritten"
    old_key = next(r.run_key for r in first.run_requests if r.partition_key == day.isoformat())
    assert request.run_key != old_key
    [report] = second.asset_events
    assert report.metadata["dagster/row_count"].value == 2


def test_tables_outside_the_partitions_or_not_a_day_are_reported_not_raised(warehouse, recsys_home):
    import duckdb

    export_db = recsys_home / "ga4_export.duckdb"
    old = dt.date(2020, 1, 1)
    write_shard(export_db, old, [event(old, 10, "view_item", "p", items=[])])
    skipped = tick(warehouse)
    assert isinstance(skipped, SkipReason) and "outside the partitions" in skipped.skip_message
    assert "events_20200101" in skipped.skip_message
    # A table named like a day that does not exist: every tick used to raise on it.
    with duckdb.connect(str(export_db)) as con:
        con.execute("CREATE TABLE analytics_123456789.events_20260230 AS SELECT 1 AS x")
        con.execute("INSERT INTO analytics_123456789.__TABLES__ (table_id, last_modified_time, row_count) "
                    "VALUES ('events_20260230', 1, 1)")
    write_days(export_db, 2)
    result = tick(warehouse)
    assert sorted(r.partition_key for r in result.run_requests) == ["2026-02-01", "2026-02-02"]


def test_no_export_yet_is_a_skip(warehouse):
    assert isinstance(tick(warehouse), SkipReason)


def test_reexported_day_flows_from_sensor_to_merge_without_duplicates(warehouse, recsys_home):
    """The real simulator writes two days; the sensor's requests are run; GA4 re-exports the first day
    with late events; the next tick requests only that day, and the re-run adds exactly the new events."""
    from dagster import materialize

    from recsys_platform.standins.ga4_simulator.late_events import reexport_shard
    from recsys_platform.standins.ga4_simulator.simulation import SimulationConfig, simulate

    [ga4_events] = assets("ga4_events")

    simulate(SimulationConfig(home=recsys_home, days=2, start_date=FIRST, events_per_day=400, users=50, items=40,
                              seed=3))

    def merge(partition_key):
        materialize([ga4_events], partition_key=partition_key, resources={"warehouse": warehouse})

    def merged_rows(day):
        return warehouse.query("SELECT COUNT(*) AS n, COUNT(DISTINCT event_key) AS k FROM recsys.ga4_events "
                               "WHERE event_date = @day", {"day": day}).to_pylist()[0]

    first = tick(warehouse)
    for request in first.run_requests:
        merge(request.partition_key)
    before = merged_rows(FIRST)
    assert before["n"] == before["k"] > 0

    reexport_shard(recsys_home / "ga4_export.duckdb", "123456789", FIRST, extra_events=25, seed=11)
    second = tick(warehouse, cursor=first.cursor)
    assert [r.partition_key for r in second.run_requests] == [FIRST.isoformat()]
    merge(FIRST.isoformat())
    after = merged_rows(FIRST)
    assert after["n"] == after["k"] == before["n"] + 25
    merge(FIRST.isoformat())  # the same shard again: nothing changes
    assert merged_rows(FIRST) == after


def test_an_empty_cursor_requests_nothing_for_days_already_merged(warehouse, recsys_home):
    """`make demo` then `make dev`: the sensor starts with no cursor and must not re-request merged days."""
    from dagster import materialize

    from recsys_platform_tests.ga4_fixtures import write_product_db

    write_product_db(recsys_home / "product_db.duckdb", [], ["A"], [])
    write_days(recsys_home / "ga4_export.duckdb", 3)
    instance = DagsterInstance.ephemeral()
    [ga4_events] = assets("ga4_events")
    for i in range(2):
        materialize([ga4_events], instance=instance, partition_key=(FIRST + dt.timedelta(days=i)).isoformat(),
                    resources={"warehouse": warehouse})
    result = ga4_export_sensor(build_sensor_context(instance=instance, resources={"warehouse": warehouse}))
    # Only the day never merged is requested; a day rewritten after its merge would be too (next test file).
    assert [r.partition_key for r in result.run_requests] == [(FIRST + dt.timedelta(days=2)).isoformat()]
    write_shard(recsys_home / "ga4_export.duckdb", FIRST, [event(FIRST, 11, "view_item", "late", items=[{"item_id": "A"}])])
    rewritten = ga4_export_sensor(build_sensor_context(instance=instance, resources={"warehouse": warehouse}))
    assert sorted(r.partition_key for r in rewritten.run_requests) == [FIRST.isoformat(),
                                                                       (FIRST + dt.timedelta(days=2)).isoformat()]
