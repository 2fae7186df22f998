"""Steps run in processes forked from one preloaded server per run, and a forked step starts warm: it reuses
the definitions the server built while its settings and environment are the server's, and rebuilds them when
they differ. The fork server is real (multiprocessing's forkserver, preloaded as Dagster's multiprocess
executor preloads it); each scenario runs in a fresh interpreter, so no other test's fork server is reused."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
from pathlib import Path

from recsys_platform.lib.step_processes import PRELOADED_MODULES, step_executor

REPO_ROOT = Path(__file__).resolve().parents[2]
# Imported by every step; the server must have imported them before the fork.
STORAGE_MODULES = ("sqlalchemy", "alembic", "dagster._core.storage.event_log.sqlite.sqlite_event_log",
                   "dagster._core.storage.runs.sqlite.sqlite_run_storage", "dagster._core.instance.factory")


def test_steps_run_in_processes_forked_from_a_server_that_preloads_the_step_preload():
    config = step_executor().config_schema.resolve_config({}).value["config"]
    assert list(config["start_method"]) == ["forkserver"]
    preload = config["start_method"]["forkserver"]["preload_modules"]
    assert preload == PRELOADED_MODULES
    # the code location comes in through step_preload, which also builds its definitions
    assert preload[0] == "recsys_platform.step_preload" and "recsys_platform.definitions" not in preload


def _probe(queue, env_change: dict) -> None:
    """A step's process, forked from the server: what its `defs()` gives, and whether it built anything."""
    import recsys_platform.definitions as definitions

    served = definitions._built[1] if definitions._built else None  # built in the server, before the fork
    preloaded = sorted(name for name in STORAGE_MODULES if name in sys.modules)
    os.environ.update(env_change)
    builds = []
    build = definitions.build_definitions
    definitions.build_definitions = lambda settings: builds.append(settings) or build(settings)
    try:
        loaded = definitions.defs()
    finally:
        definitions.build_definitions = build
    queue.put({
        "server_built": served is not None,
        "reused_server_definitions": loaded is served,
        "builds": len(builds),
        "start_date": loaded.resolve_job_def("ga4_daily_job").partitions_def.get_first_partition_key(),
        "personalize_endpoint": loaded.resources["personalize"].endpoint_url,
        "preloaded_storage_modules": preloaded,
        # the embedded default's server, like its code location, loads no cloud client or PostgreSQL storage
        "cloud_modules": sorted(m for m in sys.modules if m.startswith(("google.cloud.bigquery", "dagster_gcp",
                                                                           "dagster_aws", "dagster_postgres"))),
    })


def load_definitions() -> None:
    from recsys_platform.definitions import defs

    defs()


def forked_steps(changes: list[dict]) -> list[dict]:
    """One step process per environment change, each forked from one server preloaded as the executor does."""
    context = multiprocessing.get_context("forkserver")
    # what Dagster's multiprocess executor hands the fork server (dagster/_core/executor/multiprocess.py)
    context.set_forkserver_preload(["dagster._core.executor.multiprocess", *PRELOADED_MODULES])
    results = []
    for change in changes:
        queue = context.Queue()
        process = context.Process(target=_probe, args=(queue, change))
        process.start()
        results.append(queue.get(timeout=300))
        process.join(timeout=60)
    return results


def _run_python(code: str, env: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=600)


def _env(tmp_path: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECSYS_", "DAGSTER_"))}
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir(exist_ok=True)
    shutil.copy(REPO_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    env.update({"RECSYS_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(dagster_home),
                "DAGSTER_DISABLE_TELEMETRY": "1", "PYTHONWARNINGS": "ignore"})
    env.update(extra)
    return env


def test_a_step_forked_from_the_server_reuses_its_definitions_and_rebuilds_them_when_the_environment_differs(
        tmp_path):
    changes = [{}, {"RECSYS_START_DATE": "2026-02-01"},
               # not a PlatformSettings field: read from the environment by the resources
               {"RECSYS_PERSONALIZE_ENDPOINT_URL": "http://127.0.0.1:9"}]
    code = ("import json\n"
            "from recsys_platform_tests.lib.test_step_processes import forked_steps\n"
            f"print(json.dumps(forked_steps({changes!r})))\n")
    done = _run_python(code, _env(tmp_path), tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    same, new_start, new_endpoint = json.loads(done.stdout.splitlines()[-1])

    assert same["server_built"] and same["reused_server_definitions"] and same["builds"] == 0
    assert same["start_date"] == "2026-01-01"
    # the instance's storage stack came from the server too (DAGSTER_HOME's dagster.yaml: SQLite)
    assert same["preloaded_storage_modules"] == sorted(STORAGE_MODULES)
    assert same["cloud_modules"] == []

    assert not new_start["reused_server_definitions"] and new_start["builds"] == 1
    assert new_start["start_date"] == "2026-02-01"
    assert not new_endpoint["reused_server_definitions"] and new_endpoint["builds"] == 1
    assert new_endpoint["personalize_endpoint"] == "http://127.0.0.1:9"


def test_the_preload_never_breaks_the_fork_server(tmp_path):
    """The fork server survives only an ImportError from a preloaded module: a bad setting or a broken
    dagster.yaml must leave it up, for each step to report the error as it would have."""
    env = _env(tmp_path, RECSYS_ENV="nowhere", PYTHONWARNINGS="default")
    (Path(env["DAGSTER_HOME"]) / "dagster.yaml").write_text("storage: [not, a, mapping\n")
    done = _run_python("import recsys_platform.step_preload", env, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "definitions not built in the fork server" in done.stderr
    assert "instance storage modules not preloaded" in done.stderr

    # and a step forked from such a server still reports the setting's own error
    code = ("import multiprocessing, sys\n"
            "from recsys_platform.lib.step_processes import PRELOADED_MODULES\n"
            "context = multiprocessing.get_context('forkserver')\n"
            "context.set_forkserver_preload(['dagster._core.executor.multiprocess', *PRELOADED_MODULES])\n"
            "from recsys_platform_tests.lib.test_step_processes import load_definitions\n"
            "process = context.Process(target=load_definitions)\n"
            "process.start(); process.join(); sys.exit(process.exitcode)\n")
    step = _run_python(code, env, tmp_path)
    assert step.returncode == 1 and "RECSYS_ENV must be one of" in step.stderr


def test_instance_storage_modules_follow_dagster_yaml(tmp_path):
    from recsys_platform.step_preload import instance_storage_modules

    local = instance_storage_modules(str(REPO_ROOT))  # the embedded default: SQLite
    assert "dagster._core.storage.event_log" in local and "dagster._core.storage.runs" in local
    production = instance_storage_modules(str(REPO_ROOT / "deploy"))  # PostgreSQL
    assert "dagster_postgres" in production and "dagster._core.storage.event_log" not in production
