"""Waiting on Personalize's asynchronous resources, and naming jobs so a retried step resumes them.

Every Personalize job the chain starts has a name derived from the training date. Before creating a
job, a step lists the jobs it may already have started: a job of that name that has not failed is
waited on instead of duplicated; only after a failed attempt does the next one get a suffix (`-a2`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from dagster import DagsterExecutionInterruptedError

from recsys_platform.shared.personalize_facts import ACTIVE, NAME_PATTERN, is_failed

_JOB_NAME = re.compile(NAME_PATTERN)
MAX_ATTEMPTS = 20


class PersonalizeJobFailed(RuntimeError):
    """A Personalize job ended in a failed state; the message carries its `failureReason`."""


class PersonalizeJobDeadlineExceeded(TimeoutError):
    """A Personalize job did not finish before the step's deadline (the job itself keeps running)."""


@dataclass(frozen=True)
class WaitPolicy:
    """Polls after `first_poll_seconds`, doubling the interval up to `poll_seconds`: quick jobs are seen
    done quickly, hours-long trainings are polled at the quiet rate."""

    poll_seconds: float = 30.0
    deadline_seconds: float = 6 * 3600.0
    first_poll_seconds: float = 1.0

    def __post_init__(self) -> None:
        # A zero interval would poll Personalize in a tight loop (and never back off).
        for name in ("poll_seconds", "first_poll_seconds"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not self.deadline_seconds >= 0:
            raise ValueError(f"deadline_seconds must be >= 0, got {self.deadline_seconds}")


def attempt_name(base_name: str, existing_statuses: Mapping[str, str]) -> tuple[str, bool]:
    """The job name to use for `base_name`, and whether a job of that name already exists to resume.

    `existing_statuses` maps names of jobs already in Personalize to their status. Attempt 1 is
    `base_name`, attempt n is `base_name-a<n>`; the first attempt that is missing or not failed wins.
    """
    if not _JOB_NAME.match(base_name) or len(base_name) > 58:
        raise ValueError(f"Personalize job name {base_name!r} must match [a-zA-Z0-9][a-zA-Z0-9-_]* (max 58 chars)")
    for attempt in range(1, MAX_ATTEMPTS + 1):
        name = base_name if attempt == 1 else f"{base_name}-a{attempt}"
        status = existing_statuses.get(name)
        if status is None:
            return name, False
        if not is_failed(status):
            return name, True
    raise PersonalizeJobFailed(f"{base_name}: {MAX_ATTEMPTS} attempts failed; not starting another")


def attempt_number(base_name: str, name: str) -> int | None:
    """1 for `base_name`, n for `base_name-a<n>`, None for a name of another base."""
    if name == base_name:
        return 1
    match = re.fullmatch(re.escape(base_name) + r"-a(\d+)", name)
    return int(match.group(1)) if match else None


def new_attempt_name(base_name: str, existing_names) -> str:
    """A name for a new attempt: the one after the highest attempt of `base_name` that exists.

    Unlike `attempt_name`, an earlier attempt that did not fail is not resumed: the caller found it
    unusable (e.g. it imported or trained on other data)."""
    numbers = [n for n in (attempt_number(base_name, name) for name in existing_names) if n is not None]
    if not numbers:
        return base_name
    if max(numbers) >= MAX_ATTEMPTS:
        raise PersonalizeJobFailed(f"{base_name}: {MAX_ATTEMPTS} attempts exist; not starting another")
    return f"{base_name}-a{max(numbers) + 1}"


def wait_until_active(
    describe: Callable[[], dict],
    what: str,
    policy: WaitPolicy,
    log: Callable[[str], None] | None = None,
    on_interrupt: Callable[[], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict:
    """Polls `describe()` (the resource's description dict) until its status is ACTIVE.

    Raises PersonalizeJobFailed with `failureReason` when the job fails, and
    PersonalizeJobDeadlineExceeded after `policy.deadline_seconds`. When the run is cancelled while
    waiting, `on_interrupt` is called (to stop the remote job) before the interruption propagates.
    """
    started = clock()
    last_status = None
    interval = min(policy.first_poll_seconds, policy.poll_seconds)
    try:
        while True:
            resource = describe()
            status = resource.get("status", "")
            if status != last_status and log is not None:
                log(f"{what}: {status}")
            last_status = status
            if status == ACTIVE:
                return resource
            if is_failed(status):
                reason = resource.get("failureReason") or "no failureReason given"
                raise PersonalizeJobFailed(f"{what} ended {status}: {reason}")
            waited = clock() - started
            if waited >= policy.deadline_seconds:
                raise PersonalizeJobDeadlineExceeded(
                    f"{what} still {status} after {waited:.0f}s (deadline {policy.deadline_seconds:.0f}s); "
                    "the job keeps running in Personalize and a retry of this step resumes waiting on it"
                )
            sleep(min(interval, max(policy.deadline_seconds - waited, 0.0)))
            interval = min(interval * 2, policy.poll_seconds)
    except (DagsterExecutionInterruptedError, KeyboardInterrupt):
        if on_interrupt is not None:
            on_interrupt()
        raise


def list_all(client, operation: str, key: str, **params) -> list[dict]:
    """Every item of a paginated Personalize List* call."""
    items: list[dict] = []
    for page in client.get_paginator(operation).paginate(**params):
        items.extend(page.get(key, []))
    return items
