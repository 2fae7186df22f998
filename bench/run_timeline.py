"""What one Dagster run did, read from its event log: steps, their processes, gaps and SQL work.

Used for runs through the multiprocess executor (read from the persistent instance after the command
exits) and for in-process runs (read from the ephemeral instance in the run's own process). Every figure
is in seconds, from the events' own timestamps (wall clock of the process that wrote the event).
"""

from __future__ import annotations

import statistics
from collections import defaultdict

SQL_SECONDS_KEY = "sql_seconds"


def _metadata_value(value):
    return getattr(value, "value", value)


def timeline(instance, run_id: str, started: float | None = None, ended: float | None = None) -> dict:
    """The run `run_id` of `instance`; `started`/`ended`: wall-clock bounds of the command that ran it."""
    steps: dict[str, dict] = defaultdict(dict)
    run: dict = {}
    executor = None
    materializations = []
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        kind = event.event_type.name  # enum names: event_type_value keeps legacy PIPELINE_* strings
        stamp = entry.timestamp
        key = event.step_key
        if kind in ("RUN_START", "RUN_SUCCESS", "RUN_FAILURE"):
            run[kind] = stamp
        elif kind == "ENGINE_EVENT" and key is None and "executor" in (event.message or "") and executor is None:
            # "Executing steps using multiprocess executor: parent process (pid: ...)" / "... in process ..."
            executor = event.message
        elif key is None:
            continue
        elif kind == "ENGINE_EVENT" and "blocked" in (event.message or "").lower():
            steps[key].setdefault("blocked_at", stamp)
        elif kind == "STEP_WORKER_STARTING":
            steps[key]["worker_starting"] = stamp
        elif kind == "STEP_WORKER_STARTED":
            steps[key]["worker_started"] = stamp
            steps[key]["pid"] = event.pid
        elif kind == "STEP_START":
            steps[key]["start"] = stamp
            steps[key].setdefault("pid", event.pid)
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
            steps[key]["end"] = stamp
            steps[key]["status"] = kind
        elif kind == "ASSET_MATERIALIZATION":
            mat = event.event_specific_data.materialization
            metadata = {k: _metadata_value(v) for k, v in mat.metadata.items()}
            sql = metadata.get(SQL_SECONDS_KEY)
            materializations.append({"asset": mat.asset_key.to_user_string(), "step": key,
                                     "sql_seconds": None if sql is None else float(sql),
                                     "rows": metadata.get("dagster/row_count")})
            if sql is not None:
                steps[key]["sql_seconds"] = steps[key].get("sql_seconds", 0.0) + float(sql)
    origin = started if started is not None else run.get("RUN_START")
    rows = []
    ordered = sorted(steps.items(), key=lambda kv: kv[1].get("start", kv[1].get("worker_starting", 0.0)))
    ends = sorted(s["end"] for s in steps.values() if "end" in s)
    for key, s in ordered:
        row = {"step": key, "pid": s.get("pid"), "status": s.get("status")}
        if "start" in s and "end" in s:
            row["seconds"] = round(s["end"] - s["start"], 3)
        if "worker_starting" in s and "start" in s:
            # the executor launched the step's process -> the step began: spawn, imports, code location load
            row["process_start_gap"] = round(s["start"] - s["worker_starting"], 3)
            if "worker_started" in s:
                # split at STEP_WORKER_STARTED, which the step's process writes once it has its instance:
                # launch -> process up with its instance (fork server start for a run's first step, fork,
                # the instance's storages) | -> step began (definitions, plan, resources, compute-log capture)
                row["launch_to_worker_started"] = round(s["worker_started"] - s["worker_starting"], 3)
                row["worker_started_to_start"] = round(s["start"] - s["worker_started"], 3)
        if "blocked_at" in s and "worker_starting" in s:
            row["pool_wait"] = round(s["worker_starting"] - s["blocked_at"], 3)
        if "start" in s:
            # the last step that ended before this one began (or the run's start) -> this step began
            before = [e for e in ends if e <= s["start"]]
            previous_end = before[-1] if before else run.get("RUN_START")
            if previous_end is not None:
                row["gap_after_previous_end"] = round(s["start"] - previous_end, 3)
        if "sql_seconds" in s:
            row["sql_seconds"] = round(s["sql_seconds"], 3)
        if origin is not None and "start" in s:
            row["start_offset"] = round(s["start"] - origin, 3)
        rows.append(row)
    sql_values = [m["sql_seconds"] for m in materializations if m["sql_seconds"] is not None]
    run_end = run.get("RUN_SUCCESS", run.get("RUN_FAILURE"))
    gaps = [r["process_start_gap"] for r in rows if "process_start_gap" in r]
    launched = sorted((steps[r["step"]]["worker_starting"], r["process_start_gap"]) for r in rows
                      if "process_start_gap" in r)
    gaps_by_launch = [gap for _, gap in launched]
    result = {
        "run_id": run_id,
        "executor": executor,
        "success": "RUN_SUCCESS" in run,
        "steps": rows,
        "step_count": len(rows),
        "step_seconds_sum": round(sum(r.get("seconds", 0.0) for r in rows), 3),
        "sql_seconds": round(sum(sql_values), 3) if sql_values else None,
        "materializations": materializations,
        "assets_without_sql_seconds": sorted({m["asset"] for m in materializations if m["sql_seconds"] is None}),
        "process_start_gap_sum": round(sum(gaps), 3) if gaps else None,
        "process_start_gap_median": round(sorted(gaps)[len(gaps) // 2], 3) if gaps else None,
        # the run's first launched step also waits for the fork server to start and preload; the others do not
        "first_process_start_gap": gaps_by_launch[0] if gaps_by_launch else None,
        "later_process_start_gap_median": (round(statistics.median(gaps_by_launch[1:]), 3)
                                           if len(gaps_by_launch) > 1 else None),
        "step_processes": len({r["pid"] for r in rows if r.get("pid") is not None}),
    }
    if "RUN_START" in run and run_end is not None:
        result["run_span_seconds"] = round(run_end - run["RUN_START"], 3)
    if started is not None and "RUN_START" in run:
        result["before_run_start_seconds"] = round(run["RUN_START"] - started, 3)
    if ended is not None and run_end is not None:
        result["after_run_end_seconds"] = round(ended - run_end, 3)
    return result
