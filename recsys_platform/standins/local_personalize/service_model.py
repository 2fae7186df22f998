"""Personalize's API as botocore describes it: request validation and list summaries come from the
installed service model, so the server accepts and answers exactly what boto3 sends and parses."""

from __future__ import annotations

import functools
import re
from typing import Any

import botocore.session
from botocore.model import OperationModel, ServiceModel, Shape

from recsys_platform.standins.local_personalize.errors import InvalidInputException


@functools.cache
def service_model(name: str = "personalize") -> ServiceModel:
    return botocore.session.get_session().get_service_model(name)


def operation(name: str, service: str = "personalize") -> OperationModel:
    return service_model(service).operation_model(name)


@functools.cache
def _compiled(pattern: str) -> re.Pattern | None:
    # Java-style classes such as \p{ASCII} or \p{L} are not Python regex syntax; those fields are free text.
    if r"\p{" in pattern:
        return None
    return re.compile(pattern)


def validate_input(operation_name: str, params: dict, service: str = "personalize") -> None:
    """Check what botocore leaves to the service: patterns, maximum lengths and enums, and required
    members (for clients that skip botocore's own validation)."""
    _validate(operation(operation_name, service).input_shape, params, "")


def _validate(shape: Shape, value: Any, where: str) -> None:
    if value is None:
        return
    label = where or "request"
    if shape.type_name == "structure":
        if not isinstance(value, dict):
            raise InvalidInputException(f"{label} must be an object")
        for required in shape.required_members:
            if value.get(required) is None:
                raise InvalidInputException(f"{_join(where, required)} is required")
        for key, member_value in value.items():
            member = shape.members.get(key)
            if member is not None:
                _validate(member, member_value, _join(where, key))
    elif shape.type_name == "list":
        if not isinstance(value, list):
            raise InvalidInputException(f"{label} must be a list")
        _check_length(shape, len(value), label)
        for index, item in enumerate(value):
            _validate(shape.member, item, f"{label}[{index}]")
    elif shape.type_name == "map":
        if not isinstance(value, dict):
            raise InvalidInputException(f"{label} must be an object")
        _check_length(shape, len(value), label)
        for key, item in value.items():
            _validate(shape.value, item, f"{label}.{key}")
    elif shape.type_name == "string":
        if not isinstance(value, str):
            raise InvalidInputException(f"{label} must be a string")
        _check_length(shape, len(value), label)
        pattern = shape.metadata.get("pattern")
        compiled = _compiled(pattern) if pattern else None
        if compiled is not None and not compiled.search(value):
            raise InvalidInputException(f"{label} {value!r} does not match the pattern {pattern}")
        if shape.enum and value not in shape.enum:
            raise InvalidInputException(f"{label} {value!r} must be one of {', '.join(shape.enum)}")
    elif shape.type_name in ("integer", "long", "double", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidInputException(f"{label} must be a number")
        if "min" in shape.metadata and value < shape.metadata["min"]:
            raise InvalidInputException(f"{label} must be at least {shape.metadata['min']}")
        if "max" in shape.metadata and value > shape.metadata["max"]:
            raise InvalidInputException(f"{label} must be at most {shape.metadata['max']}")
    elif shape.type_name == "boolean" and not isinstance(value, bool):
        raise InvalidInputException(f"{label} must be true or false")


def _check_length(shape: Shape, length: int, label: str) -> None:
    if "min" in shape.metadata and length < shape.metadata["min"]:
        raise InvalidInputException(f"{label} is shorter than {shape.metadata['min']}")
    if "max" in shape.metadata and length > shape.metadata["max"]:
        raise InvalidInputException(f"{label} is longer than {shape.metadata['max']}")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def summary_fields(list_operation: str, list_key: str) -> tuple[str, ...]:
    """The members of one item of a List* answer (e.g. ListDatasetGroups -> DatasetGroupSummary)."""
    output = operation(list_operation).output_shape
    return tuple(output.members[list_key].member.members)


def output_fields(operation_name: str, key: str) -> tuple[str, ...]:
    """The members of a Describe* answer's object (e.g. DescribeSolution -> solution)."""
    return tuple(operation(operation_name).output_shape.members[key].members)
