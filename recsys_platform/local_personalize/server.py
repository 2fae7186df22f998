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

from recsys_platform.local_personalize.arns import region_from_authorization
from recsys_platform.local_personalize.control_plane import ControlPlane
from recsys_platform.local_personalize.errors import (
    SerializationException,
    ServiceError,
    UnknownOperationException,
)
from recsys_platform.local_personalize.runtime import Runtime
from recsys_platform.local_personalize.service_model import validate_input
from recsys_platform.local_personalize.store import ResourceStore

log = logging.getLogger(__name__)

TARGET_PREFIX = "AmazonPersonalize."


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
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
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
            self._send(error.http_status, body, self._content_type(), error_type=error.code)
        except Exception as error:  # answered as AWS does; the traceback goes to the log
            log.exception("internal error")
            body = {"__type": "InternalFailure", "message": f"{type(error).__name__}: {error}"}
            self._send(500, body, self._content_type(), error_type="InternalFailure")

    def _content_type(self) -> str:
        runtime = self.path.startswith("/recommendations")
        return "application/json" if runtime else "application/x-amz-json-1.1"

    def _dispatch(self, params: dict) -> tuple[dict, str]:
        path = self.path.split("?", 1)[0]
        if path == "/recommendations":
            validate_input("GetRecommendations", params, service="personalize-runtime")
            return self.server.runtime.get_recommendations(params), "application/json"
        target = self.headers.get("X-Amz-Target", "")
        if path != "/" or not target.startswith(TARGET_PREFIX):
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


def create_server(
    state_dir: str | Path | None = None,
    lake_root: str | Path | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    step_delay: float = 0.05,
    stale_after: float = 20.0,
    max_concurrent_trainings: int = 20,
) -> PersonalizeHTTPServer:
    """A server (not yet serving) on the state folder and lake; defaults from `local_paths()`.

    `step_delay`: seconds a job spends in PENDING and again before ACTIVE, so the lifecycle can be
    observed. `stale_after`: seconds without a heartbeat after which another server takes a job over.
    `max_concurrent_trainings`: more solution versions in progress raise LimitExceededException.
    """
    from recsys_platform.settings import local_paths

    check_loopback(host)
    paths = local_paths()
    control_plane = ControlPlane(
        ResourceStore(Path(state_dir) if state_dir else paths.personalize_state),
        Path(lake_root) if lake_root else paths.lake,
        step_delay=step_delay,
        stale_after=stale_after,
        max_concurrent_trainings=max_concurrent_trainings,
    )
    try:
        server = PersonalizeHTTPServer((host, port), control_plane)
    except OSError:
        control_plane.runner.close()
        raise
    control_plane.runner.recover_all()  # jobs left behind by a process that died
    return server


def start_in_background(
    state_dir: str | Path | None = None,
    lake_root: str | Path | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    step_delay: float = 0.05,
    stale_after: float = 20.0,
    max_concurrent_trainings: int = 20,
) -> LocalPersonalize:
    """Serve on a background thread (port 0 picks a free port); returns the handle with `.endpoint_url`.

    Use it as a context manager, or call `.stop()`; options as for `create_server`.
    """
    server = create_server(
        state_dir, lake_root, host, port, step_delay, stale_after, max_concurrent_trainings
    )
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="local-personalize", daemon=True
    )
    thread.start()
    return LocalPersonalize(server, thread)
