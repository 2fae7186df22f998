"""Resources on disk: one JSON file per resource under the state folder.

Several processes share one folder (`recsys-platform serve` and the servers that pipeline runs start
in-process), so every read-modify-write holds an exclusive `fcntl` lock on the folder's lock file and
every write replaces the file atomically (temp file + `os.replace`): a reader never sees half a record.
Folders are created 0700 and files 0600 (`private_files`): the state is the users' data.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from recsys_platform.standins.local_personalize.private_files import (
    file_name,
    make_private_dir,
    open_private,
    tighten,
    write_private_bytes,
)

# resource kind -> the member that holds its ARN
ARN_FIELDS = {
    "dataset_group": "datasetGroupArn",
    "schema": "schemaArn",
    "dataset": "datasetArn",
    "dataset_import_job": "datasetImportJobArn",
    "solution": "solutionArn",
    "solution_version": "solutionVersionArn",
    "campaign": "campaignArn",
    "batch_inference_job": "batchInferenceJobArn",
    "filter": "filterArn",
    "event_tracker": "eventTrackerArn",
    "data_deletion_job": "dataDeletionJobArn",
}


def write_json_atomically(path: Path, value: object) -> None:
    write_private_bytes(path, json.dumps(value, sort_keys=True).encode("utf-8"))


class ResourceStore:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = make_private_dir(Path(state_dir))
        tighten(self.state_dir)  # state left by an earlier version with the umask's modes
        self._lock_path = self.state_dir / ".lock"
        # flock excludes other processes; this lock orders the threads of this process around it.
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._lock_file = None

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive access to the whole state folder (re-entrant within a thread)."""
        with self._thread_lock:
            if self._depth == 0:
                self._lock_file = os.fdopen(open_private(self._lock_path, os.O_RDWR), "r+b")
                fcntl.flock(self._lock_file, fcntl.LOCK_EX)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    fcntl.flock(self._lock_file, fcntl.LOCK_UN)
                    self._lock_file.close()
                    self._lock_file = None

    def _path(self, kind: str, arn: str) -> Path:
        return self.state_dir / kind / file_name(arn, ".json")

    def get(self, kind: str, arn: str) -> dict | None:
        try:
            return json.loads(self._path(kind, arn).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None

    def put(self, kind: str, record: dict) -> None:
        write_json_atomically(self._path(kind, record[ARN_FIELDS[kind]]), record)

    def delete(self, kind: str, arn: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(kind, arn).unlink()

    def all(self, kind: str) -> list[dict]:
        folder = self.state_dir / kind
        if not folder.is_dir():
            return []
        records = []
        for path in folder.glob("*.json"):
            try:
                records.append(json.loads(path.read_text(encoding="utf-8")))
            except FileNotFoundError:  # deleted by another process while listing
                continue
        return records

    def update(self, kind: str, arn: str, change: Callable[[dict], None]) -> dict | None:
        """Apply `change` to the stored record under the lock; None when the record is gone."""
        with self.locked():
            record = self.get(kind, arn)
            if record is None:
                return None
            change(record)
            self.put(kind, record)
            return record

    def data_dir(self, *parts: str) -> Path:
        return self.state_dir.joinpath(*parts)

    def resource_dir(self, area: str, arn: str) -> Path:
        """The folder holding a resource's data (a dataset's rows, a version's model)."""
        return self.state_dir / area / file_name(arn)
