"""Property-local days: GA4's `event_date` and shards follow the property's reporting time zone."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from recsys_platform.settings import ga4_timezone


def zone(name: str | None = None) -> ZoneInfo:
    name = name or ga4_timezone()
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (expected an IANA name such as Asia/Seoul)") from None


def day_bounds_us(day: date, timezone: str | None = None) -> tuple[int, int]:
    """[start, end) of a property-local day in µs since the epoch (23 or 25 hours on DST changes)."""
    tz = zone(timezone)
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    following = day + timedelta(days=1)
    end = datetime(following.year, following.month, following.day, tzinfo=tz)
    return int(start.timestamp()) * 1_000_000, int(end.timestamp()) * 1_000_000
