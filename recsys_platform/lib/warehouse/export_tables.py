"""The tables of a GA4 export dataset, as its `__TABLES__` meta-table lists them.

GA4 writes three kinds of table per property-local day: the daily `events_YYYYMMDD`, the streaming
`events_intraday_YYYYMMDD` (deleted once the daily table is complete; the only copy on a day over a
standard property's 1M-event limit) and, for GA4 360, `events_fresh_YYYYMMDD`. Anything else in the
dataset (a mistyped `events_20260230`, a user's own table) is reported, never raised on.

Each GA4 property exports to its own dataset `analytics_<property id>`, with the same table names: a
deployment that reads several properties names a table `<property id>/<table id>` wherever the table id
alone would be ambiguous (sensor cursor, run keys, `sources` metadata). A deployment of one property keeps
the bare table id, so its names never change; a bare name read back belongs to the first property.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

DAILY, FRESH, INTRADAY = "daily", "fresh", "intraday"
# The order in which a day's sources are preferred: the daily table is the complete, final copy.
SOURCE_PREFERENCE = (DAILY, FRESH, INTRADAY)
# What every export table's name starts with: `_TABLE_SUFFIX` under the wildcard `events_*` is the rest.
EXPORT_TABLE_PREFIX = "events_"
_EVENTS_TABLE = re.compile(r"^events_(?:(intraday|fresh)_)?(\d{8})$")

_PROPERTY_ID = re.compile(r"^[0-9]+$")

# One metadata query per property and sensor tick: every table of the export dataset with its modification time.
_LIST_EXPORT_TABLES_SQL = """
SELECT table_id, last_modified_time, row_count
FROM {dataset}.__TABLES__
WHERE STARTS_WITH(table_id, 'events_')
ORDER BY table_id
"""


def export_dataset_name(property_id: str) -> str:
    """The export dataset of a GA4 property: `analytics_<property id>`."""
    if not isinstance(property_id, str) or not _PROPERTY_ID.match(property_id):
        raise ValueError(f"GA4 property id must be numeric, got {property_id!r}")
    return f"analytics_{property_id}"


def list_export_tables_sql(property_id: str) -> str:
    return _LIST_EXPORT_TABLES_SQL.format(dataset=export_dataset_name(property_id))


def qualified(property_id: str, name: str, several_properties: bool) -> str:
    """`name` (a table id, a day) as reported: `<property id>/<name>` when the deployment reads several
    properties, else `name` unchanged."""
    return f"{property_id}/{name}" if several_properties else name


def tables_version(tables: Mapping[str, ExportTable], several_properties: bool) -> str:
    """What a day's run reads, as a run key: each property's table at its modification time."""
    return "+".join(f"{qualified(p, t.table_id, several_properties)}@{t.last_modified_ms}"
                    for p, t in sorted(tables.items()))


def unqualified(key: str, first_property: str) -> tuple[str, str]:
    """(property id, name) of a name `qualified` wrote; a bare name belongs to the first property."""
    property_id, separator, name = key.partition("/")
    return (property_id, name) if separator else (first_property, key)


@dataclass(frozen=True)
class ExportTable:
    table_id: str
    kind: str  # daily | fresh | intraday
    day: dt.date
    last_modified_ms: int
    row_count: int

    @property
    def suffix(self) -> str:
        """What `_TABLE_SUFFIX` is for this table under the wildcard `events_*`."""
        return self.table_id[len(EXPORT_TABLE_PREFIX):]


@dataclass(frozen=True)
class ExportListing:
    tables: tuple[ExportTable, ...] = ()
    unrecognised: tuple[str, ...] = ()  # events_* tables whose name is not a valid day

    def by_day(self) -> dict[dt.date, dict[str, ExportTable]]:
        days: dict[dt.date, dict[str, ExportTable]] = {}
        for table in self.tables:
            days.setdefault(table.day, {})[table.kind] = table
        return days


@dataclass(frozen=True)
class DaySource:
    """Which table a day is merged from, and why."""

    day: dt.date
    table: ExportTable | None
    reason: str
    waiting: bool = False  # no table may be used yet (e.g. intraday within its grace period)
    still_open: bool = False  # the day has not ended: only its intraday table exists, and it still grows

    @property
    def kind(self) -> str | None:
        return self.table.kind if self.table else None


@dataclass(frozen=True)
class SourcePolicy:
    """The daily table when it exists; the 360 fresh table next; the intraday table only once the daily one
    is overdue by `intraday_grace_hours` after the day ended (a standard property's over-limit day)."""

    intraday_grace_hours: float = 36.0
    use_fresh: bool = True


def listing_from_rows(rows: list[dict]) -> ExportListing:
    tables, unrecognised = [], []
    for row in rows:
        table_id = row["table_id"]
        match = _EVENTS_TABLE.match(table_id)
        day = None
        if match:
            try:
                day = dt.datetime.strptime(match.group(2), "%Y%m%d").date()
            except ValueError:
                day = None
        if day is None:
            unrecognised.append(table_id)
            continue
        tables.append(ExportTable(table_id, match.group(1) or DAILY, day, int(row["last_modified_time"] or 0),
                                  int(row["row_count"] or 0)))
    return ExportListing(tuple(tables), tuple(unrecognised))


def choose_source(day: dt.date, available: dict[str, ExportTable], policy: SourcePolicy,
                  hours_since_day_ended: float) -> DaySource:
    if DAILY in available:
        return DaySource(day, available[DAILY], "the daily table")
    if policy.use_fresh and FRESH in available:
        return DaySource(day, available[FRESH], "the fresh daily table (GA4 360); the daily one has not landed")
    if INTRADAY in available:
        if hours_since_day_ended < 0:
            return DaySource(day, available[INTRADAY], "the intraday table: the day is still open (its daily "
                             "table replaces it once the day has been exported)", still_open=True)
        if hours_since_day_ended >= policy.intraday_grace_hours:
            return DaySource(day, available[INTRADAY],
                             f"the intraday table: no daily table {hours_since_day_ended:.0f} h after the day "
                             f"ended (grace {policy.intraday_grace_hours:g} h; over the daily export limit?)")
        return DaySource(day, None, f"only the intraday table so far; the daily one is awaited for "
                                    f"{policy.intraday_grace_hours:g} h after the day ends", waiting=True)
    return DaySource(day, None, "no table for this day yet", waiting=True)


def hours_since_day_ended(day: dt.date, timezone: str, now: dt.datetime) -> float:
    """Hours since the property-local `day` ended (negative while it is still open)."""
    day_end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=ZoneInfo(timezone))
    return (now - day_end).total_seconds() / 3600


def sources_of_day(day: dt.date, by_property: Mapping[str, Mapping[dt.date, dict[str, ExportTable]]],
                   policy: SourcePolicy, timezone: str, now: dt.datetime) -> dict[str, DaySource]:
    """Each property's source for `day`; `by_property` holds every property's `ExportListing.by_day()`."""
    hours = hours_since_day_ended(day, timezone, now)
    return {property_id: choose_source(day, by_day.get(day, {}), policy, hours)
            for property_id, by_day in by_property.items()}


@dataclass
class ExportDrift:
    """Columns a merge needs that some export tables lack."""

    missing_required: dict[str, list[str]] = field(default_factory=dict)  # table_id -> columns
    absent_optional: list[str] = field(default_factory=list)  # absent from every table read
