"""Where the embedded default keeps its state, and the GA4 property the platform serves.

Everything is read from the environment (a `.env` file in the working directory works too), so the
same code runs under `make demo`, `dagster dev`, tests and production.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dotenv import load_dotenv

load_dotenv(override=False)

DEFAULT_PROPERTY_ID = "123456789"
DEFAULT_TIMEZONE = "Asia/Seoul"
DEFAULT_START_DATE = "2026-01-01"


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


def local_paths() -> LocalPaths:
    return LocalPaths(Path(os.environ.get("RECSYS_HOME", ".recsys")).resolve())


def recsys_env() -> str:
    env = os.environ.get("RECSYS_ENV", "local")
    if env not in ("local", "aws"):
        raise ValueError(f"RECSYS_ENV must be 'local' or 'aws', got {env!r}")
    return env


def ga4_property_id() -> str:
    value = os.environ.get("RECSYS_GA4_PROPERTY_ID", DEFAULT_PROPERTY_ID)
    if not value.isdigit():
        raise ValueError(f"RECSYS_GA4_PROPERTY_ID must be the numeric GA4 property id, got {value!r}")
    return value


def ga4_timezone() -> str:
    """The GA4 property's reporting time zone: `event_date` and the daily partitions are in it."""
    return os.environ.get("RECSYS_GA4_TIMEZONE", DEFAULT_TIMEZONE)


def partitions_start_date() -> str:
    return os.environ.get("RECSYS_START_DATE", DEFAULT_START_DATE)
