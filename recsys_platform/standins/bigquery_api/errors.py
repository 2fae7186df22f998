"""BigQuery's error shapes, so the real client raises the exception it would raise against Google.

An API call that fails answers `{"error": {"code", "message", "errors": [ErrorProto], "status"}}`; a job
that fails keeps the same ErrorProto (`reason`, `message`, `location`) in `status.errorResult`, and the
client maps the reason to an exception class (`invalidQuery` -> BadRequest, `notFound` -> NotFound, ...).
See https://cloud.google.com/bigquery/docs/errors and the REST reference's ErrorProto.
"""

from __future__ import annotations

# HTTP status of each reason (BigQuery's error table) and the google.rpc status name of each code.
REASON_STATUS = {
    "invalid": 400,
    "invalidQuery": 400,
    "badRequest": 400,
    "stopped": 400,
    "parseError": 400,
    "resourceInUse": 400,
    "required": 401,
    "authError": 401,
    "accessDenied": 403,
    "insufficientPermissions": 403,
    "notFound": 404,
    "duplicate": 409,
    "conditionNotMet": 412,
    "internalError": 500,
    "notImplemented": 501,
    "backendError": 503,
}
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "ALREADY_EXISTS",
    412: "FAILED_PRECONDITION",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
}


class BigQueryError(Exception):
    """One failure, as BigQuery reports it: a reason (which fixes the HTTP status) and a message."""

    def __init__(self, reason: str, message: str, *, location: str | None = None,
                 location_type: str | None = None, status: int | None = None):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.location = location
        self.location_type = location_type
        self.status = status or REASON_STATUS.get(reason, 400)

    def error_proto(self) -> dict:
        proto = {"reason": self.reason, "message": self.message, "domain": "global"}
        if self.location:
            proto["location"] = self.location
        if self.location_type:
            proto["locationType"] = self.location_type
        return proto

    def body(self) -> dict:
        return {"error": {"code": self.status, "message": self.message, "errors": [self.error_proto()],
                          "status": STATUS_NAMES.get(self.status, "UNKNOWN")}}

    @classmethod
    def from_proto(cls, proto: dict) -> BigQueryError:
        return cls(proto.get("reason", "invalid"), proto.get("message", ""), location=proto.get("location"))


def invalid(message: str) -> BigQueryError:
    return BigQueryError("invalid", message)


def invalid_query(message: str) -> BigQueryError:
    return BigQueryError("invalidQuery", message, location="query")


def not_found(message: str) -> BigQueryError:
    return BigQueryError("notFound", f"Not found: {message}")


def duplicate(message: str) -> BigQueryError:
    return BigQueryError("duplicate", f"Already Exists: {message}")


def dataset_name(project: str, dataset: str) -> str:
    """BigQuery's spelling of a dataset in messages: `project:dataset`."""
    return f"{project}:{dataset}"


def table_name(project: str, dataset: str, table: str) -> str:
    return f"{project}:{dataset}.{table}"
