"""kill -9 inside each GA4 stage of a day, then the next run of the same partition.

Runs go through the multiprocess executor as users run them (a run worker in a child process, one process
per step, the repository's dagster.yaml with its `warehouse` pool). The day killed is one already merged
(a re-export or a retry re-runs such a day), so a kill that lost stored rows would show: every stored table
must be exactly as before, right after the kill and after the next run, which must succeed. Each kill lands
half-way through the connection that replaces the day (timed on a calibration run of the same day), so it
falls between the delete and the commit rather than before either. The merge's
kill under the daemon (a killed run worker) is test_recovery.py's; here the step process dies.

One story, one test: the run worker, the simulated days and their first merge are set up once.
"""

import time

from dagster import DagsterEventType

from recsys_platform_tests.faults import harness
from recsys_platform_tests.faults.conftest import day

JOB = "ga4_daily_job"
DAY = day(3).isoformat()


def kill_inside_transaction(step: str, after_first_table: bool = False):
    """Kill `step` half-way through the connection that replaces the day (its replacing transaction), as long
    as that connection lasted in the calibration run. With `after_first_table`, the connection is the one
    after the step's first materialization (ga4_refined replaces its tables one after another)."""

    def kill(runner, run_id, warehouse, held_seconds):
        pid = runner.step_pid(run_id, step)
        if after_first_table:
            runner.wait_for_event(run_id, DagsterEventType.ASSET_MATERIALIZATION, step)
        harness.wait_until(lambda: harness.holds_file_lock(pid, warehouse), 120,
                           f"{step} to open the warehouse", interval=0.002)
        opened = time.monotonic()
        time.sleep(held_seconds / 2)
        still_inside = harness.holds_file_lock(pid, warehouse)
        runner.kill_step(pid)
        where = "after its first table was committed, " if after_first_table else ""
        return (f"{step}, {where}{(time.monotonic() - opened) * 1000:.0f} ms into the replacing connection "
                f"(held {held_seconds * 1000:.0f} ms in the calibration run"
                f"{'' if still_inside else '; it had already closed'})")

    return kill


STAGES = [("merge", "ga4_events", kill_inside_transaction("ga4_events")),
          ("refine", "ga4_refined", kill_inside_transaction("ga4_refined", after_first_table=True)),
          ("interactions", "interactions", kill_inside_transaction("interactions"))]


def calibrate(runner, warehouse) -> dict[str, float]:
    """Run the day once, watching how long each step holds the warehouse for its (first) replacement."""
    attempt = runner.submit(JOB, DAY)
    run_id = runner.run_id(attempt)
    watcher = harness.LockWatcher(runner, run_id, warehouse)
    answer = runner.result()
    windows = watcher.stop()
    assert answer["success"], runner.failure_messages(run_id)
    first_table = min(entry.timestamp for entry in runner.events(run_id, DagsterEventType.ASSET_MATERIALIZATION)
                      if entry.step_key == "ga4_refined")
    refine = next((start, end) for start, end in windows["ga4_refined"] if start > first_table)
    return {"ga4_events": windows["ga4_events"][0], "ga4_refined": refine,
            "interactions": windows["interactions"][0]}


def test_a_day_killed_at_each_ga4_stage_loses_nothing_and_the_next_run_finishes(shop_home, tmp_path,
                                                                                tmp_path_factory):
    warehouse = shop_home / "warehouse.duckdb"
    with harness.runner(tmp_path / "work", shop_home) as runner:
        first = runner.run(JOB, partition_range=(day(1).isoformat(), day(2).isoformat()))
        assert first["success"], runner.failure_messages(first["run_id"])
        held = {step: end - start for step, (start, end) in calibrate(runner, warehouse).items()}
        stored = harness.stored_rows(shop_home)
        assert all(harness.row_counts(stored).values()), harness.row_counts(stored)

        for stage, step, kill in STAGES:
            attempt = runner.submit(JOB, DAY)
            run_id = runner.run_id(attempt)
            injected_at = kill(runner, run_id, warehouse, held[step])
            killed = runner.result()
            assert not killed["success"], f"the run survived a kill in {stage}"
            assert "ChildProcessCrashException" in runner.failure_messages(run_id)
            # The run worker gives the killed step's pool slot back; a leaked slot would queue the next run
            # for ever.
            assert not runner.instance.event_log_storage.get_concurrency_info("warehouse").claimed_slots

            # Right after the kill nothing stored changed: the transaction died with the process.
            assert harness.lost_and_duplicated(stored, harness.stored_rows(shop_home)) == (0, 0), stage

            recovered = runner.run(JOB, DAY)
            assert recovered["success"], runner.failure_messages(recovered["run_id"])
            lost, duplicates = harness.lost_and_duplicated(stored, harness.stored_rows(shop_home))
            assert (lost, duplicates) == (0, 0), f"after a kill in {stage}: {lost} rows lost, {duplicates} extra"
            assert harness.event_key_repeats(shop_home) == 0
            harness.record_fault(tmp_path_factory, f"kill -9: {stage}", injected_at,
                                 "run failed (step SIGKILL); stored tables unchanged; next run succeeded",
                                 lost, duplicates, recovered["seconds"])
