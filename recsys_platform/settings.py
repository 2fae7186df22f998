"""The deployment's settings, read from the environment (or a `.env` file) when the definitions are built.

Nothing here is read at import: `PlatformSettings.from_environment()` is called by `definitions.py`, the
command line and tests, each at the moment it builds what it needs, so a changed `RECSYS_HOME` or time
zone is never shadowed by an earlier import.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEPLOYMENTS = ("local", "aws")
DEFAULT_PROPERTY_ID = "123456789"
# The embedded default simulates a Korean shop (the source article's); production must say its own zone.
LOCAL_DEFAULT_TIMEZONE = "Asia/Seoul"
DEFAULT_START_DATE = "2026-01-01"


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable and what it expects."""


@dataclass(frozen=True)
class LocalPaths:
    """Files of the embedded default, all under one state folder (`RECSYS_HOME`, default `.recsys`).

    The GA4 export, the product DB and the platform's own tables live in separate DuckDB files:
    DuckDB lets only one process open a file while it writes, so the sensor (which only lists the
    export) never waits on a run that writes the platform's tables.
    """

    home: Path

    @property
    def ga4_export_db(self) -> Path:
        return self.home / "ga4_export.duckdb"

    @property
    def product_db(self) -> Path:
        return self.home / "product_db.duckdb"

    @property
    def warehouse_db(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def lake(self) -> Path:
        return self.home / "lake"

    @property
    def personalize_state(self) -> Path:
        return self.home / "personalize"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster_home"

    @property
    def bench(self) -> Path:
        return self.home / "bench"


@dataclass(frozen=True)
class PlatformSettings:
    """What every definition depends on: the deployment, the GA4 properties and their calendar."""

    deployment: str
    home: Path
    # Every GA4 property merged into the one ga4_events table; most deployments read one.
    ga4_property_ids: tuple[str, ...]
    timezone: str
    start_date: dt.date
    # A shipped product DB contract's name (simulator, datastream) or a YAML file (defs/product_db/contracts/).
    product_db_contract: str = "simulator"

    @property
    def paths(self) -> LocalPaths:
        return LocalPaths(self.home)

    @property
    def ga4_property_id(self) -> str:
        """The first GA4 property (the one RECSYS_GA4_PROPERTY_ID names)."""
        return self.ga4_property_ids[0]

    @property
    def export_dataset(self) -> str:
        return f"analytics_{self.ga4_property_id}"

    @property
    def export_datasets(self) -> tuple[str, ...]:
        return tuple(f"analytics_{p}" for p in self.ga4_property_ids)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None, read_dotenv: bool = True) -> PlatformSettings:
        """Settings from `environ` (default: the process environment, after loading `.env` if present)."""
        if environ is None:
            if read_dotenv:
                from dotenv import load_dotenv

                load_dotenv(override=False)
            environ = os.environ
        deployment = environ.get("RECSYS_ENV", "local")
        if deployment not in DEPLOYMENTS:
            raise SettingsError(f"RECSYS_ENV must be one of {DEPLOYMENTS}, got {deployment!r}")
        timezone = environ.get("RECSYS_GA4_TIMEZONE")
        if not timezone:
            if deployment != "local":
                # Partitions, schedules, the day of each DB purchase and the holdout all follow it: a wrong
                # default would misplace data without any error, so production must say it.
                raise SettingsError(
                    "RECSYS_GA4_TIMEZONE is required when RECSYS_ENV=aws: set it to the GA4 property's "
                    "reporting time zone (Admin > Property details), e.g. Europe/Berlin"
                )
            timezone = LOCAL_DEFAULT_TIMEZONE
        return cls(
            deployment=deployment,
            home=Path(environ.get("RECSYS_HOME", ".recsys")).resolve(),
            ga4_property_ids=_property_ids(environ.get("RECSYS_GA4_PROPERTY_IDS"),
                                           environ.get("RECSYS_GA4_PROPERTY_ID")),
            timezone=_timezone(timezone),
            start_date=_date("RECSYS_START_DATE", environ.get("RECSYS_START_DATE", DEFAULT_START_DATE)),
            # The embedded default's replica is the simulator's; production's is a Datastream replica.
            product_db_contract=environ.get("RECSYS_PRODUCT_DB_CONTRACT")
            or ("simulator" if deployment == "local" else "datastream"),
        )


def _property_ids(listed: str | None, single: str | None) -> tuple[str, ...]:
    """RECSYS_GA4_PROPERTY_IDS (comma-separated, first property first) or RECSYS_GA4_PROPERTY_ID (one)."""
    if not listed:
        value = single or DEFAULT_PROPERTY_ID
        if not _is_property_id(value):
            raise SettingsError(f"RECSYS_GA4_PROPERTY_ID must be the numeric GA4 property id, got {value!r}")
        return (value,)
    ids = tuple(part.strip() for part in listed.split(","))
    for value in ids:
        if not _is_property_id(value):
            raise SettingsError(f"RECSYS_GA4_PROPERTY_IDS must be numeric GA4 property ids separated by commas; "
                                f"{value!r} in {listed!r} is not one")
    duplicates = sorted({p for p in ids if ids.count(p) > 1})
    if duplicates:
        raise SettingsError(f"RECSYS_GA4_PROPERTY_IDS names {', '.join(duplicates)} more than once: {listed!r}")
    if single and single != ids[0]:
        raise SettingsError(f"RECSYS_GA4_PROPERTY_IDS={listed} and RECSYS_GA4_PROPERTY_ID={single} disagree: set "
                            "only RECSYS_GA4_PROPERTY_IDS (or make RECSYS_GA4_PROPERTY_ID its first id)")
    return ids


def _is_property_id(value: str) -> bool:
    return value.isascii() and value.isdigit()


def _timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"RECSYS_GA4_TIMEZONE {name!r} is not an IANA time zone such as Asia/Seoul") from None
    return name


def _date(variable: str, value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise SettingsError(f"{variable} must be a date like 2026-01-01, got {value!r}") from None
