"""A run worker for the fault tests: executes runs of the code location's jobs the way a run worker does
(`execute_job` on the reconstructable job, Dagster's multiprocess executor, one process per step, the
instance of DAGSTER_HOME), one run after another, so a test pays for importing Dagster and the code
location once instead of once per run.

Started by `harness.Runner` as `python -m recsys_platform_tests.faults.runner` with DAGSTER_HOME, RECSYS_HOME
and the code copy on PYTHONPATH. Protocol: one JSON request per stdin line,
    {"job": ..., "tags": {...}, "run_config": {...}, "from_failure_of": run_id | null}
answered by one JSON line on stdout, {"run_id": ..., "success": bool}. Killing a step process (the fault)
leaves this process alive: the executor reports the crashed step and fails the run, as in production.
"""

from __future__ import annotations

import json
import os
import sys
import traceback


def main() -> int:
    from dagster import DagsterInstance, ReexecutionOptions, execute_job
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    instance = DagsterInstance.get()
    repository = ReconstructableRepository.for_module("recsys_platform.definitions", "defs",
                                                      working_directory=os.getcwd())
    print(json.dumps({"ready": True, "pid": os.getpid()}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            job = repository.get_reconstructable_job(request["job"])
            options = None
            if request.get("from_failure_of"):
                options = ReexecutionOptions.from_failure(request["from_failure_of"], instance)
            with execute_job(job, instance, run_config=request.get("run_config") or {},
                             tags=request.get("tags") or {}, raise_on_error=False,
                             reexecution_options=options) as result:
                answer = {"run_id": result.run_id, "success": result.success}
        except Exception:  # a broken request must not end the runner: the test reads the traceback
            answer = {"run_id": None, "success": False, "error": traceback.format_exc()}
        print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
