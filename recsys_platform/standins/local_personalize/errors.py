"""Personalize's error names, so boto3 raises `client.exceptions.<Name>` for each of them."""

from __future__ import annotations


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


class InternalFailure(ServiceError):
    """The service's own failure: HTTP 500, which clients may retry."""

    code = "InternalFailure"
    http_status = 500
