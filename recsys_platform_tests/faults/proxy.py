"""A fault-injecting HTTP proxy on loopback, between boto3 and a stand-in (the local Personalize, moto's S3).

It names each request's operation the way the service does (Personalize: the `X-Amz-Target` header; S3:
method, path and query, e.g. PutObject, UploadPart), and for the operations a test chose, answers the first
N requests itself with the service's throttling or server error instead of forwarding them (N = None: every
request). Everything else is forwarded unchanged. With `after_forwarding`, the request is forwarded first and
its answer replaced by the error: the service acted, the client saw a failure (a lost response).
"""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# (status, error code, message) as each service sends them.
ERRORS = {
    "throttle": (400, "ThrottlingException", "Rate exceeded"),
    "429": (429, "TooManyRequestsException", "Too many requests"),
    "500": (500, "InternalServerError", "We encountered an internal error. Please try again."),
    "503": (503, "ServiceUnavailable", "Service unavailable"),
    "slowdown": (503, "SlowDown", "Please reduce your request rate."),
    "s3-500": (500, "InternalError", "We encountered an internal error. Please try again."),
    # What S3 answers a HEAD of a missing key when the caller may not list the bucket.
    "s3-403": (403, "AccessDenied", "Access Denied"),
}
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "host", "content-length"}


@dataclass
class Rule:
    error: str
    times: int | None  # None: every request
    after_forwarding: bool = False


def s3_operation(method: str, path: str, query: str) -> str:
    params = urllib.parse.parse_qs(query, keep_blank_values=True)
    key = "/" in path.strip("/")
    if method == "PUT":
        if "partNumber" in params:
            return "UploadPart"
        return "PutObject" if key else "CreateBucket"
    if method == "POST":
        if "uploads" in params:
            return "CreateMultipartUpload"
        if "uploadId" in params:
            return "CompleteMultipartUpload"
        return "DeleteObjects" if "delete" in params else "PostObject"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in params else ("DeleteObject" if key else "DeleteBucket")
    if method == "HEAD":
        return "HeadObject" if key else "HeadBucket"
    if not key:
        if "uploads" in params:
            return "ListMultipartUploads"
        return "ListObjectsV2" if params.get("list-type") == ["2"] else "ListObjects"
    return "ListParts" if "uploadId" in params else "GetObject"


class FaultProxy:
    def __init__(self, upstream: str, service: str):
        """`upstream`: http://host:port of the stand-in; `service`: "personalize" or "s3"."""
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream = (parsed.hostname, parsed.port)
        self.service = service
        self.rules: dict[str, Rule] = {}
        self.failed: Counter = Counter()
        self.forwarded: Counter = Counter()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def fail(self, operation: str, error: str, times: int | None, after_forwarding: bool = False) -> None:
        with self._lock:
            self.rules[operation] = Rule(error, times, after_forwarding)

    def clear(self) -> None:
        """No more faults; the counts start again."""
        with self._lock:
            self.rules.clear()
            self.failed.clear()
            self.forwarded.clear()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ------------------------------------------------------------------------------------------------------

    def _decide(self, operation: str) -> Rule | None:
        with self._lock:
            rule = self.rules.get(operation)
            if rule is None or (rule.times is not None and self.failed[operation] >= rule.times):
                return None
            self.failed[operation] += 1
            return rule

    def _error_response(self, error: str) -> tuple[int, dict, bytes]:
        status, code, message = ERRORS[error]
        if self.service == "s3":
            body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}'
                    "</Message><RequestId>fault-proxy</RequestId></Error>").encode()
            return status, {"Content-Type": "application/xml"}, body
        body = json.dumps({"__type": code, "message": message}).encode()
        return status, {"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": code}, body

    def _forward(self, method: str, target: str, headers, body: bytes) -> tuple[int, list, bytes]:
        connection = http.client.HTTPConnection(*self.upstream, timeout=120)
        try:
            forwarded = {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}
            forwarded["Host"] = headers.get("Host", f"{self.upstream[0]}:{self.upstream[1]}")
            forwarded["Content-Length"] = str(len(body))
            connection.request(method, target, body=body if body or method in ("PUT", "POST") else None,
                               headers=forwarded)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):  # noqa: A002 - quiet
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _operation(self) -> str:
                if proxy.service == "s3":
                    parsed = urllib.parse.urlsplit(self.path)
                    return s3_operation(self.command, parsed.path, parsed.query)
                return (self.headers.get("X-Amz-Target") or "").rsplit(".", 1)[-1] or self.path

            def _send(self, status: int, headers, body: bytes) -> None:
                self.send_response(status)
                length = str(len(body))
                for name, value in (headers.items() if isinstance(headers, dict) else headers):
                    if name.lower() == "content-length" and self.command == "HEAD":
                        length = value  # a HEAD answer states the object's length, without the body
                    elif name.lower() not in HOP_BY_HOP:
                        self.send_header(name, value)
                self.send_header("Content-Length", length)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _handle(self) -> None:
                body = self._body()
                operation = self._operation()
                rule = proxy._decide(operation)
                if rule is not None and not rule.after_forwarding:
                    self._send(*proxy._error_response(rule.error))
                    return
                status, headers, answer = proxy._forward(self.command, self.path, self.headers, body)
                with proxy._lock:
                    proxy.forwarded[operation] += 1
                if rule is not None:
                    self._send(*proxy._error_response(rule.error))
                    return
                self._send(status, headers, answer)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        return Handler
