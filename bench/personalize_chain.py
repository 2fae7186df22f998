"""The Personalize chain (`personalize_retraining_job`: snapshots -> import -> training -> campaign) on the
embedded default, for a synthetic shop: the first day (first deployment) and the next day (through the
champion/challenger gate), in-process and through the multiprocess executor.

Each repeat and mode starts from a fresh state folder and a fresh local Personalize in its own process
(`recsys-platform serve`, reached over HTTP through RECSYS_PERSONALIZE_ENDPOINT_URL, as `make dev` runs it):

- **in-process**: the job's `execute_in_process` in a fresh process (imports not timed);
- **executor**: `dagster job execute -m recsys_platform.definitions -j personalize_retraining_job --tags
  '{"dagster/partition": DAY}'` with a persistent DAGSTER_HOME: the command's wall time, steps from its
  event log: each step's process start gap (the run's first step also waits for the fork server to start),
  split at STEP_WORKER_STARTED (bench.run_timeline), and the run worker's time before RUN_START.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import statistics
import tempfile
from pathlib import Path
from zoneinfo import ZoneInfo

from bench.ga4_pipeline import executor_run, in_process_run, new_dagster_home
from bench.personalize_server import ServerProcess

JOB = "personalize_retraining_job"
DAYS = ("2026-02-27", "2026-02-28")
LABELS = ("first_day", "gated_day")


def _shop(root: Path, users: int, items: int, events: int, seed: int = 7):
    """Interactions over 30 days (users favour one of 8 item clusters, zipf-skewed inside it) and the
    product DB, in DuckDB files laid out as the chain's tests lay them out."""
    import numpy as np
    import pyarrow as pa

    from recsys_platform_tests.personalize.synthetic_shop import fill_warehouse

    rng = np.random.default_rng(seed)
    user = rng.integers(0, users, events)
    item = ((user % 8) * (items // 8) + rng.zipf(1.5, events) % (items // 8)) % items
    last = dt.date.fromisoformat(DAYS[-1])
    offsets = rng.integers(0, 30, events)
    day = np.array([last - dt.timedelta(days=int(o)) for o in range(30)])[offsets]
    midnight = {d: int(dt.datetime.combine(d, dt.time(), tzinfo=ZoneInfo("Asia/Seoul")).timestamp()) for d in set(day)}
    stamps = np.array([midnight[d] for d in day]) + rng.integers(0, 86_400, events)
    kinds = np.array(["view"] * 12 + ["cart"] * 3 + ["like"] * 2 + ["purchase"] * 3)[rng.integers(0, 20, events)]
    table = pa.table({
        "event_date": pa.array(day, pa.date32()), "USER_ID": np.char.add("u", user.astype(str)),
        "ITEM_ID": np.char.add("i", item.astype(str)), "TIMESTAMP": stamps.astype("int64"),
        "EVENT_TYPE": kinds, "EVENT_VALUE": rng.uniform(1, 100, events), "source": ["ga4"] * events,
    })
    return fill_warehouse(root, table, n_items=items, n_users=users)


def _one(mode: str, users: int, items: int, events: int, work_root: Path, days=DAYS) -> dict:
    base = Path(tempfile.mkdtemp(prefix=f"chain-{mode}-", dir=work_root))
    home, work = base / "home", base / "work"
    work.mkdir(parents=True)
    _shop(home, users, items, events)
    dagster_home = new_dagster_home(base / "dagster_home")
    sample = {}
    try:
        with ServerProcess(home) as server:
            extra = {"RECSYS_PERSONALIZE_ENDPOINT_URL": server.endpoint_url}
            for label, day in zip(LABELS, days):
                if mode == "executor":
                    measured = executor_run(home, dagster_home, work, job=JOB, partition=day, env_extra=extra)
                    seconds = measured["wall_seconds"]
                    peak = measured["max_process_peak_rss_mb"]
                else:
                    measured = in_process_run(home, work, job=JOB, partition=day, env_extra=extra)
                    seconds = measured["seconds"]
                    peak = measured["max_process_peak_rss_mb"]
                run = measured["run"]
                sample[label] = {
                    "seconds": seconds,
                    "peak_rss_mb": peak,
                    "run_span_seconds": run.get("run_span_seconds"),
                    "step_seconds_sum": run["step_seconds_sum"],
                    "process_start_gap_sum": run["process_start_gap_sum"],
                    # executor only: the run worker's start, and a step's start split as run_timeline splits it
                    "before_run_start_seconds": run.get("before_run_start_seconds"),
                    "first_process_start_gap": run.get("first_process_start_gap"),
                    "later_process_start_gap_median": run.get("later_process_start_gap_median"),
                    "launch_to_worker_started": [s["launch_to_worker_started"] for s in run["steps"]
                                                 if "launch_to_worker_started" in s],
                    "worker_started_to_start": [s["worker_started_to_start"] for s in run["steps"]
                                                if "worker_started_to_start" in s],
                    "steps": {s["step"]: s.get("seconds") for s in run["steps"]},
                    "step_count": run["step_count"],
                }
            sample["server_peak_rss_mb"] = server.peak_rss_mb()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return sample


def _median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


def run(out_dir: Path, quick: bool = False) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    users, items, events = (500, 200, 20_000) if quick else (5_000, 2_000, 200_000)
    repeats = 1 if quick else 2
    days = DAYS[:1] if quick else DAYS
    work_root = Path(tempfile.mkdtemp(prefix="recsys-bench-chain-"))
    samples: dict[str, list[dict]] = {"in_process": [], "executor": []}
    try:
        for repeat in range(repeats):
            order = ("in_process", "executor") if repeat % 2 == 0 else ("executor", "in_process")
            for mode in order:
                samples[mode].append(_one(mode, users, items, events, work_root, days))
                s = samples[mode][-1]
                print(f"   {mode:10s} repeat {repeat + 1}/{repeats}: " + ", ".join(
                    f"{label} {s[label]['seconds']:.1f} s" for label in LABELS[:len(days)]), flush=True)
    finally:
        shutil.rmtree(work_root, ignore_errors=True)
    rows = []
    for label in LABELS[:len(days)]:
        row: dict = {"run": label}
        for mode, runs in samples.items():
            row[mode] = {
                "seconds_median": round(statistics.median(r[label]["seconds"] for r in runs), 2),
                "seconds_all": [round(r[label]["seconds"], 2) for r in runs],
                "peak_rss_mb": max(r[label]["peak_rss_mb"] for r in runs),
                "step_seconds_sum_median": round(statistics.median(r[label]["step_seconds_sum"] for r in runs), 2),
                "steps_median": {step: round(statistics.median(r[label]["steps"].get(step) or 0.0 for r in runs), 2)
                                 for step in runs[0][label]["steps"]},
            }
        gaps = [r[label]["process_start_gap_sum"] for r in samples["executor"] if r[label]["process_start_gap_sum"]]
        row["executor"]["process_start_gap_sum_median"] = round(statistics.median(gaps), 2) if gaps else None
        executor = [r[label] for r in samples["executor"]]
        for key in ("before_run_start_seconds", "first_process_start_gap", "later_process_start_gap_median"):
            row["executor"][f"{key}_median"] = _median(r.get(key) for r in executor)
        for key in ("launch_to_worker_started", "worker_started_to_start"):  # every step of every repeat
            row["executor"][f"{key}_median"] = _median(v for r in executor for v in r.get(key, []))
        row["executor_over_in_process"] = round(row["executor"]["seconds_median"] / row["in_process"]["seconds_median"], 2)
        rows.append(row)
    both = {mode: sum(r[mode]["seconds_median"] for r in rows) for mode in samples}
    result = {"users": users, "items": items, "interactions": events, "repeats": repeats, "job": JOB, "rows": rows,
              "executor_over_in_process_both_days": round(both["executor"] / both["in_process"], 2),
              "server_peak_rss_mb": max((s.get("server_peak_rss_mb") or 0) for runs in samples.values() for s in runs)}
    print(f"\nPersonalize chain, {events:,} interactions, {users:,} users, {items:,} items (median of {repeats})")
    for row in rows:
        print(f"  {row['run']:10s} in-process {row['in_process']['seconds_median']:6.1f} s   executor "
              f"{row['executor']['seconds_median']:6.1f} s   ratio {row['executor_over_in_process']}   "
              f"step start gaps: sum {row['executor']['process_start_gap_sum_median']} s, first "
              f"{row['executor']['first_process_start_gap_median']} s, later (median) "
              f"{row['executor']['later_process_start_gap_median_median']} s")
    (out_dir / "personalize_chain.json").write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    import sys

    print(json.dumps(run(Path(".recsys/bench/personalize_chain"), quick="--quick" in sys.argv), indent=1))
