"""What requests read from a dataset group's data, cached: the events recorded since training (to fold
into a user's history), a user's most recent interactions per event type, and Items / Users records
(for filters).

A dataset's data is its bulk parts (`_parts`, replaced by FULL imports, extended by INCREMENTAL ones,
rewritten by data deletion jobs) plus what was put individually (`events.jsonl`, `records.jsonl`).
Caches are keyed by the parts list and the files' identity, so an import, a PutItems or a deletion is
seen by the next request without any invalidation message between servers.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

from recsys_platform.shared.personalize_facts import MAX_FILTER_INTERACTIONS_PER_EVENT_TYPE
from recsys_platform.standins.local_personalize import avro_schemas, dataset_data
from recsys_platform.standins.local_personalize.avro_schemas import SchemaField
from recsys_platform.standins.local_personalize.store import ResourceStore
from recsys_platform.standins.local_personalize.tracked_events import (
    EVENTS_FILE,
    RECORDS_FILE,
    EventIndex,
    TrackedEvent,
    read_lines,
)


def dataset_arn(group_arn: str, dataset_type: str) -> str:
    """The ARN CreateDataset gives a dataset group's dataset of a type (one per type and group)."""
    return group_arn.replace(":dataset-group/", ":dataset/", 1) + "/" + dataset_type.upper()


def _file_signature(path: Path) -> tuple:
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return ()
    return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns)


class DatasetViews:
    def __init__(self, store: ResourceStore, dataset_dir: Callable[[str], Path]) -> None:
        self.store = store
        self.dataset_dir = dataset_dir
        self._lock = threading.Lock()
        self._event_indexes: dict[str, EventIndex] = {}
        self._cache: dict[tuple[str, str], tuple[tuple, object]] = {}  # (view, dataset) -> (key, value)

    # ---- datasets -------------------------------------------------------------------------------

    def dataset(self, group_arn: str, dataset_type: str) -> dict | None:
        return self.store.get("dataset", dataset_arn(group_arn, dataset_type))

    def schema_fields(self, dataset: dict) -> list[SchemaField]:
        schema = self.store.get("schema", dataset["schemaArn"])
        return avro_schemas.parse_avro_schema(schema["schema"]) if schema else []

    def _cached(self, view: str, dataset: dict, key: tuple, build: Callable[[], object]):
        cache_key = (view, dataset["datasetArn"])
        with self._lock:
            hit = self._cache.get(cache_key)
        if hit is not None and hit[0] == key:
            return hit[1]
        value = build()  # outside the lock: may read a lot
        with self._lock:
            self._cache[cache_key] = (key, value)
        return value

    def _bulk_table(self, dataset: dict) -> pa.Table:
        folder = self.dataset_dir(dataset["datasetArn"])
        return dataset_data.read_parts([folder / part for part in dataset.get("_parts", [])])

    # ---- tracked events -------------------------------------------------------------------------

    def events_of(self, group_arn: str, user: str) -> list[TrackedEvent]:
        """The user's events recorded with PutEvents (by userId, or sessionId when anonymous)."""
        path = self.dataset_dir(dataset_arn(group_arn, "Interactions")) / EVENTS_FILE
        with self._lock:
            index = self._event_indexes.get(str(path))
            if index is None:
                index = self._event_indexes[str(path)] = EventIndex(path)
        return index.events_of(user)

    # ---- interactions for filters ---------------------------------------------------------------

    def recent_interactions(self, group_arn: str, user: str) -> dict[str, list[str]]:
        """Event type (lower case) -> the user's most recent items of that type, newest first, at most
        MAX_FILTER_INTERACTIONS_PER_EVENT_TYPE each: bulk data and recorded events together."""
        dataset = self.dataset(group_arn, "Interactions")
        if dataset is None:
            return {}
        bulk = self._cached("recent", dataset, tuple(dataset.get("_parts", [])), lambda: self._recent_index(dataset))
        # (timestamp, order, item): bulk rows keep their file order; events come after them
        merged: dict[str, list[tuple[int, int, str]]] = {
            event_type: list(rows) for event_type, rows in bulk.get(user, {}).items()
        }
        for event in self.events_of(group_arn, user):
            merged.setdefault(event.event_type.lower(), []).append((event.timestamp, event.received, event.item_id))
        limit = MAX_FILTER_INTERACTIONS_PER_EVENT_TYPE
        return {
            event_type: [item for _, _, item in sorted(rows, reverse=True)[:limit]]
            for event_type, rows in merged.items()
        }

    def _recent_index(self, dataset: dict) -> dict[str, dict[str, list[tuple[int, int, str]]]]:
        table = self._bulk_table(dataset)
        if table.num_rows == 0:
            return {}
        by_upper = {name.upper(): name for name in table.column_names}
        users = np.asarray(table.column(by_upper["USER_ID"]).to_pylist(), dtype=object)
        items = np.asarray(table.column(by_upper["ITEM_ID"]).to_pylist(), dtype=object)
        times = table.column(by_upper["TIMESTAMP"]).to_numpy(zero_copy_only=False).astype(np.int64)
        if "EVENT_TYPE" in by_upper:
            types = np.asarray([str(t).lower() for t in table.column(by_upper["EVENT_TYPE"]).to_pylist()], dtype=object)
        else:
            types = np.full(table.num_rows, "", dtype=object)
        rows = np.arange(table.num_rows)
        _, user_codes = np.unique(users.astype(str), return_inverse=True)
        _, type_codes = np.unique(types.astype(str), return_inverse=True)
        order = np.lexsort((-rows, -times, type_codes, user_codes))  # per (user, type): newest first
        group = user_codes[order] * (type_codes.max() + 1) + type_codes[order]
        starts = np.r_[0, np.flatnonzero(np.diff(group)) + 1]
        rank = np.arange(order.size) - np.repeat(starts, np.diff(np.r_[starts, order.size]))
        index: dict[str, dict[str, list[tuple[int, int, str]]]] = {}
        for row in order[rank < MAX_FILTER_INTERACTIONS_PER_EVENT_TYPE].tolist():
            index.setdefault(users[row], {}).setdefault(types[row], []).append((int(times[row]), -1, items[row]))
        return index

    # ---- Items and Users records ----------------------------------------------------------------

    def records(self, group_arn: str, dataset_type: str) -> tuple[dict[str, dict], dict[str, SchemaField]]:
        """ID -> record (FIELD upper case -> value) of the Items or Users dataset, bulk rows overridden
        by records put individually; and the schema's fields by upper-case name."""
        dataset = self.dataset(group_arn, dataset_type)
        if dataset is None:
            return {}, {}
        records_path = self.dataset_dir(dataset["datasetArn"]) / RECORDS_FILE
        key = (tuple(dataset.get("_parts", [])), dataset["schemaArn"], _file_signature(records_path))
        return self._cached(f"records-{dataset_type}", dataset, key, lambda: self._records(dataset, records_path))

    def _records(self, dataset: dict, records_path: Path) -> tuple[dict[str, dict], dict[str, SchemaField]]:
        fields = {field.name.upper(): field for field in self.schema_fields(dataset)}
        id_field = "ITEM_ID" if dataset["datasetType"] == "Items" else "USER_ID"
        by_id: dict[str, dict] = {}
        table = self._bulk_table(dataset)
        if table.num_rows:
            for row in table.to_pylist():
                record = {name.upper(): value for name, value in row.items()}
                by_id[str(record.get(id_field))] = record
        for line in read_lines(records_path):
            properties = {name.upper(): value for name, value in (line.get("p") or {}).items()}
            by_id[str(line["id"])] = {id_field: line["id"], **properties}
        return by_id, fields
