"""A table's columns depend on its date: Google adds fields to new tables and never back-fills old ones, so
a backfill of consecutive days crosses schema changes. Cut-overs (see ga4_schema's docstring for their
sources): collected_traffic_source 2023-05-29, is_active_user 2023-07-24 (processed tables only),
session_traffic_source_last_click and the batch_* fields 2024-07-19."""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import pytest

from recsys_platform.standins.ga4_simulator.ga4_schema import EVENTS_SCHEMA, events_schema
from recsys_platform.standins.ga4_simulator.simulation import SimulationConfig, simulate
from recsys_platform_tests.ga4_simulator.conftest import PROPERTY_ID

DATASET = f"analytics_{PROPERTY_ID}"
# Written out here, independently of the simulator's own tables.
BASE = ["event_date", "event_timestamp", "event_name", "event_params", "event_previous_timestamp",
        "event_value_in_usd", "event_bundle_sequence_id", "event_server_timestamp_offset", "user_id",
        "user_pseudo_id", "privacy_info", "user_properties", "user_first_touch_timestamp", "user_ltv", "device",
        "geo", "app_info", "traffic_source", "stream_id", "platform", "event_dimensions", "ecommerce", "items"]
MAY_2023 = ["collected_traffic_source"]
JULY_2023 = ["is_active_user"]
JULY_2024 = ["batch_event_index", "batch_page_id", "batch_ordering_id", "session_traffic_source_last_click"]


@pytest.mark.parametrize("day, expected", [
    (date(2022, 12, 31), BASE),
    (date(2023, 5, 28), BASE),
    (date(2023, 5, 29), BASE + MAY_2023),
    (date(2023, 7, 23), BASE + MAY_2023),
    (date(2023, 7, 24), BASE + MAY_2023 + JULY_2023),
    (date(2024, 7, 18), BASE + MAY_2023 + JULY_2023),
    (date(2024, 7, 19), BASE + MAY_2023 + JULY_2023 + JULY_2024),
    (date(2026, 3, 1), BASE + MAY_2023 + JULY_2023 + JULY_2024),
])
def test_columns_of_a_daily_table_by_date(day, expected):
    assert events_schema(day).names == expected
    # The intraday table of the same date lacks only is_active_user (daily tables only).
    assert events_schema(day, "intraday").names == [c for c in expected if c != "is_active_user"]
    assert events_schema(day, "fresh").names == expected


def test_the_latest_schema_is_the_full_export_schema():
    assert events_schema(date(2030, 1, 1)) == EVENTS_SCHEMA


def described(path, table):
    with duckdb.connect(str(path), read_only=True) as connection:
        return {r[0]: r[1] for r in connection.execute(f"DESCRIBE {DATASET}.{table}").fetchall()}


@pytest.mark.parametrize("first_day, new_columns", [
    (date(2023, 5, 28), MAY_2023),
    (date(2023, 7, 23), JULY_2023),
    (date(2024, 7, 18), JULY_2024),
])
def test_a_two_day_backfill_across_a_cut_over_writes_two_schemas(tmp_path, first_day, new_columns):
    second_day = first_day + timedelta(days=1)
    summary = simulate(SimulationConfig(home=tmp_path, days=2, events_per_day=400, seed=3, users=120, items=80,
                                        property_id=PROPERTY_ID, start_date=first_day, late_event_share=0.02))
    before = described(summary.export_db, f"events_{first_day:%Y%m%d}")
    after = described(summary.export_db, f"events_{second_day:%Y%m%d}")
    assert set(after) - set(before) == set(new_columns)
    # The types of the shared columns do not change across the cut-over.
    assert {name: before[name] for name in before} == {name: after[name] for name in before}
    # The first day was re-exported with late events after the second day was written, and kept its schema.
    assert summary.days[1].late_events == 4
    assert described(summary.export_db, f"events_{first_day:%Y%m%d}") == before
    # A reader unites the two days by name; the older day has NULL in the new columns.
    with duckdb.connect(str(summary.export_db), read_only=True) as connection:
        nulls = connection.execute(
            f"SELECT count(*) FILTER (WHERE {new_columns[0]} IS NULL), count(*) FROM "
            f"(SELECT * FROM {DATASET}.events_{first_day:%Y%m%d} UNION ALL BY NAME "
            f"SELECT * FROM {DATASET}.events_{second_day:%Y%m%d}) WHERE event_date = '{first_day:%Y%m%d}'"
        ).fetchone()
    assert nulls[0] == nulls[1] > 0


def test_new_fields_carry_values_where_they_exist(small_run, export):
    # 2026 shards: the July 2024 fields are filled on every row (not just present as NULL columns).
    filled = export.execute(
        f"SELECT count(*) FILTER (WHERE batch_event_index IS NULL OR batch_page_id IS NULL "
        f"OR batch_ordering_id IS NULL OR session_traffic_source_last_click IS NULL "
        f"OR collected_traffic_source IS NULL OR is_active_user IS NULL) FROM {DATASET}.events_20260301"
    ).fetchone()[0]
    assert filled == 0


def test_batch_fields_identify_and_order_events(export):
    # "batch_page_id / batch_ordering_id / batch_event_index": page of the engagement, request sent from the
    # page, event inside the request. With the stream and the visitor they identify an event: as many
    # identities as distinct rows (exact duplicates are the same event twice; late events included).
    identities, distinct_rows = export.execute(
        f"""SELECT count(DISTINCT (stream_id, user_pseudo_id, batch_page_id, batch_ordering_id, batch_event_index,
                                   event_name)),
                   (SELECT count(*) FROM (SELECT DISTINCT to_json(e) FROM {DATASET}.events_20260302 AS e
                                          WHERE user_pseudo_id IS NOT NULL))
            FROM {DATASET}.events_20260302 WHERE user_pseudo_id IS NOT NULL"""
    ).fetchone()
    assert identities == distinct_rows
    # Within a session, batch order is the order the events happened (late copies left aside).
    out_of_order = export.execute(
        f"""SELECT count(*) FROM (
              SELECT event_timestamp, lag(event_timestamp) OVER (
                PARTITION BY user_pseudo_id, batch_page_id // 1000
                ORDER BY batch_page_id, batch_ordering_id, batch_event_index) AS previous
              FROM {DATASET}.events_20260302
              WHERE user_pseudo_id IS NOT NULL AND event_server_timestamp_offset < 3600000000)
            WHERE event_timestamp < previous"""
    ).fetchone()[0]
    assert out_of_order == 0
