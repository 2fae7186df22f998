"""The local Personalize in its own process (`recsys-platform serve --port 0`), as `make dev` runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


class ServerProcess:
    def __init__(self, home: Path, step_delay: float | None = None, timeout: float = 60.0) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RECSYS_", "DAGSTER_"))}
        env.update({"RECSYS_HOME": str(home), "PYTHONWARNINGS": "ignore"})
        command = [str(BIN / "recsys-platform"), "serve", "--host", "127.0.0.1", "--port", "0", "--home", str(home)]
        if step_delay is not None:
            command += ["--step-delay", str(step_delay)]
        self.log = home / "personalize-server.log"
        home.mkdir(parents=True, exist_ok=True)
        self._log_handle = open(self.log, "wb")
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=self._log_handle)
        deadline = time.monotonic() + timeout
        self.endpoint_url = None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline().decode(errors="replace")
            if not line:
                break
            found = re.search(r"(http://127\.0\.0\.1:\d+)", line)
            if found:
                self.endpoint_url = found.group(1)
                break
        if self.endpoint_url is None:
            self.stop()
            raise RuntimeError(f"recsys-platform serve did not start:\n{self.log.read_text()[-2000:]}")

    def peak_rss_mb(self) -> float | None:
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
        except OSError:
            return None
        return None

    def cpu_seconds(self) -> float | None:
        """CPU time the server process has used (user + system): other work on the machine changes it
        less than it changes wall time (only through shared caches and memory bandwidth)."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # SIGTERM to the one process this object started
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log_handle.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
