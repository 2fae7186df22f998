"""The event taxonomy (taxonomy.yaml) as typed data."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from recsys_platform.lib.yaml_files import parse_yaml

_TAXONOMY_FILE = Path(__file__).with_name("taxonomy.yaml")
_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")
_EVENT_VALUE_COLUMNS = ("price", "item_revenue", "quantity")


@dataclass(frozen=True)
class TrackedEvent:
    ga4_event: str
    asset: str
    event_type: str
    event_value: str
    description: str


@dataclass(frozen=True)
class Taxonomy:
    events: tuple[TrackedEvent, ...]
    product_db_purchase_event_type: str

    def by_asset(self, asset: str) -> TrackedEvent:
        for event in self.events:
            if event.asset == asset:
                return event
        raise KeyError(f"no tracked event builds asset {asset!r}")

    @property
    def event_type_by_ga4_event(self) -> dict[str, str]:
        return {event.ga4_event: event.event_type for event in self.events}

    @property
    def event_types(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e.event_type for e in self.events))


def parse_taxonomy(raw: dict) -> Taxonomy:
    events = []
    for entry in raw.get("events") or []:
        event = TrackedEvent(
            ga4_event=entry["ga4_event"],
            asset=entry["asset"],
            event_type=entry["event_type"],
            event_value=entry.get("event_value", "price"),
            description=entry.get("description", ""),
        )
        for field in ("ga4_event", "asset", "event_type"):
            if not _IDENTIFIER.match(getattr(event, field)):
                raise ValueError(f"taxonomy: {field} {getattr(event, field)!r} is not a lower-case identifier")
        if event.event_value not in _EVENT_VALUE_COLUMNS:
            raise ValueError(
                f"taxonomy: event_value of {event.ga4_event} must be one of {_EVENT_VALUE_COLUMNS}, "
                f"got {event.event_value!r}"
            )
        events.append(event)
    if not events:
        raise ValueError("taxonomy: no events")
    for field in ("ga4_event", "asset"):
        values = [getattr(e, field) for e in events]
        if len(values) != len(set(values)):
            raise ValueError(f"taxonomy: duplicate {field} in {values}")
    return Taxonomy(tuple(events), raw.get("product_db_purchase_event_type", "purchase"))


@lru_cache(maxsize=1)
def load_taxonomy() -> Taxonomy:
    return parse_taxonomy(parse_yaml(_TAXONOMY_FILE.read_text()))
