"""`make bench`: every benchmark of the platform, one after the other, figures printed and kept as JSON.

Each section is a module of this folder with `run(out_dir, quick) -> dict`. Timings are medians of
repeats measured in the same run; this machine is shared, so compare ratios within one report."""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time

from recsys_platform.settings import PlatformSettings

SECTIONS = ["ga4_pipeline", "personalize_chain", "recommendations_latency", "recsys_quality"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    parser.add_argument("--only", nargs="*", choices=SECTIONS, help="run only these sections")
    args = parser.parse_args(argv)
    out_dir = PlatformSettings.from_environment().paths.bench
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "python": sys.version.split()[0],
              "machine": platform.machine(), "quick": args.quick, "sections": {}}
    failed = []
    for name in args.only or SECTIONS:
        print(f"\n=== {name} ===", flush=True)
        module = importlib.import_module(f"bench.{name}")
        try:
            report["sections"][name] = module.run(out_dir / name, quick=args.quick)
        except Exception as error:  # one broken section must not hide the others' figures
            failed.append(name)
            report["sections"][name] = {"error": f"{type(error).__name__}: {error}"}
            print(f"{name} failed: {error}", file=sys.stderr)
    path = out_dir / "report.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nreport written to {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
