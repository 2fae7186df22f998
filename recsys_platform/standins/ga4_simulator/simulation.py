"""`simulate`: N days of a synthetic shop's GA4 export plus its product DB.

Each property-local day is generated from its own random stream (seed, day), so a day's data does not
depend on which other days were simulated, and the same seed gives identical rows. A day is written as
one shard in chunks (bounded memory at 1M events a day); after day D is written, a few late events are
added to D-1 and D-2 by re-exporting them, as GA4 does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recsys_platform.standins.ga4_simulator.behaviour import (
    L1_NAMES,
    L2_NAMES,
    Behaviour,
    build_catalog,
    build_visitors,
    duplicate_positions,
    generate_day,
)
from recsys_platform.standins.ga4_simulator.export_store import write_shard
from recsys_platform.standins.ga4_simulator.ga4_rows import build_events_table
from recsys_platform.standins.ga4_simulator.ga4_schema import dataset_name, shard_name
from recsys_platform.standins.ga4_simulator.late_events import reexport_shard
from recsys_platform.standins.ga4_simulator.product_store import write_product_db
from recsys_platform.standins.ga4_simulator.real_logs import read_real_log
from recsys_platform.standins.ga4_simulator.replay import replay_log
from recsys_platform.standins.ga4_simulator.timezones import DEFAULT_TIMEZONE, day_bounds_us, zone

LATE_DAYS = (1, 2)  # a day's late events land in the two previous shards
DEFAULT_PROPERTY_ID = "123456789"
DEFAULT_START_DATE = "2026-01-01"
# The embedded default's file names (recsys_platform.settings.LocalPaths reads the same files).
EXPORT_DB_FILE = "ga4_export.duckdb"
PRODUCT_DB_FILE = "product_db.duckdb"


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate and where to write it. The property defaults to a Seoul shop, like the platform's
    embedded default; `recsys-platform simulate` and the demo pass the deployment's own settings."""

    home: Path | None = None  # state folder; required unless both database paths are given
    export_db: Path | None = None  # default <home>/ga4_export.duckdb
    product_db: Path | None = None  # default <home>/product_db.duckdb
    property_id: str | None = None
    timezone: str | None = None
    start_date: date | str | None = None
    days: int = 7
    events_per_day: int = 10_000
    seed: int = 42
    users: int = 2_000
    items: int = 1_000
    late_event_share: float = 0.002  # of a day's events, arriving in the next two days' re-exports
    behaviour: Behaviour = field(default_factory=Behaviour)
    chunk_events: int = 100_000  # events generated and written at a time (bounds memory)
    # Replay a real interaction log instead of generating behaviour (see real_logs.read_real_log).
    from_log: Path | None = None
    log_format: str = "csv"
    log_columns: dict[str, str] | None = None
    log_event_map: dict[str, str] | None = None
    log_timestamp_unit: str = "s"

    def resolved(self) -> "ResolvedConfig":
        if self.home is None and (self.export_db is None or self.product_db is None):
            raise ValueError("home (the state folder) is required unless export_db and product_db are given")
        home = Path(self.home).resolve() if self.home else None
        start = self.start_date or DEFAULT_START_DATE
        if isinstance(start, str):
            try:
                start = date.fromisoformat(start)
            except ValueError:
                raise ValueError(f"start_date must be YYYY-MM-DD, got {start!r}") from None
        property_id = str(self.property_id or DEFAULT_PROPERTY_ID)
        dataset_name(property_id)  # validates
        timezone = self.timezone or DEFAULT_TIMEZONE
        zone(timezone)  # validates
        if self.days < 1:
            raise ValueError(f"days must be at least 1, got {self.days}")
        if self.events_per_day < 1:
            raise ValueError(f"events_per_day must be at least 1, got {self.events_per_day}")
        if not 0 <= self.late_event_share < 1:
            raise ValueError(f"late_event_share must be in [0, 1), got {self.late_event_share}")
        return ResolvedConfig(
            export_db=Path(self.export_db) if self.export_db else home / EXPORT_DB_FILE,
            product_db=Path(self.product_db) if self.product_db else home / PRODUCT_DB_FILE,
            property_id=property_id,
            timezone=timezone,
            start_date=start,
        )


@dataclass(frozen=True)
class ResolvedConfig:
    export_db: Path
    product_db: Path
    property_id: str
    timezone: str
    start_date: date


@dataclass(frozen=True)
class DaySummary:
    day: date
    shard: str
    events: int  # rows written to the shard (duplicates included, late arrivals not)
    users: int  # distinct user_pseudo_id
    items: int  # distinct item ids in the day's item rows
    orders: int  # product DB orders placed that day
    late_events: int  # events this day's re-exports added to earlier shards


@dataclass(frozen=True)
class SimulationSummary:
    export_db: Path
    product_db: Path
    property_id: str
    timezone: str
    days: tuple[DaySummary, ...]

    @property
    def events(self) -> int:
        return sum(d.events + d.late_events for d in self.days)

    @property
    def orders(self) -> int:
        return sum(d.orders for d in self.days)

    @property
    def shards(self) -> tuple[str, ...]:
        return tuple(d.shard for d in self.days)

    def table(self) -> str:
        lines = [f"{'day':<12}{'events':>10}{'late+':>8}{'users':>8}{'items':>8}{'orders':>8}"]
        for d in self.days:
            lines.append(f"{d.day.isoformat():<12}{d.events:>10}{d.late_events:>8}{d.users:>8}{d.items:>8}"
                         f"{d.orders:>8}")
        return "\n".join(lines)


def simulate(config: SimulationConfig) -> SimulationSummary:
    """Write the GA4 export shards and the product DB described by `config`; see the module docstring."""
    resolved = config.resolved()
    if config.from_log is not None:
        return _replay(config, resolved)
    epoch_start, _ = day_bounds_us(resolved.start_date, resolved.timezone)
    catalog = build_catalog(config.items, config.seed, epoch_start, config.behaviour)
    visitors = build_visitors(config.users, config.seed, epoch_start, config.behaviour)
    session_counter = np.zeros(len(visitors), dtype=np.int64)
    late_per_shard = int(round(config.late_event_share * config.events_per_day / len(LATE_DAYS)))
    orders_by_day: list = []
    summaries = []
    row_counts: dict[date, int] = {}  # rows of the shards written so far
    for index in range(config.days):
        day = resolved.start_date + timedelta(days=index)
        start_us, end_us = day_bounds_us(day, resolved.timezone)
        rng = np.random.default_rng([config.seed, day.toordinal()])
        day_stats = _DayStats()
        chunks = (
            day_stats.observe(build_events_table(
                batch.take(duplicate_positions(len(batch), config.behaviour.duplicate_share, rng))), orders)
            for batch, orders in generate_day(
                f"{day:%Y%m%d}", start_us, (end_us - start_us) // 1_000_000, config.events_per_day, catalog,
                visitors, session_counter, rng, config.behaviour, config.chunk_events,
            )
        )
        row_counts[day] = write_shard(resolved.export_db, resolved.property_id, day, chunks)["row_count"]
        late_added = 0
        for lag in LATE_DAYS:
            earlier = day - timedelta(days=lag)
            if earlier in row_counts and late_per_shard:
                row = reexport_shard(resolved.export_db, resolved.property_id, earlier, late_per_shard,
                                     seed=config.seed * 1_000 + lag, timezone=resolved.timezone)
                late_added += row["row_count"] - row_counts[earlier]
                row_counts[earlier] = row["row_count"]
        orders_by_day.append(day_stats.orders)
        summaries.append(
            DaySummary(day, shard_name(day), day_stats.events, day_stats.distinct_users(),
                       day_stats.distinct_items(), day_stats.order_count, late_added)
        )
    write_product_db(resolved.product_db, *_product_tables(catalog, visitors, orders_by_day))
    return SimulationSummary(resolved.export_db, resolved.product_db, resolved.property_id, resolved.timezone,
                             tuple(summaries))


class _DayStats:
    """Counts a day's rows as its chunks stream past, and keeps its orders for the product DB."""

    def __init__(self):
        self.events = 0
        self.order_count = 0
        self._users: list[pa.Array] = []
        self._items: list[pa.Array] = []
        self.orders: list = []

    def observe(self, table: pa.Table, orders) -> pa.Table:
        self.events += table.num_rows
        self._users.append(pc.unique(table.column("user_pseudo_id")))
        item_ids = pc.list_flatten(table.column("items")).combine_chunks().field("item_id")
        self._items.append(pc.unique(item_ids.drop_null()))
        self.orders.append(orders)
        self.order_count += orders.count
        return table

    def distinct_users(self) -> int:
        return len(pc.unique(pa.chunked_array(self._users, pa.string()))) if self._users else 0

    def distinct_items(self) -> int:
        if not self._items:
            return 0
        ids = pc.unique(pa.chunked_array(self._items, pa.string()))
        return len(ids) - int(pc.sum(pc.equal(ids, "(not set)")).as_py() or 0)


def _product_tables(catalog, visitors, orders_by_day):
    items = pa.table(
        {
            "item_id": catalog.item_id,
            "item_name": catalog.item_name,
            "price": pa.array(catalog.price),
            "category_l1": pa.array(np.array(L1_NAMES, dtype=object)[catalog.category_l1], pa.string()),
            "category_l2": pa.array(np.array(L2_NAMES, dtype=object)[catalog.category_l2], pa.string()),
            "is_available": pa.array(catalog.is_available),
            "created_at": pa.array(catalog.created_at_us, pa.timestamp("us")),
        }
    )
    users = pa.table(
        {
            "user_id": visitors.user_id.slice(0, visitors.registered),
            "created_at": pa.array(visitors.user_created_at_us, pa.timestamp("us")),
        }
    )
    day_orders = [o.tables() for chunks in orders_by_day for o in chunks]
    orders = pa.concat_tables([placed for placed, _ in day_orders])
    order_items = pa.concat_tables([lines for _, lines in day_orders])
    return items, users, orders, order_items


def _replay(config: SimulationConfig, resolved: ResolvedConfig) -> SimulationSummary:
    log = read_real_log(
        config.from_log,
        config.log_format,
        columns=config.log_columns,
        event_map=config.log_event_map,
        timestamp_unit=config.log_timestamp_unit,
    )
    days = replay_log(log, resolved.export_db, resolved.product_db, resolved.property_id, resolved.timezone,
                      seed=config.seed)
    return SimulationSummary(
        resolved.export_db,
        resolved.product_db,
        resolved.property_id,
        resolved.timezone,
        tuple(DaySummary(late_events=0, **day) for day in days),
    )
