"""Resources on disk: one JSON file per resource under the state folder.

Several processes share one folder (`recsys-platform serve` and the servers that pipeline runs start
in-process), so every read-modify-write holds an exclusive `fcntl` lock on the folder's lock file and
every write replaces the file atomically (temp file + `os.replace`): a reader never sees half a record.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

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
}


def write_json_atomically(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(value, handle, sort_keys=True)
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise


class ResourceStore:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
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
                self._lock_file = open(self._lock_path, "a+")
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
        return self.state_dir / kind / (urllib.parse.quote(arn, safe="") + ".json")

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
