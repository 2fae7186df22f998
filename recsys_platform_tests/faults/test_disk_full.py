"""A write that fails part way, as on a full disk: the step runs in a child process whose files are capped
in size (RLIMIT_FSIZE), so the write that crosses the cap fails with EFBIG. Injected into the merge (DuckDB's
commit of the day) and into the Personalize snapshot (the CSV being staged for the lake). Nothing stored may
be lost or repeated, no partial object may be visible in the lake, and the next run must succeed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from recsys_platform.lib.lake import LocalLake
from recsys_platform_tests.faults import harness
from recsys_platform_tests.faults.conftest import copy_shop, day
from recsys_platform_tests.faults.in_process import home_env, run_job

# Far below a day's write-ahead log (~2 MB for this shop) and a training window's CSV (~130 kB).
MERGE_CAP = 256 * 1024
SNAPSHOT_CAP = 64 * 1024
TRAINING = "personalize_retraining_job"


def run_capped(home: Path, tmp: Path, cap: int, job: str, partition: str, *assets: str) -> dict:
    tmp.mkdir(exist_ok=True)
    completed = subprocess.run(
        [sys.executable, "-m", "recsys_platform_tests.faults.disk_full_child", str(cap), job, partition, *assets],
        env=harness.platform_env(home, TMPDIR=str(tmp), PYTHONPATH=str(harness.REPO_ROOT)),
        cwd=harness.REPO_ROOT, capture_output=True, text=True, timeout=600,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    assert lines, f"the capped run printed no outcome:\n{completed.stdout[-2000:]}\n{completed.stderr[-3000:]}"
    return json.loads(lines[-1])


@pytest.fixture
def full_disk_merge(pristine_shop, tmp_path):
    """Three days stored; then day 4 merged in a process whose files may not grow past MERGE_CAP."""
    home = copy_shop(pristine_shop, tmp_path / "recsys")
    with home_env(home):
        history = run_job(partition_range=(day(1).isoformat(), day(3).isoformat()))
        assert history.success, history.failure_message()
    stored = harness.stored_rows(home)
    capped = run_capped(home, home.parent / "tmp", MERGE_CAP, "ga4_daily_job", day(4).isoformat())
    return home, stored, capped


def test_a_full_disk_loses_nothing_leaves_no_partial_object_and_the_next_run_succeeds(full_disk_merge,
                                                                                       tmp_path_factory):
    home, stored, capped = full_disk_merge
    # The merge's commit could not write its log: the day is refused, the stored days are untouched.
    assert not capped["success"]
    assert any("File too large" in message for message in capped["chain"]), capped
    assert harness.lost_and_duplicated(stored, harness.stored_rows(home)) == (0, 0)
    with home_env(home):
        recovered = run_job(partition=day(4).isoformat())
    assert recovered.success, recovered.failure_message()
    lost, repeated = harness.lost_and_repeated(stored, harness.stored_rows(home))
    repeated += harness.event_key_repeats(home)
    harness.record_fault(tmp_path_factory, "disk full during the merge (EFBIG)",
                         f"ga4_events commit of day 4 (write-ahead log capped at {MERGE_CAP // 1024} KiB)",
                         "step failed (File too large); stored days untouched; next run merged day 4",
                         lost, repeated, recovered.seconds)
    assert (lost, repeated) == (0, 0)

    # The snapshot of day 4's window cannot be staged whole: no object reaches the lake.
    lake = LocalLake(root=str(home / "lake"))
    tmp = home.parent / "tmp_snapshot"
    snapshot = run_capped(home, tmp, SNAPSHOT_CAP, TRAINING, day(4).isoformat(), "personalize_interactions_csv")
    assert not snapshot["success"]
    assert any("File too large" in message for message in snapshot["chain"]), snapshot
    bucket = Path(lake.root) / lake.bucket
    assert lake.list() == [] and not list(bucket.rglob("*")) if bucket.exists() else lake.list() == []
    assert not list(tmp.glob("lake-*")), "the staging copy was left behind"
    with home_env(home):
        retried = run_job(TRAINING, day(4).isoformat(), assets=["personalize_interactions_csv"])
    assert retried.success, retried.failure_message()
    written = retried.materialization("personalize_interactions_csv").metadata
    key = lake.key_from_uri(written["uri"].value)
    body = lake.read_text(key)
    assert body.endswith("\n") and body.count("\n") == written["dagster/row_count"].value + 1
    harness.record_fault(tmp_path_factory, "disk full while writing the snapshot (EFBIG)",
                         f"personalize_interactions_csv staging file (capped at {SNAPSHOT_CAP // 1024} KiB)",
                         "step failed (File too large); no object in the lake; next run wrote the CSV whole",
                         0, 0, retried.seconds)


def test_the_step_error_of_a_failed_commit_is_the_disk_error(pristine_shop, tmp_path):
    # The first day merged into an empty warehouse, on a disk that fills up at the commit.
    home = copy_shop(pristine_shop, tmp_path / "recsys")
    capped = run_capped(home, tmp_path / "tmp", MERGE_CAP, "ga4_daily_job", day(1).isoformat())
    assert not capped["success"] and any("File too large" in message for message in capped["chain"]), capped
    assert "File too large" in (capped["raised"] or ""), capped["raised"]
