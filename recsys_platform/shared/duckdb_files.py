"""DuckDB files attached for one call on a kept in-memory database: the warehouse and the BigQuery stand-in.

Opening a DuckDB database costs 35-50 ms and a GA4 day makes about 70 warehouse calls (the stand-in serves
as many requests). So a call borrows an idle in-memory database of this process, attaches its files on a
fresh cursor and detaches them when done: detaching closes the files and releases their locks, exactly as
closing a database did. DuckDB lets one process write a file at a time, so while another process holds a
file the attach is retried with jittered backoff until a deadline.

A call made while another is open (a generator still reading, another thread) borrows a second database,
where DuckDB refuses to attach writable a file this process already has attached (and to attach at all one
it has attached writable), as it refuses a second connection. A database whose files cannot all be detached
is closed, never lent again. Databases are per process: a forked child starts without any (it must not
touch its parent's threads).

No library lends DuckDB databases with per-call attachments, so this is written here.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Attachment:
    """A file attached under `alias` for one call; `path=None` attaches an empty in-memory catalog."""

    path: str | None
    alias: str
    read_only: bool = True


class FileLender:
    """Kept in-memory databases of this process, grouped by their DuckDB config."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: dict[tuple, list] = {}
        _LENDERS.add(self)

    def _start_afresh_after_fork(self) -> None:
        # In a forked child the parent's databases belong to threads that were not forked, and a parent
        # thread may have held the lock at the moment of the fork: both are left behind. The databases stay
        # referenced, so that they are never closed from the child either.
        self._lock = threading.Lock()
        self._inherited, self._idle = self._idle, {}

    @contextmanager
    def attached(self, config: dict, files: Sequence[Attachment], lock_timeout_seconds: float,
                 held: Callable[[Exception], Exception] | None = None) -> Iterator:
        """A cursor with `files` attached. While another process holds one of them, retry until
        `lock_timeout_seconds`, then raise DuckDB's error, or `held(error)` when given."""
        import duckdb

        deadline = time.monotonic() + lock_timeout_seconds
        delay = 0.05
        while True:
            database, owner = self._take(config), os.getpid()
            con = database.cursor()
            try:
                for file in files:
                    mode = " (READ_ONLY)" if file.read_only and file.path is not None else ""
                    con.execute(f'ATTACH ? AS "{file.alias}"{mode}', [file.path or ":memory:"])
                break
            except duckdb.IOException as error:
                self._give_back(config, database, owner, con, files)
                if "lock" not in str(error).lower():
                    raise
                if time.monotonic() > deadline:
                    if held is None:
                        raise
                    raise held(error) from error
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 2.0)
            except BaseException:
                self._give_back(config, database, owner, con, files)
                raise
        try:
            yield con
        finally:
            self._give_back(config, database, owner, con, files)

    def close(self) -> None:
        """Close this process's idle databases."""
        with self._lock:
            idle, self._idle = self._idle, {}
        for databases in idle.values():
            for database in databases:
                database.close()

    def _take(self, config: dict):
        import duckdb

        key = _config_key(config)
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if idle:
                return idle.pop()
        database = duckdb.connect(":memory:", config=config)
        # BigQuery's default zone: TIMESTAMP(datetime) and DATE(timestamp) read wall-clock time as UTC,
        # whatever this machine's zone is (icu is linked into the wheel, loaded after connecting).
        database.execute("SET GLOBAL TimeZone = 'UTC'")
        return database

    def _give_back(self, config: dict, database, owner: int, con, files: Sequence[Attachment]) -> None:
        import duckdb

        try:
            con.close()  # an open transaction rolls back
            # Every alias the call may have attached, even one whose ATTACH failed.
            for file in files:
                database.execute(f'DETACH DATABASE IF EXISTS "{file.alias}"')
        except duckdb.Error:
            log.warning("a DuckDB file could not be detached; its database is closed", exc_info=True)
            database.close()
            return
        if owner != os.getpid():
            return  # borrowed by the parent before a fork: its threads are not ours
        with self._lock:
            self._idle.setdefault(_config_key(config), []).append(database)


def _config_key(config: dict) -> tuple:
    return tuple(sorted(config.items()))


_LENDERS: "weakref.WeakSet[FileLender]" = weakref.WeakSet()


def _start_afresh_after_fork() -> None:
    for lender in list(_LENDERS):
        lender._start_afresh_after_fork()


os.register_at_fork(after_in_child=_start_afresh_after_fork)
