"""One deployment reading several GA4 properties (a web and an app property, say): each exports to its own
dataset `analytics_<id>` with the same table names; the merge writes one `ga4_events` with the property of
every row, and the export sensor keeps each property's tables apart."""

import datetime as dt
import json

import pyarrow as pa
import pytest
from dagster import DagsterInstance, SkipReason, build_sensor_context, materialize

from recsys_platform.lib.deployments import resources_for
from recsys_platform.lib.warehouse.duckdb_engine import DuckDBWarehouse
from recsys_platform.settings import PlatformSettings, SettingsError
from recsys_platform_tests.code_location import GA4_ASSET_NAMES, assets, platform_definitions
from recsys_platform_tests.ga4.conftest import DAY, ENGINES, warehouse_on
from recsys_platform_tests.ga4_fixtures import (
    BATCHED_SHARD_SCHEMA,
    PROPERTY_ID,
    SHARD_SCHEMA,
    drop_table,
    event,
    write_product_db,
    write_shard,
)

APP_PROPERTY = "555000111"
WEB_STREAM, APP_STREAM = "1000", "2000"
SHARD = f"events_{DAY:%Y%m%d}"
INTRADAY_SHARD = f"events_intraday_{DAY:%Y%m%d}"

[ga4_events] = assets("ga4_events")
sensor = platform_definitions().resolve_sensor_def("ga4_export_sensor")


@pytest.fixture(params=ENGINES)
def warehouse(request, recsys_home, tmp_path, monkeypatch):
    """The two properties' warehouse (the conftest's reads one property), on each engine."""
    write_product_db(recsys_home / "product_db.duckdb", [], ["A", "B", "C"], ["U1", "U2"])
    with warehouse_on(request.param, recsys_home, tmp_path, monkeypatch,
                      additional_ga4_property_ids=[APP_PROPERTY]) as on_engine:
        yield on_engine


@pytest.fixture
def export_db(recsys_home):
    return recsys_home / "ga4_export.duckdb"


def _web(day=DAY, n=3, **kw):
    return [event(day, 10, "view_item", "web1", minute=i, items=[{"item_id": "A"}], stream_id=WEB_STREAM, **kw)
            for i in range(n)]


def _app(day=DAY, n=2, **kw):
    return [event(day, 11, "view_item", "app1", minute=i, items=[{"item_id": "B"}], stream_id=APP_STREAM,
                  platform="ANDROID", **kw) for i in range(n)]


def _merge(warehouse, instance=None, assets_to_run=None, day=DAY):
    return materialize(assets_to_run or [ga4_events], partition_key=day.isoformat(), instance=instance,
                       resources={"warehouse": warehouse}, raise_on_error=False)


def _merged(result) -> dict:
    mat = next(e.materialization for e in result.get_asset_materialization_events()
               if e.materialization.asset_key.to_user_string() == "ga4_events")
    return {k: v.value for k, v in mat.metadata.items()}


def _rows(warehouse, sql, **params):
    return warehouse.query(sql, params).to_pylist()


def _tick(warehouse, cursor=None, instance=None):
    # As a context manager: BigQueryWarehouse's client resource is opened and closed around the tick.
    with build_sensor_context(instance=instance or DagsterInstance.ephemeral(), cursor=cursor,
                              resources={"warehouse": warehouse}) as context:
        return sensor(context)


# --- the merge -------------------------------------------------------------------------------------------

def test_two_properties_merge_into_one_day_with_the_property_of_every_row(warehouse, export_db):
    write_shard(export_db, DAY, _web(user_id="U1"))
    write_shard(export_db, DAY, _app(), property_id=APP_PROPERTY)
    result = _merge(warehouse, assets_to_run=assets(*GA4_ASSET_NAMES))
    assert result.success
    meta = _merged(result)
    assert meta["sources"] == {f"{PROPERTY_ID}/{DAY}": SHARD, f"{APP_PROPERTY}/{DAY}": SHARD}
    assert meta["dagster/row_count"] == 5
    by_property = _rows(warehouse, "SELECT property_id, stream_id, source_table, COUNT(*) AS n "
                                   "FROM recsys.ga4_events GROUP BY ALL ORDER BY 1")
    assert by_property == [
        {"property_id": PROPERTY_ID, "stream_id": WEB_STREAM, "source_table": SHARD[len("events_"):], "n": 3},
        {"property_id": APP_PROPERTY, "stream_id": APP_STREAM, "source_table": SHARD[len("events_"):], "n": 2},
    ]
    # Both properties' events reach interactions; a visitor stays scoped by its stream.
    users = {r["USER_ID"] for r in _rows(warehouse, "SELECT DISTINCT USER_ID FROM recsys.interactions")}
    assert users == {"U1", f"anon:{APP_STREAM}:app1"}


def test_an_identical_event_in_two_properties_is_kept_twice(warehouse, export_db):
    """The same row in both exports (a property and its roll-up share streams) is two events, one per
    property; a re-delivery within a property still collapses."""
    row = event(DAY, 10, "view_item", "p1", items=[{"item_id": "A"}], stream_id=WEB_STREAM)
    write_shard(export_db, DAY, [row, dict(row)])
    write_shard(export_db, DAY, [dict(row)], property_id=APP_PROPERTY)
    result = _merge(warehouse)
    assert result.success
    keys = _rows(warehouse, "SELECT property_id, event_key FROM recsys.ga4_events ORDER BY 1")
    assert [k["property_id"] for k in keys] == [PROPERTY_ID, APP_PROPERTY]
    assert keys[0]["event_key"] != keys[1]["event_key"]
    assert _merged(result)["duplicates_removed"] == 1
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks["event_keys_unique"]


def test_one_propertys_over_limit_day_comes_from_its_intraday_table_and_then_from_its_daily_one(
        warehouse, export_db):
    """The app property went over the daily export limit: its day is its intraday table, while the web
    property's is its daily one; each wildcard read is pruned to its own property's table."""
    write_shard(export_db, DAY, _web())
    write_shard(export_db, DAY, _web(n=1), kind="intraday")  # the web's intraday table, still there: not read
    write_shard(export_db, DAY, _app(), property_id=APP_PROPERTY, kind="intraday")
    instance = DagsterInstance.ephemeral()
    first = _merge(warehouse, instance)
    assert first.success
    assert _merged(first)["sources"] == {f"{PROPERTY_ID}/{DAY}": SHARD, f"{APP_PROPERTY}/{DAY}": INTRADAY_SHARD}
    read = {(r["property_id"], r["source_table"]): r["n"] for r in _rows(
        warehouse, "SELECT property_id, source_table, COUNT(*) AS n FROM recsys.ga4_events GROUP BY ALL")}
    assert read == {(PROPERTY_ID, SHARD[7:]): 3, (APP_PROPERTY, INTRADAY_SHARD[7:]): 2}

    assert isinstance(_tick(warehouse, instance=instance), SkipReason)  # seeded from what was merged
    write_shard(export_db, DAY, _app(n=3), property_id=APP_PROPERTY)  # the daily table lands at last
    drop_table(export_db, INTRADAY_SHARD, property_id=APP_PROPERTY)
    later = _tick(warehouse, instance=instance)
    [request] = later.run_requests
    assert request.partition_key == DAY.isoformat()
    assert request.tags["recsys/ga4_table"] == f"{PROPERTY_ID}/{SHARD},{APP_PROPERTY}/{SHARD}"
    [report] = later.asset_events
    assert report.metadata["dataset"].value == f"analytics_{APP_PROPERTY}"
    assert _merge(warehouse, instance).success
    [count] = _rows(warehouse, "SELECT COUNT(*) AS n FROM recsys.ga4_events WHERE property_id = @p", p=APP_PROPERTY)
    assert count["n"] == 3  # the app's day from its daily table only, never from both


def test_a_property_without_its_table_for_the_day_fails_the_merge_naming_that_table(warehouse, export_db):
    write_shard(export_db, DAY, _web())
    result = _merge(warehouse)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert f"analytics_{APP_PROPERTY}.{SHARD}" in failure.event_specific_data.error.message
    assert f"analytics_{PROPERTY_ID}.{SHARD}" not in failure.event_specific_data.error.message
    assert not warehouse.has_table("ga4_events")


def test_properties_whose_tables_have_different_columns_merge_by_column_name(warehouse, export_db):
    """The web export has the 2024 fields and a column the app's lacks; the app's is an older layout:
    each property's missing columns are NULL on its rows, and no column lands in another's place."""
    extra = pa.field("publisher", pa.struct([("ad_revenue_in_usd", pa.float64())]))
    web_schema = pa.schema([*BATCHED_SHARD_SCHEMA, extra])
    web = [dict(row, privacy_info={"analytics_storage": "Yes"}, batch_page_id=1, batch_ordering_id=1,
                batch_event_index=i, publisher={"ad_revenue_in_usd": 0.5}) for i, row in enumerate(_web())]
    write_shard(export_db, DAY, web, schema=web_schema)
    write_shard(export_db, DAY, _app(), property_id=APP_PROPERTY, schema=SHARD_SCHEMA)
    result = _merge(warehouse)
    assert result.success
    rows = _rows(warehouse, "SELECT property_id, COUNT(batch_page_id) AS batched, COUNT(publisher) AS published, "
                            "COUNT(privacy_info) AS consent, COUNT(DISTINCT stream_id) AS streams "
                            "FROM recsys.ga4_events GROUP BY 1 ORDER BY 1")
    assert rows == [{"property_id": PROPERTY_ID, "batched": 3, "published": 3, "consent": 3, "streams": 1},
                    {"property_id": APP_PROPERTY, "batched": 0, "published": 0, "consent": 0, "streams": 1}]


# --- the export sensor -----------------------------------------------------------------------------------

def test_the_same_table_id_in_two_properties_is_two_tables_in_the_cursor(warehouse, export_db):
    """Both datasets hold `events_YYYYMMDD`: the web's written later than the app's. A rewrite of the app's
    table that is still older than the web's must be seen, which a cursor keyed by table id would miss."""
    write_shard(export_db, DAY, _web(), last_modified_ms=2_000)
    write_shard(export_db, DAY, _app(), property_id=APP_PROPERTY, last_modified_ms=1_000)
    first = _tick(warehouse)
    [request] = first.run_requests
    assert request.run_key == f"{PROPERTY_ID}/{SHARD}@2000+{APP_PROPERTY}/{SHARD}@1000"
    assert json.loads(first.cursor) == {f"{PROPERTY_ID}/{SHARD}": 2_000, f"{APP_PROPERTY}/{SHARD}": 1_000}
    assert sorted(e.metadata["dataset"].value for e in first.asset_events) == [
        f"analytics_{PROPERTY_ID}", f"analytics_{APP_PROPERTY}"]

    write_shard(export_db, DAY, _app(n=3), property_id=APP_PROPERTY, last_modified_ms=1_500)
    second = _tick(warehouse, cursor=first.cursor)
    [again] = second.run_requests
    assert again.partition_key == DAY.isoformat() and again.run_key != request.run_key
    assert isinstance(_tick(warehouse, cursor=second.cursor), SkipReason)


def test_a_change_in_one_propertys_table_requests_the_day(warehouse, export_db):
    write_shard(export_db, DAY, _web())
    write_shard(export_db, DAY, _app(), property_id=APP_PROPERTY)
    first = _tick(warehouse)
    assert isinstance(_tick(warehouse, cursor=first.cursor), SkipReason)
    write_shard(export_db, DAY, _web(n=4))  # the web property re-exports the day with late events
    second = _tick(warehouse, cursor=first.cursor)
    [request] = second.run_requests
    assert request.partition_key == DAY.isoformat()
    [report] = second.asset_events
    assert report.metadata["dataset"].value == f"analytics_{PROPERTY_ID}"
    assert report.metadata["change"].value == "rewritten" and report.metadata["dagster/row_count"].value == 4


def test_a_day_is_requested_once_every_property_has_its_table(warehouse, export_db):
    """Requested earlier, the run would only fail on the missing table: the day waits, and the tick says so."""
    write_shard(export_db, DAY, _web())
    waiting = _tick(warehouse)
    assert isinstance(waiting, SkipReason)
    assert f"{DAY} (waiting for analytics_{APP_PROPERTY})" in waiting.skip_message
    write_shard(export_db, DAY, _app(), property_id=APP_PROPERTY)
    [request] = _tick(warehouse, cursor=getattr(waiting, "cursor", None)).run_requests
    assert request.partition_key == DAY.isoformat()


def test_a_cursor_of_a_single_property_deployment_belongs_to_its_first_property(warehouse, export_db):
    """A deployment that adds a property keeps its cursor: bare table ids are the first property's, so only
    the new property's tables are requested."""
    write_shard(export_db, DAY, _web(), last_modified_ms=2_000)
    write_shard(export_db, DAY, _app(), property_id=APP_PROPERTY, last_modified_ms=1_000)
    single = json.dumps({SHARD: 2_000})
    result = _tick(warehouse, cursor=single)
    [request] = result.run_requests
    assert request.partition_key == DAY.isoformat()
    [report] = result.asset_events
    assert report.metadata["dataset"].value == f"analytics_{APP_PROPERTY}" and report.metadata["change"].value == "new"
    assert json.loads(result.cursor) == {f"{PROPERTY_ID}/{SHARD}": 2_000, f"{APP_PROPERTY}/{SHARD}": 1_000}


# --- configuration ---------------------------------------------------------------------------------------

def test_the_deployment_reads_the_properties_the_settings_list(tmp_path):
    settings = PlatformSettings.from_environment(
        {"RECSYS_HOME": str(tmp_path), "RECSYS_GA4_PROPERTY_IDS": f" {PROPERTY_ID}, {APP_PROPERTY} "})
    assert settings.ga4_property_ids == (PROPERTY_ID, APP_PROPERTY)
    assert settings.ga4_property_id == PROPERTY_ID
    warehouse = resources_for(settings)["warehouse"]
    assert warehouse.property_ids == (PROPERTY_ID, APP_PROPERTY) and warehouse.several_properties
    single = PlatformSettings.from_environment({"RECSYS_GA4_PROPERTY_ID": PROPERTY_ID})
    assert single.ga4_property_ids == (PROPERTY_ID,)
    assert not resources_for(single)["warehouse"].several_properties
    agreeing = {"RECSYS_GA4_PROPERTY_IDS": f"{PROPERTY_ID},{APP_PROPERTY}", "RECSYS_GA4_PROPERTY_ID": PROPERTY_ID}
    assert PlatformSettings.from_environment(agreeing).ga4_property_ids == (PROPERTY_ID, APP_PROPERTY)


@pytest.mark.parametrize("environ, message", [
    ({"RECSYS_GA4_PROPERTY_IDS": "123,G-456"}, "'G-456' in '123,G-456' is not one"),
    ({"RECSYS_GA4_PROPERTY_IDS": "123,,456"}, "'' in '123,,456' is not one"),
    ({"RECSYS_GA4_PROPERTY_IDS": "123,456,123"}, "names 123 more than once"),
    ({"RECSYS_GA4_PROPERTY_IDS": "123,456", "RECSYS_GA4_PROPERTY_ID": "456"}, "disagree"),
])
def test_a_bad_list_of_properties_is_named(environ, message):
    with pytest.raises(SettingsError, match=message):
        PlatformSettings.from_environment(environ)


@pytest.mark.parametrize("additional, message", [
    ([PROPERTY_ID], f"{PROPERTY_ID} listed more than once"),
    (["G-1"], "must be numeric, got 'G-1'"),
])
def test_a_warehouse_refuses_a_repeated_or_non_numeric_property(recsys_home, additional, message):
    warehouse = DuckDBWarehouse(ga4_property_id=PROPERTY_ID, additional_ga4_property_ids=additional,
                                warehouse_path=str(recsys_home / "w.duckdb"), export_path=str(recsys_home / "e"),
                                product_db_path=str(recsys_home / "p"))
    with pytest.raises(ValueError, match=message):
        warehouse.list_all_export_tables()


def test_sql_may_name_only_the_deployments_own_properties(warehouse, export_db):
    write_shard(export_db, DAY, _web())
    write_shard(export_db, DAY, _app(), property_id="999")
    assert _rows(warehouse, f"SELECT COUNT(*) AS n FROM analytics_{PROPERTY_ID}.{SHARD}") == [{"n": 3}]
    with pytest.raises(ValueError, match="analytics_999 is not the export of one of this deployment's"):
        warehouse.query(f"SELECT COUNT(*) AS n FROM analytics_999.{SHARD}")
