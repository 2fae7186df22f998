"""What BigQuery knows about datasets, tables and jobs that a DuckDB file cannot hold.

DuckDB keeps the data and the columns; BigQuery also keeps a dataset's location, a table's creation and
modification times, partitioning, clustering, descriptions and REQUIRED modes of nested fields, and the
jobs that ran. Those live here, in one SQLite file under the data folder (`catalog.sqlite`), so they
survive restarts and need no write to a DuckDB file the stand-in only serves (a simulated GA4 export).
DuckDB's catalog stays the truth of what exists: a row here for a table DuckDB no longer has is ignored
and replaced when the table is created again.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS datasets (
    project TEXT NOT NULL, dataset TEXT NOT NULL, location TEXT NOT NULL,
    creation_ms INTEGER NOT NULL, modified_ms INTEGER NOT NULL, description TEXT, labels TEXT,
    PRIMARY KEY (project, dataset));
CREATE TABLE IF NOT EXISTS tables (
    project TEXT NOT NULL, dataset TEXT NOT NULL, table_id TEXT NOT NULL,
    creation_ms INTEGER NOT NULL, modified_ms INTEGER NOT NULL,
    partitioning TEXT, clustering TEXT, description TEXT, labels TEXT, notes TEXT,
    PRIMARY KEY (project, dataset, table_id));
CREATE TABLE IF NOT EXISTS jobs (
    project TEXT NOT NULL, job_id TEXT NOT NULL, location TEXT NOT NULL, created_ms INTEGER NOT NULL,
    resource TEXT NOT NULL, PRIMARY KEY (project, job_id));
"""
_JSON_COLUMNS = ("partitioning", "clustering", "labels", "notes")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Catalog:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # One connection, used by one thread at a time (the lock): opening one per call costs more than
        # the statements. WAL with synchronous=NORMAL survives a crash of this process.
        self._connection = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        self._connection.row_factory = sqlite3.Row
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=NORMAL")
        with self._db() as db:
            db.executescript(_SCHEMA)

    @contextmanager
    def _db(self):
        with self._lock:
            with self._connection:  # one transaction, committed on success
                yield self._connection

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    # datasets ------------------------------------------------------------------------------------
    def dataset(self, project: str, dataset: str) -> dict | None:
        with self._db() as db:
            row = db.execute("SELECT * FROM datasets WHERE project = ? AND dataset = ?", (project, dataset)).fetchone()
        return _decode(row)

    def put_dataset(self, project: str, dataset: str, location: str, description: str | None = None,
                    labels: dict | None = None, creation_ms: int | None = None) -> dict:
        now = now_ms()
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO datasets VALUES (?, ?, ?, ?, ?, ?, ?)",
                (project, dataset, location, creation_ms or now, now, description, json.dumps(labels or {})),
            )
        return self.dataset(project, dataset)

    def delete_dataset(self, project: str, dataset: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM datasets WHERE project = ? AND dataset = ?", (project, dataset))
            db.execute("DELETE FROM tables WHERE project = ? AND dataset = ?", (project, dataset))

    # tables --------------------------------------------------------------------------------------
    def table(self, project: str, dataset: str, table: str) -> dict | None:
        with self._db() as db:
            row = db.execute("SELECT * FROM tables WHERE project = ? AND dataset = ? AND table_id = ?",
                             (project, dataset, table)).fetchone()
        return _decode(row)

    def tables(self, project: str, dataset: str) -> dict[str, dict]:
        with self._db() as db:
            rows = db.execute("SELECT * FROM tables WHERE project = ? AND dataset = ?", (project, dataset)).fetchall()
        return {row["table_id"]: _decode(row) for row in rows}

    def create_table(self, project: str, dataset: str, table: str, *, partitioning: dict | None = None,
                     clustering: dict | None = None, description: str | None = None, labels: dict | None = None,
                     notes: dict | None = None, creation_ms: int | None = None) -> None:
        """Record a table the stand-in just created (or re-created), replacing any stale row."""
        now = now_ms()
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO tables VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (project, dataset, table, creation_ms or now, now, _dump(partitioning), _dump(clustering),
                 description, _dump(labels), _dump(notes)),
            )

    def update_table(self, project: str, dataset: str, table: str, **changes) -> None:
        """Change recorded properties and mark the table modified (creating its row if missing)."""
        with self._db() as db:
            row = db.execute("SELECT * FROM tables WHERE project = ? AND dataset = ? AND table_id = ?",
                             (project, dataset, table)).fetchone()
            now = now_ms()
            current = _decode(row) or {"creation_ms": changes.pop("creation_ms", None) or now, "modified_ms": 0}
            changes.pop("creation_ms", None)
            merged = {**current, **changes}
            # Strictly increasing, even for two writes in one millisecond: readers key work on it.
            modified = max(now, int(current["modified_ms"]) + 1)
            db.execute(
                "INSERT OR REPLACE INTO tables VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (project, dataset, table, merged["creation_ms"], modified, _dump(merged.get("partitioning")),
                 _dump(merged.get("clustering")), merged.get("description"), _dump(merged.get("labels")),
                 _dump(merged.get("notes"))),
            )

    def delete_table(self, project: str, dataset: str, table: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM tables WHERE project = ? AND dataset = ? AND table_id = ?",
                       (project, dataset, table))

    # jobs ----------------------------------------------------------------------------------------
    def put_job(self, resource: dict) -> None:
        reference = resource["jobReference"]
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO jobs VALUES (?, ?, ?, ?, ?)",
                (reference["projectId"], reference["jobId"], reference.get("location") or "",
                 int(resource.get("statistics", {}).get("creationTime") or now_ms()), json.dumps(resource)),
            )

    def job(self, project: str, job_id: str) -> dict | None:
        with self._db() as db:
            row = db.execute("SELECT resource FROM jobs WHERE project = ? AND job_id = ?", (project, job_id)).fetchone()
        return json.loads(row["resource"]) if row else None

    def jobs(self, project: str, limit: int = 1000) -> list[dict]:
        with self._db() as db:
            rows = db.execute("SELECT resource FROM jobs WHERE project = ? ORDER BY created_ms DESC LIMIT ?",
                              (project, limit)).fetchall()
        return [json.loads(row["resource"]) for row in rows]

    def unfinished_jobs(self) -> list[dict]:
        with self._db() as db:
            rows = db.execute("SELECT resource FROM jobs").fetchall()
        resources = [json.loads(row["resource"]) for row in rows]
        return [r for r in resources if r.get("status", {}).get("state") != "DONE"]

    def forget_jobs_before(self, cutoff_ms: int) -> list[tuple[str, str]]:
        with self._db() as db:
            old = db.execute("SELECT project, job_id FROM jobs WHERE created_ms < ?", (cutoff_ms,)).fetchall()
            db.execute("DELETE FROM jobs WHERE created_ms < ?", (cutoff_ms,))
        return [(row["project"], row["job_id"]) for row in old]


def _dump(value) -> str | None:
    return None if value is None else json.dumps(value)


def _decode(row) -> dict | None:
    if row is None:
        return None
    out = dict(row)
    for key in _JSON_COLUMNS:
        if out.get(key) is not None:
            out[key] = json.loads(out[key])
    return out
