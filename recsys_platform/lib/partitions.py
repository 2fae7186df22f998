"""The one daily partitioning of the platform (property-local days of the GA4 export), and the range of
days a run covers."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from dagster import DailyPartitionsDefinition

from recsys_platform.settings import PlatformSettings


def daily_partitions(settings: PlatformSettings, include_open_day: bool = False) -> DailyPartitionsDefinition:
    """Property-local days up to yesterday, the last completed one (training works on completed days); with
    `include_open_day`, today's too: the GA4 tables' intraday refresh merges the day while it is still open."""
    return DailyPartitionsDefinition(
        start_date=settings.start_date.isoformat(),
        timezone=settings.timezone,
        end_offset=1 if include_open_day else 0,
    )


@dataclass(frozen=True)
class PartitionRange:
    """The property-local days of one run: a single partition, or a backfill's range."""

    first_day: dt.date
    last_day: dt.date

    @property
    def params(self) -> dict:
        return {"first_day": self.first_day, "last_day": self.last_day}

    @property
    def days(self) -> list[dt.date]:
        n = (self.last_day - self.first_day).days + 1
        return [self.first_day + dt.timedelta(days=i) for i in range(n)]

    @property
    def label(self) -> str:
        if self.first_day == self.last_day:
            return self.first_day.isoformat()
        return f"{self.first_day.isoformat()}..{self.last_day.isoformat()}"


def partition_range(context) -> PartitionRange:
    """The property-local days of the run's partition (or backfill range)."""
    window = context.partition_time_window
    return PartitionRange(window.start.date(), (window.end - dt.timedelta(days=1)).date())
