"""The HTTP server: BigQuery's v2 REST API and an OAuth token endpoint, on loopback.

google-cloud-bigquery sends every call to `BIGQUERY_EMULATOR_HOST` + `/bigquery/v2/...` when that
variable is set; google-auth sends its token request to the key file's `token_uri`, here `/token`.
Every API call needs `Authorization: Bearer <token from /token>` (401 otherwise). The server binds to
loopback only: it serves local files to anyone holding a key it issued, and nothing beyond this
machine should reach it.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from recsys_platform.standins.bigquery_api.auth import KeyRegistry, OAuthError, TokenService, write_service_account_key
from recsys_platform.standins.bigquery_api.errors import BigQueryError, invalid
from recsys_platform.standins.bigquery_api.jobs import Jobs
from recsys_platform.standins.bigquery_api.resources import Resources
from recsys_platform.standins.bigquery_api.storage import Storage
from recsys_platform.standins.loopback import check_loopback

log = logging.getLogger(__name__)

API_PREFIX = "/bigquery/v2"
TOKEN_PATH = "/token"
MAX_BODY_BYTES = 64 * 1024 * 1024
_SEGMENT = r"([^/]+)"
_ROUTES = [
    ("GET", r"/projects", "list_projects"),
    ("GET", rf"/projects/{_SEGMENT}/datasets", "list_datasets"),
    ("POST", rf"/projects/{_SEGMENT}/datasets", "insert_dataset"),
    ("GET", rf"/projects/{_SEGMENT}/datasets/{_SEGMENT}", "get_dataset"),
    ("PATCH", rf"/projects/{_SEGMENT}/datasets/{_SEGMENT}", "patch_dataset"),
    ("PUT", rf"/projects/{_SEGMENT}/datasets/{_SEGMENT}", "patch_dataset"),
    ("DELETE", rf"/projects/{_SEGMENT}/datasets/{_SEGMENT}", "delete_dataset"),
    ("GET", rf"/projects/{_SEGMENT}/datasets/{_SEGMENT}/tables", "list_tables"),
    ("POST", rf"/projects/{_SEGMENT}/datasets/{_SEGMENT}/tables", "insert_table"),
    ("GET", rf"/projects/{_SEGMENT}/datasets/{_SEGMENT}/tables/{_SEGMENT}", "get_table"),
    ("PATCH", rf"/projects/{_SEGMENT}/datasets/{_SEGMENT}/tables/{_SEGMENT}", "patch_table"),
    ("PUT", rf"/projects/{_SEGMENT}/datasets/{_SEGMENT}/tables/{_SEGMENT}", "patch_table"),
    ("DELETE", rf"/projects/{_SEGMENT}/datasets/{_SEGMENT}/tables/{_SEGMENT}", "delete_table"),
    ("GET", rf"/projects/{_SEGMENT}/datasets/{_SEGMENT}/tables/{_SEGMENT}/data", "list_rows"),
    ("POST", rf"/projects/{_SEGMENT}/jobs", "insert_job"),
    ("GET", rf"/projects/{_SEGMENT}/jobs", "list_jobs"),
    ("GET", rf"/projects/{_SEGMENT}/jobs/{_SEGMENT}", "get_job"),
    ("POST", rf"/projects/{_SEGMENT}/jobs/{_SEGMENT}/cancel", "cancel_job"),
    ("POST", rf"/projects/{_SEGMENT}/queries", "query"),
    ("GET", rf"/projects/{_SEGMENT}/queries/{_SEGMENT}", "get_query_results"),
]
_COMPILED = [(method, re.compile(pattern + "$"), name) for method, pattern, name in _ROUTES]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: google-cloud-core reuses its connections
    disable_nagle_algorithm = True
    server: BigQueryHTTPServer

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        log.debug("%s " + format, self.address_string(), *args)

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def do_GET(self) -> None:  # noqa: N802 - the base class's names
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_PATCH(self) -> None:  # noqa: N802
        self._handle("PATCH")

    def do_PUT(self) -> None:  # noqa: N802
        self._handle("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        lists = parse_qs(url.query)
        try:
            body = self._body()
            if url.path == TOKEN_PATH and method == "POST":
                return self._token(body)
            if not url.path.startswith(API_PREFIX + "/"):
                raise BigQueryError("notFound", f"Not found: URL {url.path}", status=404)
            grant = self.server.tokens.check(self.headers.get("Authorization"))
            path = url.path[len(API_PREFIX):]
            for route_method, pattern, name in _COMPILED:
                match = pattern.match(path)
                if match is None:
                    continue
                if route_method != method:
                    continue
                segments = [unquote(s) for s in match.groups()]
                payload = self._json(body) if method in ("POST", "PATCH", "PUT") else {}
                status, answer = self.server.api.dispatch(name, segments, params, lists, payload, grant.email,
                                                          self.headers)
                return self._send(status, answer)
            if any(p.match(path) for _, p, _ in _COMPILED):
                raise BigQueryError("badRequest", f"Method {method} is not allowed on {url.path}", status=405)
            raise BigQueryError("notFound", f"Not found: URL {url.path}", status=404)
        except BigQueryError as error:
            self._send(error.status, error.body(), error.status == 401)
        except Exception as error:  # answered as BigQuery does; the traceback goes to the log
            log.exception("request %s %s failed", method, self.path)
            failure = BigQueryError("internalError", f"An internal error occurred: {type(error).__name__}: {error}")
            self._send(500, failure.body())

    def _token(self, body: bytes) -> None:
        form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        try:
            self._send(200, self.server.tokens.exchange(form))
        except OAuthError as error:
            self._send(400, error.body())

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise invalid(f"Request body too large ({length} bytes)")
        return self.rfile.read(length) if length else b""

    @staticmethod
    def _json(body: bytes) -> dict:
        if not body:
            return {}
        try:
            payload = json.loads(body)
        except ValueError:
            raise BigQueryError("parseError", "Parse Error: the request body is not JSON", status=400) from None
        if not isinstance(payload, dict):
            raise BigQueryError("parseError", "Parse Error: the request body must be a JSON object", status=400)
        return payload

    def _send(self, status: int, body: dict | None, authenticate: bool = False) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json; charset=UTF-8")
        if authenticate:
            self.send_header("WWW-Authenticate", 'Bearer realm="https://accounts.google.com/"')
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)


class Api:
    """Route names -> the resource and job operations."""

    def __init__(self, resources: Resources, jobs: Jobs):
        self.resources = resources
        self.jobs = jobs

    def dispatch(self, name, segments, params, lists, payload, email, headers) -> tuple[int, dict | None]:
        r, j = self.resources, self.jobs
        location = params.get("location") or None
        operations = {
            "list_projects": lambda: r.list_projects(),
            "list_datasets": lambda p: r.list_datasets(p, params),
            "insert_dataset": lambda p: r.insert_dataset(p, payload),
            "get_dataset": lambda p, d: r.get_dataset(p, d),
            "patch_dataset": lambda p, d: r.patch_dataset(p, d, payload),
            "delete_dataset": lambda p, d: r.delete_dataset(p, d, params),
            "list_tables": lambda p, d: r.list_tables(p, d, params),
            "insert_table": lambda p, d: r.insert_table(p, d, payload),
            "get_table": lambda p, d, t: r.get_table(p, d, t),
            "patch_table": lambda p, d, t: r.patch_table(p, d, t, payload, headers.get("If-Match")),
            "delete_table": lambda p, d, t: r.delete_table(p, d, t),
            "list_rows": lambda p, d, t: r.list_rows(p, d, t, params),
            "insert_job": lambda p: j.insert(p, payload, email),
            "list_jobs": lambda p: j.list(p, _optional_int(params.get("maxResults")), params.get("pageToken"),
                                          lists.get("stateFilter", [])),
            "get_job": lambda p, job: j.resource(p, job, location),
            "cancel_job": lambda p, job: j.cancel(p, job, location),
            "query": lambda p: j.query(p, payload, email),
            "get_query_results": lambda p, job: j.query_results(p, job, params),
        }
        answer = operations[name](*segments)
        if name.startswith("delete_"):
            return 204, None
        return 200, answer


def _optional_int(value) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        raise invalid(f"Invalid integer value: {value}") from None


class BigQueryHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, api: Api, tokens: TokenService):
        if ":" in address[0]:
            import socket

            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self.api = api
        self.tokens = tokens
        self._connections: set = set()
        self._connections_lock = threading.Lock()

    def track(self, connection, open_: bool) -> None:
        with self._connections_lock:
            (self._connections.add if open_ else self._connections.discard)(connection)

    def close_connections(self) -> None:
        """End kept-alive connections too: a stopped server must not answer on them."""
        import socket

        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class BigQueryStandIn:
    """A running stand-in: where it listens, how to reach it, how to stop it."""

    def __init__(self, server: BigQueryHTTPServer, storage: Storage, jobs: Jobs, thread: threading.Thread | None):
        self.server = server
        self.storage = storage
        self.jobs = jobs
        self._thread = thread
        host, port = server.server_address[:2]
        shown = f"[{host}]" if ":" in host else host
        self.endpoint_url = f"http://{shown}:{port}"
        self.token_uri = self.endpoint_url + TOKEN_PATH

    @property
    def data_dir(self) -> Path:
        return self.storage.data_dir

    def write_credentials(self, key_path: str | Path, project_id: str) -> Path:
        """A service-account key file for this stand-in (for GOOGLE_APPLICATION_CREDENTIALS)."""
        return write_service_account_key(self.storage.data_dir, key_path, self.token_uri, project_id)

    def client_environment(self, key_path: str | Path) -> dict[str, str]:
        """The environment a google-cloud-bigquery client needs to talk to this stand-in."""
        return {"BIGQUERY_EMULATOR_HOST": self.endpoint_url, "GOOGLE_APPLICATION_CREDENTIALS": str(key_path)}

    def serve_forever(self) -> None:
        self.server.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.jobs.close()
        self.storage.close()

    def __enter__(self) -> BigQueryStandIn:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def create_server(data_dir: str | Path, projects=None, datasets=None, host: str = "127.0.0.1", port: int = 0,
                  location: str = "US", default_page_rows: int = 100_000, max_page_bytes: int = 10 * 1024 * 1024,
                  insert_wait_seconds: float = 0.5, lock_timeout_seconds: float = 120.0, threads: int = 2,
                  memory_limit: str = "1GB") -> BigQueryStandIn:
    """A stand-in (not yet serving) keeping its state in `data_dir`.

    `projects` maps a project id to a DuckDB file served whole (each schema a dataset); `datasets` maps
    (project, dataset) to (DuckDB file, schema) for a single served dataset; any other project lives in
    `<data_dir>/projects/<project>.duckdb`. `location` is the location of datasets created without one
    and of served files. `default_page_rows` / `max_page_bytes` bound a page of rows when the client sets
    no maxResults (BigQuery's own bound is about 10 MB of JSON)."""
    check_loopback(host, "the BigQuery stand-in")
    if port < 0 or port > 65535:
        raise ValueError(f"port must be in 0..65535, got {port}")
    storage = Storage(data_dir, projects, datasets, default_location=location,
                      lock_timeout_seconds=lock_timeout_seconds, threads=threads, memory_limit=memory_limit)
    jobs = Jobs(storage, insert_wait_seconds=insert_wait_seconds, default_page_rows=default_page_rows,
                max_page_bytes=max_page_bytes)
    tokens = TokenService(KeyRegistry(storage.data_dir))
    try:
        server = BigQueryHTTPServer((host, port), Api(Resources(storage, jobs), jobs), tokens)
    except OSError:
        jobs.close()
        raise
    return BigQueryStandIn(server, storage, jobs, None)


def start_in_background(data_dir: str | Path, **options) -> BigQueryStandIn:
    """Serve on a background thread (port 0 picks a free port); returns the handle with `.endpoint_url`
    and `.stop()` (also a context manager). `options` as for `create_server`."""
    standin = create_server(data_dir, **options)
    thread = threading.Thread(target=standin.serve_forever, name="bigquery-standin", daemon=True)
    standin._thread = thread
    thread.start()
    return standin
