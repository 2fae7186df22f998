"""The embedded default under `dagster dev`: the sensor's process and two run workers touch the same
DuckDB files at once. DuckDB lets one process open a file while it writes; the warehouse keeps
connections short and retries on the lock, so every process finishes."""

import os
import subprocess
import sys

from recsys_platform.settings import DEFAULT_PROPERTY_ID
from recsys_platform_tests.ga4.conftest import DAY, NEXT_DAY
from recsys_platform_tests.ga4_fixtures import PROPERTY_ID


def test_sensor_tick_and_two_partition_runs_in_separate_processes(export_two_days, warehouse):
    assert PROPERTY_ID == DEFAULT_PROPERTY_ID
    env = {**os.environ, "RECSYS_HOME": str(export_two_days), "RECSYS_ENV": "local"}
    worker = [sys.executable, "-m", "recsys_platform_tests.ga4.concurrent_worker"]
    processes = [
        subprocess.Popen([*worker, "run", DAY.isoformat()], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE),
        subprocess.Popen([*worker, "run", NEXT_DAY.isoformat()], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE),
        subprocess.Popen([*worker, "sensor", "8"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE),
    ]
    outcomes = [(p.wait(timeout=300), p.stderr.read().decode()[-3000:]) for p in processes]
    assert [code for code, _ in outcomes] == [0, 0, 0], outcomes
    counts = {r["event_date"]: r["n"] for r in warehouse.query(
        "SELECT event_date, COUNT(*) AS n FROM recsys.interactions GROUP BY 1").to_pylist()}
    assert counts == {DAY: 9, NEXT_DAY: 1}
