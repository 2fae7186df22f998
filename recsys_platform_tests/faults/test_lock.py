"""Another process holds the warehouse file (`warehouse.duckdb` opened read-write: a notebook, a second
`dagster dev`, a stuck backup): the day's steps wait for it with backoff and go on when it is released; held
beyond the warehouse's `lock_timeout_seconds` the step fails naming the lock, and nothing is half written."""

from __future__ import annotations

import contextlib
import subprocess
import sys

from recsys_platform_tests.code_location import platform_definitions
from recsys_platform_tests.faults import harness
from recsys_platform_tests.faults.conftest import day
from recsys_platform_tests.faults.in_process import run_job

HOLDER = """
import sys, time, duckdb
connection = duckdb.connect(sys.argv[1])  # read-write: DuckDB locks the file for this process
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


@contextlib.contextmanager
def lock_held(path, seconds: float):
    """A process that opens `path` read-write and keeps it for `seconds` (ended on exit if still holding)."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), str(seconds)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait(timeout=30)


def warehouse_config(**overrides) -> dict:
    """Run config of the deployment's warehouse resource with `overrides`, as an operator sets it at launch."""
    warehouse = platform_definitions().resources["warehouse"]
    fields = {"ga4_property_id": warehouse.ga4_property_id, "warehouse_path": warehouse.warehouse_path,
              "export_path": warehouse.export_path, "product_db_path": warehouse.product_db_path}
    return {"resources": {"warehouse": {"config": {**fields, **overrides}}}}


def test_a_held_warehouse_lock_is_waited_for_and_beyond_the_timeout_fails_naming_it(shop_home, tmp_path_factory):
    warehouse = shop_home / "warehouse.duckdb"
    first = run_job(partition=day(1).isoformat())
    assert first.success, first.failure_message()

    # Held for a few seconds: the merge waits (with jittered backoff) and then runs.
    stored = harness.stored_rows(shop_home)
    hold = 4.0
    with lock_held(warehouse, hold) as holder:
        waited = run_job(partition=day(2).isoformat())
        # The run started while the file was held and outlasted the holder: it waited (without the retry
        # DuckDB refuses the file at once and the run fails).
        assert holder.poll() is not None, "the run finished while the file was still held"
    assert waited.success, waited.failure_message()
    after_wait = harness.stored_rows(shop_home)
    lost, _ = harness.lost_and_duplicated(stored, after_wait)
    duplicates = harness.event_key_repeats(shop_home)
    harness.record_fault(tmp_path_factory, f"DuckDB lock held {hold:.0f} s by another process",
                         "warehouse.duckdb (read-write connection in another process)",
                         "merge waited with backoff, then the run succeeded", lost, duplicates, waited.seconds)
    assert (lost, duplicates) == (0, 0)

    # Held beyond the timeout: the step gives up naming the lock; the stored tables are as they were.
    with lock_held(warehouse, 120) as holder:
        refused = run_job(partition=day(3).isoformat(), run_config=warehouse_config(lock_timeout_seconds=2.0))
        assert holder.poll() is None
    assert not refused.success
    message = refused.failure_message()
    assert "Could not set lock" in message and str(warehouse) in message, message
    assert harness.lost_and_duplicated(after_wait, harness.stored_rows(shop_home)) == (0, 0)

    # The holder is gone: the next run of the partition finishes.
    recovered = run_job(partition=day(3).isoformat())
    assert recovered.success, recovered.failure_message()
    lost, _ = harness.lost_and_duplicated(after_wait, harness.stored_rows(shop_home))
    duplicates = harness.event_key_repeats(shop_home)
    harness.record_fault(tmp_path_factory, "DuckDB lock held beyond lock_timeout_seconds (2 s)",
                         "warehouse.duckdb (read-write connection in another process)",
                         "step failed: 'Could not set lock on file .../warehouse.duckdb' (holder's PID); nothing "
                         "written; next run succeeded", lost, duplicates, recovered.seconds)
    assert (lost, duplicates) == (0, 0)
