"""Late events: GA4 keeps rewriting a day's shard for up to three days as late hits arrive.

A re-export adds events to an existing shard: copies of events already in it (same visitor, session
and items) at a slightly different time, received hours later (a large
`event_server_timestamp_offset`), with their own bundle id and (from July 2024 on) their own batch
request (`batch_ordering_id`). Purchases are never copied, so the product
DB's orders stay consistent with the export. Only identified events (with a `user_pseudo_id`) are copied,
so every late event a re-export adds is one the platform keeps and can count (a simplification: real late
hits may be cookieless pings too). A re-export keeps the table's columns, whatever its date's schema (or
a drift planted by `odd_rows`).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa

from recsys_platform.standins.ga4_simulator.export_store import append_rows, ensure_dataset, open_database, require_shard
from recsys_platform.standins.ga4_simulator.ga4_schema import shard_name
from recsys_platform.standins.ga4_simulator.timezones import DEFAULT_TIMEZONE, day_bounds_us

LATE_EVENT_NAMES = ("page_view", "view_item", "add_to_cart", "add_to_wishlist", "scroll", "user_engagement")
_HOUR_US = 3_600 * 1_000_000


def reexport_shard(
    export_db_path: Path | str,
    property_id: str,
    day: date,
    extra_events: int,
    seed: int,
    timezone: str = DEFAULT_TIMEZONE,
) -> dict:
    """Rewrite an existing shard with `extra_events` late events; returns its bumped `__TABLES__` row."""
    if extra_events < 0:
        raise ValueError(f"extra_events must be >= 0, got {extra_events}")
    start_us, end_us = day_bounds_us(day, timezone)
    rng = np.random.default_rng([seed, day.toordinal(), 7])
    with open_database(export_db_path) as connection:
        dataset = ensure_dataset(connection, property_id)
        table = f"{dataset}.{shard_name(day)}"
        require_shard(connection, dataset, shard_name(day), export_db_path)
        names = ", ".join(f"'{name}'" for name in LATE_EVENT_NAMES)
        candidates = connection.execute(
            f"SELECT DISTINCT event_bundle_sequence_id FROM {table} WHERE event_name IN ({names}) "
            "AND user_pseudo_id IS NOT NULL ORDER BY event_bundle_sequence_id"
        ).fetchnumpy()["event_bundle_sequence_id"]
        chosen = np.sort(rng.choice(candidates, min(extra_events, len(candidates)), replace=False))
        connection.register("chosen_bundles", pa.table({"bundle": pa.array(chosen, pa.int64())}))
        originals = connection.sql(
            f"SELECT * FROM {table} WHERE event_bundle_sequence_id IN (SELECT bundle FROM chosen_bundles) "
            "AND user_pseudo_id IS NOT NULL "
            "QUALIFY row_number() OVER (PARTITION BY event_bundle_sequence_id ORDER BY event_timestamp) = 1 "
            "ORDER BY event_bundle_sequence_id"
        ).to_arrow_table()
        connection.unregister("chosen_bundles")
        late = _as_late(originals, rng, start_us, end_us)
        return append_rows(connection, property_id, day, late, export_db_path)


def _as_late(rows: pa.Table, rng: np.random.Generator, start_us: int, end_us: int) -> pa.Table:
    n = rows.num_rows
    shifted = rows.column("event_timestamp").to_numpy() + rng.integers(-300_000_000, 300_000_000, n)
    replacements = {
        "event_timestamp": np.clip(shifted, start_us, end_us - 1),
        "event_bundle_sequence_id": rng.integers(1 << 40, 1 << 41, n),
        "event_server_timestamp_offset": rng.integers(_HOUR_US, 47 * _HOUR_US, n),
    }
    if "batch_ordering_id" in rows.schema.names:
        # A late event was sent by a later request from the same page: its own batch identity.
        original = rows.column("batch_ordering_id").to_numpy(zero_copy_only=False)
        replacements["batch_ordering_id"] = original + rng.integers(1_000, 1_000_000, n)
        replacements["batch_event_index"] = np.zeros(n, np.int64)
    for name, values in replacements.items():
        rows = rows.set_column(rows.schema.get_field_index(name), name, pa.array(values, pa.int64()))
    return rows
