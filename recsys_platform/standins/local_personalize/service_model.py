"""Personalize's API as botocore describes it: request validation and list summaries come from the
installed service model, so the server accepts and answers exactly what boto3 sends and parses."""

from __future__ import annotations

import functools
import json
import math
import re
from typing import Any

import botocore.session
from botocore.model import OperationModel, ServiceModel, Shape

from recsys_platform.standins.local_personalize.errors import InvalidInputException, SerializationException


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
    """Check what botocore leaves to the service: the JSON type of every member (a wrong type is a
    SerializationException, as AWS answers a body it cannot bind), then patterns, lengths, ranges and
    enums, and required members (InvalidInputException: the model's error for bad values)."""
    _validate(operation(operation_name, service).input_shape, params, "")


def _type_error(label: str, expected: str, value: Any) -> SerializationException:
    shown = json.dumps(value) if isinstance(value, (int, float, bool)) or value is None else type(value).__name__
    return SerializationException(f"{label} must be {expected}, got {shown}")


def _validate(shape: Shape, value: Any, where: str) -> None:
    if value is None:
        return
    label = where or "request"
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            raise _type_error(label, "an object", value)
        for required in shape.required_members:
            if value.get(required) is None:
                raise InvalidInputException(f"{_join(where, required)} is required")
        for key, member_value in value.items():
            member = shape.members.get(key)
            if member is not None:
                _validate(member, member_value, _join(where, key))
    elif kind == "list":
        if not isinstance(value, list):
            raise _type_error(label, "a list", value)
        _check_length(shape, len(value), label)
        for index, item in enumerate(value):
            _validate(shape.member, item, f"{label}[{index}]")
    elif kind == "map":
        if not isinstance(value, dict):
            raise _type_error(label, "an object", value)
        _check_length(shape, len(value), label)
        for key, item in value.items():
            _validate(shape.key, key, f"{label} key")
            _validate(shape.value, item, f"{label}.{key}")
    elif kind == "string":
        if not isinstance(value, str):
            raise _type_error(label, "a string", value)
        _check_length(shape, len(value), label)
        pattern = shape.metadata.get("pattern")
        compiled = _compiled(pattern) if pattern else None
        if compiled is not None and not compiled.search(value):
            raise InvalidInputException(f"{label} {_shown(value)} does not match the pattern {pattern}")
        if shape.enum and value not in shape.enum:
            raise InvalidInputException(f"{label} {_shown(value)} must be one of {', '.join(shape.enum)}")
    elif kind in ("integer", "long"):
        # JSON has one number type; 2.5 (or 2.0, or true) where the model says integer is not one
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(label, "an integer", value)
        _check_range(shape, value, label)
    elif kind in ("double", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _type_error(label, "a finite number", value)
        _check_range(shape, value, label)
    elif kind == "timestamp":
        # botocore sends epoch seconds for JSON protocols
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _type_error(label, "a timestamp in epoch seconds", value)
    elif kind == "boolean" and not isinstance(value, bool):
        raise _type_error(label, "true or false", value)


def _check_range(shape: Shape, value: float, label: str) -> None:
    if "min" in shape.metadata and value < shape.metadata["min"]:
        raise InvalidInputException(f"{label} must be at least {shape.metadata['min']}, got {value}")
    if "max" in shape.metadata and value > shape.metadata["max"]:
        raise InvalidInputException(f"{label} must be at most {shape.metadata['max']}, got {value}")


def _shown(value: str) -> str:
    """A value quoted in a message, cut short: messages stay small whatever was sent."""
    return repr(value) if len(value) <= 80 else repr(value[:80]) + f"... ({len(value)} characters)"


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
