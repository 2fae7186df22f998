"""The HTTP server: Personalize's three wire protocols on loopback, one port.

Control plane (`personalize`): `POST /` with `X-Amz-Target: AmazonPersonalize.<Operation>` and a
JSON 1.1 body. Runtime (`personalize-runtime`): `POST /recommendations`, REST-JSON. Events
(`personalize-events`): `POST /events`, `/items`, `/users`, REST-JSON. Errors:
`{"__type": <name>, "message": ...}` with the name also in the `x-amzn-ErrorType` header, which is where
botocore looks for all three protocols; REST-JSON errors carry the status botocore's model gives them.

The server has no authentication, so it defends the one thing that makes a loopback service reachable
from elsewhere, a web browser on this machine: it answers only requests whose `Host` (and `Origin`,
when a browser sends one) is a loopback name or address (DNS rebinding makes `evil.example` resolve to
127.0.0.1, but the browser still sends `Host: evil.example`). Request bodies are bounded in size and
JSON nesting, chunked bodies are refused, and an internal error is answered without its details (they
go to the log, with the request id).
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import urllib.parse
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from recsys_platform.standins.local_personalize.arns import region_from_authorization
from recsys_platform.standins.local_personalize.control_plane import ControlPlane
from recsys_platform.standins.local_personalize.errors import (
    AccessDeniedException,
    SerializationException,
    ServiceError,
    UnknownOperationException,
)
from recsys_platform.standins.local_personalize.lakes import FolderLake, S3Lake, S3LakeConfig
from recsys_platform.standins.local_personalize.runtime import Runtime
from recsys_platform.standins.local_personalize.service_model import service_model, validate_input
from recsys_platform.standins.local_personalize.store import ResourceStore
from recsys_platform.standins.loopback import check_loopback, is_loopback_host

log = logging.getLogger(__name__)

TARGET_PREFIX = "AmazonPersonalize."
# Personalize's largest members (schemas, configs) are a few kilobytes; more is a client's mistake.
MAX_BODY_BYTES = 1 << 20
# Personalize's deepest request (a solution's HPO ranges) nests 6 levels; the parser must never
# recurse as deep as the body says.
MAX_JSON_DEPTH = 32
# Connections waiting to be accepted. A burst of fresh connections beyond it is reset by the kernel
# (the standard library's default of 5 reset 18 of 50 parallel connections).
LISTEN_BACKLOG = 1024
# Connections served at once (a thread each); more are answered 503 at once instead of piling up.
MAX_CONNECTIONS = 512
# Seconds an idle keep-alive connection (or a client that stops sending) may hold its thread.
IDLE_TIMEOUT = 120.0

CONTROL_PLANE = "personalize"
# REST-JSON routes: path -> (service, operation)
REST_ROUTES = {
    "/recommendations": ("personalize-runtime", "GetRecommendations"),
    "/events": ("personalize-events", "PutEvents"),
    "/items": ("personalize-events", "PutItems"),
    "/users": ("personalize-events", "PutUsers"),
}
# Scanning for nesting: the next quote or bracket, and the rest of a string after its opening quote
# (the "unrolled loop" form, linear in the string's length however many escapes it holds).
_SPECIAL = re.compile(rb'["\[\]{}]')
_STRING_REST = re.compile(rb'[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def host_of_authority(authority: str) -> str | None:
    """`127.0.0.1:8765` -> `127.0.0.1`, `[::1]:8765` -> `::1`; None when it is not host[:port]."""
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::\d{1,5})?|([^:\[\]/@\s]+)(?::\d{1,5})?", authority)
    if not match:
        return None
    return match.group(1) or match.group(2)


def check_request_origin(host_header: str | None, origin_header: str | None) -> None:
    """AccessDeniedException unless the request is addressed to loopback and, when a browser says
    which page sent it, that page is served from loopback too."""
    if not host_header:
        raise AccessDeniedException("the request has no Host header; this server answers loopback hosts only")
    host = host_of_authority(host_header.strip())
    if host is None or not is_loopback_host(host):
        raise AccessDeniedException(
            f"Host {_clip(host_header)!r} is not a loopback name or address: this server answers requests "
            "addressed to localhost, 127.0.0.1 or [::1] only"
        )
    if origin_header is None:
        return
    parsed = urllib.parse.urlsplit(origin_header.strip())
    origin_host = parsed.hostname if parsed.scheme in ("http", "https") else None
    if not origin_host or not is_loopback_host(origin_host):
        raise AccessDeniedException(
            f"Origin {_clip(origin_header)!r} is not a loopback page: this server answers pages served "
            "from localhost, 127.0.0.1 or [::1] only"
        )


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def parse_json_object(body: bytes) -> dict:
    """The body as a JSON object, parsed with bounded nesting; SerializationException otherwise."""
    if not body.strip():
        return {}
    if body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH:  # only then can it nest too deep
        _check_nesting(body)

    def no_constants(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    try:
        params = json.loads(body, parse_constant=no_constants)
    except (ValueError, RecursionError):
        raise SerializationException("the request body is not JSON") from None
    if not isinstance(params, dict):
        raise SerializationException("the request body must be a JSON object")
    return params


def _check_nesting(body: bytes) -> None:
    """One linear pass over the brackets outside strings; stops as soon as the nesting is too deep."""
    depth, position = 0, 0
    while (special := _SPECIAL.search(body, position)) is not None:
        if special.group() == b'"':
            rest = _STRING_REST.match(body, special.end())
            if rest is None:
                return  # an unterminated string: the parser reports the body as not JSON
            position = rest.end()
            continue
        depth += 1 if special.group() in (b"[", b"{") else -1
        if depth > MAX_JSON_DEPTH:
            raise SerializationException(f"the request body nests JSON deeper than {MAX_JSON_DEPTH} levels")
        position = special.end()


# Lingering close after an unread body: at most this long per read, this many reads.
LINGER_SECONDS = 1.0
LINGER_READS = 16


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: boto3 reuses its connections
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stall
    timeout = IDLE_TIMEOUT
    server: PersonalizeHTTPServer

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        log.debug("%s " + format, self.address_string(), *args)

    def do_POST(self) -> None:  # noqa: N802 - the base class's name
        request_id = str(uuid.uuid4())
        try:
            self._check_origin()
            params = parse_json_object(self._read_body())
            answer, content_type = self._dispatch(params)
            self._send(200, answer, content_type, request_id)
        except ServiceError as error:
            if error.http_status == 403:
                self.close_connection = True  # the body was not read
            body = {"__type": error.code, "message": error.message}
            self._send(self._status(error), body, self._content_type(), request_id, error_type=error.code)
        except Exception:  # answered as AWS does, without details: they go to the log
            log.exception("internal error (request %s)", request_id)
            body = {
                "__type": "InternalFailure",
                "message": f"internal error; the server log has the details (request {request_id})",
            }
            self._send(500, body, self._content_type(), request_id, error_type="InternalFailure")

    def _refuse_method(self) -> None:
        request_id = str(uuid.uuid4())
        self.close_connection = True  # whatever body came with it is not read
        try:
            self._check_origin()
            error: ServiceError = UnknownOperationException(
                f"no operation at {self.command} {_clip(self.path.split('?', 1)[0])}: the API answers POST"
            )
        except ServiceError as refused:
            error = refused
        body = {"__type": error.code, "message": error.message}
        self._send(self._status(error), body, self._content_type(), request_id, error_type=error.code)

    do_GET = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse_method  # noqa: N815

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """What the standard library answers before a request reaches `do_POST` (a malformed request
        line, headers too long, an unknown method): JSON in AWS's shape instead of an HTML page."""
        self.close_connection = True
        error_type = {501: "UnknownOperationException"}.get(code, "SerializationException" if code < 500 else "InternalFailure")
        reason = message or self.responses.get(code, ("",))[0]
        payload = json.dumps({"__type": error_type, "message": f"{code}: {_clip(str(reason))}"}).encode()
        try:
            self.send_response(code, _clip(str(reason)))
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("x-amzn-ErrorType", error_type)
            self.send_header("Connection", "close")
            self.end_headers()
            if getattr(self, "command", None) != "HEAD":
                self.wfile.write(payload)
        except OSError:
            pass

    def _check_origin(self) -> None:
        for name in ("Host", "Origin"):
            if len(self.headers.get_all(name) or []) > 1:  # which one would a proxy have used?
                raise AccessDeniedException(f"the request has more than one {name} header")
        check_request_origin(self.headers.get("Host"), self.headers.get("Origin"))

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True  # the body is left unread: the connection cannot be reused
            raise SerializationException(
                f"Transfer-Encoding {_clip(self.headers['Transfer-Encoding'])!r} is not supported: "
                "send the body with a Content-Length"
            )
        declared = (self.headers.get("Content-Length") or "0").strip()
        if not declared.isdigit() or int(declared) > MAX_BODY_BYTES:
            self.close_connection = True
            raise SerializationException(
                f"Content-Length {_clip(declared)!r} must be a byte count of at most {MAX_BODY_BYTES}"
            )
        return self.rfile.read(int(declared))

    def _route(self) -> tuple[str, str] | None:
        return REST_ROUTES.get(self.path.split("?", 1)[0])

    def _status(self, error: ServiceError) -> int:
        """REST-JSON services give each error its own status in the model; JSON 1.1 answers 400."""
        route = self._route()
        if route is None or error.http_status != 400:
            return error.http_status
        try:
            shape = service_model(route[0]).shape_for(error.code)
        except Exception:  # not an error of that service's model (e.g. SerializationException)
            return error.http_status
        return int(shape.metadata.get("error", {}).get("httpStatusCode", error.http_status))

    def _content_type(self) -> str:
        return "application/json" if self._route() else "application/x-amz-json-1.1"

    def _dispatch(self, params: dict) -> tuple[dict, str]:
        region = region_from_authorization(self.headers.get("Authorization"))
        route = self._route()
        if route is not None:
            service, name = route
            validate_input(name, params, service=service)
            return self.server.rest_operations[name](params, region), "application/json"
        target = self.headers.get("X-Amz-Target", "")
        if self.path.split("?", 1)[0] != "/" or not target.startswith(TARGET_PREFIX):
            raise UnknownOperationException(
                f"no operation at {self.command} {_clip(self.path)} (target {_clip(target)!r})"
            )
        name = target[len(TARGET_PREFIX):]
        handler = self.server.operations.get(name)
        if handler is None:
            raise UnknownOperationException(f"operation {_clip(name)} is not supported by this service")
        validate_input(name, params)
        return handler(params, region), "application/x-amz-json-1.1"

    def _send(
        self, status: int, answer: dict, content_type: str, request_id: str, error_type: str | None = None
    ) -> None:
        payload = json.dumps(answer).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-amzn-RequestId", request_id)
        if error_type:
            self.send_header("x-amzn-ErrorType", error_type)
        if self.close_connection:
            self.send_header("Connection", "close")
        # Head and body in one write (end_headers would send the head on its own): two writes wake the
        # client twice, each a context switch on loopback, and the second can wait for the client to
        # be scheduled again. The head is what send_response/send_header buffered; none for HTTP/0.9.
        head = b"".join(getattr(self, "_headers_buffer", ()))
        self._headers_buffer = []
        self.wfile.write(head + b"\r\n" + payload if head else payload)

    def finish(self) -> None:
        super().finish()
        if self.close_connection:
            self._linger()

    def _linger(self) -> None:
        """Close gently after answering a request whose body was left unread: half-close, then read what the
        client is still sending for a moment. Closing a socket with unread data makes the kernel send a
        reset, which can destroy the answer before the client reads it."""
        try:
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(LINGER_SECONDS)
            for _ in range(LINGER_READS):
                if not self.connection.recv(65536):
                    break
        except OSError:
            pass


class PersonalizeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], control_plane: ControlPlane) -> None:
        self.control_plane = control_plane
        self.operations = control_plane.operations()
        self.runtime = Runtime(control_plane)
        self.rest_operations: dict[str, Callable[[dict, str], dict]] = {
            "GetRecommendations": lambda params, region: self.runtime.get_recommendations(params),
            "PutEvents": control_plane.put_events,
            "PutItems": control_plane.put_items,
            "PutUsers": control_plane.put_users,
        }
        self._connections = threading.BoundedSemaphore(MAX_CONNECTIONS)
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def process_request(self, request, client_address) -> None:
        if not self._connections.acquire(blocking=False):
            self._refuse_busy(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._connections.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._connections.release()

    @staticmethod
    def _refuse_busy(request: socket.socket) -> None:
        body = json.dumps({
            "__type": "ServiceUnavailableException",
            "message": f"the server is serving {MAX_CONNECTIONS} connections; retry",
        }).encode()
        head = (
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nx-amzn-ErrorType: ServiceUnavailableException\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        try:
            request.settimeout(1.0)
            request.sendall(head + body)
        except OSError:
            pass
        finally:
            request.close()


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
    lake_root: str | Path | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    step_delay: float = 0.05,
    stale_after: float = 20.0,
    max_concurrent_trainings: int = 20,
    max_running_jobs: int = 8,
    s3: S3LakeConfig | None = None,
) -> PersonalizeHTTPServer:
    """A server (not yet serving) on the state folder and where it reads `s3://` URIs from: the lake
    folder `lake_root`, or, with `s3`, an S3 endpoint on loopback with each request's role (`lakes`).

    `step_delay`: seconds a job spends in PENDING and again before ACTIVE, so the lifecycle can be
    observed. `stale_after`: seconds without a heartbeat after which another server takes a job over.
    `max_concurrent_trainings`: more solution versions in progress raise LimitExceededException.
    `max_running_jobs`: jobs (imports, trainings, ...) this server runs at once; more wait in PENDING.
    """
    check_loopback(host, "the local Personalize", "it has no authentication")
    _check_options(port, step_delay, stale_after, max_concurrent_trainings, max_running_jobs)
    if (lake_root is None) == (s3 is None):
        raise ValueError("give the lake folder (lake_root) or an S3 endpoint (s3), exactly one of them")
    store = ResourceStore(Path(state_dir))
    control_plane = ControlPlane(
        store,
        FolderLake(lake_root) if s3 is None else S3Lake(s3, store.state_dir),
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


def start_in_background(state_dir: str | Path, lake_root: str | Path | None = None, **options) -> LocalPersonalize:
    """Serve on a background thread (port 0 picks a free port); returns the handle with `.endpoint_url`.

    Use it as a context manager, or call `.stop()`; `options` as for `create_server`.
    """
    server = create_server(state_dir, lake_root, **options)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="local-personalize", daemon=True
    )
    thread.start()
    return LocalPersonalize(server, thread)
