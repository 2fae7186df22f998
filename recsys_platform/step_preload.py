"""What the fork server of a run's steps loads once, so that every step forked from it starts warm.

Dagster's multiprocess executor (start method `forkserver`, lib/step_processes.py) starts one server per run
and forks each step from it. A step process then opens the instance from its ref, loads the code location
(`defs()`) and builds its plan before its step starts. Without this module each step imported Dagster's
storage stack (SQLAlchemy, Alembic, the instance's storage classes) and built the definitions again,
twice: 1-3 s per step, on every step. Here it happens once, in the server:

- the definitions, built by `defs()`, whose memo a forked step reuses while its settings and environment
  are the server's (they are unless a step changes them), with the repository and jobs resolved;
- the modules of the instance's storages (from `$DAGSTER_HOME/dagster.yaml`, SQLite or PostgreSQL) and the
  rest of what a step imports that the code location does not.

Nothing here opens a connection or starts a thread: a forked step must not share either with the server.
The fork server imports this module and survives only an ImportError, so nothing may raise out of it; a
failure only costs the speed-up (the step then loads, and reports, as it would have).
"""

from __future__ import annotations

import importlib
import os
import warnings

# Imported by every step process after the fork, whatever the instance (found by comparing a step's
# sys.modules with the server's); private Dagster modules may move between releases, so each is optional.
STEP_MODULES = (
    "dagster._core.instance.factory",
    "dagster._core.storage.migration.utils",
    "dagster._core.system_config.composite_descent",
    "dagster._core.workspace.autodiscovery",
    "dagster._core.utility_ops",
    "dagster._utils.test.definitions",
    "upath.core",  # the instance's definitions-state storage, Dagster's filesystem IO manager
    "upath.implementations.local",
)


def _import_quietly(name: str) -> bool:
    try:
        importlib.import_module(name)
        return True
    except ImportError:
        return False


def instance_storage_modules(dagster_home: str | None = None) -> list[str]:
    """The modules of the classes `$DAGSTER_HOME/dagster.yaml` names (storages, compute logs, run coordinator
    and launcher, ...): what `DagsterInstance.from_ref` imports in each step. None without a DAGSTER_HOME."""
    home = dagster_home or os.environ.get("DAGSTER_HOME")
    if not home:
        return []
    from dagster._core.instance.ref import InstanceRef
    from dagster._serdes import ConfigurableClassData

    ref = InstanceRef.from_dir(home)
    return sorted({value.module_name for value in ref if isinstance(value, ConfigurableClassData)})


def preload() -> None:
    for name in STEP_MODULES:
        _import_quietly(name)
    try:
        for name in instance_storage_modules():
            _import_quietly(name)
    except Exception as error:  # a broken dagster.yaml is the step's to report, not the server's
        warnings.warn(f"step preload: instance storage modules not preloaded: {error}", stacklevel=1)
    try:
        from recsys_platform.definitions import defs

        repository = defs().get_repository_def()
        repository.get_all_jobs()  # resolved here, not in every step
    except Exception as error:  # e.g. a setting missing: each step raises it, as it would have
        warnings.warn(f"step preload: definitions not built in the fork server: {error}", stacklevel=1)


preload()
