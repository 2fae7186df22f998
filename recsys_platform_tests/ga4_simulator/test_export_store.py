"""Re-exports, dropped shards, atomic replacement and lock handling of the export file."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import date, datetime
from zoneinfo import ZoneInfo

import duckdb
import pytest

from recsys_platform.standins.ga4_simulator.export_store import drop_shard, list_shards, read_shard, write_shard
from recsys_platform.standins.ga4_simulator.late_events import reexport_shard
from recsys_platform.standins.ga4_simulator.simulation import SimulationConfig, simulate
from recsys_platform_tests.ga4_simulator.conftest import PROPERTY_ID, SMALL

DAY = date(2026, 3, 1)


@pytest.fixture
def fresh_export(tmp_path):
    summary = simulate(SimulationConfig(home=tmp_path, days=2, events_per_day=600, seed=11, late_event_share=0,
                                        **SMALL))
    return summary.export_db


def meta(export_db, table="events_20260301"):
    return next(row for row in list_shards(export_db, PROPERTY_ID) if row["table_id"] == table)


def test_reexport_adds_late_events_and_bumps_last_modified(fresh_export):
    before = meta(fresh_export)
    original = read_shard(fresh_export, PROPERTY_ID, DAY)
    row = reexport_shard(fresh_export, PROPERTY_ID, DAY, extra_events=25, seed=1, timezone="Asia/Seoul")
    again = reexport_shard(fresh_export, PROPERTY_ID, DAY, extra_events=5, seed=2, timezone="Asia/Seoul")
    assert row["row_count"] == before["row_count"] + 25
    assert again["row_count"] == before["row_count"] + 30
    # strictly increasing even when two rewrites land in the same millisecond
    assert before["last_modified_time"] < row["last_modified_time"] < again["last_modified_time"]
    assert again["creation_time"] == before["creation_time"]
    assert meta(fresh_export) == again

    shard = read_shard(fresh_export, PROPERTY_ID, DAY)
    late = shard.slice(original.num_rows).to_pylist()
    assert len(late) == 30
    start = int(datetime(2026, 3, 1, tzinfo=ZoneInfo("Asia/Seoul")).timestamp()) * 1_000_000
    for event in late:
        assert event["event_date"] == "20260301"
        assert start <= event["event_timestamp"] < start + 86_400_000_000
        assert event["event_server_timestamp_offset"] >= 3_600_000_000  # received hours later
        assert event["event_name"] != "purchase"
    # late events are new events, not exact copies of existing ones: new bundle, time and batch request
    existing = {(e["event_bundle_sequence_id"], e["event_timestamp"]) for e in original.to_pylist()}
    assert not any((e["event_bundle_sequence_id"], e["event_timestamp"]) in existing for e in late)
    batches = {(e["user_pseudo_id"], e["batch_page_id"], e["batch_ordering_id"], e["batch_event_index"])
               for e in original.to_pylist()}
    assert not any((e["user_pseudo_id"], e["batch_page_id"], e["batch_ordering_id"], e["batch_event_index"])
                   in batches for e in late)


def test_reexport_of_a_missing_shard_names_it(fresh_export):
    with pytest.raises(LookupError, match="analytics_987654321.events_20260309"):
        reexport_shard(fresh_export, PROPERTY_ID, date(2026, 3, 9), extra_events=3, seed=1)


def test_drop_shard_removes_table_and_listing(fresh_export):
    drop_shard(fresh_export, PROPERTY_ID, DAY)
    assert [row["table_id"] for row in list_shards(fresh_export, PROPERTY_ID)] == [
        "events_20260302", "events_intraday_20260302"]
    with duckdb.connect(str(fresh_export), read_only=True) as connection:
        tables = {r[0] for r in connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?",
            [f"analytics_{PROPERTY_ID}"]).fetchall()}
    assert "events_20260301" not in tables
    with pytest.raises(LookupError, match="events_20260301"):
        drop_shard(fresh_export, PROPERTY_ID, DAY)


def test_a_failed_rewrite_leaves_the_old_shard_untouched(fresh_export):
    before = meta(fresh_export)
    good = read_shard(fresh_export, PROPERTY_ID, DAY)

    def chunks():
        yield good.slice(0, 10)
        raise RuntimeError("generator failed half way")

    with pytest.raises(RuntimeError, match="half way"):
        write_shard(fresh_export, PROPERTY_ID, DAY, chunks())
    assert meta(fresh_export) == before
    assert read_shard(fresh_export, PROPERTY_ID, DAY).num_rows == good.num_rows
    with duckdb.connect(str(fresh_export), read_only=True) as connection:
        leftovers = connection.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name LIKE 'building%'").fetchone()[0]
    assert leftovers == 0


def test_rows_of_another_schema_are_refused(fresh_export):
    good = read_shard(fresh_export, PROPERTY_ID, DAY)
    with pytest.raises(ValueError, match="GA4 export schema"):
        write_shard(fresh_export, PROPERTY_ID, DAY, [good.drop_columns(["items"])])


def test_a_write_waits_for_another_process_holding_the_file(fresh_export):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('locked', flush=True); "
         "time.sleep(1.5); c.close()", str(fresh_export)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        row = reexport_shard(fresh_export, PROPERTY_ID, DAY, extra_events=3, seed=3)
        waited = time.monotonic() - started
    finally:
        holder.wait(timeout=30)
    assert row["row_count"] == meta(fresh_export)["row_count"]
    assert waited > 0.5  # it really met the lock, and retried until the holder let go


def test_other_processes_can_read_the_export_between_chunks(fresh_export):
    good = read_shard(fresh_export, PROPERTY_ID, DAY)
    reader = ("import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
              f"print(c.execute('SELECT count(*) FROM analytics_{PROPERTY_ID}.\"__TABLES__\"').fetchone()[0])")
    seen = []

    def chunks():
        yield good.slice(0, 100)
        # A reader that does not retry: it only succeeds if the writer let go of the file meanwhile.
        seen.append(subprocess.run([sys.executable, "-c", reader, str(fresh_export)], capture_output=True,
                                   text=True, timeout=60))
        yield good.slice(100)

    row = write_shard(fresh_export, PROPERTY_ID, DAY, chunks())
    assert seen[0].returncode == 0, seen[0].stderr
    assert seen[0].stdout.strip() == "3"  # __TABLES__: two daily tables and the last day's intraday one
    assert row["row_count"] == good.num_rows
