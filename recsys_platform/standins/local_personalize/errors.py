"""Personalize's error names, so boto3 raises `client.exceptions.<Name>` for each of them."""

from __future__ import annotations

import re

# An absolute path on this machine: a "/" that does not continue a word, a scheme (s3://) or a path.
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.~-])/[^\s'\"),;]+")


def redact_paths(text: str) -> str:
    """`text` with absolute paths replaced by `<path>`: messages that leave the server (error answers,
    a job's failureReason) never show where the state or the lake live on this machine."""
    return _ABSOLUTE_PATH.sub("<path>", text)


class ServiceError(Exception):
    """An error answered in AWS's JSON shape: `{"__type": <code>, "message": ...}`; subclasses name it."""

    code = "ServiceError"
    http_status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ResourceNotFoundException(ServiceError):
    code = "ResourceNotFoundException"


class ResourceAlreadyExistsException(ServiceError):
    code = "ResourceAlreadyExistsException"


class InvalidInputException(ServiceError):
    code = "InvalidInputException"


class InvalidNextTokenException(ServiceError):
    code = "InvalidNextTokenException"


class ResourceInUseException(ServiceError):
    code = "ResourceInUseException"


class LimitExceededException(ServiceError):
    code = "LimitExceededException"


class UnknownOperationException(ServiceError):
    code = "UnknownOperationException"


class SerializationException(ServiceError):
    code = "SerializationException"


class IncompleteSignatureException(ServiceError):
    """The Authorization header does not have the form AWS signs requests with (e.g. a bad region)."""

    code = "IncompleteSignatureException"


class AccessDeniedException(ServiceError):
    """A request from a place the server does not answer (a web page reaching loopback by DNS
    rebinding, another site's page): HTTP 403."""

    code = "AccessDeniedException"
    http_status = 403


class InternalFailure(ServiceError):
    """The service's own failure: HTTP 500, which clients may retry."""

    code = "InternalFailure"
    http_status = 500
