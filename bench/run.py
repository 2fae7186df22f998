"""`make bench`: every benchmark of the platform, one after the other, into one report.

Each section is a module of this folder with `run(out_dir, quick) -> dict`. The report is
`$RECSYS_HOME/bench/report.md` and `report.json` (RECSYS_HOME defaults to `.recsys`): every figure, the
in-process figure beside the executor's, the bare-DuckDB ratios, and each goal met / not met. Timings are
medians of repeats measured in the same run; this machine is shared, so compare ratios within one report.

`--quick`: small sizes and single repeats (a few minutes); the full run takes ~30-40 min on 2 cores.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
import traceback

from recsys_platform.settings import PlatformSettings

SECTIONS = ["import_cost", "sensor_tick", "ga4_pipeline", "personalize_chain", "recommendations_latency",
            "recsys_quality"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, single repeats (a few minutes)")
    parser.add_argument("--only", nargs="*", choices=SECTIONS, help="run only these sections")
    parser.add_argument("--merge", action="store_true",
                        help="keep the other sections of the existing report.json (re-run a section into it)")
    args = parser.parse_args(argv)
    from bench import report as report_writer

    out_dir = PlatformSettings.from_environment().paths.bench
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "python": sys.version.split()[0],
              "machine": platform.machine(), "cpus": os.cpu_count(), "quick": args.quick, "sections": {},
              "section_seconds": {}, "load_average_at_start": {}}
    previous = out_dir / "report.json"
    if args.merge and previous.exists():
        kept = json.loads(previous.read_text())
        for key in ("sections", "section_seconds", "load_average_at_start"):
            report[key] = {**kept.get(key, {}), **report[key]}
        report["started"] = kept.get("started", report["started"])
        report["merged_sections"] = list(args.only or SECTIONS)
    failed = []
    for name in args.only or SECTIONS:
        print(f"\n=== {name} ===", flush=True)
        report["load_average_at_start"][name] = [round(x, 2) for x in os.getloadavg()]
        started = time.perf_counter()
        try:
            module = importlib.import_module(f"bench.{name}")
            if hasattr(module, "PROGRESS"):
                def progress(partial, name=name):
                    report["sections"][name] = partial
                    report_writer.write(report, out_dir)
                module.PROGRESS = progress
            report["sections"][name] = module.run(out_dir / name, quick=args.quick)
        except Exception as error:  # one broken section must not hide the others' figures
            failed.append(name)
            report["sections"][name] = {"error": f"{type(error).__name__}: {error}",
                                        "traceback": traceback.format_exc()[-4000:]}
            print(f"{name} failed: {error}", file=sys.stderr)
        report["section_seconds"][name] = round(time.perf_counter() - started, 1)
        report["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        report_writer.write(report, out_dir)  # after every section: a long run's figures survive a later failure
    json_path, md_path = report_writer.write(report, out_dir)
    print(f"\nreport written to {md_path} and {json_path}")
    for goal in report["goals"]:
        print(f"  [{goal['status']:>12}] {goal['goal']}: {goal['measured']} (target {goal['target']})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
