"""Run one command and measure every process it starts: wall time and each process's peak RSS.

`python -m bench.proctree --out FILE.json -- CMD ...` runs CMD as a child of this (small) process, which
makes itself a child subreaper, so every descendant -- the run worker, each step process, a forkserver and
the processes it forks -- stays in its tree even when its parent exits first. While CMD runs, /proc is
polled: each descendant's pid, parent, command line, and `VmHWM` (the kernel's own peak-RSS high-water mark
of that process, so a poll never misses a peak that happened between polls, only growth in a process's last
poll interval). When CMD exits, every remaining descendant is waited for, and
`getrusage(RUSAGE_CHILDREN).ru_maxrss` -- the largest peak RSS of any reaped descendant, exact -- is
recorded as a cross-check of the polled maximum. Nothing else runs in this process, so RUSAGE_CHILDREN holds
this command's processes only.

`measure_command()` is the caller's side: it starts the wrapper and returns its JSON.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
POLL_SECONDS = 0.2


def _set_subreaper() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            text = handle.read()
    except OSError:
        return None
    # comm may contain spaces and parentheses: the fields after the last ')' are fixed
    return int(text[text.rindex(b")") + 2:].split()[1])


def _hwm_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
    except OSError:
        return 0


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace").strip()[:300]
    except OSError:
        return ""


class _Tree:
    """The descendants of this process seen so far, each with its peak RSS."""

    def __init__(self) -> None:
        self.me = os.getpid()
        self.parent: dict[int, int] = {}
        self.seen: dict[int, dict] = {}
        self.not_ours: set[int] = set()
        self.peak_total_rss_kb = 0

    def poll(self) -> None:
        fresh = []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            pid = int(name)
            if pid == self.me or pid in self.not_ours:
                continue
            ppid = _ppid(pid)
            if ppid is not None:
                self.parent[pid] = ppid
                fresh.append(pid)
        live = []
        for pid in fresh:  # after the whole listing: a parent may be listed after its child
            if self._descends(pid):
                live.append(pid)
            elif pid not in self.seen:
                self.not_ours.add(pid)
        total = 0
        now = time.time()
        for pid in live:
            hwm = _hwm_kb(pid)
            if hwm is None:
                continue
            record = self.seen.setdefault(pid, {"pid": pid, "ppid": self.parent[pid], "first_seen": now,
                                                "cmdline": _cmdline(pid), "peak_rss_kb": 0})
            record["peak_rss_kb"] = max(record["peak_rss_kb"], hwm)
            record["cmdline"] = _cmdline(pid) or record["cmdline"]  # an exec changes it
            record["last_seen"] = now
            total += _rss_kb(pid)
        self.peak_total_rss_kb = max(self.peak_total_rss_kb, total)

    def _descends(self, pid: int) -> bool:
        hops = 0
        while pid in self.parent and hops < 64:
            pid = self.parent[pid]
            if pid == self.me:
                return True
            hops += 1
        return False


def _reap_all() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, 0)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, help="write the measurement here (JSON)")
    parser.add_argument("--stdout", help="send the command's stdout and stderr to this file")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    subreaper = _set_subreaper()
    tree = _Tree()
    sink = open(args.stdout, "wb") if args.stdout else subprocess.DEVNULL
    started_wall = time.time()
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT if args.stdout else subprocess.DEVNULL)
    while child.poll() is None:
        tree.poll()
        time.sleep(POLL_SECONDS)
    seconds = time.perf_counter() - started
    tree.poll()  # processes the command left behind (reparented to us)
    _reap_all()
    if args.stdout:
        sink.close()
    children_max_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    processes = sorted(tree.seen.values(), key=lambda r: r["first_seen"])
    polled_max_kb = max((p["peak_rss_kb"] for p in processes), default=0)
    Path(args.out).write_text(json.dumps({
        "command": command,
        "returncode": child.returncode,
        "pid": child.pid,
        "started": started_wall,
        "seconds": seconds,
        "subreaper": subreaper,
        "processes": processes,
        "process_count": len(processes),
        "max_process_peak_rss_mb": round(max(polled_max_kb, children_max_kb) / 1024, 1),
        "polled_max_peak_rss_mb": round(polled_max_kb / 1024, 1),
        "rusage_children_max_rss_mb": round(children_max_kb / 1024, 1),
        "peak_total_rss_mb": round(tree.peak_total_rss_kb / 1024, 1),
    }, indent=1))
    return child.returncode


def measure_command(command: list[str], env: dict, out_file: Path, log_file: Path | None = None,
                    cwd: str | None = None) -> dict:
    """Run `command` under the wrapper; returns its measurement (raises, with the log's tail, on failure)."""
    wrapper = [sys.executable, "-m", "bench.proctree", "--out", str(out_file)]
    if log_file is not None:
        wrapper += ["--stdout", str(log_file)]
    bench_root = str(Path(__file__).resolve().parents[1])
    env = {**env, "PYTHONPATH": os.pathsep.join(p for p in (bench_root, env.get("PYTHONPATH", "")) if p)}
    done = subprocess.run([*wrapper, "--", *command], env=env, cwd=cwd or bench_root)
    result = json.loads(out_file.read_text())
    if done.returncode != 0:
        tail = log_file.read_text(errors="replace")[-4000:] if log_file and log_file.exists() else ""
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{tail}")
    return result


if __name__ == "__main__":
    sys.exit(main())
