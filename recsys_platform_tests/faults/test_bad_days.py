"""What a bad production day brings, planted with the simulator's odd-row functions into a copy of a simulated
shop, and what it must not do to the stored tables.

Runs are the code location's `ga4_daily_job` (and the snapshot step of the retraining job) executed in the
test process: what these faults test is the merge's validation and SQL, not how steps get processes (the
kill tests run the multiprocess executor). Each test first stores what a good day gives, then spoils the
export or the product DB, runs the day again and compares every stored table, row by row, with before.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
from zoneinfo import ZoneInfo

import duckdb
import pytest

from recsys_platform.lib.lake import LocalLake
from recsys_platform.standins.ga4_simulator import odd_rows
from recsys_platform.standins.ga4_simulator.export_store import touch_table
from recsys_platform_tests.faults import harness
from recsys_platform_tests.faults.conftest import PROPERTY_ID, copy_shop, day
from recsys_platform_tests.faults.in_process import home_env, run_job

DATASET = f"analytics_{PROPERTY_ID}"
TIMEZONE = ZoneInfo("Asia/Seoul")


def shard(n: int) -> str:
    return f"events_{day(n):%Y%m%d}"


def export_rows(home, sql: str, params=()) -> list[tuple]:
    with contextlib.closing(duckdb.connect(str(home / "ga4_export.duckdb"), read_only=True)) as con:
        return con.execute(sql, list(params)).fetchall()


def restore_shard(pristine, home, n: int) -> None:
    """GA4 re-exports the day with its real rows (the shard copied back from the untouched simulation, its
    `__TABLES__` row bumped as a rewrite does)."""
    with contextlib.closing(duckdb.connect(str(home / "ga4_export.duckdb"))) as con:
        con.execute("ATTACH ? AS pristine (READ_ONLY)", [str(pristine / "ga4_export.duckdb")])
        con.execute(f"CREATE OR REPLACE TABLE {DATASET}.{shard(n)} AS SELECT * FROM pristine.{DATASET}.{shard(n)}")
        touch_table(con, DATASET, shard(n))


# --- 2. one NULL order_id in the product DB --------------------------------------------------------------

def ga4_only_purchases(home, n: int) -> int:
    """Purchase rows of the refined table on day n whose transaction the product DB does not know."""
    with contextlib.closing(harness.connect_read_only(home / "warehouse.duckdb")) as con:
        con.execute("ATTACH ? AS shop (READ_ONLY)", [str(home / "product_db.duckdb")])
        return con.execute(
            "SELECT COUNT(*) FROM recsys.ga4_purchases p WHERE event_date = ? AND (transaction_id IS NULL OR "
            "NOT EXISTS (SELECT 1 FROM shop.product_db.orders o WHERE o.order_id = p.transaction_id))",
            [day(n)]).fetchone()[0]


def test_a_null_order_id_keeps_ga4_only_purchases_in_interactions(shop_home, tmp_path_factory):
    # The replica lags: day 3's orders are not in the product DB yet, so GA4 is the only source of those
    # purchases; they must reach interactions (as 'ga4' purchases).
    # (ordered_at is stored in UTC; the property's day 3 starts at 15:00 UTC the day before.)
    day_3_starts = dt.datetime.combine(day(3), dt.time(), tzinfo=TIMEZONE).astimezone(dt.timezone.utc)
    with contextlib.closing(duckdb.connect()) as con:
        con.execute("ATTACH ? AS db", [str(shop_home / "product_db.duckdb")])
        lagging = "SELECT order_id FROM db.product_db.orders WHERE ordered_at >= ?"
        since = [day_3_starts.replace(tzinfo=None)]
        con.execute(f"DELETE FROM db.product_db.order_items WHERE order_id IN ({lagging})", since)
        con.execute(f"DELETE FROM db.product_db.orders WHERE order_id IN ({lagging})", since)
    first = run_job(partition=day(3).isoformat())
    assert first.success, first.failure_message()
    expected = ga4_only_purchases(shop_home, 3)
    assert expected > 0, "the day has no GA4-only purchase: nothing to protect"
    stored = harness.stored_rows(shop_home)

    planted = odd_rows.order_with_null_order_id(shop_home / "product_db.duckdb")
    assert planted["order_id"] is None
    again = run_job(partition=day(3).isoformat(), assets=["interactions"])
    assert again.success, again.failure_message()
    (ga4_purchases,) = harness.query_warehouse(
        shop_home, "SELECT COUNT(*) FROM recsys.interactions WHERE event_date = ? AND source = 'ga4' "
                   "AND EVENT_TYPE = 'purchase'", [day(3)])[0]
    # With NOT IN, the one NULL would make every GA4-only purchase disappear.
    assert ga4_purchases == expected
    lost, duplicates = harness.lost_and_duplicated(stored, harness.stored_rows(shop_home))
    harness.record_fault(tmp_path_factory, "NULL order_id in product_db.orders", "product DB replica (orders)",
                         f"run succeeded; {ga4_purchases} GA4-only purchases kept in interactions", lost, duplicates,
                         again.seconds)
    assert (lost, duplicates) == (0, 0)


# --- 3. an empty and a shrunk re-export of merged days ----------------------------------------------------

def test_empty_and_shrunk_reexports_are_refused_before_the_swap(shop_home, pristine_shop, tmp_path_factory):
    merged = run_job(partition_range=(day(1).isoformat(), day(4).isoformat()))
    assert merged.success, merged.failure_message()
    stored = harness.stored_rows(shop_home)
    day_rows = dict(harness.query_warehouse(
        shop_home, "SELECT CAST(event_date AS VARCHAR), COUNT(*) FROM recsys.ga4_events GROUP BY 1"))
    # The guard applies: the merged days before day 3 and day 4 are above ga4.yaml's min_events.
    assert min(day_rows.values()) >= 1_000, day_rows

    # An empty re-export of day 4: refused by has_rows_every_day (and the volume guard), whatever the
    # operator accepts, since only the volume guard can be waived.
    odd_rows.empty_reexport(shop_home / "ga4_export.duckdb", PROPERTY_ID, day(4))
    for config in ({}, {"ops": {"ga4_events": {"config": {"accept_volume_drop": True}}}}):
        empty = run_job(partition=day(4).isoformat(), run_config=config)
        assert not empty.success
        assert "has_rows_every_day" in empty.failure_message(), empty.failure_message()
        assert "left as they were" in empty.failure_message()
        assert harness.lost_and_duplicated(stored, harness.stored_rows(shop_home)) == (0, 0)
    assert empty.checks()[("ga4_events", "has_rows_every_day")] is False
    # GA4 re-exports the day properly: the next run of the partition finishes and stores it as before.
    restore_shard(pristine_shop, shop_home, 4)
    recovered = run_job(partition=day(4).isoformat())
    assert recovered.success, recovered.failure_message()
    lost, duplicates = harness.lost_and_duplicated(stored, harness.stored_rows(shop_home))
    harness.record_fault(tmp_path_factory, "empty re-export of a merged day", "GA4 export (events_20260104)",
                         "run failed naming has_rows_every_day; stored day kept; proper re-export merged",
                         lost, duplicates, recovered.seconds)
    assert (lost, duplicates) == (0, 0)

    # A re-export with 10% of day 3's rows: refused by the volume guard, everything kept.
    odd_rows.shrunk_reexport(shop_home / "ga4_export.duckdb", PROPERTY_ID, day(3), keep_share=0.1)
    shrunk = run_job(partition=day(3).isoformat())
    assert not shrunk.success
    assert "volume_within_guard" in shrunk.failure_message(), shrunk.failure_message()
    assert shrunk.checks()[("ga4_events", "volume_within_guard")] is False
    lost, duplicates = harness.lost_and_duplicated(stored, harness.stored_rows(shop_home))
    assert (lost, duplicates) == (0, 0)

    # The operator says day 3 really was that quiet: accepted, and only day 3 changes.
    accepted = run_job(partition=day(3).isoformat(),
                       run_config={"ops": {"ga4_events": {"config": {"accept_volume_drop": True}}}})
    assert accepted.success, accepted.failure_message()
    assert accepted.check_metadata("ga4_events", "volume_within_guard")["accepted_by_operator"].value is True
    kept_rows = dict(harness.query_warehouse(
        shop_home, "SELECT CAST(event_date AS VARCHAR), COUNT(*) FROM recsys.ga4_events GROUP BY 1"))
    (shrunk_rows,) = export_rows(shop_home, f"SELECT COUNT(*) FROM {DATASET}.{shard(3)}")[0]
    assert 0 < kept_rows[day(3).isoformat()] <= shrunk_rows < 0.2 * day_rows[day(3).isoformat()]
    assert {d: n for d, n in kept_rows.items() if d != day(3).isoformat()} == \
        {d: n for d, n in day_rows.items() if d != day(3).isoformat()}
    assert harness.event_key_repeats(shop_home) == 0
    harness.record_fault(tmp_path_factory, "re-export shrunk to 10%", "GA4 export (events_20260103)",
                         "run failed naming volume_within_guard; stored day kept; accept_volume_drop run "
                         "replaced only that day", lost, duplicates, accepted.seconds)


# --- 4. impossible timestamps and a malformed event_date ------------------------------------------------

NEGATIVE, YEAR_294247 = odd_rows.NEGATIVE_TIMESTAMP_US, odd_rows.YEAR_294247_TIMESTAMP_US


def dropped_by_reason(outcome) -> dict[str, int]:
    return {key: value.value for key, value in outcome.materialization("ga4_events").metadata.items()
            if key.startswith("dropped_")}


def day_event_keys(home, n: int) -> set[str]:
    return {key for (key,) in harness.query_warehouse(
        home, "SELECT event_key FROM recsys.ga4_events WHERE event_date = ?", [day(n)])}


def test_impossible_timestamps_and_malformed_dates_are_dropped_by_reason_and_never_stored(shop_home,
                                                                                          tmp_path_factory):
    # Four good days stored (enough interactions for a Personalize snapshot), then day 2 merged again alone:
    # what it drops when nothing is wrong with it.
    history = run_job(partition_range=(day(1).isoformat(), day(4).isoformat()))
    assert history.success, history.failure_message()
    clean = run_job(partition=day(2).isoformat())
    assert clean.success, clean.failure_message()
    clean_keys = day_event_keys(shop_home, 2)

    export = shop_home / "ga4_export.duckdb"
    odd_rows.out_of_range_timestamps(export, PROPERTY_ID, day(2))
    odd_rows.malformed_event_date(export, PROPERTY_ID, day(2), rows=3)
    table = f"{DATASET}.{shard(2)}"
    bad_dates = export_rows(shop_home, f"SELECT user_pseudo_id, event_timestamp, event_name FROM {table} "
                                       "WHERE NOT regexp_full_match(event_date, '[0-9]{8}')")
    bad_times = export_rows(shop_home, f"SELECT user_pseudo_id, event_timestamp, event_name FROM {table} "
                                       "WHERE event_timestamp IN (?, ?)", [NEGATIVE, YEAR_294247])
    assert len(bad_dates) == 3 and len(bad_times) == 2
    # Both functions pick rows by position: a row may carry both oddities (it then counts once, under the
    # first reason that applies: its date).
    planted = sorted(set(bad_dates) | set(bad_times))
    both = len(bad_dates) + len(bad_times) - len(planted)

    outcome = run_job(partition=day(2).isoformat())
    assert outcome.success, outcome.failure_message()
    before, after = dropped_by_reason(clean), dropped_by_reason(outcome)
    added = {reason: after[reason] - before.get(reason, 0) for reason in after}
    # Each planted row is counted once, under its reason; nothing else is dropped anew.
    assert added == {**{reason: 0 for reason in after}, "dropped_malformed_event_date": len(bad_dates),
                     "dropped_implausible_timestamp": len(bad_times) - both}, added
    # Exactly the planted events left ga4_events; every other event of the day is still there.
    keys = day_event_keys(shop_home, 2)
    assert keys < clean_keys and len(clean_keys - keys) == len(planted)

    # Every stored time lies within the stored days (a day's events may carry a UTC time a day off).
    low = int(dt.datetime.combine(day(0), dt.time(), tzinfo=TIMEZONE).timestamp())
    high = int(dt.datetime.combine(day(6), dt.time(), tzinfo=TIMEZONE).timestamp())
    with contextlib.closing(harness.connect_read_only(shop_home / "warehouse.duckdb")) as con:
        con.execute("CREATE TEMP TABLE planted (pseudo VARCHAR, ts BIGINT, name VARCHAR)")
        con.executemany("INSERT INTO planted VALUES (?, ?, ?)", planted)
        assert con.execute("SELECT COUNT(*) FROM recsys.ga4_events WHERE event_timestamp NOT BETWEEN ? AND ?",
                           [low * 1_000_000, high * 1_000_000]).fetchone()[0] == 0
        assert con.execute("SELECT COUNT(*) FROM recsys.ga4_events e JOIN planted p ON e.user_pseudo_id = p.pseudo "
                           "AND e.event_timestamp = p.ts AND e.event_name = p.name").fetchone()[0] == 0
        for refined in ("ga4_item_views", "ga4_cart_adds", "ga4_wishlist_adds", "ga4_purchases"):
            assert con.execute(f"SELECT COUNT(*) FROM recsys.{refined} r JOIN planted p ON r.user_pseudo_id = p.pseudo "
                               "AND epoch_us(r.event_ts) = p.ts").fetchone()[0] == 0, refined
        assert con.execute("SELECT COUNT(*) FROM recsys.interactions WHERE TIMESTAMP NOT BETWEEN ? AND ?",
                           [low, high]).fetchone()[0] == 0

    # The Personalize CSVs of day 4's training window (window and day's increment): no impossible time.
    snapshot = run_job("personalize_retraining_job", day(4).isoformat(), assets=["personalize_interactions_csv"])
    assert snapshot.success, snapshot.failure_message()
    lake = LocalLake(root=str(shop_home / "lake"))
    csv_keys = lake.list(f"personalize/interactions/{day(4).isoformat()}/")
    rows = [row for key in csv_keys for row in csv.DictReader(io.StringIO(lake.read_text(key)))]
    assert csv_keys and rows
    # (The malformed-date rows are not in the refined tables, which are the CSV's only GA4 source.)
    assert all(low <= int(row["TIMESTAMP"]) <= high for row in rows)
    harness.record_fault(tmp_path_factory, "negative / year-294247 timestamps, malformed event_date",
                         f"GA4 export (events_20260102: {len(bad_times)} timestamps, {len(bad_dates)} dates, "
                         f"{both} row with both)",
                         f"run succeeded; dropped {added['dropped_implausible_timestamp']} implausible_timestamp + "
                         f"{added['dropped_malformed_event_date']} malformed_event_date, each row once; none in "
                         "ga4_events, refined, interactions or the CSV", len(clean_keys - keys) - len(planted), 0,
                         outcome.seconds)


# --- 5. schema drift: a shard without `items` ------------------------------------------------------------

def clean_reference(pristine, home, *runs) -> harness.StoredRows:
    """The stored tables a clean history of `runs` gives: the same runs on an unspoiled copy of the shop."""
    with home_env(copy_shop(pristine, home)):
        for run in runs:
            outcome = run_job(**run)
            assert outcome.success, outcome.failure_message()
        return harness.stored_rows(home)


def test_a_shard_without_items_fails_the_merge_naming_it_alone_and_in_a_backfill(shop_home, pristine_shop, tmp_path,
                                                                               tmp_path_factory):
    first = run_job(partition=day(1).isoformat())
    assert first.success, first.failure_message()
    stored = harness.stored_rows(shop_home)

    odd_rows.drop_items_column(shop_home / "ga4_export.duckdb", PROPERTY_ID, day(2))
    alone = run_job(partition=day(2).isoformat())
    backfill = run_job(partition_range=(day(1).isoformat(), day(3).isoformat()))
    for outcome in (alone, backfill):
        assert not outcome.success
        message = outcome.failure_message()
        assert f"{DATASET}.{shard(2)} lacks items" in message, message
        # Nothing was stored: not day 2, not the good days 1 and 3 of the backfill.
        assert harness.lost_and_duplicated(stored, harness.stored_rows(shop_home)) == (0, 0)

    # GA4 re-exports the day with its items: the next run of the partition finishes, and the tables are
    # what they would be had the bad shard never come.
    restore_shard(pristine_shop, shop_home, 2)
    recovered = run_job(partition=day(2).isoformat())
    assert recovered.success, recovered.failure_message()
    reference = clean_reference(pristine_shop, tmp_path / "reference", {"partition": day(1).isoformat()},
                                {"partition": day(2).isoformat()})
    lost, duplicates = harness.lost_and_duplicated(reference, harness.stored_rows(shop_home))
    assert harness.event_key_repeats(shop_home) == 0
    harness.record_fault(tmp_path_factory, "schema drift: shard without items", "GA4 export (events_20260102)",
                         "merge failed naming analytics_123456789.events_20260102 and items (alone and in a "
                         "3-day backfill); nothing stored; re-exported day merged", lost, duplicates,
                         recovered.seconds)
    assert (lost, duplicates) == (0, 0)


def test_a_day_re_run_alone_after_a_backfill_keeps_its_rows(shop_home, tmp_path_factory):
    backfill = run_job(partition_range=(day(1).isoformat(), day(3).isoformat()))
    assert backfill.success, backfill.failure_message()
    stored = harness.stored_rows(shop_home)
    # GA4 rewrites day 1 within its 72 hours with the same rows; the sensor requests day 1 alone.
    again = run_job(partition=day(1).isoformat())
    assert again.success, again.failure_message()
    lost, duplicates = harness.lost_and_duplicated(stored, harness.stored_rows(shop_home))
    harness.record_fault(tmp_path_factory, "day re-run alone after a backfill (re-export within 72 h)",
                         "GA4 export (events_20260101 rewritten, same rows)",
                         "run succeeded; day 1's rows unchanged (a day is stitched only to logins up to its "
                         "end); lost = rows no longer stored, duplicates = rows stored anew",
                         lost, duplicates, again.seconds)
    assert (lost, duplicates) == (0, 0)
