"""The code location run the way production and `make dev` run it: `dagster-daemon run` on `workspace.yaml`.

`daemon_harness(tmp_path, recsys_home)` gives a test a private DAGSTER_HOME holding the repository's
`dagster.yaml`, the instance it configures, and (after `start_daemon()`) the daemon as a child process with
RECSYS_HOME=`recsys_home`. Runs are submitted the way the UI and the sensors submit them: created from the
code location's snapshot, then handed to the instance's run coordinator. With the QueuedRunCoordinator:

    QUEUED in storage -> the daemon's run queue dequeues it -> DefaultRunLauncher asks the daemon's code
    server (`dagster api grpc`, which the daemon starts for workspace.yaml) to start it -> the code server
    spawns the run worker (a multiprocessing child) -> the multiprocess executor spawns one process per step.

What a test gets:
    submit_job(job, partition)            a run id; stop_automation() first, or the export sensor submits too
    wait_for_run_status / wait_for_event / wait_until / wait_for_slots_released
    run_worker_pid(run_id), step_pid(run_id, step_key), kill_hard(pid), daemon_tree(), cpu_over(seconds)
    pool(name), hold_slot(pool, holder), release_slots(holder), where_waiting_for_slot(run_id), cancel(run_id)

Every Dagster event carries the pid of the process that wrote it: the run worker is the writer of the run's
RUN_START, a step's process the writer of its STEP_START. The daemon leads its own process group, which its
code server, run workers and step processes (orphans included) never leave: the harness kills only members
of that group, and stopping the group on exit leaves nothing behind, even when a test fails half way.

Others edit `recsys_platform/` while tests run, and every run worker and step process imports the code
location afresh: the harness copies the package into its temp folder and starts everything there, so one
test sees one version of the code.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, DagsterRun, DagsterRunStatus, EventLogEntry
from dagster._core.definitions.selector import JobSubsetSelector
from dagster._core.storage.tags import PARTITION_NAME_TAG
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget
from dagster._utils.concurrency import ConcurrencyKeyInfo

REPO_ROOT = Path(__file__).resolve().parents[2]
REPO_DAGSTER_YAML = REPO_ROOT / "dagster.yaml"
WORKSPACE_YAML = REPO_ROOT / "workspace.yaml"
BIN_DIR = Path(sys.executable).parent
DAEMON_BIN = BIN_DIR / "dagster-daemon"
RECSYS_BIN = BIN_DIR / "recsys-platform"
LOCATION_NAME = "recsys_platform"  # workspace.yaml's location_name
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class HarnessError(RuntimeError):
    """The daemon did not start, or a run did not reach the awaited state in time."""


def snapshot_code(dest: Path) -> Path:
    """Copy the `recsys_platform` package into `dest`; processes started with `dest` as working directory load
    this copy (Dagster puts the working directory first on sys.path for a `python_module` location)."""
    shutil.copytree(REPO_ROOT / "recsys_platform", dest / "recsys_platform",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return dest


@dataclass
class Simulation:
    """`recsys-platform simulate` running in the background (it takes a while: start it first)."""

    process: subprocess.Popen
    log_path: Path

    def wait(self, timeout: float = 300.0) -> None:
        if self.process.wait(timeout=timeout) != 0:
            output = self.log_path.read_text(errors="replace")[-3000:]
            raise HarnessError(f"recsys-platform simulate exited {self.process.returncode}:\n{output}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def start_simulation(recsys_home: Path, start_date: str, days: int, events_per_day: int, seed: int = 7) -> Simulation:
    """Write GA4 export shards and the product DB with the project's own command."""
    log_path = recsys_home.parent / "simulate.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(RECSYS_BIN), "simulate", "--start-date", start_date, "--days", str(days),
             "--events-per-day", str(events_per_day), "--seed", str(seed), "--home", str(recsys_home)],
            env={**os.environ, "RECSYS_HOME": str(recsys_home)},
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    return Simulation(process, log_path)


# --- processes, read from /proc ---------------------------------------------------------------------------

def _stat_fields(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) is in parentheses and may contain spaces: split after its closing one.
    return raw[raw.rindex(")") + 2:].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (stat fields 14 and 15)."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def is_alive(pid: int) -> bool:
    try:
        state = _stat_fields(pid)[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")  # a zombie has exited; only its parent has not reaped it yet


def process_group(pid: int) -> int:
    return int(_stat_fields(pid)[2])


def group_members(group_id: int) -> list[int]:
    """Every live process of a process group, orphans included (a step process whose run worker died is
    re-parented, but stays in the group)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                if process_group(int(entry.name)) == group_id and is_alive(int(entry.name)):
                    members.append(int(entry.name))
    return members


def tree_cpu_seconds(pids: Iterable[int]) -> dict[int, float]:
    usage = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            usage[pid] = cpu_seconds(pid)
    return usage


# --- the harness ---------------------------------------------------------------------------------------------

@dataclass
class DaemonHarness:
    dagster_home: Path
    recsys_home: Path
    code_dir: Path
    log_path: Path
    env: dict[str, str]
    instance: DagsterInstance
    daemon: subprocess.Popen | None = None
    _workspace: WorkspaceProcessContext | None = field(default=None, repr=False)
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, repr=False)

    # lifecycle ---------------------------------------------------------------------------------------------

    def workspace(self) -> WorkspaceProcessContext:
        """The code location as the UI loads it (its own code server), for creating runs from its snapshot."""
        if self._workspace is None:
            with _working_directory(self.code_dir):  # its code server starts here, so it loads the copy
                self._workspace = self._stack.enter_context(
                    WorkspaceProcessContext(self.instance, WorkspaceFileTarget(paths=[str(WORKSPACE_YAML)]))
                )
        return self._workspace

    def _code_location(self):
        location = self.workspace().create_request_context().get_code_location(LOCATION_NAME)
        (repository_name,) = location.get_repository_names()
        return location, location.get_repository(repository_name)

    def stop_automation(self) -> None:
        """Stop every sensor and schedule, as an operator would in the UI, so only the test's runs exist.

        The code location starts its export sensor and schedules RUNNING by default; under a daemon the
        sensor would request runs for every simulated day on its first tick."""
        _, repository = self._code_location()
        for sensor in repository.get_sensors():
            self.instance.stop_sensor(sensor.get_remote_origin_id(), sensor.selector_id, sensor)
        for schedule in repository.get_schedules():
            self.instance.stop_schedule(schedule.get_remote_origin_id(), schedule.selector_id, schedule)

    def start_daemon(self, timeout: float = 120.0) -> None:
        """Start `dagster-daemon run` and wait until its run queue and run monitoring report heartbeats."""
        with open(self.log_path, "ab") as log:
            self.daemon = subprocess.Popen(
                [str(DAEMON_BIN), "run", "-w", str(WORKSPACE_YAML)],
                cwd=self.code_dir, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        self._stack.callback(self.stop_daemon)
        wanted = {"QUEUED_RUN_COORDINATOR"} | ({"MONITORING"} if self.instance.run_monitoring_enabled else set())
        self.wait_until(lambda: wanted <= set(self.instance.get_daemon_heartbeats()) or None,
                        timeout, f"daemons {sorted(wanted)} to send heartbeats")

    def stop_daemon(self, grace_seconds: float = 5.0) -> None:
        if self.daemon is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.daemon.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.daemon.wait(timeout=grace_seconds)
        # Run workers and step processes outlive a daemon that exited on SIGTERM: end the whole group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.daemon.pid, signal.SIGKILL)
        self.daemon.wait(timeout=30)
        self.daemon = None

    def close(self) -> None:
        self._stack.close()
        self.instance.dispose()

    def daemon_log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def daemon_log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return "(no daemon output)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    # submitting ---------------------------------------------------------------------------------------------

    def submit_job(self, job_name: str, partition_key: str | None = None, tags: Mapping[str, str] | None = None) -> str:
        """Create a run of `job_name` from the code location's snapshot and submit it to the run coordinator
        (the UI's Launch and a sensor's RunRequest end the same way); returns the run id."""
        location, repository = self._code_location()
        remote_job = location.get_job(JobSubsetSelector(
            location_name=location.name, repository_name=repository.name, job_name=job_name, op_selection=None,
        ))
        plan = location.get_execution_plan(remote_job, {}, step_keys_to_execute=None, known_state=None,
                                           instance=self.instance)
        run_tags = {**remote_job.tags, **(tags or {})}
        if partition_key is not None:
            run_tags[PARTITION_NAME_TAG] = partition_key
        run = self.instance.create_run(
            job_name=job_name, run_id=None, run_config={}, status=None, tags=run_tags,
            resolved_op_selection=None, step_keys_to_execute=None, op_selection=None,
            root_run_id=None, parent_run_id=None,
            job_snapshot=remote_job.job_snapshot, parent_job_snapshot=remote_job.parent_job_snapshot,
            execution_plan_snapshot=plan.execution_plan_snapshot,
            remote_job_origin=remote_job.get_remote_origin(), job_code_origin=remote_job.get_python_origin(),
            asset_selection=None, asset_check_selection=None, asset_graph=repository.asset_graph,
        )
        self.instance.submit_run(run.run_id, self.workspace().create_request_context())
        return run.run_id

    def cancel(self, run_id: str, timeout: float = 120.0) -> DagsterRun:
        """Cancel as the UI does: a queued run never starts; a launched one is terminated."""
        assert self.instance.run_coordinator is not None
        if not self.run(run_id).is_finished:
            self.instance.run_coordinator.cancel_run(run_id)
        return self.wait_for_run_status(run_id, [DagsterRunStatus.CANCELED, DagsterRunStatus.FAILURE,
                                                 DagsterRunStatus.SUCCESS], timeout)

    # waiting ------------------------------------------------------------------------------------------------

    def wait_until(self, probe: Callable[[], object], timeout: float, what: str | Callable[[], str],
                   interval: float = 0.5):
        """Poll `probe` until it returns something other than None; fail naming `what` (a callable is asked
        at the time of failure, for the state then) and showing the daemon's last log lines."""
        deadline = time.monotonic() + timeout
        while True:
            if self.daemon is not None and self.daemon.poll() is not None:
                raise HarnessError(f"dagster-daemon exited with {self.daemon.returncode} while waiting for "
                                   f"{what() if callable(what) else what}:\n{self.daemon_log_tail()}")
            value = probe()
            if value is not None:
                return value
            if time.monotonic() > deadline:
                raise HarnessError(f"timed out after {timeout:.0f} s waiting for {what() if callable(what) else what}"
                                   f":\n{self.daemon_log_tail()}")
            time.sleep(interval)

    def run(self, run_id: str) -> DagsterRun:
        run = self.instance.get_run_by_id(run_id)
        assert run is not None, run_id
        return run

    def wait_for_run_status(self, run_id: str, statuses: Iterable[DagsterRunStatus], timeout: float) -> DagsterRun:
        wanted = set(statuses)

        def probe():
            run = self.run(run_id)
            return run if run.status in wanted else None

        return self.wait_until(probe, timeout, lambda: f"run {run_id} to reach {sorted(s.value for s in wanted)} "
                                                       f"(it is {self.run(run_id).status.value})")

    def events(self, run_id: str, event_type: DagsterEventType, step_key: str | None = None) -> list[EventLogEntry]:
        entries = self.instance.all_logs(run_id, of_type=event_type)
        return [entry for entry in entries if step_key is None or entry.step_key == step_key]

    def wait_for_event(self, run_id: str, event_type: DagsterEventType, step_key: str | None = None,
                       timeout: float = 120.0) -> EventLogEntry:
        def probe():
            found = self.events(run_id, event_type, step_key)
            return found[0] if found else None

        return self.wait_until(probe, timeout, f"{event_type.value} of {step_key or 'the run'} in run {run_id}")

    # processes ----------------------------------------------------------------------------------------------

    def run_worker_pid(self, run_id: str, timeout: float = 120.0) -> int:
        """The process that executes the run (it writes RUN_START, and runs the multiprocess executor)."""
        return self._pid_of(self.wait_for_event(run_id, DagsterEventType.RUN_START, timeout=timeout))

    def step_pid(self, run_id: str, step_key: str, timeout: float = 120.0) -> int:
        return self._pid_of(self.wait_for_event(run_id, DagsterEventType.STEP_START, step_key, timeout))

    @staticmethod
    def _pid_of(entry: EventLogEntry) -> int:
        assert entry.dagster_event is not None and entry.dagster_event.pid is not None, entry
        return entry.dagster_event.pid

    def daemon_tree(self) -> list[int]:
        """The daemon and every live process it started (code server, run workers, step processes): the
        daemon leads its own process group, and none of them leaves it."""
        assert self.daemon is not None, "the daemon is not running"
        return group_members(self.daemon.pid)

    def kill_hard(self, pid: int) -> None:
        """SIGKILL one process the daemon started, as the kernel's OOM killer would."""
        if pid not in self.daemon_tree():
            raise HarnessError(f"pid {pid} is not a process of this harness's daemon")
        os.kill(pid, signal.SIGKILL)

    def cpu_over(self, seconds: float) -> tuple[float, dict[int, float]]:
        """CPU seconds used by each process of the daemon's tree during a window of `seconds` of wall time."""
        before = tree_cpu_seconds(self.daemon_tree())
        started = time.monotonic()
        time.sleep(seconds)
        after = tree_cpu_seconds(self.daemon_tree())
        wall = time.monotonic() - started
        # A process started inside the window counts from zero. One that ended inside it drops out; what this
        # guards against, a run worker spinning while it waits for a slot, does not end.
        return wall, {pid: after[pid] - before.get(pid, 0.0) for pid in after}

    # pools --------------------------------------------------------------------------------------------------

    def pool(self, name: str) -> ConcurrencyKeyInfo:
        return self.instance.event_log_storage.get_concurrency_info(name)

    def where_waiting_for_slot(self, run_id: str) -> str | None:
        """"queue" once the daemon's run queue reports the run blocked by a pool, "run worker" once a launched
        run's worker reports a step blocked by a pool limit, else None."""
        if f"Run {run_id} is blocked by global concurrency limits" in self.daemon_log():
            return "queue"
        if any("blocked by limit for pool" in (entry.user_message or "")
               for entry in self.events(run_id, DagsterEventType.ENGINE_EVENT)):
            return "run worker"
        return None

    def hold_slot(self, pool: str, holder_run_id: str, step_key: str = "holder") -> None:
        """Claim the pool's slot in storage the way a running step of another run holds it."""
        self.instance.event_log_storage.initialize_concurrency_limit_to_default(pool)
        status = self.instance.event_log_storage.claim_concurrency_slot(pool, holder_run_id, step_key)
        if not status.is_claimed:
            raise HarnessError(f"pool {pool!r} has no free slot to hold: {self.pool(pool)}")

    def release_slots(self, holder_run_id: str) -> None:
        self.instance.event_log_storage.free_concurrency_slots_for_run(holder_run_id)

    def wait_for_slots_released(self, pool: str, run_id: str, timeout: float) -> ConcurrencyKeyInfo:
        """Wait until run `run_id` neither holds nor waits for a slot of `pool` (another run may hold it by then)."""
        def probe():
            info = self.pool(pool)
            held = [slot for slot in info.claimed_slots if slot.run_id == run_id]
            pending = [step for step in info.pending_steps if step.run_id == run_id]
            return info if not held and not pending else None

        return self.wait_until(probe, timeout, lambda: f"run {run_id} to release its {pool!r} slot ({self.pool(pool)})")


@contextlib.contextmanager
def _working_directory(path: Path) -> Iterator[None]:
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


@contextlib.contextmanager
def daemon_harness(
    tmp_path: Path,
    recsys_home: Path,
    dagster_yaml: Path = REPO_DAGSTER_YAML,
    extra_env: Mapping[str, str] | None = None,
    code_dir: Path | None = None,
) -> Iterator[DaemonHarness]:
    """A private DAGSTER_HOME with `dagster_yaml`, the instance it configures, and (after `start_daemon`) a
    daemon serving workspace.yaml with RECSYS_HOME=`recsys_home`. Everything stops on exit.

    `code_dir` (a folder holding a `recsys_platform` package) replaces the copy of the working tree."""
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(dagster_yaml, dagster_home / "dagster.yaml")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "RECSYS_HOME": str(recsys_home),
        "RECSYS_ENV": "local",
        "DAGSTER_DISABLE_TELEMETRY": "1",
        # The code location's beta/supersession warnings, logged by every process that loads it, would bury
        # the daemon log lines a failing test shows.
        "PYTHONWARNINGS": "ignore",
        **(extra_env or {}),
    }
    previous = {key: os.environ.get(key) for key in ("DAGSTER_HOME", "RECSYS_HOME", "RECSYS_ENV", "PYTHONWARNINGS")}
    harness = None
    try:
        # The test process's own code server (for creating runs) inherits these, like the daemon's does.
        os.environ.update({key: env[key] for key in previous})
        harness = DaemonHarness(
            dagster_home=dagster_home, recsys_home=recsys_home, code_dir=code_dir or snapshot_code(tmp_path / "code"),
            log_path=tmp_path / "dagster-daemon.log", env=env, instance=DagsterInstance.from_config(str(dagster_home)),
        )
        yield harness
    finally:
        if harness is not None:
            harness.close()
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
