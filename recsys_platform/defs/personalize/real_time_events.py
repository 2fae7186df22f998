"""The real-time path: GA4 events recorded into Personalize with PutEvents (personalize-events).

A campaign folds a user's recorded events into their next recommendations without a retraining, and
Personalize adds them to the Interactions dataset, so they also join every later training. Hence the
one rule of this module: events of the platform holdout's users are never recorded. Their events from
the holdout cut on are the targets every model is scored on; recorded, they would be trained on (and an
interactions filter such as "exclude purchased" would hide the very items they are scored on). The
platform chooses to skip them rather than make the holdout tolerate them: Personalize cannot un-record
an event except by deleting the user's whole history (a data deletion job). A shop's app that records
events itself must skip the same users (`held_out` in holdout_scoring.py is the SQL predicate).

Events are mapped through the taxonomy (GA4 event -> EVENT_TYPE, EVENT_VALUE from the taxonomy's column)
and named by the USER_ID the interactions table gives the visitor, so recorded events and bulk rows
describe the same users. `recsys-platform replay-events` replays a GA4 intraday table this way.

Recorded events are not replaced by a FULL import ("Data you imported individually is not replaced"):
an event recorded today and imported in bulk tomorrow (from the daily export) is in the dataset twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import groupby

from recsys_platform.defs.personalize.personalize_setup import PersonalizeSetup
from recsys_platform.lib.sql_files import read_sql
from recsys_platform.lib.warehouse.interface import Warehouse

# PutEvents takes 1 to 10 events per call (API reference, PutEvents: eventList).
MAX_EVENTS_PER_PUT = 10
INTRADAY_TABLE = re.compile(r"^events_intraday_\d{8}$")
_TABLE_PLACEHOLDER = "events_intraday_table"


@dataclass(frozen=True)
class RecordedEvent:
    """One event for PutEvents, in Personalize's terms."""

    user_id: str
    session_id: str
    item_id: str
    sent_at: dt.datetime
    event_type: str
    event_value: float | None
    event_id: str


@dataclass
class IntradayEvents:
    table: str
    events: list[RecordedEvent] = field(default_factory=list)
    item_rows: int = 0  # item rows of tracked events read from the table
    held_out_users: set[str] = field(default_factory=set)
    held_out_events: int = 0  # left out: events of the holdout's users

    @property
    def users(self) -> int:
        return len({event.user_id for event in self.events})


def intraday_table(day: dt.date) -> str:
    return f"events_intraday_{day.strftime('%Y%m%d')}"


def read_intraday_events(warehouse: Warehouse, table: str, setup: PersonalizeSetup,
                         event_types: dict[str, str], event_values: dict[str, str]) -> IntradayEvents:
    """The events of one intraday table (`events_intraday_YYYYMMDD` of the GA4 export) for PutEvents.

    `event_types` maps GA4 event names to EVENT_TYPEs, `event_values` GA4 event names to the item column
    (price, item_revenue, quantity) that feeds EVENT_VALUE: the taxonomy's mapping."""
    if not INTRADAY_TABLE.match(table):
        raise ValueError(f"{table!r} is not a GA4 intraday table name (events_intraday_YYYYMMDD)")
    sql = read_sql(__file__, "personalize_intraday_events.sql").replace(_TABLE_PLACEHOLDER, table)
    params = {"ga4_events": sorted(event_types), "holdout_seed": setup.holdout.seed,
              "holdout_percent": setup.holdout.percent_users}
    found = IntradayEvents(table)
    for batch in warehouse.iter_batches(sql, params):
        for row in batch.to_pylist():
            found.item_rows += 1
            if row["HELD_OUT"]:
                found.held_out_users.add(row["USER_ID"])
                found.held_out_events += 1
                continue
            value = row[event_values[row["GA4_EVENT"]].upper()]
            micros = int(row["EVENT_TIMESTAMP_MICROS"])
            identity = f"{row['SESSION_ID']}|{micros}|{row['GA4_EVENT']}|{row['ITEM_ID']}"
            found.events.append(RecordedEvent(
                user_id=row["USER_ID"], session_id=row["SESSION_ID"], item_id=row["ITEM_ID"],
                sent_at=dt.datetime.fromtimestamp(micros / 1_000_000, tz=dt.timezone.utc),
                event_type=event_types[row["GA4_EVENT"]],
                event_value=None if value is None else float(value),
                # The same GA4 event replayed twice gets the same eventId, so the two can be told apart.
                event_id=hashlib.sha256(identity.encode()).hexdigest()[:32],
            ))
    return found


def put_events(events_client, tracking_id: str, events: Iterable[RecordedEvent],
               log: Callable[[str], None] | None = None) -> Counter:
    """Records the events with PutEvents, up to 10 per call, one user's session per call, oldest first.
    Returns the number of calls and events per event type."""
    sent: Counter = Counter()
    ordered = sorted(events, key=lambda e: (e.user_id, e.session_id, e.sent_at, e.item_id))
    for (user_id, session_id), group in groupby(ordered, key=lambda e: (e.user_id, e.session_id)):
        session = list(group)
        for start in range(0, len(session), MAX_EVENTS_PER_PUT):
            chunk = session[start:start + MAX_EVENTS_PER_PUT]
            event_list = []
            for event in chunk:
                entry = {"eventId": event.event_id, "eventType": event.event_type, "itemId": event.item_id,
                         "sentAt": event.sent_at}
                if event.event_value is not None:
                    entry["eventValue"] = event.event_value
                event_list.append(entry)
            events_client.put_events(trackingId=tracking_id, userId=user_id, sessionId=session_id,
                                     eventList=event_list)
            sent["calls"] += 1
            sent.update(event.event_type for event in chunk)
        if log is not None:
            log(f"{user_id}: {len(session)} event(s) of session {session_id}")
    return sent
