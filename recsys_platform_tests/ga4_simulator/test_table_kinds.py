"""Which tables the export holds: daily, intraday (streaming) and fresh (GA4 360) tables, days over the daily
export limit, and their `__TABLES__` rows. Facts from Google's "[GA4] BigQuery Export schema" (Tables) and
"[GA4] BigQuery Export" set-up page (a standard property's daily export stops at 1M events a day; streaming
has no such limit)."""

from __future__ import annotations

from datetime import date

import duckdb
import pytest

from recsys_platform.standins.ga4_simulator.export_store import finish_streaming, list_shards, list_tables
from recsys_platform.standins.ga4_simulator.ga4_schema import DAILY, FRESH, INTRADAY
from recsys_platform.standins.ga4_simulator.simulation import SimulationConfig, simulate
from recsys_platform_tests.ga4_simulator.conftest import PROPERTY_ID, SMALL

DATASET = f"analytics_{PROPERTY_ID}"
TINY = dict(SMALL, users=150, items=100)


def sql(path, query, params=()):
    with duckdb.connect(str(path), read_only=True) as connection:
        return connection.execute(query, params).fetchall()


def columns(path, table):
    return [r[0] for r in sql(path, f"DESCRIBE {DATASET}.{table}")]


def meta(path) -> dict[str, dict]:
    return {row["table_id"]: row for row in list_shards(path, PROPERTY_ID)}


def test_the_last_day_is_still_streaming_and_earlier_intraday_tables_are_gone(small_run):
    # GA4 deletes events_intraday_D once events_D is complete; the last simulated day is the one still being
    # streamed, and its daily table exists too ("for a while both exist").
    tables = meta(small_run.export_db)
    assert [t for t in tables if t.startswith("events_intraday_")] == ["events_intraday_20260303"]
    assert {"events_20260303", "events_intraday_20260303"} <= set(tables)
    assert small_run.days[-1].tables == (f"{DATASET}.events_20260303", f"{DATASET}.events_intraday_20260303")
    assert small_run.days[0].tables == (f"{DATASET}.events_20260301",)


def test_intraday_table_has_the_days_events_but_no_processed_fields(small_run):
    path = small_run.export_db
    daily, intraday = columns(path, "events_20260303"), columns(path, "events_intraday_20260303")
    # "is_active_user ... Included in only the daily tables" (schema page); nothing else is missing.
    assert "is_active_user" in daily and "is_active_user" not in intraday
    assert [c for c in daily if c != "is_active_user"] == intraday
    # The streaming table holds the day as generated; the daily one may only have gained late events.
    assert meta(path)["events_intraday_20260303"]["row_count"] == small_run.days[-1].events
    assert sql(path, f"SELECT count(*) FROM {DATASET}.events_intraday_20260303 "
                     "WHERE session_traffic_source_last_click IS NOT NULL") == [(0,)]
    assert sql(path, f"SELECT count(*) FROM {DATASET}.events_20260303 "
                     "WHERE session_traffic_source_last_click IS NULL") == [(0,)]


def test_every_table_kind_has_its_own_tables_row(small_run):
    for table, row in meta(small_run.export_db).items():
        count = sql(small_run.export_db, f"SELECT count(*) FROM {DATASET}.{table}")[0][0]
        assert row["row_count"] == count and row["type"] == 1 and row["last_modified_time"] >= row["creation_time"]
    # The streaming table was written before the daily one of the same day (swapped in first).
    rows = meta(small_run.export_db)
    assert rows["events_intraday_20260303"]["creation_time"] <= rows["events_20260303"]["creation_time"]


def test_no_streaming_export_means_no_intraday_table(tmp_path):
    summary = simulate(SimulationConfig(home=tmp_path, days=2, events_per_day=500, seed=2, streaming_export=False,
                                        **TINY))
    assert list_tables(summary.export_db, PROPERTY_ID, INTRADAY) == []
    assert list_tables(summary.export_db, PROPERTY_ID, DAILY) == ["events_20260301", "events_20260302"]


def test_fresh_daily_tables_for_a_360_property(tmp_path):
    summary = simulate(SimulationConfig(home=tmp_path, days=3, events_per_day=600, seed=4, fresh_daily_export=True,
                                        late_event_share=0.02, **TINY))
    rows = meta(summary.export_db)
    assert list_tables(summary.export_db, PROPERTY_ID, FRESH) == [
        "events_fresh_20260301", "events_fresh_20260302", "events_fresh_20260303"]
    # A processed table: it has is_active_user; it holds the day as first processed, while the daily table
    # of the first day has since gained its late events (two re-exports).
    assert "is_active_user" in columns(summary.export_db, "events_fresh_20260301")
    first = summary.days[0]
    assert rows["events_fresh_20260301"]["row_count"] == first.events
    assert rows["events_20260301"]["row_count"] == first.events + 2 * 6
    assert f"{DATASET}.events_fresh_20260302" in summary.days[1].tables


def test_a_day_over_the_export_limit_has_only_its_intraday_table(tmp_path):
    summary = simulate(SimulationConfig(home=tmp_path, days=3, events_per_day=600, seed=5, late_event_share=0.02,
                                        over_limit_days=("2026-03-02",), **TINY))
    tables = meta(summary.export_db)
    assert "events_20260302" not in tables
    # The intraday table is the only copy, and is not deleted: no daily table ever completes for that day.
    assert tables["events_intraday_20260302"]["row_count"] == summary.days[1].events
    assert summary.days[1].shard is None and summary.shards == ("events_20260301", "events_20260303")
    assert summary.days[1].tables == (f"{DATASET}.events_intraday_20260302",)
    # No re-export can reach a daily table that does not exist: day 3 re-exported only day 1.
    assert summary.days[2].late_events == 6
    assert tables["events_20260301"]["row_count"] == summary.days[0].events + 2 * 6


@pytest.mark.parametrize("limit, daily_tables", [(10_000, 2), (400, 0)])
def test_the_daily_export_limit_decides_by_the_days_event_count(tmp_path, limit, daily_tables):
    # ~505 events a day (500 plus ~1% exact duplicates): under a limit of 10,000, over one of 400.
    summary = simulate(SimulationConfig(home=tmp_path, days=2, events_per_day=500, seed=6, daily_export_limit=limit,
                                        **TINY))
    assert len(list_tables(summary.export_db, PROPERTY_ID, DAILY)) == daily_tables
    intraday = list_tables(summary.export_db, PROPERTY_ID, INTRADAY)
    if daily_tables:
        # Both days were streamed; day 1's intraday table went once its daily table completed.
        assert intraday == ["events_intraday_20260302"]
        assert summary.days[0].deleted_tables == (f"{DATASET}.events_intraday_20260301",)
    else:
        assert intraday == ["events_intraday_20260301", "events_intraday_20260302"]
        assert all(d.deleted_tables == () for d in summary.days)


def test_finish_streaming_deletes_an_intraday_table_only_after_its_daily_table(tmp_path):
    summary = simulate(SimulationConfig(home=tmp_path, days=2, events_per_day=400, seed=8,
                                        over_limit_days=(date(2026, 3, 1),), **TINY))
    # 2026-03-01 has no daily table: its intraday table stays; 2026-03-02's goes.
    assert not finish_streaming(summary.export_db, PROPERTY_ID, date(2026, 3, 1))
    assert finish_streaming(summary.export_db, PROPERTY_ID, date(2026, 3, 2))
    assert list_tables(summary.export_db, PROPERTY_ID) == ["events_20260302", "events_intraday_20260301"]


def test_a_later_run_completes_the_previous_last_day(tmp_path):
    # Simulating the next days into the same export finishes the previous run's streaming day.
    simulate(SimulationConfig(home=tmp_path, days=1, events_per_day=300, seed=9, **TINY))
    later = dict(TINY, start_date="2026-03-02")
    summary = simulate(SimulationConfig(home=tmp_path, days=1, events_per_day=300, seed=9, **later))
    assert list_tables(summary.export_db, PROPERTY_ID) == [
        "events_20260301", "events_20260302", "events_intraday_20260302"]
