"""The export sensor on an export holding a table named after a day that does not exist (`events_20260230`)
and a shard from before the first partition: both are reported in the tick's log (what the daemon keeps
for the tick and the UI shows), nothing raises, and the real new days are still requested."""

import logging
import time

from dagster import DagsterInstance, SkipReason, build_sensor_context

from recsys_platform.standins.ga4_simulator import odd_rows
from recsys_platform_tests.code_location import platform_definitions
from recsys_platform_tests.faults import harness
from recsys_platform_tests.faults.conftest import PROPERTY_ID, day


class Captured(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def tick(defs, cursor=None):
    context = build_sensor_context(instance=DagsterInstance.ephemeral(), cursor=cursor,
                                   resources={"warehouse": defs.resources["warehouse"]})
    captured = Captured()
    context.log.addHandler(captured)
    result = defs.resolve_sensor_def("ga4_export_sensor")(context)
    return result, captured.messages


def test_an_impossible_day_and_a_shard_before_the_partitions_are_reported_not_raised(shop_home, monkeypatch,
                                                                                     tmp_path_factory):
    # The property's partitions start on the shop's second day: its first shard lies outside them.
    monkeypatch.setenv("RECSYS_START_DATE", day(2).isoformat())
    odd_rows.invalid_date_table(shop_home / "ga4_export.duckdb", PROPERTY_ID, day(2))
    defs = platform_definitions()

    started = time.monotonic()
    result, log = tick(defs)
    seconds = time.monotonic() - started
    # The real new days are requested, one run each; the impossible day and the early shard are not.
    assert sorted(r.partition_key for r in result.run_requests) == [day(n).isoformat() for n in (2, 3, 4)]
    assert any(odd_rows.INVALID_DATE_TABLE in message for message in log), log
    assert any(f"events_{day(1):%Y%m%d}" in message and "outside the partitions" in message for message in log), log

    # Nothing new on the next tick: it skips, and still says what it ignores.
    again, _ = tick(defs, cursor=result.cursor)
    assert isinstance(again, SkipReason)
    assert odd_rows.INVALID_DATE_TABLE in again.skip_message
    assert f"events_{day(1):%Y%m%d}" in again.skip_message
    harness.record_fault(tmp_path_factory, "table events_20260230 + shard before the first partition",
                         "GA4 export listing (sensor tick)",
                         "tick succeeded: days 2-4 requested; both tables reported in the tick log and skip "
                         "reason", 0, 0, seconds)
