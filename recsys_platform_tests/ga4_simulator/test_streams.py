"""Web and app data streams in one property, and the app streams in a property of their own.

A GA4 property holds several data streams ("[GA4] BigQuery Export schema": `stream_id`, `platform` is
WEB, IOS or ANDROID, `app_info` describes the app); a signed-in user is the same `user_id` on every stream
while each app install has its own pseudo id (the app instance id)."""

from __future__ import annotations

import duckdb
import pytest

from recsys_platform.standins.ga4_simulator.export_store import list_tables
from recsys_platform.standins.ga4_simulator.ga4_schema import DAILY
from recsys_platform.standins.ga4_simulator.simulation import SimulationConfig, simulate
from recsys_platform_tests.ga4_simulator.conftest import PROPERTY_ID, SMALL

DATASET = f"analytics_{PROPERTY_ID}"
APP_PROPERTY = "555000111"


@pytest.fixture(scope="module")
def app_run(tmp_path_factory):
    home = tmp_path_factory.mktemp("apps")
    return simulate(SimulationConfig(home=home, days=2, events_per_day=3_000, seed=21, app_streams=True, **SMALL))


@pytest.fixture
def app_export(app_run):
    with duckdb.connect(str(app_run.export_db), read_only=True) as connection:
        yield connection


def param(name):
    return f"(SELECT p.value.string_value FROM UNNEST(event_params) AS t(p) WHERE p.key = '{name}')"


def test_three_streams_each_with_its_own_stream_id(app_export):
    streams = dict(app_export.execute(
        f"SELECT platform, list(DISTINCT stream_id) FROM {DATASET}.events_20260301 GROUP BY 1").fetchall())
    assert set(streams) == {"WEB", "ANDROID", "IOS"}
    assert all(len(ids) == 1 for ids in streams.values())
    assert len({ids[0] for ids in streams.values()}) == 3
    share = app_export.execute(
        f"SELECT avg((platform <> 'WEB')::INT) FROM {DATASET}.events_20260301").fetchone()[0]
    assert 0.1 < share < 0.5, share  # phones and tablets, 4 in 10 of their sessions in the app


def test_app_rows_look_like_app_rows(app_export):
    rows = app_export.execute(
        f"""SELECT platform, count(*), count(app_info), count(device.web_info), count(device.time_zone_offset_seconds),
                   list(DISTINCT device.operating_system), list(DISTINCT app_info.id),
                   count({param('page_location')}), count({param('firebase_screen')}),
                   count(*) FILTER (WHERE event_name = 'page_view'), count(*) FILTER (WHERE event_name = 'screen_view')
            FROM {DATASET}.events_20260301 GROUP BY 1 ORDER BY 1"""
    ).fetchall()
    by_platform = {r[0]: r[1:] for r in rows}
    n, app_info, web_info, offsets, systems, app_ids, locations, screens, page_views, screen_views = by_platform["ANDROID"]
    assert app_info == n and web_info == 0 and offsets == n and systems == ["Android"]
    assert app_ids == ["com.example.shop"] and locations == 0 and screens == n
    assert page_views == 0 and screen_views > 0  # apps log screen_view
    assert by_platform["IOS"][4] == ["iOS"]
    n, app_info, web_info, offsets, _, _, locations, screens, page_views, screen_views = by_platform["WEB"]
    assert app_info == 0 and web_info == n and offsets == 0 and locations == n and screens == 0
    assert page_views > 0 and screen_views == 0


def test_a_user_appears_on_web_and_app_with_one_user_id_and_two_pseudo_ids(app_export):
    users = app_export.execute(
        f"""SELECT user_id, list(DISTINCT platform), count(DISTINCT user_pseudo_id)
            FROM (SELECT * FROM {DATASET}.events_20260301 UNION ALL SELECT * FROM {DATASET}.events_20260302)
            WHERE user_id IS NOT NULL GROUP BY 1 HAVING count(DISTINCT platform) > 1"""
    ).fetchall()
    assert len(users) > 5
    assert all("WEB" in platforms and pseudo_ids >= 2 for _, platforms, pseudo_ids in users)
    app_ids = [r[0] for r in app_export.execute(
        f"SELECT DISTINCT user_pseudo_id FROM {DATASET}.events_20260301 WHERE platform <> 'WEB' "
        "AND user_pseudo_id IS NOT NULL").fetchall()]
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in app_ids)  # app instance ids: 32 hex digits


def test_app_streams_in_their_own_property(tmp_path):
    summary = simulate(SimulationConfig(home=tmp_path, days=2, events_per_day=1_500, seed=22, app_streams=True,
                                        app_property_id=APP_PROPERTY, **SMALL))
    with duckdb.connect(str(summary.export_db), read_only=True) as connection:
        platforms = {
            dataset: {r[0] for r in connection.execute(
                f"SELECT DISTINCT platform FROM {dataset}.events_20260302").fetchall()}
            for dataset in (DATASET, f"analytics_{APP_PROPERTY}")
        }
        counts = sum(connection.execute(f"SELECT count(*) FROM {dataset}.events_20260301").fetchone()[0]
                     for dataset in (DATASET, f"analytics_{APP_PROPERTY}"))
    assert platforms == {DATASET: {"WEB"}, f"analytics_{APP_PROPERTY}": {"ANDROID", "IOS"}}
    # Each dataset lists its own tables; the two together hold the day.
    for property_id in (PROPERTY_ID, APP_PROPERTY):
        assert list_tables(summary.export_db, property_id, DAILY) == ["events_20260301", "events_20260302"]
    assert counts == summary.days[0].events + summary.days[1].late_events
    assert summary.datasets == (f"analytics_{APP_PROPERTY}", DATASET)
    assert f"analytics_{APP_PROPERTY}.events_intraday_20260302" in summary.days[1].tables


@pytest.mark.parametrize("bad, message", [
    (dict(app_property_id=APP_PROPERTY), "needs app_streams"),
    (dict(app_streams=True, app_property_id=PROPERTY_ID), "must differ"),
    (dict(app_streams=True, app_property_id="G-1"), "numeric"),
])
def test_bad_stream_configuration_is_named(tmp_path, bad, message):
    with pytest.raises(ValueError, match=message):
        simulate(SimulationConfig(home=tmp_path, **dict(SMALL, **bad)))
