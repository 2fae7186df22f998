"""One simulated GA4 day through the GA4 day job, as users run it and in-process, and its merge against
bare DuckDB.

For each size (events in the day):

1. `recsys-platform simulate --days 1 --start-date DAY --events-per-day N --seed 7` into a fresh state folder.
2. Per repeat, from an empty platform warehouse (the export and product DB stay; the warehouse file is
   removed, so every repeat does the same work):
   - **executor**: `dagster job execute -m recsys_platform.definitions -j ga4_daily_job --tags
     '{"dagster/partition": DAY}'` -- the job the sensor and the schedule launch, run by the executor the
     code location gives it (Dagster 1.13's default is the multiprocess executor, one process per step;
     `dagster asset materialize` would run an implicit asset job with the same default executor, but not an
     executor set on the job itself). The CLI process is the run worker. DAGSTER_HOME is a persistent
     instance with the repo's dagster.yaml (its pools apply), so the run's event log is read afterwards:
     step durations, each step's process start gap, the executor's name, and the `sql_seconds` metadata of
     every materialization. `bench.proctree` records every process of the command and its peak RSS.
   - **in-process**: the same job's `execute_in_process` (what `materialize()` does: one process, in-process
     executor, ephemeral instance) in a fresh process; the figure is the call's time, imports excluded.
3. The merge against bare DuckDB on the same shard (`bench.merge_reference`).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.proctree import measure_command

DAY = "2026-03-02"
JOB = "ga4_daily_job"
REPO = Path(__file__).resolve().parents[1]
FULL_SIZES = (100_000, 1_000_000, 10_000_000)
QUICK_SIZES = (10_000, 50_000)
BIN = Path(sys.executable).parent
# set by bench.run: called with the section's partial result after each size, so a long run's report
# already holds the sizes that finished
PROGRESS = None


def bench_env(home: Path, dagster_home: Path | None = None, **extra) -> dict:
    """The environment of a user's shell on the embedded default (RECSYS_ENV unset means local)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECSYS_", "DAGSTER_"))}
    env.update({"RECSYS_HOME": str(home), "RECSYS_START_DATE": "2026-01-01", "DAGSTER_DISABLE_TELEMETRY": "1",
                "PYTHONWARNINGS": "ignore"})
    if dagster_home is not None:
        env["DAGSTER_HOME"] = str(dagster_home)
    env.update(extra)
    return env


def new_dagster_home(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", path / "dagster.yaml")
    return path


def simulate(home: Path, events: int, day: str = DAY, log: Path | None = None) -> float:
    started = time.perf_counter()
    measure_command([str(BIN / "recsys-platform"), "simulate", "--days", "1", "--start-date", day,
                     "--events-per-day", str(events), "--seed", "7"],
                    bench_env(home), home.parent / f"simulate-{events}.json", log or home.parent / "simulate.log")
    return time.perf_counter() - started


def reset_warehouse(home: Path) -> None:
    for name in ("warehouse.duckdb", "warehouse.duckdb.wal"):
        (home / name).unlink(missing_ok=True)


def _read_run(dagster_home: Path, bench_id: str, started: float, ended: float) -> dict:
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef
    from dagster._core.storage.dagster_run import RunsFilter

    from bench.run_timeline import timeline

    with DagsterInstance.from_ref(InstanceRef.from_dir(str(dagster_home))) as instance:
        runs = instance.get_runs(filters=RunsFilter(tags={"bench/id": bench_id}))
        if not runs:
            raise RuntimeError(f"no run tagged bench/id={bench_id} in {dagster_home}")
        return timeline(instance, runs[0].run_id, started, ended)


def _processes(measured: dict, run: dict) -> list[dict]:
    """Every process of the command with its role: the run worker (the CLI), a step's process, other."""
    by_pid = {s["pid"]: s["step"] for s in run.get("steps", []) if s.get("pid") is not None}
    rows = []
    for p in measured["processes"]:
        if p["pid"] == measured["pid"]:
            role = "run worker (CLI)"
        elif p["pid"] in by_pid:
            role = f"step {by_pid[p['pid']]}"
        elif "watch_orphans" in p["cmdline"]:
            role = "compute-log helper (watch_orphans)"
        elif p["cmdline"].startswith("tail "):
            role = "compute-log tail"
        elif "resource_tracker" in p["cmdline"]:
            role = "multiprocessing resource tracker"
        else:
            role = "other: " + p["cmdline"][:80]
        rows.append({"pid": p["pid"], "role": role, "peak_rss_mb": round(p["peak_rss_kb"] / 1024, 1)})
    return rows


def executor_run(home: Path, dagster_home: Path, work: Path, job: str = JOB, partition: str = DAY,
                 env_extra: dict | None = None) -> dict:
    """The job for one partition through `dagster job execute` (the multiprocess executor, as users run it)."""
    bench_id = uuid.uuid4().hex[:12]
    tags = json.dumps({"dagster/partition": partition, "bench/id": bench_id})
    command = [str(BIN / "dagster"), "job", "execute", "-m", "recsys_platform.definitions", "-j", job, "--tags", tags]
    out = work / f"executor-{bench_id}"
    measured = measure_command(command, bench_env(home, dagster_home, **(env_extra or {})),
                               Path(f"{out}.json"), Path(f"{out}.log"), cwd=str(REPO))
    ended = measured["started"] + measured["seconds"]
    run = _read_run(dagster_home, bench_id, measured["started"], ended)
    if not run["success"]:
        raise RuntimeError(f"{job} run {run['run_id']} did not succeed; log in {out}.log")
    processes = _processes(measured, run)
    return {
        "wall_seconds": round(measured["seconds"], 3),
        "max_process_peak_rss_mb": measured["max_process_peak_rss_mb"],
        "rusage_children_max_rss_mb": measured["rusage_children_max_rss_mb"],
        "peak_total_rss_mb": measured["peak_total_rss_mb"],
        "process_count": measured["process_count"],
        "processes": processes,
        "run": run,
    }


def in_process_run(home: Path, work: Path, job: str = JOB, partition: str = DAY,
                   env_extra: dict | None = None) -> dict:
    """The same job's `execute_in_process` in a fresh process (imports and definitions load not timed)."""
    out = work / f"in-process-{uuid.uuid4().hex[:12]}"
    measured = measure_command([sys.executable, "-m", "bench.ga4_pipeline", "--in-process", job, partition,
                                f"{out}.result.json"],
                               bench_env(home, **(env_extra or {})), Path(f"{out}.json"), Path(f"{out}.log"),
                               cwd=str(REPO))
    result = json.loads(Path(f"{out}.result.json").read_text())
    result["process_wall_seconds"] = round(measured["seconds"], 3)
    result["max_process_peak_rss_mb"] = measured["max_process_peak_rss_mb"]
    return result


def _in_process_main(job_name: str, partition: str, result_file: str) -> None:
    from dagster import DagsterInstance

    from bench.run_timeline import timeline
    from recsys_platform.definitions import build_definitions
    from recsys_platform.settings import PlatformSettings

    defs = build_definitions(PlatformSettings.from_environment())
    job = defs.resolve_job_def(job_name)
    instance = DagsterInstance.ephemeral()
    started = time.perf_counter()
    result = job.execute_in_process(partition_key=partition, instance=instance, raise_on_error=True)
    seconds = time.perf_counter() - started
    run = timeline(instance, result.run_id)
    Path(result_file).write_text(json.dumps({"seconds": round(seconds, 3), "run": run}))


def _median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


def summarize(events: int, executor: list[dict], in_process: list[dict]) -> dict:
    row: dict = {"events": events}
    wall = _median(r["wall_seconds"] for r in executor)
    sql = _median(r["run"]["sql_seconds"] for r in executor)
    row["executor"] = {
        "wall_seconds_median": wall,
        "wall_seconds_all": [r["wall_seconds"] for r in executor],
        "sql_seconds_median": sql,
        "wall_over_sql": round(wall / sql, 2) if wall and sql else None,
        "step_seconds_sum_median": _median(r["run"]["step_seconds_sum"] for r in executor),
        "run_span_seconds_median": _median(r["run"].get("run_span_seconds") for r in executor),
        "before_run_start_seconds_median": _median(r["run"].get("before_run_start_seconds") for r in executor),
        "after_run_end_seconds_median": _median(r["run"].get("after_run_end_seconds") for r in executor),
        "process_start_gap_sum_median": _median(r["run"]["process_start_gap_sum"] for r in executor),
        "process_start_gap_median": _median(r["run"]["process_start_gap_median"] for r in executor),
        "step_count": executor[0]["run"]["step_count"],
        "step_processes": executor[0]["run"]["step_processes"],
        "executor": executor[0]["run"]["executor"],
        "max_process_peak_rss_mb": max(r["max_process_peak_rss_mb"] for r in executor),
        "peak_total_rss_mb": max(r["peak_total_rss_mb"] for r in executor),
        "process_count": executor[0]["process_count"],
        "events_per_second": round(events / wall) if wall else None,
        "assets_without_sql_seconds": executor[0]["run"]["assets_without_sql_seconds"],
        # the median repeat's details: steps (duration, process start gap, SQL) and every process's peak
        "median_repeat": sorted(executor, key=lambda r: r["wall_seconds"])[len(executor) // 2],
    }
    if in_process:
        seconds = _median(r["seconds"] for r in in_process)
        sql_in = _median(r["run"]["sql_seconds"] for r in in_process)
        row["in_process"] = {
            "seconds_median": seconds,
            "seconds_all": [r["seconds"] for r in in_process],
            "sql_seconds_median": sql_in,
            "seconds_over_sql": round(seconds / sql_in, 2) if seconds and sql_in else None,
            "process_wall_seconds_median": _median(r["process_wall_seconds"] for r in in_process),
            "max_process_peak_rss_mb": max(r["max_process_peak_rss_mb"] for r in in_process),
            "events_per_second": round(events / seconds) if seconds else None,
            "steps": in_process[0]["run"]["steps"],
        }
        row["executor_over_in_process"] = round(wall / seconds, 2) if wall and seconds else None
    ga4_sql = [m["sql_seconds"] for r in executor for m in r["run"]["materializations"]
               if m["asset"] == "ga4_events" and m["sql_seconds"] is not None]
    row["ga4_events_sql_seconds_median"] = _median(ga4_sql)
    rows_out = {m["asset"]: m["rows"] for m in executor[0]["run"]["materializations"]}
    row["rows"] = rows_out
    return row


def run(out_dir: Path, quick: bool = False, sizes: tuple[int, ...] | None = None, repeats: int | None = None,
        big_repeats: int | None = None, keep: bool = False) -> dict:
    from bench.merge_reference import run_references

    out_dir.mkdir(parents=True, exist_ok=True)
    sizes = sizes or (QUICK_SIZES if quick else FULL_SIZES)
    repeats = repeats or (1 if quick else 3)
    big_repeats = big_repeats or 1
    rows = []
    work_root = Path(tempfile.mkdtemp(prefix="recsys-bench-ga4-"))
    try:
        for events in sizes:
            n = repeats if events < 1_000_000 else (min(repeats, 2) if events < 5_000_000 else big_repeats)
            base = work_root / f"day-{events}"
            home, work = base / "home", base / "work"
            work.mkdir(parents=True)
            print(f"\n-- GA4 day of {events:,} events: simulate", flush=True)
            simulate_seconds = simulate(home, events)
            dagster_home = new_dagster_home(base / "dagster_home")
            executor, in_process = [], []
            for repeat in range(n):
                order = ("executor", "in_process") if repeat % 2 == 0 else ("in_process", "executor")
                for mode in order:
                    reset_warehouse(home)
                    if mode == "executor":
                        executor.append(executor_run(home, dagster_home, work))
                        print(f"   executor   repeat {repeat + 1}/{n}: {executor[-1]['wall_seconds']:.1f} s wall, "
                              f"SQL {executor[-1]['run']['sql_seconds']} s, peak "
                              f"{executor[-1]['max_process_peak_rss_mb']:.0f} MB", flush=True)
                    else:
                        in_process.append(in_process_run(home, work))
                        print(f"   in-process repeat {repeat + 1}/{n}: {in_process[-1]['seconds']:.1f} s, "
                              f"SQL {in_process[-1]['run']['sql_seconds']} s, peak "
                              f"{in_process[-1]['max_process_peak_rss_mb']:.0f} MB", flush=True)
            row = summarize(events, executor, in_process)
            row["simulate_seconds"] = round(simulate_seconds, 1)
            row["repeats"] = n
            print("   bare DuckDB references", flush=True)
            export = home / "ga4_export.duckdb"
            row["export_file_mb"] = round(export.stat().st_size / 2**20, 1)
            # hash aggregation of every column is 5x the copy at 1M: left out at 10M to keep the run short
            skip = ("merge_hash_arg_min",) if events >= 5_000_000 else ()
            reference = run_references(export, "123456789", DAY, n, work / "reference", bench_env(home), skip=skip)
            row["merge_reference"] = reference
            platform = row["ga4_events_sql_seconds_median"]
            for name in ("merge_copy_all_columns", "best_dedup", "platform_statement"):
                seconds = reference.get(name, {}).get("seconds_median")
                row[f"ga4_events_sql_over_{name}"] = round(platform / seconds, 2) if platform and seconds else None
            rows.append(row)
            (out_dir / "ga4_pipeline.json").write_text(json.dumps({"day": DAY, "rows": rows}, indent=1, default=str))
            if PROGRESS is not None:
                PROGRESS({"day": DAY, "job": JOB, "rows": rows, "partial": True})
            if not keep:
                shutil.rmtree(base, ignore_errors=True)
    finally:
        if not keep:
            shutil.rmtree(work_root, ignore_errors=True)
    base_row = rows[0]
    for row in rows:
        row["size_ratio_vs_smallest"] = round(row["events"] / base_row["events"], 2)
        for mode, key in (("executor", "wall_seconds_median"), ("in_process", "seconds_median")):
            if mode in row and row[mode].get(key) and base_row.get(mode, {}).get(key):
                row[mode]["time_ratio_vs_smallest"] = round(row[mode][key] / base_row[mode][key], 2)
                row[mode]["linearity"] = round(row[mode]["time_ratio_vs_smallest"] / row["size_ratio_vs_smallest"], 2)
    for previous, row in zip(rows, rows[1:]):
        size = row["events"] / previous["events"]
        for mode, key in (("executor", "wall_seconds_median"), ("in_process", "seconds_median")):
            if row.get(mode, {}).get(key) and previous.get(mode, {}).get(key):
                row[mode]["time_ratio_vs_previous"] = round(row[mode][key] / previous[mode][key], 2)
                row[mode]["size_ratio_vs_previous"] = round(size, 2)
    result = {"day": DAY, "job": JOB, "rows": rows}
    (out_dir / "ga4_pipeline.json").write_text(json.dumps(result, indent=1, default=str))
    _print(rows)
    return result


def _print(rows: list[dict]) -> None:
    print("\n| events | executor wall s | SQL s | wall/SQL | in-process s | exec/in-proc | max proc RSS MB | events/s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        e, i = r["executor"], r.get("in_process", {})
        print(f"| {r['events']:,} | {e['wall_seconds_median']} | {e['sql_seconds_median']} | {e['wall_over_sql']} | "
              f"{i.get('seconds_median')} | {r.get('executor_over_in_process')} | {e['max_process_peak_rss_mb']} | "
              f"{e['events_per_second']} |")


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "--in-process":
    _in_process_main(*sys.argv[2:5])
