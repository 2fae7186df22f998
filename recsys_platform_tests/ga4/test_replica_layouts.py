"""The embedded default on a Datastream replica. One simulated shop is written twice: its product DB in the
simulator's layout (STRING keys "U0000089", TIMESTAMPs, BOOL flags) and as Datastream replicates a MySQL shop
DB (INT64 keys 89, DATETIMEs, TINYINT flags, `shop_` tables), with GA4 user and item ids to match. Each is
read through its own contract on DuckDB, and the two days' interactions are the same, key for key."""

import datetime as dt
import re

from dagster import materialize

from recsys_platform.lib.warehouse.duckdb_engine import DuckDBWarehouse
from recsys_platform.standins.ga4_simulator.simulation import SimulationConfig, simulate
from recsys_platform_tests.code_location import GA4_ASSET_NAMES, assets
from recsys_platform_tests.ga4_fixtures import PROPERTY_ID

FIRST = dt.date(2026, 3, 1)


def _interactions(layout: str, folder, monkeypatch) -> list[dict]:
    home = folder / layout
    simulate(SimulationConfig(home=home, days=2, start_date=FIRST, events_per_day=1_500, users=120, items=60,
                              seed=23, replica_layout=layout))
    monkeypatch.setenv("RECSYS_HOME", str(home))
    monkeypatch.setenv("RECSYS_PRODUCT_DB_CONTRACT", layout)  # each layout has its shipped contract
    warehouse = DuckDBWarehouse(ga4_property_id=PROPERTY_ID, warehouse_path=str(home / "warehouse.duckdb"),
                                export_path=str(home / "ga4_export.duckdb"),
                                product_db_path=str(home / "product_db.duckdb"))
    for day in (FIRST, FIRST + dt.timedelta(days=1)):
        materialize(assets(*GA4_ASSET_NAMES), partition_key=day.isoformat(), resources={"warehouse": warehouse})
    return warehouse.query("SELECT * FROM recsys.interactions").to_pylist()


def _as_integer_key(value):
    """The simulator layout's "U0000089" / "I000050" is the Datastream layout's 89 / 50."""
    match = re.fullmatch(r"[UI]0*(\d+)", value) if isinstance(value, str) else None
    return match.group(1) if match else value


def test_a_datastream_replica_gives_the_interactions_the_simulator_layout_gives(tmp_path, monkeypatch):
    simulator = _interactions("simulator", tmp_path, monkeypatch)
    datastream = _interactions("datastream", tmp_path, monkeypatch)
    sources = {(row["source"], row["EVENT_TYPE"]) for row in datastream}
    assert {("ga4", "view"), ("product_db", "purchase")} <= sources, sources
    expected = sorted((repr({k: _as_integer_key(v) for k, v in row.items()}) for row in simulator))
    assert sorted(repr(row) for row in datastream) == expected
