"""One report from every section's figures: `report.json` (everything) and `report.md` (the tables and
each goal marked met / not met with the measured value). Missing figures are marked "not measured"."""

from __future__ import annotations

import json
from pathlib import Path

GB = 2048  # MB: "< 2 GB per process"


def _get(data, *path, default=None):
    for key in path:
        if isinstance(data, dict) and key in data:
            data = data[key]
        elif isinstance(data, list) and isinstance(key, int) and -len(data) <= key < len(data):
            data = data[key]
        else:
            return default
    return data


def _ga4_row(sections: dict, events: int) -> dict | None:
    for row in _get(sections, "ga4_pipeline", "rows", default=[]) or []:
        if row.get("events") == events:
            return row
    return None


def _goal(name: str, value, target: str, met: bool | None, note: str = "") -> dict:
    return {"goal": name, "target": target, "measured": value,
            "status": "not measured" if met is None else ("met" if met else "not met"), "note": note}


def _executor_cost(executor: dict | None) -> str:
    """What the executor spent around the steps' work in a GA4 row's median run (what a 1.2x goal is up against)."""
    parts = [_get(executor, key) for key in ("before_run_start_seconds_median", "process_start_gap_sum_median",
                                             "after_run_end_seconds_median", "sql_seconds_median")]
    if any(part is None for part in parts):
        return ""
    before, starts, after, sql = parts
    return (f"around SQL {sql:.1f} s: {before:.1f} s before RUN_START, {starts:.1f} s of step process starts, "
            f"{after:.1f} s after the run")


def goals(sections: dict) -> list[dict]:
    result = []
    rows = _get(sections, "ga4_pipeline", "rows", default=[]) or []
    one_m = _ga4_row(sections, 1_000_000)
    wall = _get(one_m, "executor", "wall_seconds_median")
    result.append(_goal("1M-event GA4 day through the executor", None if wall is None else f"{wall:.1f} s wall",
                        "< 20 s", None if wall is None else wall < 20, _executor_cost(_get(one_m, "executor"))))
    ratio = _get(one_m, "executor", "wall_over_sql")
    result.append(_goal("1M-event day: wall vs SQL work", None if ratio is None else f"{ratio:.2f}x",
                        "wall <= 1.2x SQL", None if ratio is None else ratio <= 1.2))
    for row in rows:
        if row is one_m:
            continue
        r = _get(row, "executor", "wall_over_sql")
        result.append(_goal(f"{row['events']:,}-event day: wall vs SQL work", None if r is None else f"{r:.2f}x",
                            "wall <= 1.2x SQL", None if r is None else r <= 1.2, _executor_cost(row.get("executor"))))
    peak = _get(one_m, "executor", "max_process_peak_rss_mb")
    result.append(_goal("1M-event day: peak RSS of every process", None if peak is None else f"{peak:,.0f} MB max",
                        "< 2 GB per process", None if peak is None else peak < GB))
    ten_m = _ga4_row(sections, 10_000_000)
    peak10 = _get(ten_m, "executor", "max_process_peak_rss_mb")
    result.append(_goal("10M-event day within the same memory limit",
                        None if peak10 is None else f"{peak10:,.0f} MB max", "< 2 GB per process",
                        None if peak10 is None else peak10 < GB))
    if len(rows) >= 2 and rows[-1].get("executor", {}).get("time_ratio_vs_previous"):
        last, prev = rows[-1], rows[-2]
        t = last["executor"]["time_ratio_vs_previous"]
        s = last["executor"]["size_ratio_vs_previous"]
        result.append(_goal(f"linear in events ({prev['events']:,} -> {last['events']:,}, executor)",
                            f"{t:.2f}x time for {s:.0f}x events", "time ratio <= size ratio (DESIGN.md)", t <= s))
    chain = _get(sections, "personalize_chain", "executor_over_in_process_both_days")
    first_day = next((r.get("executor") for r in _get(sections, "personalize_chain", "rows", default=[]) or []
                      if r.get("run") == "first_day"), None)
    starts = [_get(first_day, key) for key in ("before_run_start_seconds_median", "process_start_gap_sum_median")]
    chain_note = ("" if None in starts else
                  f"first day: {starts[0]:.1f} s before RUN_START and {starts[1]:.1f} s of step process starts")
    result.append(_goal("Personalize chain: executor vs in-process", None if chain is None else f"{chain:.2f}x",
                        "executor adds <= 20% (<= 1.2x)", None if chain is None else chain <= 1.2, chain_note))
    latency_rows = _get(sections, "recommendations_latency", "rows", default=[]) or []
    five_k = next((r for r in latency_rows if r.get("items") == 5_000), None)
    training = _get(five_k, "training_seconds")
    result.append(_goal(f"training on {_get(five_k, 'interactions', default=0):,} interactions, default recipe "
                        f"({_get(five_k, 'items', default=0):,} items)",
                        None if training is None else f"{training:.1f} s", "< 60 s",
                        None if training is None else training < 60,
                        "" if _get(five_k, "interactions") == 1_000_000 else "quick run: not the 1M goal size"))
    for row in latency_rows:
        p99 = row.get("p99_ms")
        cpu = row.get("server_cpu_ms_per_call")
        note = row.get("error", "")[:200] or ("" if cpu is None else f"server CPU {cpu:.1f} ms a call")
        result.append(_goal(f"GetRecommendations p99 at {row['items']:,} items",
                            None if p99 is None else f"{p99:.2f} ms (p50 {row['p50_ms']:.2f} ms)", "< 10 ms",
                            None if p99 is None else p99 < 10, note))
    sensor = _get(sections, "sensor_tick")
    if sensor and "first_tick" in sensor:
        ticks = ("first_tick", "steady_tick", "one_rewrite_tick")
        calls = {name: sensor[name]["list_export_shards_calls"] for name in ticks}
        reads = sum(sensor[name]["shard_row_reads"] for name in calls)
        result.append(_goal(f"sensor: one listing query per tick over {sensor['shards']:,} shards",
                            f"listing calls {sorted(set(calls.values()))}, shard reads {reads}",
                            "1 listing call, 0 shard reads", set(calls.values()) == {1} and reads == 0))
        slowest = max(sensor[name]["seconds_median"] for name in ticks)
        result.append(_goal(f"sensor tick over {sensor['shards']:,} shards (slowest of its three ticks, median)",
                            f"{slowest * 1000:.0f} ms", "< 1 s", slowest < 1))
    build = _get(sections, "import_cost", "definitions_build_over_dagster")
    result.append(_goal("import + build of the definitions (local mode) vs `import dagster`",
                        None if build is None else f"{build:.2f}x", "<= 1.5x", None if build is None else build <= 1.5))
    return result


def _fmt(value, digits=2):
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def markdown(report: dict) -> str:
    sections = report["sections"]
    out = [f"# recsys_platform benchmark ({'quick' if report.get('quick') else 'full'} run)", "",
           f"Started {report['started']}, finished {report.get('finished', '?')}; Python {report['python']}, "
           f"{report.get('cpus')} CPUs, machine {report['machine']}. Load average at the start of each section is "
           "in report.json: this machine is shared, compare ratios within one report.", ""]
    out += ["## Goals", "", "| goal | target | measured | status |", "|---|---|---|---|"]
    for g in report.get("goals", []):
        note = f" ({g['note']})" if g.get("note") else ""
        out.append(f"| {g['goal']} | {g['target']} | {_fmt(g['measured'])}{note} | **{g['status']}** |")
    out.append("")

    ga4 = _get(sections, "ga4_pipeline", "rows", default=[]) or []
    if ga4:
        out += ["## GA4 day: `ga4_daily_job` through the executor, and in-process", "",
                "Executor: `dagster job execute -j ga4_daily_job` (the CLI process is the run worker; "
                f"{_fmt(_get(ga4, 0, 'executor', 'executor'))}). In-process: the same job's `execute_in_process` "
                "(what `materialize()` does), the call's time. SQL: sum of the run's `sql_seconds` metadata.", "",
                "| events | executor wall s (median) | SQL s | wall/SQL | step s (sum) | process start gap s (sum / median) "
                "| before RUN_START s | in-process s | in-process SQL s | executor/in-process | max process RSS MB "
                "(executor / in-process) | events/s (executor / in-process) | time ratio vs smallest (size ratio) "
                "| repeats |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in ga4:
            e, i = r.get("executor", {}), r.get("in_process", {})
            out.append(
                f"| {r['events']:,} | {_fmt(e.get('wall_seconds_median'))} | {_fmt(e.get('sql_seconds_median'))} | "
                f"{_fmt(e.get('wall_over_sql'))} | {_fmt(e.get('step_seconds_sum_median'))} | "
                f"{_fmt(e.get('process_start_gap_sum_median'))} / {_fmt(e.get('process_start_gap_median'))} | "
                f"{_fmt(e.get('before_run_start_seconds_median'))} | {_fmt(i.get('seconds_median'))} | "
                f"{_fmt(i.get('sql_seconds_median'))} | {_fmt(r.get('executor_over_in_process'))} | "
                f"{_fmt(e.get('max_process_peak_rss_mb'), 0)} / {_fmt(i.get('max_process_peak_rss_mb'), 0)} | "
                f"{_fmt(e.get('events_per_second'))} / {_fmt(i.get('events_per_second'))} | "
                f"{_fmt(e.get('time_ratio_vs_smallest'))} ({_fmt(r.get('size_ratio_vs_smallest'), 0)}) | "
                f"{r.get('repeats')} |")
        out.append("")
        for r in ga4:
            repeat = _get(r, "executor", "median_repeat")
            if not repeat:
                continue
            out += [f"### {r['events']:,} events: the median executor run, step by step", "",
                    "| step | pid | step s | SQL s | process start gap s | pool wait s | gap after previous step s "
                    "| peak RSS MB |", "|---|---|---|---|---|---|---|---|"]
            peaks = {p["pid"]: p["peak_rss_mb"] for p in repeat.get("processes", [])}
            for s in repeat["run"]["steps"]:
                out.append(f"| {s['step']} | {s.get('pid')} | {_fmt(s.get('seconds'))} | {_fmt(s.get('sql_seconds'))} | "
                           f"{_fmt(s.get('process_start_gap'))} | {_fmt(s.get('pool_wait'))} | "
                           f"{_fmt(s.get('gap_after_previous_end'))} | {_fmt(peaks.get(s.get('pid')), 0)} |")
            roles: dict[str, list[float]] = {}
            for p in repeat.get("processes", []):
                role = p["role"] if not p["role"].startswith("step ") else "step processes"
                roles.setdefault(role, []).append(p["peak_rss_mb"])
            out += ["", "Every process of the command: " + "; ".join(
                f"{role}: {len(v)} (max {max(v):,.0f} MB)" for role, v in roles.items()) +
                f". Peak of the tree's summed RSS: {_fmt(repeat.get('peak_total_rss_mb'), 0)} MB; "
                f"getrusage(RUSAGE_CHILDREN) max: {_fmt(repeat.get('rusage_children_max_rss_mb'), 0)} MB. "
                f"Wall {_fmt(repeat.get('wall_seconds'))} s = {_fmt(repeat['run'].get('before_run_start_seconds'))} s "
                f"before RUN_START + {_fmt(repeat['run'].get('run_span_seconds'))} s run + "
                f"{_fmt(repeat['run'].get('after_run_end_seconds'))} s after the run ended.", ""]
        out += ["## GA4 merge against bare DuckDB (same shard, platform's DuckDB settings)", "",
                "`ga4_events` SQL: the `sql_seconds` of the platform's merge step (its statement plus its checks and "
                "metadata queries). Platform statement: `ga4_events.sql` as the platform translates it, run alone. "
                "SQL in `bench/sql/`.", "",
                "| events | ga4_events SQL s | platform statement s | copy all columns s | window QUALIFY s | "
                "hash arg_min s | keys then rows s | best | ga4_events / copy | ga4_events / best | "
                "ga4_events / platform statement |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in ga4:
            m = r.get("merge_reference", {})

            def sec(name):
                v = m.get(name, {})
                return "skipped" if v.get("skipped") else ("error" if "error" in v else _fmt(v.get("seconds_median")))
            out.append(f"| {r['events']:,} | {_fmt(r.get('ga4_events_sql_seconds_median'))} | {sec('platform_statement')} | "
                       f"{sec('merge_copy_all_columns')} | {sec('merge_window_qualify')} | {sec('merge_hash_arg_min')} | "
                       f"{sec('merge_keys_then_rows')} | {_get(m, 'best_dedup', 'name', default='–')} | "
                       f"{_fmt(r.get('ga4_events_sql_over_merge_copy_all_columns'))} | "
                       f"{_fmt(r.get('ga4_events_sql_over_best_dedup'))} | "
                       f"{_fmt(r.get('ga4_events_sql_over_platform_statement'))} |")
        out.append("")

    imports = sections.get("import_cost", {})
    if "seconds_median" in imports:
        m = imports["seconds_median"]
        out += ["## Import cost (fresh process, local mode, median of "
                f"{imports['repeats']})", "", "| python -c | s |", "|---|---|"]
        out += [f"| {name} | {_fmt(v)} |" for name, v in m.items()]
        out += ["", f"import + build / import dagster: **{_fmt(imports['definitions_build_over_dagster'])}x**; "
                f"import alone / import dagster: {_fmt(imports['definitions_import_over_dagster'])}x; "
                f"building the definitions: {_fmt(imports['build_only_seconds'])} s. Heaviest packages (self import "
                "time): " + ", ".join(f"{p['package']} {p['self_ms']:.0f} ms" for p in imports["heaviest_top_level_imports"][:8]),
                ""]

    sensor = sections.get("sensor_tick", {})
    if "first_tick" in sensor:
        out += [f"## `ga4_export_sensor` over {sensor['shards']:,} shards (median of {sensor['repeats']})", "",
                "| tick | ms | listing calls | listing ms | connections | statements | shard reads | run requests |",
                "|---|---|---|---|---|---|---|---|"]
        for name in ("first_tick", "steady_tick", "one_rewrite_tick"):
            t = sensor[name]
            out.append(f"| {name} | {t['seconds_median'] * 1000:,.1f} | {t['list_export_shards_calls']} | "
                       f"{t.get('list_export_shards_seconds', 0) * 1000:,.1f} | {t['connections']} | {t['statements']} | "
                       f"{t['shard_row_reads']} | {t['run_requests']} |")
        out += ["", "Statements of one tick: " + "; ".join(f"`{s[:90]}`" for s in sensor["steady_tick"]["statement_texts"]), ""]

    chain = sections.get("personalize_chain", {})
    if "rows" in chain:
        out += [f"## Personalize chain (`personalize_retraining_job`), {chain['interactions']:,} interactions, "
                f"{chain['users']:,} users, {chain['items']:,} items (median of {chain['repeats']})", "",
                "| run | in-process s | executor wall s | executor / in-process | executor step s (sum) | "
                "executor process start gaps s (sum) | peak RSS MB (in-process / executor) |",
                "|---|---|---|---|---|---|---|"]
        for r in chain["rows"]:
            out.append(f"| {r['run']} | {_fmt(r['in_process']['seconds_median'])} | {_fmt(r['executor']['seconds_median'])} | "
                       f"{_fmt(r['executor_over_in_process'])} | {_fmt(r['executor']['step_seconds_sum_median'])} | "
                       f"{_fmt(r['executor'].get('process_start_gap_sum_median'))} | "
                       f"{_fmt(r['in_process']['peak_rss_mb'], 0)} / {_fmt(r['executor']['peak_rss_mb'], 0)} |")
        out += ["", f"Local Personalize server (own process) peak RSS: {_fmt(chain.get('server_peak_rss_mb'), 0)} MB.", ""]

    latency = sections.get("recommendations_latency", {})
    if "rows" in latency:
        out += ["## Local Personalize: training and `GetRecommendations` through boto3 on loopback", "",
                "| items | interactions | training s | import s | p50 ms | p99 ms | mean ms | calls | warm-up p99 ms "
                "| DescribeCampaign p50 ms | server peak RSS MB |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in latency["rows"]:
            if "error" in r:
                out.append(f"| {r['items']:,} | {r['interactions']:,} | {r['error'][:120]} |||||||||")
                continue
            out.append(f"| {r['items']:,} | {r['interactions']:,} | {_fmt(r['training_seconds'])} | {_fmt(r['import_seconds'])} | "
                       f"{_fmt(r['p50_ms'])} | {_fmt(r['p99_ms'])} | {_fmt(r['mean_ms'])} | {r['calls']} | "
                       f"{_fmt(r['warm_up']['p99_ms'])} | {_fmt(r['describe_campaign_p50_ms'])} | "
                       f"{_fmt(r['server_peak_rss_mb'], 0)} |")
        out.append("")

    quality = sections.get("recsys_quality", {})
    if quality and "error" not in quality:
        out += ["## Recommendation quality", "", "The table (models × real slices × target settings, with intervals) "
                "is `recsys_quality/recsys_quality.md` beside this report.", ""]

    failed = {name: s["error"] for name, s in sections.items() if isinstance(s, dict) and "error" in s}
    if failed:
        out += ["## Sections that failed", ""] + [f"- `{name}`: {error[:500]}" for name, error in failed.items()] + [""]
    return "\n".join(out)


def write(report: dict, out_dir: Path) -> tuple[Path, Path]:
    report["goals"] = goals(report["sections"])
    json_path, md_path = out_dir / "report.json", out_dir / "report.md"
    json_path.write_text(json.dumps(report, indent=1, default=str))
    md_path.write_text(markdown(report))
    return json_path, md_path
