"""Runs of the code location's jobs inside the test process, for faults whose outcome does not depend on
how steps get their processes (what a bad day's data does to the merge, a sensor tick, a lock): the job is
the code location's own, with the resources of the test's RECSYS_HOME, and its outcome is read from the
run's events as the UI shows them."""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass

from dagster import AssetKey, DagsterEventType, DagsterInstance, materialize

from recsys_platform_tests.code_location import assets as code_location_assets
from recsys_platform_tests.code_location import platform_definitions
from recsys_platform_tests.faults.harness import RANGE_END_TAG, RANGE_START_TAG

GA4_JOB = "ga4_daily_job"


@dataclass
class RunOutcome:
    result: object
    seconds: float

    @property
    def success(self) -> bool:
        return self.result.success

    def failure_message(self) -> str:
        """Every step failure's description and error messages, causes included."""
        messages = []
        for event in self.result.all_events:
            if event.event_type != DagsterEventType.STEP_FAILURE:
                continue
            data = event.event_specific_data
            if data.user_failure_data is not None and data.user_failure_data.description:
                messages.append(data.user_failure_data.description)
            error = data.error
            while error is not None:
                messages.append(error.message)
                error = error.cause
        return "\n".join(messages)

    def materialization(self, asset: str):
        found = [event.event_specific_data.materialization for event in self.result.all_events
                 if event.event_type == DagsterEventType.ASSET_MATERIALIZATION
                 and event.event_specific_data.materialization.asset_key == AssetKey(asset)]
        assert found, f"no materialization of {asset}"
        return found[-1]

    def check_metadata(self, asset: str, check: str) -> dict:
        [evaluation] = [event.event_specific_data for event in self.result.all_events
                        if event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION
                        and event.event_specific_data.asset_key == AssetKey(asset)
                        and event.event_specific_data.check_name == check]
        return evaluation.metadata

    def checks(self) -> dict[tuple[str, str], bool]:
        return {(event.event_specific_data.asset_key.to_user_string(), event.event_specific_data.check_name):
                event.event_specific_data.passed
                for event in self.result.all_events if event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION}


def run_job(job_name: str = GA4_JOB, partition: str | None = None, *, partition_range: tuple[str, str] | None = None,
            run_config: dict | None = None, assets: list[str] | None = None,
            instance: DagsterInstance | None = None, resources: dict | None = None) -> RunOutcome:
    """One run of the code location's job, built from the current environment (RECSYS_HOME, ...).

    With `resources`, the run is of `assets` alone with those resources in place of the deployment's (an S3
    lake, a Personalize client with another retry budget): the same asset definitions, other services."""
    defs = platform_definitions()
    tags = {}
    if partition_range is not None:
        tags = {RANGE_START_TAG: partition_range[0], RANGE_END_TAG: partition_range[1]}
    instance = instance or DagsterInstance.ephemeral()
    started = time.monotonic()
    if resources:
        assert assets, "a run with other resources names its assets"
        result = materialize(code_location_assets(*assets, defs=defs), partition_key=partition, tags=tags,
                             run_config=run_config or {}, instance=instance, raise_on_error=False,
                             resources={**defs.resources, **resources})
    else:
        result = defs.resolve_job_def(job_name).execute_in_process(
            run_config=run_config or {}, instance=instance, partition_key=partition, tags=tags,
            raise_on_error=False, asset_selection=[AssetKey(a) for a in assets] if assets else None,
        )
    return RunOutcome(result, time.monotonic() - started)


@contextlib.contextmanager
def home_env(path):
    """RECSYS_HOME pointed at `path` while the block runs (the code location reads it when it is built)."""
    previous = os.environ.get("RECSYS_HOME")
    os.environ["RECSYS_HOME"] = str(path)
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop("RECSYS_HOME", None)
        else:
            os.environ["RECSYS_HOME"] = previous
