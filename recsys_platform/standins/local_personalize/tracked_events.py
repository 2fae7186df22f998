"""Events recorded with PutEvents, and records put with PutItems / PutUsers: append-only JSON lines in
the dataset's folder (`events.jsonl` for the Interactions dataset, `records.jsonl` for Items/Users).

Appends happen under the state folder's lock, one `write` per request, so a reader sees whole lines
(a line cut short by a crash is skipped). A data deletion job rewrites a file atomically (a new file
replaces the old), which readers notice by its inode.

Each event line: `r` (when the server received it, ns; orders events against a training), `u` (userId
or null), `s` (sessionId), `i` (itemId), `t` (TIMESTAMP, from sentAt), `e` (eventType), `v`
(eventValue or null), `p` (other interactions fields from `properties`, by schema field name).
Each record line: `r`, `id` (itemId/userId), `p` (fields by schema field name).

`EventIndex` follows an events file for the runtime: it reads only what was appended since it last
looked, and keeps each user's events (by userId, or by sessionId for anonymous events, which is what
Personalize lets an app ask recommendations for).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from recsys_platform.standins.local_personalize.private_files import open_private, write_private_bytes

EVENTS_FILE = "events.jsonl"
RECORDS_FILE = "records.jsonl"
# the most recent events of one user the runtime keeps (and folds into a request)
MAX_EVENTS_PER_USER = 500


def append_lines(path: Path, lines: list[dict]) -> None:
    """Append JSON lines; call under the store's lock so appends and rewrites do not interleave."""
    payload = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines).encode("utf-8")
    descriptor = open_private(path, os.O_WRONLY | os.O_APPEND)
    try:
        view = memoryview(payload)
        while view:
            written = os.write(descriptor, view)
            view = view[written:]
    finally:
        os.close(descriptor)


def read_lines(path: Path) -> Iterator[dict]:
    """Every whole line of the file (none when it does not exist)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    for raw in data.split(b"\n"):
        if raw.strip():
            try:
                yield json.loads(raw)
            except ValueError:
                continue  # a line cut short by a crash


def rewrite_lines(path: Path, keep: Callable[[dict], bool]) -> int:
    """Keep only the lines `keep` accepts (atomically); the number of lines dropped. Under the lock."""
    if not path.exists():
        return 0
    kept, dropped = [], 0
    for line in read_lines(path):
        if keep(line):
            kept.append(line)
        else:
            dropped += 1
    if dropped:
        write_private_bytes(
            path, "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in kept).encode("utf-8")
        )
    return dropped


@dataclass(frozen=True)
class TrackedEvent:
    received: int  # ns
    item_id: str
    timestamp: int
    event_type: str
    event_value: float | None


def user_key(line: dict) -> str:
    """Whom an event belongs to at request time: its userId, or its sessionId when anonymous."""
    return line.get("u") or line.get("s") or ""


class EventIndex:
    """The events of one events file by user, kept current by reading only what was appended."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._identity: tuple[int, int] | None = None  # (device, inode) of the file read
        self._offset = 0
        self._by_user: dict[str, list[TrackedEvent]] = {}

    def events_of(self, user: str) -> list[TrackedEvent]:
        with self._lock:
            self._refresh()
            return list(self._by_user.get(user, ()))

    def _refresh(self) -> None:
        try:
            status = os.stat(self.path)
        except FileNotFoundError:
            self._identity, self._offset, self._by_user = None, 0, {}
            return
        identity = (status.st_dev, status.st_ino)
        if identity != self._identity or status.st_size < self._offset:  # rewritten: read it again
            self._identity, self._offset, self._by_user = identity, 0, {}
        if status.st_size == self._offset:
            return
        with open(self.path, "rb") as handle:
            handle.seek(self._offset)
            data = handle.read(status.st_size - self._offset)
        end = data.rfind(b"\n") + 1  # whole lines only; the rest is read when it is complete
        for raw in data[:end].split(b"\n"):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
                event = TrackedEvent(int(line["r"]), str(line["i"]), int(line["t"]), str(line["e"]), line.get("v"))
            except (ValueError, KeyError, TypeError):
                continue
            events = self._by_user.setdefault(user_key(line), [])
            events.append(event)
            if len(events) > 2 * MAX_EVENTS_PER_USER:  # trim now and then, not at every event
                del events[: len(events) - MAX_EVENTS_PER_USER]
        self._offset += end
