"""moto's server (S3, STS, IAM and the rest of moto) on loopback, recording who signed each request.

moto's `ThreadedMotoServer` runs the same WSGI application; this one wraps it to record every request's
SigV4 credential (access key id, service, region), so a test can tell which identity made which call:
the platform's assumed role, the Personalize service role, or the base credentials. moto answers
requests of any access key (it does not check signatures or evaluate IAM policies); it keeps the
accounts apart by access key: an assumed role's keys act in the role's account.

moto's state is global to the process: one server runs at a time here, and stopping it resets moto.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from recsys_platform.standins.loopback import check_loopback

# SigV4: `Authorization: AWS4-HMAC-SHA256 Credential=<key id>/<date>/<region>/<service>/aws4_request, ...`
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/,\s]+)/([^/,\s]+)/aws4_request")


@dataclass(frozen=True)
class SignedRequest:
    """One request moto received, and the credentials it was signed with."""

    method: str
    path: str
    query: str
    service: str | None
    region: str | None
    access_key_id: str | None  # None: unsigned
    session_token: bool  # signed with temporary (STS) credentials
    server_side_encryption: str | None  # the x-amz-server-side-encryption header (S3 writes)


def _signed_request(environ: dict) -> SignedRequest:
    match = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
    return SignedRequest(
        method=environ.get("REQUEST_METHOD", ""),
        path=environ.get("PATH_INFO", ""),
        query=environ.get("QUERY_STRING", ""),
        service=match.group(3) if match else None,
        region=match.group(2) if match else None,
        access_key_id=match.group(1) if match else None,
        session_token=bool(environ.get("HTTP_X_AMZ_SECURITY_TOKEN")),
        server_side_encryption=environ.get("HTTP_X_AMZ_SERVER_SIDE_ENCRYPTION"),
    )


_running = threading.Lock()  # held while a server runs: moto's backends are the process's


class MotoStandIn:
    """A running moto server: `.endpoint_url`, `.requests` (what it received), `.assumed_role(key)`, `.stop()`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        check_loopback(host, "moto's server")
        if not _running.acquire(blocking=False):
            raise RuntimeError("moto's server already runs in this process: its state (accounts, buckets, roles) "
                               "is the process's, so stop the other local cloud first")
        try:
            application = DomainDispatcherApplication(create_backend_app)
            self._requests: list[SignedRequest] = []
            self._lock = threading.Lock()

            def recording(environ, start_response):
                request = _signed_request(environ)
                with self._lock:
                    self._requests.append(request)
                return application(environ, start_response)

            class QuietHandler(MotoRequestHandler):
                def log(self, type, message, *args):  # noqa: A002 - werkzeug's name; no access log on stderr
                    pass

            self._server = make_server(host, port, recording, threaded=True, request_handler=QuietHandler)
        except BaseException:
            _running.release()
            raise
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto-server", daemon=True)
        self._thread.start()
        shown = f"[{host}]" if ":" in host else host
        self.endpoint_url = f"http://{shown}:{self._server.server_port}"

    @property
    def requests(self) -> list[SignedRequest]:
        with self._lock:
            return list(self._requests)

    @staticmethod
    def assumed_role(access_key_id: str):
        """moto's record of the AssumeRole call that issued `access_key_id` (`.role_arn`, `.external_id`,
        `.session_name`, `.account_id`), or None if STS never issued it."""
        from moto.sts.models import sts_backends

        for account in list(sts_backends.keys()):
            for backend in list(sts_backends[account].values()):
                for role in list(backend.assumed_roles):
                    if role.access_key_id == access_key_id:
                        return role
        return None

    def stop(self) -> None:
        try:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=10)
        finally:
            _reset_moto()
            _running.release()


def _reset_moto() -> None:
    """Forget every account, bucket and role: the next local cloud starts from nothing."""
    from moto.moto_api._internal.models import moto_api_backend

    moto_api_backend.reset()  # what POST /moto-api/reset does: every backend and model instance
