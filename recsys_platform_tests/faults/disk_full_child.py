"""Runs one job of the code location in this process with its files capped at a size (RLIMIT_FSIZE), so a
write past the cap fails with EFBIG ("File too large"), as a full disk fails it with ENOSPC, part way
through. Prints one JSON line: success, the exception the failed step raised, and every error in its chain.

    python -m recsys_platform_tests.faults.disk_full_child LIMIT_BYTES JOB PARTITION [ASSET]
"""

from __future__ import annotations

import json
import resource
import signal
import sys


def main() -> int:
    limit, job, partition, *assets = sys.argv[1:]
    # Without this the kernel ends the process (SIGXFSZ) at the first write past the cap; ignored, the write
    # fails with EFBIG and the program sees an error, as with a full disk.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    from dagster import DagsterEventType

    from recsys_platform_tests.faults.in_process import run_job

    resource.setrlimit(resource.RLIMIT_FSIZE, (int(limit), resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    outcome = run_job(job, partition, assets=assets or None)
    raised, chain = None, []
    for event in outcome.result.all_events:
        if event.event_type == DagsterEventType.STEP_FAILURE:
            error = event.event_specific_data.error
            # The step's error wraps what the asset raised (its cause); that one's context is what it was
            # handling when it raised.
            raised = error.cause.message if error.cause is not None else error.message
            pending = [error]
            while pending:
                current = pending.pop()
                chain.append(current.message)
                pending += [e for e in (current.cause, current.context) if e is not None]
    print(json.dumps({"success": outcome.success, "raised": raised, "chain": chain}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
