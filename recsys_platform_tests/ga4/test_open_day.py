"""Today's open day: the optional intraday schedule merges it from the intraday table, the sensor leaves it
alone until its daily table lands, the fallback run and the 09:00 deadline look at yesterday."""

import datetime as dt
from zoneinfo import ZoneInfo

from dagster import (
    DagsterInstance,
    DefaultScheduleStatus,
    RunRequest,
    SkipReason,
    build_schedule_context,
    build_sensor_context,
    materialize,
)

from recsys_platform.defs.ga4.daily_job import due_day
from recsys_platform_tests.code_location import assets, platform_definitions
from recsys_platform_tests.ga4_fixtures import TIMEZONE, event, write_product_db, write_shard

defs = platform_definitions()
[ga4_events] = assets("ga4_events", defs=defs)
REPOSITORY = defs.get_repository_def()
ZONE = ZoneInfo(TIMEZONE)


def _views(day, n, pseudo):
    return [event(day, 0, "view_item", pseudo, minute=i % 60, second=i // 60, items=[{"item_id": "A"}])
            for i in range(n)]


def _merged(result) -> dict:
    mat = result.asset_materializations_for_node("ga4_events")[0]
    return {k: v.value for k, v in mat.metadata.items()}


def test_the_intraday_schedule_merges_today_and_the_sensor_waits_for_its_daily_table(warehouse, recsys_home):
    write_product_db(recsys_home / "product_db.duckdb", [], ["A"], ["U1"])
    export = recsys_home / "ga4_export.duckdb"
    today = dt.datetime.now(ZONE).date()
    for back in range(1, 8):  # a busy week before, so the volume guard applies
        day = today - dt.timedelta(days=back)
        write_shard(export, day, _views(day, 1500, f"p{back}"))
    instance = DagsterInstance.ephemeral()
    week = materialize([ga4_events], instance=instance, resources={"warehouse": warehouse},
                       tags={"dagster/asset_partition_range_start": (today - dt.timedelta(days=7)).isoformat(),
                             "dagster/asset_partition_range_end": (today - dt.timedelta(days=1)).isoformat()})
    assert week.success

    schedule = defs.resolve_schedule_def("ga4_intraday_schedule")
    assert schedule.default_status == DefaultScheduleStatus.STOPPED  # opt-in
    now = dt.datetime.now(dt.timezone.utc)
    context = build_schedule_context(instance=instance, scheduled_execution_time=now,
                                     resources={"warehouse": warehouse}, repository_def=REPOSITORY)
    assert isinstance(schedule.evaluate_tick(context).skip_message, str)  # no intraday table yet: skipped

    write_shard(export, today, _views(today, 40, "early"), kind="intraday")  # early morning: a partial day
    [request] = schedule.evaluate_tick(build_schedule_context(
        instance=instance, scheduled_execution_time=now, resources={"warehouse": warehouse},
        repository_def=REPOSITORY)).run_requests
    assert isinstance(request, RunRequest) and request.partition_key == today.isoformat()
    assert request.run_key.startswith(f"events_intraday_{today:%Y%m%d}@")

    merged = materialize([ga4_events], instance=instance, partition_key=request.partition_key,
                         resources={"warehouse": warehouse})
    meta = _merged(merged)
    assert meta["sources"] == {today.isoformat(): f"events_intraday_{today:%Y%m%d}"}
    assert meta["days_still_open"] == [today.isoformat()] and meta["dagster/row_count"] == 40
    volume = next(c for c in merged.get_asset_check_evaluations() if c.check_name == "volume_within_guard")
    assert volume.passed and volume.metadata["guard_applies"].value  # 40 << 1500: held to it only when closed

    # The sensor does not chase an open day's intraday table, minute by minute.
    sensor = defs.resolve_sensor_def("ga4_export_sensor")
    tick = sensor(build_sensor_context(instance=instance, resources={"warehouse": warehouse}))
    assert today.isoformat() not in {r.partition_key for r in (getattr(tick, "run_requests", None) or [])}


def test_a_closed_day_as_small_as_the_open_one_is_refused(warehouse, recsys_home):
    """The open-day exemption is only for the open day: the same 40 events on a finished day are refused."""
    write_product_db(recsys_home / "product_db.duckdb", [], ["A"], ["U1"])
    export = recsys_home / "ga4_export.duckdb"
    yesterday = dt.datetime.now(ZONE).date() - dt.timedelta(days=1)
    for back in range(1, 8):
        day = yesterday - dt.timedelta(days=back)
        write_shard(export, day, _views(day, 1500, f"p{back}"))
    instance = DagsterInstance.ephemeral()
    assert materialize([ga4_events], instance=instance, resources={"warehouse": warehouse},
                       tags={"dagster/asset_partition_range_start": (yesterday - dt.timedelta(days=7)).isoformat(),
                             "dagster/asset_partition_range_end": (yesterday - dt.timedelta(days=1)).isoformat()}
                       ).success
    write_shard(export, yesterday, _views(yesterday, 40, "late"))
    refused = materialize([ga4_events], instance=instance, partition_key=yesterday.isoformat(),
                          resources={"warehouse": warehouse}, raise_on_error=False)
    assert not refused.success
    volume = next(c for c in refused.get_asset_check_evaluations() if c.check_name == "volume_within_guard")
    assert not volume.passed


def test_the_fallback_run_is_for_yesterday_whatever_the_partitions_end(warehouse):
    schedule = defs.resolve_schedule_def("ga4_daily_job_schedule")
    at_ten = dt.datetime(2026, 3, 5, 10, 0, tzinfo=ZONE)
    [request] = schedule.evaluate_tick(build_schedule_context(scheduled_execution_time=at_ten, repository_def=REPOSITORY)).run_requests
    assert request.partition_key == "2026-03-04"
    retraining = defs.resolve_schedule_def("personalize_retraining_schedule")
    at_eleven = dt.datetime(2026, 3, 5, 11, 0, tzinfo=ZONE)
    [request] = retraining.evaluate_tick(build_schedule_context(scheduled_execution_time=at_eleven,
                                                                           repository_def=REPOSITORY)).run_requests
    assert request.partition_key == "2026-03-04"


def test_the_deadline_names_the_day_due():
    at = lambda h: dt.datetime(2026, 3, 5, h, 30, tzinfo=ZONE)  # noqa: E731
    assert due_day(at(8), TIMEZONE) == dt.date(2026, 3, 3)  # before 09:00 the 4th is not due yet
    assert due_day(at(9), TIMEZONE) == dt.date(2026, 3, 4)


def test_the_deadline_check_fails_until_yesterday_is_merged(warehouse, recsys_home):
    write_product_db(recsys_home / "product_db.duckdb", [], ["A"], ["U1"])
    due = due_day(dt.datetime.now(dt.timezone.utc), TIMEZONE)
    instance = DagsterInstance.ephemeral()
    job = defs.resolve_job_def("ga4_merge_deadline_job")
    late = job.execute_in_process(instance=instance)
    [check] = late.get_asset_check_evaluations()
    assert not check.passed and check.metadata["due_day"].value == due.isoformat()

    write_shard(recsys_home / "ga4_export.duckdb", due, _views(due, 3, "p"))
    assert materialize([ga4_events], instance=instance, partition_key=due.isoformat(),
                       resources={"warehouse": warehouse}).success
    [check] = job.execute_in_process(instance=instance).get_asset_check_evaluations()
    assert check.passed
