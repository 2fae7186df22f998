"""What the fault tests share: a run worker in a child process (runs go through Dagster's multiprocess
executor, one process per step, with a persistent DAGSTER_HOME), the local Personalize as its own process,
a picture of every stored table to compare before and after a fault, and the row each test adds to the
fault table.

Processes a test starts are its own: the runner leads a new session, so its fork server and step processes
(orphans included) are found through their process group and ended with it; a step is killed by its pid,
taken from the STEP_START event it wrote.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from recsys_platform_tests.instance.daemon import group_members, is_alive, snapshot_code

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(sys.executable).parent
ATTEMPT_TAG = "faults/attempt"
PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
# The platform's stored tables: the merged events, the refined item tables, the interactions.
STORED_TABLES = ("ga4_events", "ga4_item_views", "ga4_cart_adds", "ga4_wishlist_adds", "ga4_purchases",
                 "interactions")
FAULT_TABLE_FILE = "fault_table.jsonl"


class FaultHarnessError(RuntimeError):
    """A process did not start, or a run did not reach the awaited state in time."""


def wait_until(probe: Callable[[], object], timeout: float, what: str | Callable[[], str],
               interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise FaultHarnessError(f"timed out after {timeout:.0f}s waiting for {what() if callable(what) else what}")
        time.sleep(interval)


# --- stored tables ------------------------------------------------------------------------------------------

def connect_read_only(path: Path, timeout: float = 60.0):
    """The warehouse file read-only, waiting while a writer holds it (a killed step's orphan may still)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return duckdb.connect(str(path), read_only=True)
        except duckdb.IOException as error:
            if "lock" not in str(error).lower() or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


StoredRows = dict[str, Counter]


def stored_rows(recsys_home: Path, tables=STORED_TABLES) -> StoredRows:
    """Every stored table as a multiset of row hashes (a missing table is empty). Comparing two pictures
    finds a lost row and a repeated one alike, whatever the table's key; rows repeated by the data itself
    (two identical interactions in one second) are in both pictures."""
    path = recsys_home / "warehouse.duckdb"
    pictures: StoredRows = {name: Counter() for name in tables}
    if not path.exists():
        return pictures
    with contextlib.closing(connect_read_only(path)) as con:
        present = {name for (name,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'recsys'").fetchall()}
        for name in tables:
            if name in present:
                pictures[name] = Counter(dict(con.execute(
                    f"SELECT hash(t), COUNT(*) FROM recsys.{name} AS t GROUP BY 1").fetchall()))
    return pictures


def lost_and_duplicated(expected: StoredRows, actual: StoredRows) -> tuple[int, int]:
    """Rows of `expected` that `actual` lacks, and rows `actual` holds beyond `expected`, over every table."""
    lost = sum(sum((expected[name] - actual.get(name, Counter())).values()) for name in expected)
    extra = sum(sum((actual[name] - expected.get(name, Counter())).values()) for name in actual)
    return lost, extra


def lost_and_repeated(before: StoredRows, after: StoredRows) -> tuple[int, int]:
    """For a run that adds rows (a new day): rows of `before` that `after` lacks, and rows of `before` that
    `after` holds more often than `before` did (new rows are neither)."""
    lost = sum(sum((before[name] - after.get(name, Counter())).values()) for name in before)
    repeated = sum(max(0, after.get(name, Counter())[h] - n) for name in before for h, n in before[name].items())
    return lost, repeated


def row_counts(pictures: StoredRows) -> dict[str, int]:
    return {name: sum(rows.values()) for name, rows in pictures.items()}


def query_warehouse(recsys_home: Path, sql: str, params=()) -> list[tuple]:
    with contextlib.closing(connect_read_only(recsys_home / "warehouse.duckdb")) as con:
        return con.execute(sql, list(params)).fetchall()


def event_key_repeats(recsys_home: Path) -> int:
    """ga4_events rows whose event_key another row has too (the merge's own invariant: none)."""
    (repeats,) = query_warehouse(recsys_home, "SELECT COUNT(*) - COUNT(DISTINCT event_key) FROM recsys.ga4_events")[0]
    return int(repeats)


# --- processes ----------------------------------------------------------------------------------------------

def holds_file_lock(pid: int, path: Path) -> bool:
    """Whether `pid` holds a POSIX lock on `path` (DuckDB locks a database file it opened for writing)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    with open("/proc/locks") as locks:
        for line in locks:
            fields_ = line.split()
            if len(fields_) >= 6 and fields_[4] == str(pid) and fields_[5] == inode:
                return True
    return False


class LockWatcher:
    """Watches which step processes of a run hold the warehouse file, and when: a list of (start, end) wall
    times per step key. Used to learn how long a step keeps its replacing transaction open, so a later kill
    lands inside it rather than at its first instant."""

    def __init__(self, runner: "Runner", run_id: str, path: Path, interval: float = 0.002):
        self.runner, self.run_id, self.path, self.interval = runner, run_id, path, interval
        self.windows: dict[str, list[tuple[float, float]]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        from dagster import DagsterEventType

        pids: dict[int, str] = {}
        held: dict[int, float] = {}
        next_lookup = 0.0
        while not self._stop.is_set():
            now = time.time()
            if now >= next_lookup:
                for entry in self.runner.instance.all_logs(self.run_id, of_type=DagsterEventType.STEP_START):
                    pids[entry.dagster_event.pid] = entry.step_key
                next_lookup = now + 0.05
            for pid, step in pids.items():
                holding = holds_file_lock(pid, self.path)
                if holding and pid not in held:
                    held[pid] = now
                elif not holding and pid in held:
                    self.windows.setdefault(step, []).append((held.pop(pid), now))
            time.sleep(self.interval)

    def stop(self) -> dict[str, list[tuple[float, float]]]:
        self._stop.set()
        self._thread.join(timeout=10)
        return self.windows


@dataclass
class Runner:
    """The run worker child process (see runner.py) and the instance it writes to."""

    process: subprocess.Popen
    dagster_home: Path
    recsys_home: Path
    log_path: Path
    instance: object
    tmp: Path  # the run worker's TMPDIR: its fork server's socket and the steps' staging files
    _answers: queue.Queue = field(default_factory=queue.Queue)

    def submit(self, job: str, partition: str | None = None, *, run_config: Mapping | None = None,
               tags: Mapping[str, str] | None = None, partition_range: tuple[str, str] | None = None,
               from_failure_of: str | None = None) -> str:
        """Hand the runner one run; returns the attempt tag that finds it (see `run_id`)."""
        attempt = uuid.uuid4().hex
        run_tags = {ATTEMPT_TAG: attempt, **(tags or {})}
        if partition is not None:
            run_tags[PARTITION_TAG] = partition
        if partition_range is not None:
            run_tags[RANGE_START_TAG], run_tags[RANGE_END_TAG] = partition_range
        request = {"job": job, "tags": run_tags, "run_config": dict(run_config or {}),
                   "from_failure_of": from_failure_of}
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return attempt

    def result(self, timeout: float = 300.0) -> dict:
        """The answer to the oldest run not answered yet: {"run_id", "success"}."""
        try:
            answer = self._answers.get(timeout=timeout)
        except queue.Empty:
            raise FaultHarnessError(f"no answer from the runner within {timeout:.0f}s:\n{self.log_tail()}") from None
        if answer.get("error"):
            raise FaultHarnessError(f"the runner could not run the request:\n{answer['error']}")
        return answer

    def run(self, job: str, partition: str | None = None, timeout: float = 300.0, **kwargs) -> dict:
        """Submit and wait; adds the run's wall time in seconds as "seconds"."""
        started = time.monotonic()
        self.submit(job, partition, **kwargs)
        answer = self.result(timeout)
        return {**answer, "seconds": time.monotonic() - started}

    def run_id(self, attempt: str, timeout: float = 120.0) -> str:
        from dagster import RunsFilter

        def probe():
            runs = self.instance.get_runs(filters=RunsFilter(tags={ATTEMPT_TAG: attempt}), limit=1)
            return runs[0].run_id if runs else None

        return wait_until(probe, timeout, f"the run of attempt {attempt} to be created", interval=0.1)

    def events(self, run_id: str, event_type=None) -> list:
        return list(self.instance.all_logs(run_id, of_type=event_type))

    def wait_for_event(self, run_id: str, event_type, step_key: str | None = None, timeout: float = 120.0,
                       where: Callable[[object], bool] = lambda entry: True):
        def probe():
            for entry in self.instance.all_logs(run_id, of_type=event_type):
                if (step_key is None or entry.step_key == step_key) and where(entry):
                    return entry
            return None

        return wait_until(probe, timeout, f"{event_type} of {step_key or 'the run'} in run {run_id}", interval=0.05)

    def wait_for_log(self, run_id: str, step_key: str, text: str, timeout: float = 120.0):
        """The first message the step logged (context.log) that contains `text`."""
        def probe():
            for entry in self.instance.all_logs(run_id):
                if entry.step_key == step_key and entry.dagster_event is None and text in (entry.user_message or ""):
                    return entry
            return None

        return wait_until(probe, timeout, f"step {step_key} of run {run_id} to log {text!r}", interval=0.05)

    def step_pid(self, run_id: str, step_key: str, timeout: float = 120.0) -> int:
        from dagster import DagsterEventType

        entry = self.wait_for_event(run_id, DagsterEventType.STEP_START, step_key, timeout)
        return entry.dagster_event.pid

    def kill_step(self, pid: int) -> None:
        """kill -9 one step process of this runner (as the OOM killer would)."""
        if pid not in group_members(self.process.pid):
            raise FaultHarnessError(f"pid {pid} is not a process of this runner")
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not is_alive(pid), 10, f"pid {pid} to die")

    def failure_messages(self, run_id: str) -> str:
        """Every step failure's message with its causes, and the run failure's."""
        from dagster import DagsterEventType

        messages = []
        for entry in self.instance.all_logs(run_id):
            event = entry.dagster_event
            if event is None:
                continue
            if event.event_type in (DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE):
                messages.append(entry.user_message or "")
                error = getattr(event.event_specific_data, "error", None)
                while error is not None:
                    messages.append(error.message)
                    error = error.cause
        return "\n".join(messages)

    def materializations(self, run_id: str, asset: str) -> list:
        from dagster import DagsterEventType

        return [entry.dagster_event.event_specific_data.materialization
                for entry in self.instance.all_logs(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)
                if entry.dagster_event.event_specific_data.materialization.asset_key.to_user_string() == asset]

    def check_results(self, run_id: str) -> dict[tuple[str, str], bool]:
        from dagster import DagsterEventType

        found = {}
        for entry in self.instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
            evaluation = entry.dagster_event.event_specific_data
            found[(evaluation.asset_key.to_user_string(), evaluation.check_name)] = evaluation.passed
        return found

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            assert self.process.stdin is not None
            self.process.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        # The fork server and any orphaned step process stay in the runner's process group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.instance.dispose()


def platform_env(recsys_home: Path, dagster_home: Path | None = None, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "RECSYS_HOME": str(recsys_home),
        "RECSYS_ENV": "local",
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "PYTHONWARNINGS": "ignore",
        **extra,
    }
    if dagster_home is not None:
        env["DAGSTER_HOME"] = str(dagster_home)
    return env


@contextlib.contextmanager
def runner(workdir: Path, recsys_home: Path, **extra_env: str) -> Iterator[Runner]:
    """A run worker with a persistent DAGSTER_HOME (the repository's dagster.yaml: pools, run monitoring
    settings) in `workdir`, loading a copy of the code location taken now (others edit it meanwhile)."""
    from dagster import DagsterInstance

    dagster_home = workdir / "dagster_home"
    dagster_home.mkdir(parents=True)
    (dagster_home / "dagster.yaml").write_text((REPO_ROOT / "dagster.yaml").read_text())
    code_dir = snapshot_code(workdir / "code")
    # Short, under the system temp folder: the fork server's AF_UNIX socket is created in TMPDIR, and a
    # socket path past 107 bytes (a pytest tmp_path easily is) cannot be bound.
    tmp = Path(tempfile.mkdtemp(prefix="faults-"))
    env = platform_env(recsys_home, dagster_home, TMPDIR=str(tmp),
                       PYTHONPATH=os.pathsep.join([str(code_dir), str(REPO_ROOT)]), **extra_env)
    log_path = workdir / "runner.log"
    # The instance's storage is created here, before the runner opens it: two processes creating the same
    # SQLite storage at once can leave it with two schema heads.
    instance = DagsterInstance.from_config(str(dagster_home))
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "recsys_platform_tests.faults.runner"], cwd=code_dir, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True,
        )
    handle = Runner(process, dagster_home, recsys_home, log_path, instance, tmp)

    def read_answers() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            with contextlib.suppress(json.JSONDecodeError):
                handle._answers.put(json.loads(line))

    threading.Thread(target=read_answers, daemon=True).start()
    try:
        ready = handle.result(timeout=180)
        assert ready.get("ready"), ready
        yield handle
    finally:
        handle.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class PersonalizeServer:
    process: subprocess.Popen
    endpoint_url: str

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


@contextlib.contextmanager
def personalize_server(recsys_home: Path, log_path: Path, step_delay: float = 0.05) -> Iterator[PersonalizeServer]:
    """`recsys-platform serve --port 0` in its own process; its endpoint is the line it prints."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(BIN_DIR / "recsys-platform"), "serve", "--port", "0", "--home", str(recsys_home),
             "--step-delay", str(step_delay)],
            env=platform_env(recsys_home), stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True,
        )
    server = None
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if "local Personalize on " not in line:
            raise FaultHarnessError(f"recsys-platform serve did not start: {line!r}\n"
                                    f"{log_path.read_text(errors='replace')[-2000:]}")
        server = PersonalizeServer(process, line.split("local Personalize on ", 1)[1].split()[0])
        yield server
    finally:
        if server is not None:
            server.stop()
        elif process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


# --- the fault table ----------------------------------------------------------------------------------------

def record_fault(tmp_path_factory, fault: str, injected_at: str, outcome: str, rows_lost: int, duplicates: int,
                 time_to_recover: float | None) -> None:
    """One row of the fault table, appended to a file shared by the xdist workers of this session
    (`<basetemp>/fault_table.jsonl`); the tests assert the numbers, the file is for the report."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if base.name.startswith("popen-gw") else base
    row = {"fault": fault, "injected_at": injected_at, "outcome": outcome, "rows_lost": rows_lost,
           "duplicates": duplicates,
           "time_to_recover": None if time_to_recover is None else round(time_to_recover, 1)}
    with open(root / FAULT_TABLE_FILE, "a") as table:
        table.write(json.dumps(row) + "\n")
