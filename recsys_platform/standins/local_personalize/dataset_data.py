"""Dataset import: validate CSV objects against the dataset's Avro schema, keep the rows as Parquet.

A dataset's rows are a list of Parquet parts in the state folder: a FULL import replaces the list,
an INCREMENTAL import appends to it. Training reads the parts back as an `InteractionLog`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from recsys_platform.standins.local_personalize.avro_schemas import ARROW_TYPES, SchemaField
from recsys_platform.standins.local_personalize.private_files import write_private
from recsys_platform.modelling.recommenders.base import InteractionLog

_BLOCK_SIZE = 4 << 20


class ImportFailed(ValueError):
    """The data does not fit its schema; the message becomes the job's failureReason."""


def _header(path: Path) -> list[str]:
    try:
        with path.open("r", encoding="utf-8", newline="") as handle:
            line = handle.readline().rstrip("\r\n").lstrip("\ufeff")
    except UnicodeDecodeError:
        raise ImportFailed(f"{path.name}: the header line is not UTF-8") from None
    if not line:
        raise ImportFailed(f"{path.name}: empty file, expected a header line with the schema's field names")
    return [name.strip().strip('"') for name in line.split(",")]


def _converted(column: pa.Array, field: SchemaField, file_name: str, first_row: int) -> pa.Array:
    target = ARROW_TYPES[field.avro_type]
    if not field.nullable and column.null_count:
        row = first_row + pc.index(pc.is_null(column), True).as_py()
        raise ImportFailed(
            f"{file_name}: row {row}: {field.name} is empty but the schema does not allow null"
        )
    if target == pa.string():
        return column
    if field.avro_type == "boolean":
        text = pc.utf8_lower(column)
        bad = pc.invert(pc.is_in(text, pa.array(["true", "false"])))
        bad = pc.and_(bad, pc.is_valid(text))
        if pc.any(bad).as_py():
            row = pc.index(bad, True).as_py()
            value = column[row].as_py()
            raise ImportFailed(
                f"{file_name}: row {first_row + row}: {field.name} {value!r} is not a boolean (true/false)"
            )
        return pc.equal(text, "true")
    try:
        return pc.cast(column, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        caster = int if pa.types.is_integer(target) else float
        for offset, value in enumerate(column.to_pylist()):
            if value is None:
                continue
            try:
                caster(value)
            except ValueError:
                raise ImportFailed(
                    f"{file_name}: row {first_row + offset}: {field.name} {value!r} is not "
                    f"{'an' if field.avro_type == 'int' else 'a'} {field.avro_type}"
                ) from None
        raise ImportFailed(f"{file_name}: a value of {field.name} does not fit {field.avro_type}") from None


def read_validated_csv(paths: list[Path], fields: list[SchemaField]) -> pa.Table:
    """All rows of the CSV files, typed by the schema. Rows are counted from 1 after the header."""
    schema = arrow_schema(fields)
    tables = []
    for path in paths:
        header = _header(path)
        spellings = Counter(name.upper() for name in header)  # names match case-insensitively
        repeated = [name for name in header if spellings[name.upper()] > 1]
        if repeated:
            raise ImportFailed(f"{path.name}: column(s) {', '.join(repeated)} appear more than once")
        by_upper = {name.upper(): name for name in header}
        field_names = {f.name.upper() for f in fields}
        extra = [name for name in header if name.upper() not in field_names]
        if extra:
            raise ImportFailed(f"{path.name}: column(s) {', '.join(extra)} are not in the dataset's schema")
        missing = [f.name for f in fields if f.name.upper() not in by_upper and not f.nullable]
        if missing:
            raise ImportFailed(
                f"{path.name}: missing column(s) {', '.join(missing)} required by the schema; "
                f"header is {','.join(header)}"
            )
        first_row = 1
        try:
            reader = pacsv.open_csv(
                path,
                read_options=pacsv.ReadOptions(block_size=_BLOCK_SIZE),
                convert_options=pacsv.ConvertOptions(
                    column_types={name: pa.string() for name in header}, strings_can_be_null=True
                ),
            )
            for batch in reader:
                columns = []
                for field in fields:
                    spelled = by_upper.get(field.name.upper())
                    if spelled is None:
                        columns.append(pa.nulls(batch.num_rows, ARROW_TYPES[field.avro_type]))
                    else:
                        columns.append(_converted(batch.column(spelled), field, path.name, first_row))
                tables.append(pa.Table.from_arrays(columns, schema=schema))
                first_row += batch.num_rows
        except pa.ArrowInvalid as error:  # ragged rows, bad quoting, bad UTF-8
            raise ImportFailed(f"{path.name}: {error}") from None
    if not tables:
        return schema.empty_table()
    return pa.concat_tables(tables)


def arrow_schema(fields: list[SchemaField]) -> pa.Schema:
    return pa.schema([pa.field(f.name, ARROW_TYPES[f.avro_type], nullable=f.nullable) for f in fields])


def write_part(table: pa.Table, path: Path) -> None:
    write_private(path, lambda handle: pq.write_table(table, handle))


def tracked_events_table(lines: Iterable[dict], fields: list[SchemaField]) -> tuple[pa.Table, int]:
    """Events recorded with PutEvents as rows of the Interactions dataset, and the newest receive time
    among them (ns; 0 when none). As the service does: an anonymous event (sessionId only) belongs to
    the userId that another event of the same session names, else to the sessionId; two events with the
    same time and identical properties are kept once."""
    lines = list(lines)
    session_users = {line["s"]: line["u"] for line in lines if line.get("u") and line.get("s")}
    columns: dict[str, list] = {field.name: [] for field in fields}
    seen: set[tuple] = set()
    mark = 0
    for line in lines:
        mark = max(mark, int(line.get("r", 0)))
        user = line.get("u") or session_users.get(line.get("s")) or line.get("s")
        properties = line.get("p") or {}
        members = {
            "USER_ID": user, "ITEM_ID": line["i"], "TIMESTAMP": int(line["t"]),
            "EVENT_TYPE": line["e"], "EVENT_VALUE": line.get("v"),
        }
        identity = (user, line["i"], members["TIMESTAMP"], line["e"], line.get("v"), json.dumps(properties, sort_keys=True))
        if identity in seen:
            continue
        seen.add(identity)
        for field in fields:
            upper = field.name.upper()
            columns[field.name].append(members[upper] if upper in members else properties.get(field.name))
    schema = arrow_schema(fields)
    arrays = [pa.array(columns[field.name], type=schema.field(field.name).type) for field in fields]
    return pa.Table.from_arrays(arrays, schema=schema), mark


def read_parts(paths: list[Path]) -> pa.Table:
    tables = [pq.read_table(path) for path in paths]
    return pa.concat_tables(tables, promote_options="default") if tables else pa.table({})


def interaction_log(table: pa.Table) -> InteractionLog:
    """The interactions dataset's rows as the models' arrays (column names matched case-insensitively)."""
    by_upper = {name.upper(): name for name in table.column_names}

    def strings(name: str) -> np.ndarray:
        if name not in by_upper:
            return np.full(table.num_rows, "", dtype=object)
        return np.asarray(table.column(by_upper[name]).to_pylist(), dtype=object)

    event_values = None
    if "EVENT_VALUE" in by_upper:
        event_values = table.column(by_upper["EVENT_VALUE"]).to_numpy(zero_copy_only=False).astype(np.float64)
    return InteractionLog(
        user_ids=strings("USER_ID"),
        item_ids=strings("ITEM_ID"),
        timestamps=table.column(by_upper["TIMESTAMP"]).to_numpy(zero_copy_only=False).astype(np.int64),
        event_types=strings("EVENT_TYPE"),
        event_values=event_values,
    )
