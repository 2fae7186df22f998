"""Property-local days: GA4's `event_date` and shards follow the property's reporting time zone."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# The simulated shop is in Seoul (the source article's), like the platform's embedded default.
DEFAULT_TIMEZONE = "Asia/Seoul"


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (expected an IANA name such as Asia/Seoul)") from None


def day_bounds_us(day: date, timezone: str) -> tuple[int, int]:
    """[start, end) of a property-local day in µs since the epoch (23 or 25 hours on DST changes)."""
    tz = zone(timezone)
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    following = day + timedelta(days=1)
    end = datetime(following.year, following.month, following.day, tzinfo=tz)
    return int(start.timestamp()) * 1_000_000, int(end.timestamp()) * 1_000_000
