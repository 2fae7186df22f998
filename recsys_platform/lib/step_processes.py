"""How a run's steps get their processes: Dagster's multiprocess executor with the `forkserver` start method.

Each step runs in its own process, as under `dagster dev` and the daemon. With the default `spawn`,
every step process imports Dagster and the code location from scratch (seconds per step); a forkserver
imports them once per run and forks each step from it, so a step starts in a fraction of that.
"""

from dagster import ExecutorDefinition, multiprocess_executor

# Imported once in the fork server. `recsys_platform.step_preload` imports the code location and builds its
# definitions, and imports the instance's storage stack, which a forked step would otherwise import and build
# again (1-3 s a step); then the libraries warehouse and lake steps use, with the SQL dialects they parse.
PRELOADED_MODULES = ["recsys_platform.step_preload", "duckdb", "pyarrow", "pyarrow.csv", "sqlglot",
                     "sqlglot.dialects.bigquery", "sqlglot.dialects.duckdb"]


def step_executor() -> ExecutorDefinition:
    return multiprocess_executor.configured(
        {"start_method": {"forkserver": {"preload_modules": PRELOADED_MODULES}}}, name="forkserver_multiprocess"
    )
