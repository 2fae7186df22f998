"""The benchmark harness itself works: its cheapest pieces at tiny sizes. No timing is asserted."""

import json
import sys

from bench import ga4_pipeline, report
from bench.proctree import measure_command


def test_proctree_sees_every_process_of_a_command(tmp_path):
    # The child lives a second so the poller (every POLL_SECONDS) sees it even on a loaded machine.
    child = "import time; x = bytearray(50 * 2**20); time.sleep(1.0)"
    code = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}], check=True)"
    measured = measure_command([sys.executable, "-c", code], {}, tmp_path / "tree.json", tmp_path / "log.txt")
    assert measured["returncode"] == 0
    assert measured["process_count"] >= 2  # the command and its child
    assert measured["max_process_peak_rss_mb"] >= 50  # the child's 50 MB, seen by polling or by rusage


def test_a_tiny_ga4_day_through_the_executor_and_the_report(tmp_path):
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    ga4_pipeline.simulate(home, 2_000)
    dagster_home = ga4_pipeline.new_dagster_home(tmp_path / "dagster_home")

    executor = ga4_pipeline.executor_run(home, dagster_home, work)
    run = executor["run"]
    assert run["success"]
    assert "multiprocess" in run["executor"]
    steps = {s["step"] for s in run["steps"]}
    assert {"ga4_events", "interactions"} <= steps
    assert run["step_processes"] == len(steps)  # one process per step
    assert all("process_start_gap" in s for s in run["steps"])
    roles = {p["role"] for p in executor["processes"]}
    assert "run worker (CLI)" in roles and "step ga4_events" in roles
    assert executor["max_process_peak_rss_mb"] > 0
    # every warehouse asset of the day reports the SQL work it did
    assert run["sql_seconds"] is not None and run["assets_without_sql_seconds"] == []

    ga4_pipeline.reset_warehouse(home)
    in_process = ga4_pipeline.in_process_run(home, work)
    assert in_process["run"]["success"]
    assert {s["step"] for s in in_process["run"]["steps"]} >= {"ga4_events", "interactions"}

    row = ga4_pipeline.summarize(2_000, [executor], [in_process])
    sections = {"ga4_pipeline": {"rows": [row]}, "sensor_tick": {"error": "not run here"}}
    json_path, md_path = report.write({"started": "t", "python": "3", "machine": "m", "cpus": 2, "quick": True,
                                       "sections": sections}, tmp_path)
    written = json.loads(json_path.read_text())
    assert {g["status"] for g in written["goals"]} <= {"met", "not met", "not measured"}
    statuses = {g["goal"]: g["status"] for g in written["goals"]}
    assert statuses["import + build of the definitions (local mode) vs `import dagster`"] == "not measured"
    [day_goal] = [g for g in written["goals"] if g["goal"] == "2,000-event day: wall vs SQL work"]
    assert "s before RUN_START" in day_goal["note"] and "of step process starts" in day_goal["note"]
    text = md_path.read_text()
    assert "| 2,000 |" in text and "## Goals" in text and "sensor_tick" in text
