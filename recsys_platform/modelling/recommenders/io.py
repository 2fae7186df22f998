"""Read Personalize-format CSV files (the interactions and items datasets) into arrays.

The interactions file has the header `USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE[,EVENT_VALUE]` (names
matched case-insensitively, other columns ignored) and is read in streamed Arrow batches, so only the
five columns ever reach memory.
"""

from __future__ import annotations

from collections.abc import Mapping

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from recsys_platform.modelling.recommenders.base import InteractionLog

INTERACTION_COLUMNS = {
    "USER_ID": pa.string(),
    "ITEM_ID": pa.string(),
    "TIMESTAMP": pa.int64(),
    "EVENT_TYPE": pa.string(),
}
OPTIONAL_INTERACTION_COLUMNS = {"EVENT_VALUE": pa.float64()}
_BLOCK_SIZE = 8 << 20  # bytes per streamed batch


def _header(path: Path) -> list[str]:
    with path.open("r", encoding="utf-8", newline="") as handle:
        first_line = handle.readline().rstrip("\r\n")
    if not first_line:
        raise ValueError(f"{path}: empty file, expected a header line")
    return [name.strip().strip('"') for name in first_line.split(",")]


def _resolve_columns(path: Path, required: dict, optional: dict) -> dict[str, tuple[str, pa.DataType]]:
    """Map canonical column name -> (name as spelled in the file, type)."""
    header = _header(path)
    by_upper = {name.upper(): name for name in header}
    missing = [name for name in required if name not in by_upper]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; header is {','.join(header)}")
    wanted = {**required, **{k: v for k, v in optional.items() if k in by_upper}}
    return {name: (by_upper[name], dtype) for name, dtype in wanted.items()}


def _open(path: Path, columns: dict[str, tuple[str, pa.DataType]]) -> pacsv.CSVStreamingReader:
    return pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=_BLOCK_SIZE),
        convert_options=pacsv.ConvertOptions(
            include_columns=[spelled for spelled, _ in columns.values()],
            column_types={spelled: dtype for spelled, dtype in columns.values()},
            strings_can_be_null=True,
        ),
    )


def _check_no_nulls(path: Path, batch: pa.RecordBatch, spelled: str, first_row: int) -> None:
    column = batch.column(spelled)
    if column.null_count:
        offset = pc.index(pc.is_null(column), True).as_py()
        # +2: one for the header line, one because rows are counted from 1
        raise ValueError(f"{path}: line {first_row + offset + 2}: empty {spelled}")


def _locate_bad_value(path: Path, columns: dict[str, tuple[str, pa.DataType]]) -> str | None:
    """After a conversion error, find the first line whose value does not parse (Arrow does not say)."""
    numeric = {
        name: spec
        for name, spec in columns.items()
        if pa.types.is_integer(spec[1]) or pa.types.is_floating(spec[1])
    }
    as_text = {name: (spelled, pa.string()) for name, (spelled, _) in numeric.items()}
    rows_read = 0
    for batch in _open(path, as_text):
        for name, (spelled, dtype) in numeric.items():
            for offset, value in enumerate(batch.column(spelled).to_pylist()):
                if value is None:
                    continue
                try:
                    int(value) if pa.types.is_integer(dtype) else float(value)
                except ValueError:
                    return f"line {rows_read + offset + 2}: {name} {value!r} is not a number"
        rows_read += batch.num_rows
    return None


def read_interactions_csv(path: str | Path) -> InteractionLog:
    """Interactions from a Personalize interactions CSV. Raises ValueError naming the bad column or line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"interactions file not found: {path}")
    columns = _resolve_columns(path, INTERACTION_COLUMNS, OPTIONAL_INTERACTION_COLUMNS)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in columns}
    rows_read = 0
    try:
        reader = _open(path, columns)
        for batch in reader:
            for name, (spelled, _) in columns.items():
                if name != "EVENT_VALUE":
                    _check_no_nulls(path, batch, spelled, rows_read)
                array = batch.column(spelled)
                if name == "EVENT_VALUE":
                    parts[name].append(array.to_numpy(zero_copy_only=False).astype(np.float64))
                elif name == "TIMESTAMP":
                    parts[name].append(array.to_numpy())
                else:
                    parts[name].append(np.asarray(array.to_pylist(), dtype=object))
            rows_read += batch.num_rows
    except pa.ArrowInvalid as error:
        raise ValueError(f"{path}: {_locate_bad_value(path, columns) or error}") from None

    def joined(name: str, dtype) -> np.ndarray:
        return np.concatenate(parts[name]) if parts[name] else np.array([], dtype=dtype)

    return InteractionLog(
        user_ids=joined("USER_ID", object),
        item_ids=joined("ITEM_ID", object),
        timestamps=joined("TIMESTAMP", np.int64).astype(np.int64),
        event_types=joined("EVENT_TYPE", object),
        event_values=joined("EVENT_VALUE", np.float64) if "EVENT_VALUE" in columns else None,
    )


def read_items_csv(path: str | Path) -> list[str]:
    """The ITEM_IDs of a Personalize items CSV, unique, in file order."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"items file not found: {path}")
    columns = _resolve_columns(path, {"ITEM_ID": pa.string()}, {})
    spelled = columns["ITEM_ID"][0]
    item_ids: list[str] = []
    rows_read = 0
    try:
        for batch in _open(path, columns):
            _check_no_nulls(path, batch, spelled, rows_read)
            item_ids.extend(batch.column(spelled).to_pylist())
            rows_read += batch.num_rows
    except pa.ArrowInvalid as error:
        raise ValueError(f"{path}: {error}") from None
    return list(dict.fromkeys(item_ids))


def interaction_log_from_ga4_events(table: pa.Table, event_types: Mapping[str, str]) -> InteractionLog:
    """An `InteractionLog` from a table of (user_id, item_id, timestamp, ga4_event), e.g. a real log read
    by `ga4_simulator.real_logs.read_real_log`; `event_types` maps GA4 events to EVENT_TYPEs (the
    platform's taxonomy)."""
    needed = ("user_id", "item_id", "timestamp", "ga4_event")
    missing = [name for name in needed if name not in table.column_names]
    if missing:
        raise ValueError(f"table lacks column(s) {', '.join(missing)}")
    ga4_events = np.asarray(table.column("ga4_event").to_pylist(), dtype=object)
    unknown = sorted(set(ga4_events.tolist()) - set(event_types))
    if unknown:
        raise ValueError(f"GA4 event(s) {unknown} are not in the taxonomy ({sorted(event_types)})")
    mapped = np.array([event_types[name] for name in ga4_events.tolist()], dtype=object)
    return InteractionLog(
        user_ids=np.asarray(table.column("user_id").to_pylist(), dtype=object),
        item_ids=np.asarray(table.column("item_id").to_pylist(), dtype=object),
        timestamps=table.column("timestamp").to_numpy().astype(np.int64),
        event_types=mapped,
    )
