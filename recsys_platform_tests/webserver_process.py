"""Run `dagster-webserver` on the project's workspace in a child process and talk to its GraphQL API.

The webserver and the code server it spawns share one process group, so stopping the group leaves
nothing behind even when a test fails half way.
"""

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
WEBSERVER_BIN = Path(sys.executable).with_name("dagster-webserver")


class WebserverError(RuntimeError):
    """The webserver did not start, or answered a request with an error."""


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _log_tail(log_path: Path, lines: int = 40) -> str:
    if not log_path.exists():
        return "(no webserver output)"
    return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except (OSError, http.client.HTTPException):  # not listening yet, or still starting up
        return False


def _stop_process_group(process: subprocess.Popen, grace_seconds: float = 20.0) -> None:
    # start_new_session made the webserver the leader of its own group: its pid is the group id.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        pass
    # The code server may outlive a webserver that exited on SIGTERM: kill whatever is left.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=grace_seconds)


def _start(env: dict[str, str], log_path: Path, startup_timeout: float) -> tuple[subprocess.Popen, str]:
    port = free_loopback_port()
    base_url = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(WEBSERVER_BIN), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + startup_timeout
    try:
        while not _answers(f"{base_url}/server_info"):
            if process.poll() is not None:
                raise WebserverError(
                    f"dagster-webserver exited with code {process.returncode} before serving:\n"
                    f"{_log_tail(log_path)}"
                )
            if time.monotonic() > deadline:
                raise WebserverError(
                    f"dagster-webserver did not answer /server_info within {startup_timeout:.0f} s:\n"
                    f"{_log_tail(log_path)}"
                )
            time.sleep(0.5)
    except BaseException:
        _stop_process_group(process)
        raise
    return process, base_url


@contextlib.contextmanager
def running_webserver(env: dict[str, str], log_path: Path, startup_timeout: float = 120.0) -> Iterator[str]:
    """Serve `workspace.yaml` from the repository root on a free loopback port; yield the base URL.

    Waits until `/server_info` answers (at most `startup_timeout` seconds per attempt) and always
    stops the webserver and its code server on exit.
    """
    if not WEBSERVER_BIN.exists():
        raise WebserverError(f"dagster-webserver not found next to the interpreter: {WEBSERVER_BIN}")
    for attempt in range(3):
        try:
            process, base_url = _start(env, log_path, startup_timeout)
            break
        except WebserverError:
            # Another process may take the free port between probing it and the webserver binding it.
            if attempt == 2 or "address already in use" not in _log_tail(log_path).lower():
                raise
    try:
        yield base_url
    finally:
        _stop_process_group(process)


def post_graphql(base_url: str, query: str, variables: dict | None = None, timeout: float = 60.0) -> dict:
    """POST one GraphQL query; return its `data`, raising WebserverError on any GraphQL error."""
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"{base_url}/graphql", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise WebserverError(f"/graphql answered HTTP {error.code}: {error.read()[:2000]!r}") from error
    if payload.get("errors"):
        raise WebserverError(f"/graphql returned errors: {payload['errors']}")
    return payload["data"]


def screenshot_with_chromium(
    chromium: Path,
    url: str,
    png_path: Path,
    profile_dir: Path,
    window_size: tuple[int, int],
    timeout: float = 120.0,
) -> None:
    """Render `url` in headless Chromium and save a PNG; the browser's process group is always stopped."""
    width, height = window_size
    command = [
        str(chromium), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
        f"--user-data-dir={profile_dir}", f"--window-size={width},{height}",
        # Lets the single-page app fetch its GraphQL data and draw before the shot is taken.
        "--virtual-time-budget=20000", f"--screenshot={png_path}", url,
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as error:
        raise WebserverError(f"chromium took over {timeout:.0f} s to screenshot {url}") from error
    finally:
        _stop_process_group(process)
    if process.returncode != 0 or not png_path.exists():
        raise WebserverError(
            f"chromium exited {process.returncode} without a screenshot of {url}:\n{output[-3000:]!r}"
        )
