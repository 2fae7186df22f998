"""What a fresh process pays before it can run a step: importing Dagster, importing the code location, and
building its definitions (`defs()`, what every run worker does), and what a run's fork server preloads
before the run's first step (the steps forked from it skip all of it). Fresh processes, local mode
(RECSYS_ENV unset), median of repeats, interleaved."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CASES = {
    "python_bare": "pass",
    "import_dagster": "import dagster",
    "import_definitions": "import recsys_platform.definitions",
    "import_and_build_definitions": "import recsys_platform.definitions; recsys_platform.definitions.defs()",
    # what each run's fork server imports and builds before it forks the run's first step (the later steps
    # are forked from it warm): Dagster's executor module, then PRELOADED_MODULES (lib/step_processes.py)
    "fork_server_preload": ("from recsys_platform.lib.step_processes import PRELOADED_MODULES\n"
                            "for name in ['dagster._core.executor.multiprocess', *PRELOADED_MODULES]: __import__(name)"),
}


def _time(code: str, env: dict) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=str(REPO), capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"python -c {code!r} failed:\n{done.stderr[-2000:]}")
    return seconds


def _heaviest_imports(env: dict) -> list[dict]:
    """`-X importtime` of import + build: self time summed per top-level package, the heaviest first."""
    code = CASES["import_and_build_definitions"]
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code], env=env, cwd=str(REPO),
                          capture_output=True, text=True)
    per_package: dict[str, int] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        self_us, _, name = (part.strip() for part in line[len("import time:"):].split("|"))
        if self_us.isdigit():
            package = name.split(".")[0]
            per_package[package] = per_package.get(package, 0) + int(self_us)
    ranked = sorted(per_package.items(), key=lambda kv: -kv[1])[:12]
    return [{"package": name, "self_ms": round(us / 1000, 1)} for name, us in ranked]


def run(out_dir: Path, quick: bool = False) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    repeats = 3 if quick else 7
    with tempfile.TemporaryDirectory(prefix="recsys-bench-import-") as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RECSYS_", "DAGSTER_"))}
        dagster_home = Path(home) / "dagster_home"  # the fork server preloads the storages it names
        dagster_home.mkdir()
        shutil.copy(REPO / "dagster.yaml", dagster_home / "dagster.yaml")
        env.update({"RECSYS_HOME": home, "DAGSTER_HOME": str(dagster_home), "DAGSTER_DISABLE_TELEMETRY": "1",
                    "PYTHONWARNINGS": "ignore"})
        for code in CASES.values():  # warm the OS file cache and the .pyc files once
            _time(code, env)
        samples: dict[str, list[float]] = {name: [] for name in CASES}
        for _ in range(repeats):
            for name, code in CASES.items():
                samples[name].append(_time(code, env))
        heaviest = _heaviest_imports(env)
    medians = {name: round(statistics.median(values), 3) for name, values in samples.items()}
    result = {
        "repeats": repeats,
        "seconds_median": medians,
        "seconds_all": {name: [round(v, 3) for v in values] for name, values in samples.items()},
        "definitions_import_over_dagster": round(medians["import_definitions"] / medians["import_dagster"], 2),
        "definitions_build_over_dagster": round(medians["import_and_build_definitions"] / medians["import_dagster"], 2),
        "build_only_seconds": round(medians["import_and_build_definitions"] - medians["import_definitions"], 3),
        "heaviest_top_level_imports": heaviest,
    }
    print("fresh process, median of", repeats)
    for name, seconds in medians.items():
        print(f"  {name:32s} {seconds:6.2f} s")
    print(f"  import + build / import dagster: {result['definitions_build_over_dagster']}x")
    (out_dir / "import_cost.json").write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    print(json.dumps(run(Path(".recsys/bench/import_cost"), quick="--quick" in sys.argv), indent=1))
