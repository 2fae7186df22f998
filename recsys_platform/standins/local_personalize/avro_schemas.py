"""Personalize dataset schemas: Avro `record` schemas with the fields each dataset type requires."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pyarrow as pa

from recsys_platform.standins.local_personalize.errors import InvalidInputException

DATASET_TYPES = ("Interactions", "Items", "Users", "Actions", "Action_Interactions")

# Fields (and their Avro type) Personalize requires per dataset type.
REQUIRED_FIELDS = {
    "Interactions": {"USER_ID": "string", "ITEM_ID": "string", "TIMESTAMP": "long"},
    "Items": {"ITEM_ID": "string"},
    "Users": {"USER_ID": "string"},
    "Actions": {"ACTION_ID": "string"},
    "Action_Interactions": {"USER_ID": "string", "ACTION_ID": "string", "TIMESTAMP": "long"},
}

ARROW_TYPES = {
    "string": pa.string(),
    "int": pa.int32(),
    "long": pa.int64(),
    "float": pa.float32(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
}


@dataclass(frozen=True)
class SchemaField:
    name: str
    avro_type: str  # one of ARROW_TYPES
    nullable: bool
    categorical: bool = False  # "categorical": true -- values are `|`-separated categories
    textual: bool = False  # "textual": true -- unstructured text, which filters cannot use

    @property
    def numeric(self) -> bool:
        return self.avro_type in ("int", "long", "float", "double")


def parse_avro_schema(text: str) -> list[SchemaField]:
    """The fields of a Personalize Avro schema; InvalidInputException names what is wrong."""
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInputException(f"schema is not valid JSON: {error}") from None
    except RecursionError:
        raise InvalidInputException("schema is not valid JSON: it nests too deep") from None
    if not isinstance(schema, dict) or schema.get("type") != "record":
        raise InvalidInputException('schema must be an Avro record ({"type": "record", ...})')
    for key in ("name", "fields"):
        if key not in schema:
            raise InvalidInputException(f"Avro schema is missing {key!r}")
    if not isinstance(schema["fields"], list) or not schema["fields"]:
        raise InvalidInputException("Avro schema 'fields' must be a non-empty list")
    fields, seen = [], set()
    for index, field in enumerate(schema["fields"]):
        if not isinstance(field, dict) or not isinstance(field.get("name"), str):
            raise InvalidInputException(f"Avro schema field #{index + 1} has no name")
        name = field["name"]
        if name.upper() in seen:
            raise InvalidInputException(f"Avro schema field {name!r} appears twice")
        seen.add(name.upper())
        parsed = _parse_field(name, field.get("type"))
        fields.append(SchemaField(
            parsed.name, parsed.avro_type, parsed.nullable,
            categorical=field.get("categorical") is True, textual=field.get("textual") is True,
        ))
    return fields


def field_named(fields: list[SchemaField], name: str) -> SchemaField | None:
    """The schema's field called `name`, matched case-insensitively (as CSV headers are)."""
    for field in fields:
        if field.name.upper() == name.upper():
            return field
    return None


def _parse_field(name: str, avro_type: object) -> SchemaField:
    nullable = False
    if isinstance(avro_type, list):  # a union such as ["null", "string"]
        non_null = [t for t in avro_type if t != "null"]
        nullable = len(non_null) < len(avro_type)
        if len(non_null) != 1:
            raise InvalidInputException(
                f"field {name!r}: unions must be one type plus 'null', got {avro_type}"
            )
        avro_type = non_null[0]
    if avro_type not in ARROW_TYPES:
        raise InvalidInputException(
            f"field {name!r}: type {avro_type!r} is not supported (use {', '.join(ARROW_TYPES)})"
        )
    return SchemaField(name, avro_type, nullable)


def check_schema_fits_dataset_type(fields: list[SchemaField], dataset_type: str) -> None:
    by_name = {field.name.upper(): field for field in fields}
    for required, avro_type in REQUIRED_FIELDS[dataset_type].items():
        field = by_name.get(required)
        if field is None:
            raise InvalidInputException(f"a {dataset_type} schema must have the field {required}")
        accepted = ("long", "int") if avro_type == "long" else (avro_type,)
        if field.avro_type not in accepted or field.nullable:
            raise InvalidInputException(
                f"{dataset_type} schema field {required} must be a non-null {avro_type}, "
                f"got {'nullable ' if field.nullable else ''}{field.avro_type}"
            )


def canonical_dataset_type(value: str) -> str:
    for dataset_type in DATASET_TYPES:
        if value.upper() == dataset_type.upper():
            return dataset_type
    raise InvalidInputException(f"datasetType {value!r} must be one of {', '.join(DATASET_TYPES)}")
