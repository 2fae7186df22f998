from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from recsys_platform.standins.ga4_simulator.simulation import SimulationConfig, simulate

PROPERTY_ID = "987654321"
# Real public logs live beside the project, never inside it: ../shared/data/real from the project root.
REAL_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"
SMALL = dict(property_id=PROPERTY_ID, timezone="Asia/Seoul", start_date="2026-03-01", users=300, items=200)


@pytest.fixture(scope="session")
def small_run(tmp_path_factory):
    """Three days of a small shop, simulated once for the read-only tests."""
    home = tmp_path_factory.mktemp("sim")
    summary = simulate(SimulationConfig(home=home, days=3, events_per_day=4_000, seed=7, late_event_share=0.01,
                                        **SMALL))
    return summary


@pytest.fixture
def export(small_run):
    connection = duckdb.connect(str(small_run.export_db), read_only=True)
    yield connection
    connection.close()


@pytest.fixture
def product(small_run):
    connection = duckdb.connect(str(small_run.product_db), read_only=True)
    yield connection
    connection.close()
