"""One simulated GA4 day of 100k and of 1M events through merge + refine + interactions on the embedded
default: wall seconds (median of repeats), events per second and peak memory of the run's process."""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DAY = "2026-03-02"


def run(out_dir: Path, quick: bool = False) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    sizes = [20_000, 100_000] if quick else [100_000, 1_000_000]
    repeats = 2 if quick else 3
    rows = []
    for events in sizes:
        with tempfile.TemporaryDirectory(prefix="recsys-bench-") as home:
            env = {**os.environ, "RECSYS_HOME": home, "RECSYS_ENV": "local", "RECSYS_START_DATE": "2026-01-01"}
            started = time.perf_counter()
            _python(["-m", "recsys_platform.cli.main", "simulate", "--days", "1", "--start-date", DAY,
                     "--events-per-day", str(events), "--seed", "7"], env)
            simulate_seconds = time.perf_counter() - started
            samples = [json.loads(_python(["-m", "bench.ga4_pipeline", "--measure"], env).splitlines()[-1])
                       for _ in range(repeats)]
        seconds = statistics.median(s["seconds"] for s in samples)
        rows.append({
            "events": events,
            "simulate_seconds": round(simulate_seconds, 2),
            "pipeline_seconds_median": round(seconds, 2),
            "pipeline_seconds_all": [round(s["seconds"], 2) for s in samples],
            "events_per_second": round(events / seconds),
            "peak_rss_mb": max(s["peak_rss_mb"] for s in samples),
            "interactions_rows": samples[0]["interactions_rows"],
        })
    base = rows[0]
    for row in rows:
        row["time_ratio_vs_smallest"] = round(row["pipeline_seconds_median"] / base["pipeline_seconds_median"], 2)
        row["size_ratio_vs_smallest"] = row["events"] / base["events"]
    _print(rows)
    result = {"day": DAY, "repeats": repeats, "rows": rows}
    (out_dir / "ga4_pipeline.json").write_text(json.dumps(result, indent=2))
    return result


def _python(args: list[str], env: dict) -> str:
    done = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def _print(rows: list[dict]) -> None:
    print("| events/day | pipeline s (median) | events/s | peak RSS MB | time ratio | size ratio | simulate s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['events']:,} | {r['pipeline_seconds_median']} | {r['events_per_second']:,} | "
              f"{r['peak_rss_mb']} | {r['time_ratio_vs_smallest']} | {r['size_ratio_vs_smallest']:.0f} | "
              f"{r['simulate_seconds']} |")


def measure() -> None:
    """In a fresh process: materialize the GA4 day job's assets for DAY, report time and peak memory."""
    from dagster import materialize

    from recsys_platform.definitions import build_definitions
    from recsys_platform.settings import PlatformSettings

    defs = build_definitions(PlatformSettings.from_environment())
    assets = [defs.get_assets_def(name) for name in (
        "ga4_events", "ga4_item_views", "ga4_cart_adds", "ga4_wishlist_adds", "ga4_purchases", "interactions")]
    started = time.perf_counter()
    result = materialize(assets, partition_key=DAY, resources={"warehouse": defs.resources["warehouse"]})
    seconds = time.perf_counter() - started
    [mat] = result.asset_materializations_for_node("interactions")
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "peak_rss_mb": round(peak_kb / 1024),
                      "interactions_rows": mat.metadata["dagster/row_count"].value}))


if __name__ == "__main__" and "--measure" in sys.argv:
    measure()
