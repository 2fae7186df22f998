"""Asynchronous resource creation with Personalize's status lifecycle, safe across processes.

Every resource that has a status is created by a job: `<PHASE> PENDING` -> `<PHASE> IN_PROGRESS` ->
`ACTIVE` or `<PHASE> FAILED` (with `failureReason`); a stop request ends it in `<PHASE> STOPPED`,
through `<PHASE> STOPPING` while its work runs. Each server runs jobs on a fixed number of worker
threads; the others wait in PENDING. The record names its owner (a server instance); the owner keeps
a heartbeat file fresh. When an owner disappears (its process died, or it stopped with work
unfinished), a live server takes the job over -- when it starts, when it describes or lists the
resource, or at its periodic sweep -- and runs it again from the start, up to `MAX_ATTEMPTS` times,
after which the job fails with a reason instead of staying in progress.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from recsys_platform.standins.local_personalize.errors import ServiceError, redact_paths
from recsys_platform.standins.local_personalize.store import ARN_FIELDS, ResourceStore, write_json_atomically

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
ACTIVE = "ACTIVE"


def status_of(phase: str, state: str) -> str:
    """`CREATE PENDING`; a job without phases (a data deletion job) has plain `PENDING`."""
    return f"{phase} {state}" if phase else state


def is_transient(status: str | None) -> bool:
    return bool(status) and status.rsplit(" ", 1)[-1] in ("PENDING", "IN_PROGRESS", "STOPPING")


class JobFailed(Exception):
    """Raised by a job's work: the message becomes the resource's failureReason."""


class JobAbandoned(Exception):
    """The job no longer belongs to this server (it stopped, or another server took the job over)."""


@dataclass
class JobContext:
    """What a job's work may ask while it runs."""

    runner: JobRunner
    kind: str
    arn: str

    def check(self) -> None:
        """Raise if the job was stopped or taken over, so long work ends at the next safe point."""
        record = self.runner.store.get(self.kind, self.arn)
        if not self.runner.owns(record) or record["status"].endswith(" STOPPING"):
            raise JobAbandoned(self.arn)


# work(record, context) -> apply(record), run under the lock to record the result on success
Work = Callable[[dict, JobContext], Callable[[dict], None] | None]


class JobRunner:
    def __init__(
        self,
        store: ResourceStore,
        workers: dict[str, Work],
        step_delay: float = 0.05,
        stale_after: float = 20.0,
        on_status: Callable[[str, dict, str], None] | None = None,
        max_running_jobs: int = 8,
        done_statuses: dict[str, str] | None = None,
        after_finish: Callable[[str, dict], None] | None = None,
    ) -> None:
        self.store = store
        self.workers = workers
        # the status a finished job records, per kind: ACTIVE, or e.g. COMPLETED for a deletion job
        self.done_statuses = dict(done_statuses or {})
        # called outside the lock once a job finished successfully (e.g. campaigns following a solution)
        self.after_finish = after_finish or (lambda kind, record: None)
        self.step_delay = step_delay
        self.stale_after = stale_after
        self.on_status = on_status or (lambda kind, record, status: None)
        self.owner_id = uuid.uuid4().hex
        self.hostname = socket.gethostname()
        self.closed = False
        self._owners_dir = store.data_dir("owners")
        self._wake = threading.Event()
        self._owner = {"pid": os.getpid(), "hostname": self.hostname}
        write_json_atomically(self._owner_file(self.owner_id), self._owner)
        # A fixed set of workers bounds the threads (and the trainings' memory) however many jobs are
        # asked for; a job waiting for a worker stays PENDING, as on the service. Daemon threads, so
        # a stopping server does not wait for a training to end: another server resumes the job.
        self._queue: queue.SimpleQueue[tuple[str, str] | None] = queue.SimpleQueue()
        self._workers = [
            threading.Thread(target=self._work, name=f"personalize-job-{n}", daemon=True)
            for n in range(max_running_jobs)
        ]
        for worker in self._workers:
            worker.start()
        self._heartbeat = threading.Thread(target=self._beat, name="personalize-heartbeat", daemon=True)
        self._heartbeat.start()

    # ---- ownership -------------------------------------------------------------------------------

    def _owner_file(self, owner_id: str) -> Path:
        return self._owners_dir / f"{owner_id}.json"

    def _beat(self) -> None:
        """Keep this server's heartbeat fresh; every `stale_after` seconds, also take over jobs whose
        owner went away, so they move on even when nobody describes them."""
        interval = max(self.stale_after / 4, 0.05)
        beats = 0
        while not self._wake.wait(interval):
            try:
                os.utime(self._owner_file(self.owner_id))
            except FileNotFoundError:
                # A peer took this server for dead (its heartbeat stalled) and removed the file; without
                # it every job this server starts would be taken over again.
                if not self.closed:
                    write_json_atomically(self._owner_file(self.owner_id), self._owner)
            beats += 1
            if beats % 4 == 0:
                try:
                    self.recover_all()
                except Exception:  # a sweep must never end the heartbeat
                    log.exception("sweep for abandoned jobs failed")

    def owner_alive(self, owner_id: str | None) -> bool:
        if not owner_id:
            return False
        if owner_id == self.owner_id:
            return not self.closed
        path = self._owner_file(owner_id)
        try:
            owner = json.loads(path.read_text(encoding="utf-8"))
            age = time.time() - path.stat().st_mtime
        except (FileNotFoundError, ValueError):
            return False
        if age > self.stale_after:
            return False
        if owner.get("hostname") == self.hostname:
            try:
                os.kill(int(owner["pid"]), 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
        return True

    def forget_dead_owners(self) -> None:
        """Remove heartbeat files of servers that are gone (a missing file also means "gone")."""
        for path in self._owners_dir.glob("*.json"):
            if not self.owner_alive(path.stem):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def close(self) -> None:
        """Stop heartbeating and give up unfinished jobs; another server will take them over."""
        self.closed = True
        self._wake.set()
        for _ in self._workers:
            self._queue.put(None)
        with contextlib.suppress(FileNotFoundError):
            self._owner_file(self.owner_id).unlink()

    # ---- running ---------------------------------------------------------------------------------

    def new_job_fields(self, phase: str = "CREATE") -> dict:
        """Fields of a record whose job this server is about to start."""
        return {
            "status": status_of(phase, "PENDING"),
            "_owner": self.owner_id,
            "_job": {"phase": phase, "attempts": 1},
        }

    def start(self, kind: str, arn: str) -> None:
        self._queue.put((kind, arn))

    def _work(self) -> None:
        while (job := self._queue.get()) is not None and not self.closed:
            try:
                self._run(*job)
            except Exception:  # a worker that ended here would leave later jobs PENDING for good
                log.exception("job %s: unexpected error", job[1])

    def owns(self, record: dict | None) -> bool:
        """Whether this server runs the record's job (it may have been taken over, or this server closed)."""
        return record is not None and record.get("_owner") == self.owner_id and not self.closed

    def _record_status(self, kind: str, record: dict, status: str) -> None:
        """Store the record with its new status; call under the lock."""
        record["status"] = status
        record["lastUpdatedDateTime"] = time.time()
        if record.get("failureReason"):
            record["failureReason"] = redact_paths(str(record["failureReason"]))
        self.on_status(kind, record, status)
        self.store.put(kind, record)

    def _set_status(self, kind: str, arn: str, expected: str, status: str, **fields) -> dict:
        """Move the record from `expected` to `status`. JobAbandoned when the job is no longer this
        server's to move: taken over, or being stopped (`_settle_stop` records that)."""
        with self.store.locked():
            record = self.store.get(kind, arn)
            if not self.owns(record) or record["status"] != expected:
                raise JobAbandoned(arn)
            record.update(fields)
            self._record_status(kind, record, status)
        return record

    def _run(self, kind: str, arn: str) -> None:
        try:
            record = self.store.get(kind, arn)
            if record is None:
                return
            phase = record["_job"]["phase"]
            pending, in_progress = status_of(phase, "PENDING"), status_of(phase, "IN_PROGRESS")
            time.sleep(self.step_delay)
            record = self._set_status(kind, arn, pending, in_progress)
            context = JobContext(self, kind, arn)
            try:
                apply = self.workers[kind](record, context)
            except (JobFailed, ServiceError) as error:
                self._set_status(kind, arn, in_progress, status_of(phase, "FAILED"), failureReason=str(error))
                return
            except JobAbandoned:
                raise
            except Exception as error:  # a bug or an unreadable file: fail the job, never leave it running
                log.error("job %s failed:\n%s", arn, traceback.format_exc())
                reason = f"internal error: {type(error).__name__}: {error}"
                self._set_status(kind, arn, in_progress, status_of(phase, "FAILED"), failureReason=reason)
                return
            time.sleep(self.step_delay)
            finished = self._finish(kind, arn, in_progress, apply)
            if finished is not None:
                try:
                    self.after_finish(kind, finished)
                except Exception:  # the job itself succeeded; what follows it must not undo that
                    log.exception("job %s: the step after it failed", arn)
        except JobAbandoned:
            self._settle_stop(kind, arn)
        except Exception as error:  # recording the outcome failed: fail the job rather than leave it running
            log.exception("job %s: could not record its outcome", arn)
            with contextlib.suppress(Exception):
                self._fail_if_owned(kind, arn, f"internal error: {type(error).__name__}: {error}")

    def _settle_stop(self, kind: str, arn: str) -> None:
        """Work ended early because of a stop request: record that the job stopped."""
        with self.store.locked():
            record = self.store.get(kind, arn)
            if self.owns(record) and record["status"].endswith(" STOPPING"):
                self._record_status(kind, record, status_of(record["_job"]["phase"], "STOPPED"))

    def _fail_if_owned(self, kind: str, arn: str, reason: str) -> None:
        with self.store.locked():
            record = self.store.get(kind, arn)
            if self.owns(record) and is_transient(record["status"]):
                record["failureReason"] = reason
                self._record_status(kind, record, status_of(record["_job"]["phase"], "FAILED"))

    def _finish(
        self, kind: str, arn: str, in_progress: str, apply: Callable[[dict], None] | None
    ) -> dict | None:
        """Record the outcome; the finished record, or None when applying the result failed the job."""
        with self.store.locked():
            record = self.store.get(kind, arn)
            if not self.owns(record) or record["status"] != in_progress:
                raise JobAbandoned(arn)
            try:
                if apply is not None:
                    apply(record)
            except JobFailed as error:  # e.g. the dataset was deleted while its import ran
                record["failureReason"] = str(error)
                self._record_status(kind, record, status_of(record["_job"]["phase"], "FAILED"))
                return None
            record.pop("failureReason", None)
            self._record_status(kind, record, self.done_statuses.get(kind, ACTIVE))
            return record

    # ---- recovery --------------------------------------------------------------------------------

    def recover(self, kind: str, records: list[dict]) -> list[dict]:
        """Take over jobs whose owner is gone; returns the records as they are after that."""
        out = []
        for record in records:
            if is_transient(record.get("status")) and not self.owner_alive(record.get("_owner")):
                record = self._take_over(kind, record[ARN_FIELDS[kind]]) or record
            out.append(record)
        return out

    def recover_all(self) -> None:
        self.forget_dead_owners()
        for kind in ARN_FIELDS:
            self.recover(kind, self.store.all(kind))

    def _take_over(self, kind: str, arn: str) -> dict | None:
        with self.store.locked():
            record = self.store.get(kind, arn)
            if (
                record is None
                or not is_transient(record.get("status"))
                or self.owner_alive(record.get("_owner"))
            ):
                return record
            job = record.setdefault("_job", {"phase": "CREATE", "attempts": 1})
            phase = job["phase"]
            if record["status"].endswith(" STOPPING"):
                status, start = status_of(phase, "STOPPED"), False
            elif job["attempts"] >= MAX_ATTEMPTS:
                record["failureReason"] = (
                    f"the process running this job exited before it finished, {job['attempts']} times"
                )
                status, start = status_of(phase, "FAILED"), False
            else:
                job["attempts"] += 1
                record["_owner"] = self.owner_id
                status, start = status_of(phase, "PENDING"), True
            self._record_status(kind, record, status)
        if start and not self.closed:
            log.warning("resuming %s: its previous owner is gone", arn)
            self.start(kind, arn)
        return record
