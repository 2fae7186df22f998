"""`simulate`: N days of a synthetic shop's GA4 export plus its product DB.

Each property-local day is generated from its own random stream (seed, day), so a day's data does not
depend on which other days were simulated, and the same seed gives identical rows. A day is written in
chunks (bounded memory at 1M events a day), one stream of chunks feeding all of the day's tables; after
day D is written, a few late events are added to D-1 and D-2 by re-exporting them, as GA4 does.

What the export holds, by default (realities every property has):
- `events_YYYYMMDD` for every day, and `events_intraday_YYYYMMDD` for the last day only: the day still
  being streamed, whose daily table is also there (GA4 deletes an intraday table once the day's daily
  table is complete, so for a while both exist; earlier days' intraday tables are gone).
- The columns of each table's date (`ga4_schema.events_schema`): a backfill across 2023-05-29,
  2023-07-24 or 2024-07-19 crosses a schema change.
- `privacy_info` on every row; ~3% of sessions are consent-denied cookieless pings (no user_pseudo_id,
  user_id or session parameters).
- Query strings in page URLs: utm/gclid on campaign landings, ~1% of web events with an email, a token or
  an order id, which also reach the next page's `page_referrer`; a few registered users whose GA4
  `user_id` is their login email.
- An `erasure_requests` table in the product DB.
Opt-in: GA4 360's `events_fresh_YYYYMMDD` tables, days over the daily export limit (no daily table, the
intraday table the only copy), Android and iOS app streams (optionally in a second property's dataset),
and the Datastream replica layout of the product DB (see `product_store`). `odd_rows` plants single
production oddities into an existing export or product DB.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
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
from recsys_platform.standins.ga4_simulator.export_store import (
    TableTarget,
    drop_table,
    list_tables,
    write_tables,
)
from recsys_platform.standins.ga4_simulator.ga4_rows import build_events_table
from recsys_platform.standins.ga4_simulator.ga4_schema import (
    DAILY,
    FRESH,
    INTRADAY,
    dataset_name,
    parse_table_name,
    shard_name,
)
from recsys_platform.standins.ga4_simulator.late_events import reexport_shard
from recsys_platform.standins.ga4_simulator.product_store import REPLICA_LAYOUTS, SIMULATOR, write_product_db
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
    # --- GA4 export realities every property has (on by default, at realistic shares) ---
    consent_denied_share: float = 0.03  # sessions sent as cookieless pings (consent mode, denied)
    pii_url_share: float = 0.01  # web events whose URL carries an email, a token or an order id
    email_user_id_share: float = 0.002  # registered users whose GA4 user_id is their login email
    streaming_export: bool = True  # events_intraday_YYYYMMDD (the last day's is still there)
    erasure_request_share: float = 0.005  # registered users (and half as many browsers) asking for erasure
    # --- opt-in ---
    fresh_daily_export: bool = False  # GA4 360: events_fresh_YYYYMMDD for every day
    over_limit_days: Iterable[date | str] = ()  # days over the daily export limit: no daily table
    daily_export_limit: int | None = None  # e.g. 1_000_000 (standard property): no daily table above it
    app_streams: bool = False  # Android and iOS app streams besides the web stream
    app_session_share: float = 0.4  # sessions of visitors with a phone or tablet that happen in the app
    app_property_id: str | None = None  # the app streams in their own property (dataset) instead
    replica_layout: str = SIMULATOR  # product DB layout: "simulator" or "datastream"

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
        for name in ("consent_denied_share", "pii_url_share", "email_user_id_share", "erasure_request_share",
                     "app_session_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.replica_layout not in REPLICA_LAYOUTS:
            raise ValueError(f"replica_layout must be one of {REPLICA_LAYOUTS}, got {self.replica_layout!r}")
        if self.daily_export_limit is not None and self.daily_export_limit < 1:
            raise ValueError(f"daily_export_limit must be at least 1, got {self.daily_export_limit}")
        app_property = None
        if self.app_property_id is not None:
            app_property = str(self.app_property_id)
            dataset_name(app_property)  # validates
            if not self.app_streams:
                raise ValueError("app_property_id needs app_streams (it is where the app streams go)")
            if app_property == property_id:
                raise ValueError("app_property_id must differ from property_id")
        over_limit = set()
        for day in self.over_limit_days:
            try:
                over_limit.add(date.fromisoformat(day) if isinstance(day, str) else day)
            except ValueError:
                raise ValueError(f"over_limit_days must be YYYY-MM-DD dates, got {day!r}") from None
        return ResolvedConfig(
            export_db=Path(self.export_db) if self.export_db else home / EXPORT_DB_FILE,
            product_db=Path(self.product_db) if self.product_db else home / PRODUCT_DB_FILE,
            property_id=property_id,
            timezone=timezone,
            start_date=start,
            app_property_id=app_property,
            over_limit_days=frozenset(over_limit),
        )


@dataclass(frozen=True)
class ResolvedConfig:
    export_db: Path
    product_db: Path
    property_id: str
    timezone: str
    start_date: date
    app_property_id: str | None = None
    over_limit_days: frozenset[date] = frozenset()

    @property
    def property_ids(self) -> tuple[str, ...]:
        return (self.property_id,) + ((self.app_property_id,) if self.app_property_id else ())


@dataclass(frozen=True)
class DaySummary:
    day: date
    shard: str | None  # the daily table events_YYYYMMDD, None when the day has none (over the limit)
    events: int  # events of the day written (duplicates included, late arrivals not), all streams
    users: int  # distinct user_pseudo_id (cookieless pings have none)
    items: int  # distinct item ids in the day's item rows
    orders: int  # product DB orders placed that day
    late_events: int  # events this day's re-exports added to earlier shards
    # The day's export tables after the run, dataset-qualified: analytics_<id>.events_YYYYMMDD, ...
    tables: tuple[str, ...] = ()
    # Tables written for the day and deleted since (intraday tables whose daily table completed).
    deleted_tables: tuple[str, ...] = ()


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
        """The daily tables written (a day over the export limit has none)."""
        return tuple(d.shard for d in self.days if d.shard)

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(t for d in self.days for t in d.tables)

    def table(self) -> str:
        lines = [f"{'day':<12}{'events':>10}{'late+':>8}{'users':>8}{'items':>8}{'orders':>8}  tables"]
        for d in self.days:
            kinds = ", ".join(t.split(".", 1)[1] if len(self.datasets) == 1 else t for t in d.tables)
            lines.append(f"{d.day.isoformat():<12}{d.events:>10}{d.late_events:>8}{d.users:>8}{d.items:>8}"
                         f"{d.orders:>8}  {kinds or '(none)'}")
        return "\n".join(lines)

    @property
    def datasets(self) -> tuple[str, ...]:
        return tuple(sorted({t.split(".", 1)[0] for t in self.tables}))


def simulate(config: SimulationConfig) -> SimulationSummary:
    """Write the GA4 export tables and the product DB described by `config`; see the module docstring."""
    resolved = config.resolved()
    if config.from_log is not None:
        return _replay(config, resolved)
    numeric_ids = config.replica_layout != SIMULATOR
    behaviour = replace(
        config.behaviour,
        consent_denied_share=config.consent_denied_share,
        pii_url_share=config.pii_url_share,
        email_user_id_share=config.email_user_id_share,
        app_session_share=config.app_session_share if config.app_streams else 0.0,
    )
    epoch_start, _ = day_bounds_us(resolved.start_date, resolved.timezone)
    catalog = build_catalog(config.items, config.seed, epoch_start, behaviour, numeric_ids)
    visitors = build_visitors(config.users, config.seed, epoch_start, behaviour, numeric_ids)
    session_counter = np.zeros(len(visitors), dtype=np.int64)
    late_per_shard = int(round(config.late_event_share * config.events_per_day / len(LATE_DAYS)))
    last_day = resolved.start_date + timedelta(days=config.days - 1)
    orders_by_day: list = []
    stats = []
    daily_rows: dict[tuple[str, date], int] = {}  # rows of the daily tables written so far
    deleted: dict[date, list[str]] = {}
    for index in range(config.days):
        day = resolved.start_date + timedelta(days=index)
        start_us, end_us = day_bounds_us(day, resolved.timezone)
        rng = np.random.default_rng([config.seed, day.toordinal()])
        day_stats = _DayStats()
        chunks = (
            _route(day_stats.observe(build_events_table(
                batch.take(duplicate_positions(len(batch), behaviour.duplicate_share, rng))), orders), resolved)
            for batch, orders in generate_day(
                f"{day:%Y%m%d}", start_us, (end_us - start_us) // 1_000_000, config.events_per_day, catalog,
                visitors, session_counter, rng, behaviour, config.chunk_events, numeric_ids,
            )
        )
        written = write_tables(resolved.export_db, day, chunks, _targets(config, resolved, day, last_day),
                               daily_limit=config.daily_export_limit)
        for target, row in written.items():
            if target.kind == DAILY and row is not None:
                daily_rows[(target.property_id, day)] = row["row_count"]
        # Earlier days' daily tables are complete: their intraday tables go (the last day's stays).
        for property_id in resolved.property_ids:
            for earlier, table in _finished_intraday(resolved.export_db, property_id, day):
                deleted.setdefault(earlier, []).append(f"{dataset_name(property_id)}.{table}")
        late_added = 0
        for lag in LATE_DAYS:
            earlier = day - timedelta(days=lag)
            shares = {p: daily_rows[(p, earlier)] for p in resolved.property_ids if (p, earlier) in daily_rows}
            for property_id, rows in shares.items():
                extra = int(round(late_per_shard * rows / sum(shares.values())))
                if not extra:
                    continue
                row = reexport_shard(resolved.export_db, property_id, earlier, extra,
                                     seed=config.seed * 1_000 + lag, timezone=resolved.timezone)
                late_added += row["row_count"] - daily_rows[(property_id, earlier)]
                daily_rows[(property_id, earlier)] = row["row_count"]
        orders_by_day.append(day_stats.orders)
        stats.append((day, day_stats, late_added))
    items, users, orders, order_items = _product_tables(catalog, visitors, orders_by_day)
    write_product_db(resolved.product_db, items, users, orders, order_items,
                     erasure_requests=_erasure_requests(config, resolved, visitors, last_day),
                     layout=config.replica_layout)
    present = _tables_by_day(resolved)
    summaries = tuple(
        DaySummary(day, shard_name(day) if (resolved.property_id, day) in daily_rows else None, day_stats.events,
                   day_stats.distinct_users(), day_stats.distinct_items(), day_stats.order_count, late_added,
                   tuple(present.get(day, ())), tuple(deleted.get(day, ())))
        for day, day_stats, late_added in stats
    )
    return SimulationSummary(resolved.export_db, resolved.product_db, resolved.property_id, resolved.timezone,
                             summaries)


def _targets(config: SimulationConfig, resolved: ResolvedConfig, day: date, last_day: date) -> list[TableTarget]:
    """The tables a day's events go to. The streaming (intraday) table is written where it will be seen:
    the last day (still being streamed), a day over the export limit (its only copy), and every day when
    a limit is set (whether a day exceeds it is known once it is written)."""
    over_limit = day in resolved.over_limit_days
    streamed = config.streaming_export and (
        day == last_day or over_limit or config.daily_export_limit is not None)
    targets = []
    for property_id in resolved.property_ids:
        if streamed:
            targets.append(TableTarget(property_id, INTRADAY))
        if config.fresh_daily_export:
            targets.append(TableTarget(property_id, FRESH))
        if not over_limit:
            targets.append(TableTarget(property_id, DAILY))
    return targets


def _route(table: pa.Table, resolved: ResolvedConfig) -> dict[str, pa.Table]:
    """A chunk's rows by property: the app streams' rows go to the app property when there is one."""
    if resolved.app_property_id is None:
        return {resolved.property_id: table}
    web = pc.equal(table.column("platform"), "WEB")
    return {resolved.property_id: table.filter(web), resolved.app_property_id: table.filter(pc.invert(web))}


def _finished_intraday(export_db: Path, property_id: str, today: date) -> list[tuple[date, str]]:
    """Delete the intraday tables of days before `today` whose daily table exists; returns them."""
    tables = list_tables(export_db, property_id)
    dailies = {parse_table_name(t)[1] for t in tables if parse_table_name(t)[0] == DAILY}
    done = []
    for table in tables:
        kind, day = parse_table_name(table)
        if kind == INTRADAY and day < today and day in dailies:
            drop_table(export_db, property_id, table)
            done.append((day, table))
    return done


def _tables_by_day(resolved: ResolvedConfig) -> dict[date, list[str]]:
    present: dict[date, list[str]] = {}
    for property_id in resolved.property_ids:
        for table in list_tables(resolved.export_db, property_id):
            _, day = parse_table_name(table)
            present.setdefault(day, []).append(f"{dataset_name(property_id)}.{table}")
    return present


def _erasure_requests(config: SimulationConfig, resolved: ResolvedConfig, visitors, last_day: date) -> pa.Table:
    """Erasure requests placed during the simulated days: a share of registered users (with the pseudo
    id of their browser) and half that share of never-registered browsers (pseudo id only); at least one
    request when the share is not 0."""
    rng = np.random.default_rng([config.seed, 6])
    total = len(visitors)
    registered = np.arange(total) < visitors.registered
    share = np.where(registered, config.erasure_request_share, config.erasure_request_share / 2)
    chosen = np.flatnonzero(rng.random(total) < share)
    if not len(chosen) and config.erasure_request_share > 0:  # a small shop still gets its one request
        chosen = rng.integers(0, visitors.registered, 1)
    start_us, _ = day_bounds_us(resolved.start_date, resolved.timezone)
    _, end_us = day_bounds_us(last_day, resolved.timezone)
    return pa.table({
        "user_id": visitors.user_id.take(pa.array(chosen)),
        "user_pseudo_id": visitors.pseudo_id.take(pa.array(chosen)),
        "requested_at": pa.array(rng.integers(start_us, end_us, len(chosen)), pa.timestamp("us")),
    })


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
        self._users.append(pc.unique(table.column("user_pseudo_id")).drop_null())
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
    if config.replica_layout != SIMULATOR:
        raise ValueError("a replayed log writes the simulator layout of the product DB (its ids need not be "
                         "integers); replica_layout='datastream' needs synthetic data")
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
        tuple(DaySummary(late_events=0, tables=(f"{dataset_name(resolved.property_id)}.{day['shard']}",), **day)
              for day in days),
    )
