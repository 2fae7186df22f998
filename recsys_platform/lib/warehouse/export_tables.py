"""The tables of a GA4 export dataset, as its `__TABLES__` meta-table lists them.

GA4 writes three kinds of table per property-local day: the daily `events_YYYYMMDD`, the streaming
`events_intraday_YYYYMMDD` (deleted once the daily table is complete; the only copy on a day over a
standard property's 1M-event limit) and, for GA4 360, `events_fresh_YYYYMMDD`. Anything else in the
dataset (a mistyped `events_20260230`, a user's own table) is reported, never raised on.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

DAILY, FRESH, INTRADAY = "daily", "fresh", "intraday"
# The order in which a day's sources are preferred: the daily table is the complete, final copy.
SOURCE_PREFERENCE = (DAILY, FRESH, INTRADAY)
_EVENTS_TABLE = re.compile(r"^events_(?:(intraday|fresh)_)?(\d{8})$")

# One metadata query per sensor tick: every table of the export dataset with its modification time.
LIST_EXPORT_TABLES_SQL = """
SELECT table_id, last_modified_time, row_count
FROM analytics.__TABLES__
WHERE STARTS_WITH(table_id, 'events_')
ORDER BY table_id
"""


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
        return self.table_id[len("events_"):]


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
        if hours_since_day_ended >= policy.intraday_grace_hours:
            return DaySource(day, available[INTRADAY],
                             f"the intraday table: no daily table {hours_since_day_ended:.0f} h after the day "
                             f"ended (grace {policy.intraday_grace_hours:g} h; over the daily export limit?)")
        return DaySource(day, None, f"only the intraday table so far; the daily one is awaited for "
                                    f"{policy.intraday_grace_hours:g} h after the day ends", waiting=True)
    return DaySource(day, None, "no table for this day yet", waiting=True)


@dataclass
class ExportDrift:
    """Columns a merge needs that some export tables lack."""

    missing_required: dict[str, list[str]] = field(default_factory=dict)  # table_id -> columns
    absent_optional: list[str] = field(default_factory=list)  # absent from every table read
