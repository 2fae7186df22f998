"""Simulated shops shared by the fault tests.

A shop is simulated once per session (the xdist workers share it through a file lock: whichever worker
comes first writes it, the other waits and reuses it); each test that spoils one works on its own copy.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from filelock import FileLock

from recsys_platform.standins.ga4_simulator.simulation import SimulationConfig, simulate

PROPERTY_ID = "123456789"  # the platform's default property: the code location reads its export
START = dt.date(2026, 1, 1)  # RECSYS_START_DATE's default: the first partition
DAYS = 4
# The volume guard compares a day with the median of the merged days before it once that median reaches
# ga4.yaml's merge.volume_guard.min_events (1,000): the shop's days must merge to more than that.
EVENTS_PER_DAY = 1_300
SHOP = dict(property_id=PROPERTY_ID, timezone="Asia/Seoul", start_date=START.isoformat(), days=DAYS,
            events_per_day=EVENTS_PER_DAY, seed=11, users=250, items=120,
            # Every row of a day comes from its own shard: a planted row is then identified without doubt.
            late_event_share=0.0, streaming_export=False)
SHOP_FILES = ("ga4_export.duckdb", "product_db.duckdb")


def day(n: int) -> dt.date:
    """The n-th simulated day (1-based)."""
    return START + dt.timedelta(days=n - 1)


def _shared_root(tmp_path_factory) -> Path:
    base = tmp_path_factory.getbasetemp()
    return base.parent if base.name.startswith("popen-gw") else base


@pytest.fixture(scope="session")
def pristine_shop(tmp_path_factory) -> Path:
    """The simulated export and product DB, written once for the whole session; never modified."""
    root = _shared_root(tmp_path_factory) / "faults_pristine_shop"
    with FileLock(str(root) + ".lock"):
        if not (root / "done").exists():
            shutil.rmtree(root, ignore_errors=True)
            simulate(SimulationConfig(home=root, **SHOP))
            (root / "done").write_text("ok")
    return root


def copy_shop(pristine: Path, home: Path) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    for name in SHOP_FILES:
        shutil.copy(pristine / name, home / name)
    return home


@pytest.fixture
def shop_home(pristine_shop, tmp_path, monkeypatch) -> Path:
    """A private RECSYS_HOME holding a copy of the simulated shop, for one test to spoil."""
    home = copy_shop(pristine_shop, tmp_path / "recsys")
    monkeypatch.setenv("RECSYS_HOME", str(home))
    monkeypatch.setenv("RECSYS_ENV", "local")
    return home
