"""The HTTP server: Personalize's wire protocol on loopback.

Control plane: `POST /` with `X-Amz-Target: AmazonPersonalize.<Operation>` and a JSON 1.1 body.
Runtime: `POST /recommendations` with a REST-JSON body. Errors: `{"__type": <name>, "message": ...}`
with the name also in the `x-amzn-ErrorType` header, which is where botocore looks for both protocols.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from recsys_platform.standins.local_personalize.arns import region_from_authorization
from recsys_platform.standins.local_personalize.control_plane import ControlPlane
from recsys_platform.standins.local_personalize.errors import (
    SerializationException,
    ServiceError,
    UnknownOperationException,
)
from recsys_platform.standins.local_personalize.runtime import Runtime
from recsys_platform.standins.local_personalize.service_model import validate_input
from recsys_platform.standins.local_personalize.store import ResourceStore

log = logging.getLogger(__name__)

TARGET_PREFIX = "AmazonPersonalize."
# Personalize's largest members (schemas, configs) are a few kilobytes; more is a client's mistake.
MAX_BODY_BYTES = 1 << 20
# JSON 1.1 answers every client error with 400; only the runtime's REST-JSON model gives an error its
# own status.
RUNTIME_ERROR_STATUS = {"ResourceNotFoundException": 404}


def check_loopback(host: str) -> None:
    """The service has no authentication: it must never listen beyond this machine."""
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(
            f"refusing to listen on {host!r}: the local Personalize has no authentication, "
            "so it binds to loopback only (127.0.0.1, ::1 or localhost)"
        )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: boto3 reuses its connections
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stall
    server: PersonalizeHTTPServer

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        log.debug("%s " + format, self.address_string(), *args)

    def do_POST(self) -> None:  # noqa: N802 - the base class's name
        try:
            body = self.rfile.read(self._content_length())
            try:
                params = json.loads(body or b"{}")
            except ValueError:
                raise SerializationException("the request body is not JSON") from None
            if not isinstance(params, dict):
                raise SerializationException("the request body must be a JSON object")
            answer, content_type = self._dispatch(params)
            self._send(200, answer, content_type)
        except ServiceError as error:
            body = {"__type": error.code, "message": error.message}
            status = error.http_status
            if self._is_runtime():
                status = RUNTIME_ERROR_STATUS.get(error.code, status)
            self._send(status, body, self._content_type(), error_type=error.code)
        except Exception as error:  # answered as AWS does; the traceback goes to the log
            log.exception("internal error")
            body = {"__type": "InternalFailure", "message": f"{type(error).__name__}: {error}"}
            self._send(500, body, self._content_type(), error_type="InternalFailure")

    def _content_length(self) -> int:
        declared = (self.headers.get("Content-Length") or "0").strip()
        if not declared.isdigit() or int(declared) > MAX_BODY_BYTES:
            self.close_connection = True  # the body is left unread: the connection cannot be reused
            raise SerializationException(
                f"Content-Length {declared!r} must be a byte count of at most {MAX_BODY_BYTES}"
            )
        return int(declared)

    def _is_runtime(self) -> bool:
        return self.path.split("?", 1)[0] == "/recommendations"

    def _content_type(self) -> str:
        return "application/json" if self._is_runtime() else "application/x-amz-json-1.1"

    def _dispatch(self, params: dict) -> tuple[dict, str]:
        if self._is_runtime():
            validate_input("GetRecommendations", params, service="personalize-runtime")
            return self.server.runtime.get_recommendations(params), "application/json"
        target = self.headers.get("X-Amz-Target", "")
        if self.path.split("?", 1)[0] != "/" or not target.startswith(TARGET_PREFIX):
            raise UnknownOperationException(f"no operation at {self.command} {self.path} (target {target!r})")
        name = target[len(TARGET_PREFIX):]
        handler = self.server.operations.get(name)
        if handler is None:
            raise UnknownOperationException(f"operation {name} is not supported by this service")
        validate_input(name, params)
        region = region_from_authorization(self.headers.get("Authorization"))
        return handler(params, region), "application/x-amz-json-1.1"

    def _send(self, status: int, answer: dict, content_type: str, error_type: str | None = None) -> None:
        payload = json.dumps(answer).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if error_type:
            self.send_header("x-amzn-ErrorType", error_type)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)


class PersonalizeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], control_plane: ControlPlane) -> None:
        self.control_plane = control_plane
        self.operations = control_plane.operations()
        self.runtime = Runtime(control_plane)
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)


class LocalPersonalize:
    """A running server; `stop()` (or leaving the `with` block) shuts it down."""

    def __init__(self, server: PersonalizeHTTPServer, thread: threading.Thread | None) -> None:
        self._server = server
        self._thread = thread
        host, port = server.server_address[:2]
        self.host, self.port = host, port
        self.endpoint_url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"

    @property
    def state_dir(self) -> Path:
        return self._server.control_plane.store.state_dir

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.control_plane.runner.close()
        if self._thread is not None:
            self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> LocalPersonalize:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def _check_options(
    port: int, step_delay: float, stale_after: float, max_concurrent_trainings: int, max_running_jobs: int
) -> None:
    problems = []
    if not 0 <= port <= 65535:
        problems.append(f"port must be 0-65535, got {port}")
    if step_delay < 0:
        problems.append(f"step_delay must not be negative, got {step_delay}")
    if stale_after <= 0:
        problems.append(f"stale_after must be positive, got {stale_after}")
    if max_concurrent_trainings < 1:
        problems.append(f"max_concurrent_trainings must be at least 1, got {max_concurrent_trainings}")
    if max_running_jobs < 1:
        problems.append(f"max_running_jobs must be at least 1, got {max_running_jobs}")
    if problems:
        raise ValueError("; ".join(problems))


def create_server(
    state_dir: str | Path,
    lake_root: str | Path,
    host: str = "127.0.0.1",
    port: int = 0,
    step_delay: float = 0.05,
    stale_after: float = 20.0,
    max_concurrent_trainings: int = 20,
    max_running_jobs: int = 8,
) -> PersonalizeHTTPServer:
    """A server (not yet serving) on the state folder and the lake folder it reads `s3://` URIs from.

    `step_delay`: seconds a job spends in PENDING and again before ACTIVE, so the lifecycle can be
    observed. `stale_after`: seconds without a heartbeat after which another server takes a job over.
    `max_concurrent_trainings`: more solution versions in progress raise LimitExceededException.
    `max_running_jobs`: jobs (imports, trainings, ...) this server runs at once; more wait in PENDING.
    """
    check_loopback(host)
    _check_options(port, step_delay, stale_after, max_concurrent_trainings, max_running_jobs)
    control_plane = ControlPlane(
        ResourceStore(Path(state_dir)),
        Path(lake_root),
        step_delay=step_delay,
        stale_after=stale_after,
        max_concurrent_trainings=max_concurrent_trainings,
        max_running_jobs=max_running_jobs,
    )
    try:
        server = PersonalizeHTTPServer((host, port), control_plane)
    except OSError:
        control_plane.runner.close()
        raise
    try:
        control_plane.runner.recover_all()  # jobs left behind by a process that died
    except BaseException:
        control_plane.runner.close()
        server.server_close()
        raise
    return server


def start_in_background(state_dir: str | Path, lake_root: str | Path, **options) -> LocalPersonalize:
    """Serve on a background thread (port 0 picks a free port); returns the handle with `.endpoint_url`.

    Use it as a context manager, or call `.stop()`; `options` as for `create_server`.
    """
    server = create_server(state_dir, lake_root, **options)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="local-personalize", daemon=True
    )
    thread.start()
    return LocalPersonalize(server, thread)
