"""Each odd-row function plants exactly its one oddity into an existing export or product DB, leaves the
rest as it was, and (for the export) bumps the table's `__TABLES__` row as a GA4 rewrite does, so a sensor
keyed on last_modified_time sees it."""

from __future__ import annotations

import re
import shutil
from datetime import date

import duckdb
import pytest

from recsys_platform.standins.ga4_simulator import odd_rows
from recsys_platform.standins.ga4_simulator.export_store import list_shards, list_tables
from recsys_platform.standins.ga4_simulator.ga4_schema import parse_table_name
from recsys_platform.standins.ga4_simulator.late_events import reexport_shard
from recsys_platform.standins.ga4_simulator.simulation import SimulationConfig, simulate
from recsys_platform_tests.ga4_simulator.conftest import PROPERTY_ID, SMALL

DATASET = f"analytics_{PROPERTY_ID}"
DAY = date(2026, 3, 1)
SHARD = f"{DATASET}.events_20260301"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    home = tmp_path_factory.mktemp("pristine")
    simulate(SimulationConfig(home=home, days=2, events_per_day=800, seed=31, **SMALL))
    datastream = tmp_path_factory.mktemp("pristine_datastream")
    simulate(SimulationConfig(home=datastream, days=1, events_per_day=800, seed=31, replica_layout="datastream",
                              **SMALL))
    return home, datastream


@pytest.fixture
def home(pristine, tmp_path):
    """A private copy of the simulated files, for one test to spoil."""
    for name in ("ga4_export.duckdb", "product_db.duckdb"):
        shutil.copy(pristine[0] / name, tmp_path / name)
    return tmp_path


def export(home):
    return home / "ga4_export.duckdb"


def sql(path, query, params=()):
    with duckdb.connect(str(path), read_only=True) as connection:
        return connection.execute(query, params).fetchall()


def meta(home, table="events_20260301"):
    return next(r for r in list_shards(export(home), PROPERTY_ID) if r["table_id"] == table)


def rows_without(home, column):
    """The shard's rows without one column, sorted: what must not change when only that column is spoiled."""
    return sql(export(home), f"SELECT to_json(t) FROM (SELECT * EXCLUDE ({column}) FROM {SHARD}) AS t ORDER BY 1")


@pytest.mark.parametrize("layout", ["simulator", "datastream"])
def test_an_order_with_a_null_order_id(pristine, tmp_path, layout):
    source = pristine[0] if layout == "simulator" else pristine[1]
    shutil.copy(source / "product_db.duckdb", tmp_path / "product_db.duckdb")
    table, key = (("orders", "order_id") if layout == "simulator" else ("shop_orders", "id"))
    before = sql(tmp_path / "product_db.duckdb", f"SELECT count(*) FROM product_db.product_db.{table}")[0][0]
    planted = odd_rows.order_with_null_order_id(tmp_path / "product_db.duckdb")
    assert planted["order_id"] is None and planted["status"] == "cancelled" and planted["user_id"] is not None
    after = sql(tmp_path / "product_db.duckdb",
                f"SELECT count(*), count(*) FILTER (WHERE {key} IS NULL AND status = 'cancelled') "
                f"FROM product_db.product_db.{table}")[0]
    assert after == (before + 1, 1)


def test_out_of_range_timestamps(home):
    before = meta(home)
    untouched = rows_without(home, "event_timestamp")
    row = odd_rows.out_of_range_timestamps(export(home), PROPERTY_ID, DAY)
    low, high, count = sql(export(home), f"SELECT min(event_timestamp), max(event_timestamp), count(*) FROM {SHARD}")[0]
    assert low < 0
    # The microsecond value lies in the year 294247 (DuckDB's TIMESTAMP ends there too).
    assert sql(export(home), "SELECT year(make_timestamp(?::BIGINT))", [high]) == [(294247,)]
    assert count == before["row_count"] == row["row_count"]
    assert row["last_modified_time"] > before["last_modified_time"]
    assert rows_without(home, "event_timestamp") == untouched
    assert sql(export(home), f"SELECT count(*) FROM {SHARD} WHERE event_timestamp < 0 "
                             "OR event_timestamp > 4102444800000000") == [(2,)]


def test_malformed_event_date(home):
    before = meta(home)
    untouched = rows_without(home, "event_date")
    row = odd_rows.malformed_event_date(export(home), PROPERTY_ID, DAY)
    dates = dict(sql(export(home), f"SELECT event_date, count(*) FROM {SHARD} GROUP BY 1"))
    assert dates == {"20260301": before["row_count"] - 3, "2026-03-01": 3}  # ISO dashes, not YYYYMMDD
    assert rows_without(home, "event_date") == untouched
    assert row["last_modified_time"] > before["last_modified_time"]


def test_a_table_without_items_and_a_reexport_after_it(home):
    before = meta(home)
    row = odd_rows.drop_items_column(export(home), PROPERTY_ID, DAY)
    names = [r[0] for r in sql(export(home), f"DESCRIBE {SHARD}")]
    assert "items" not in names and len(names) == 28
    assert row["row_count"] == before["row_count"] and row["last_modified_time"] > before["last_modified_time"]
    # GA4 keeps re-exporting the day; the late rows take the drifted table's columns.
    again = reexport_shard(export(home), PROPERTY_ID, DAY, extra_events=5, seed=1, timezone="Asia/Seoul")
    assert again["row_count"] == before["row_count"] + 5


def test_an_empty_reexport(home):
    before = meta(home)
    row = odd_rows.empty_reexport(export(home), PROPERTY_ID, DAY)
    assert sql(export(home), f"SELECT count(*) FROM {SHARD}") == [(0,)]
    assert row["row_count"] == 0 and row["size_bytes"] == 0
    assert row["last_modified_time"] > before["last_modified_time"] and row["creation_time"] == before["creation_time"]
    assert [r[0] for r in sql(export(home), f"DESCRIBE {SHARD}")][-1] == "session_traffic_source_last_click"


def test_a_reexport_shrunk_to_a_tenth(home):
    before = meta(home)
    kept = odd_rows.shrunk_reexport(export(home), PROPERTY_ID, DAY)["row_count"]
    assert kept == round(before["row_count"] * 0.1)
    assert meta(home)["last_modified_time"] > before["last_modified_time"]
    # The kept rows are rows the day had, spread over the day (not only its first tenth).
    first, last = sql(export(home), f"SELECT min(event_timestamp), max(event_timestamp) FROM {SHARD}")[0]
    assert last - first > 12 * 3_600 * 1_000_000


def test_a_table_named_after_a_date_that_does_not_exist(home):
    row = odd_rows.invalid_date_table(export(home), PROPERTY_ID, source_day=DAY)
    assert row["table_id"] == "events_20260230" and row["row_count"] == 10
    assert "events_20260230" in [r["table_id"] for r in list_shards(export(home), PROPERTY_ID)]
    assert sql(export(home), f"SELECT DISTINCT event_date FROM {DATASET}.events_20260230") == [("20260230",)]
    # It looks like a daily table's name but is not one.
    assert re.fullmatch(r"events_\d{8}", "events_20260230") and parse_table_name("events_20260230") is None
    assert "events_20260230" not in list_tables(export(home), PROPERTY_ID)
    with pytest.raises(ValueError, match="exists already"):
        odd_rows.invalid_date_table(export(home), PROPERTY_ID, source_day=DAY)


def test_oddities_name_a_missing_table(home):
    with pytest.raises(LookupError, match="events_20260309"):
        odd_rows.empty_reexport(export(home), PROPERTY_ID, date(2026, 3, 9))
