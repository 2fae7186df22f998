"""The code location as `make dev` serves it: the Dagster UI's GraphQL API shows every definition.

One `dagster-webserver` on `workspace.yaml` serves the whole module; the expected assets, checks,
sensors and schedules come from the Definitions object loaded in this process, so anything defined
but missing from the UI fails here.
"""

import os
import shutil
import struct
import time
from pathlib import Path

import pytest

from recsys_platform_tests.webserver_process import (
    REPO_ROOT,
    post_graphql,
    running_webserver,
    screenshot_with_chromium,
)

LOCATION_NAME = "recsys_platform"
CODE_LOCATION_LOAD_TIMEOUT = 120.0

REQUIRED_ASSETS = {
    "ga4_export", "ga4_events", "ga4_item_views", "ga4_cart_adds", "ga4_wishlist_adds", "ga4_purchases",
    "interactions", "product_db/items", "product_db/users", "product_db/orders",
    "personalize_interactions_csv", "personalize_dataset_import", "personalize_solution_version",
    "personalize_campaign",
}

WORKSPACE_QUERY = """
query Workspace {
  workspaceOrError {
    __typename
    ... on PythonError { message stack }
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message stack cause { message } }
          ... on RepositoryLocation {
            name
            repositories { name jobs { name } sensors { name } schedules { name } }
          }
        }
      }
    }
  }
}
"""

# The same root field the UI's asset graph page asks for.
ASSET_GRAPH_QUERY = """
query AssetGraph {
  assetNodes {
    assetKey { path }
    repository { name location { name } }
    assetChecksOrError {
      __typename
      ... on Error { message }
      ... on AssetChecks { checks { name } }
    }
  }
}
"""


@pytest.fixture(scope="module")
def served_homes(tmp_path_factory):
    """A private RECSYS_HOME and DAGSTER_HOME, the instance configured like `make dev`'s."""
    root = tmp_path_factory.mktemp("webserver")
    recsys_home, dagster_home = root / "recsys", root / "dagster_home"
    recsys_home.mkdir()
    dagster_home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    return root, recsys_home, dagster_home


@pytest.fixture(scope="module")
def webserver_url(served_homes):
    root, recsys_home, dagster_home = served_homes
    env = {
        **os.environ,
        "RECSYS_HOME": str(recsys_home),
        "DAGSTER_HOME": str(dagster_home),
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "RECSYS_ENV": "local",
    }
    with running_webserver(env, log_path=root / "webserver.log") as base_url:
        yield base_url


@pytest.fixture(scope="module")
def defs(served_homes):
    _, recsys_home, _ = served_homes
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RECSYS_HOME", str(recsys_home))
        patch.setenv("RECSYS_ENV", "local")
        from recsys_platform_tests.code_location import platform_definitions

        return platform_definitions()


@pytest.fixture(scope="module")
def location_entry(webserver_url):
    """The workspace entry of the code location, once it has finished loading."""
    deadline = time.monotonic() + CODE_LOCATION_LOAD_TIMEOUT
    while True:
        workspace = post_graphql(webserver_url, WORKSPACE_QUERY)["workspaceOrError"]
        assert workspace["__typename"] == "Workspace", workspace
        entries = {entry["name"]: entry for entry in workspace["locationEntries"]}
        assert LOCATION_NAME in entries, f"workspace.yaml serves {sorted(entries)}, not {LOCATION_NAME}"
        entry = entries[LOCATION_NAME]
        if entry["loadStatus"] == "LOADED":
            return entry
        assert time.monotonic() < deadline, (
            f"{LOCATION_NAME} still {entry['loadStatus']} after {CODE_LOCATION_LOAD_TIMEOUT:.0f} s"
        )
        time.sleep(1)


def _load_error(location) -> str:
    cause = (location.get("cause") or {}).get("message", "")
    return f"{LOCATION_NAME} failed to load: {location.get('message')}\ncaused by: {cause}"


@pytest.fixture(scope="module")
def repository(location_entry):
    location = location_entry["locationOrLoadError"]
    assert location["__typename"] == "RepositoryLocation", _load_error(location)
    (repository,) = location["repositories"]
    return repository


@pytest.fixture(scope="module")
def ui_asset_nodes(webserver_url, repository):
    nodes = post_graphql(webserver_url, ASSET_GRAPH_QUERY)["assetNodes"]
    return {"/".join(node["assetKey"]["path"]): node for node in nodes}


def test_code_location_loads_without_error(location_entry):
    location = location_entry["locationOrLoadError"]
    assert location["__typename"] == "RepositoryLocation", _load_error(location)
    assert location["name"] == LOCATION_NAME
    assert len(location["repositories"]) == 1


def test_asset_graph_shows_the_ga4_product_db_and_personalize_assets(ui_asset_nodes):
    missing = REQUIRED_ASSETS - set(ui_asset_nodes)
    assert not missing, f"absent from the UI's asset graph: {sorted(missing)}"
    for key in REQUIRED_ASSETS:
        assert ui_asset_nodes[key]["repository"]["location"]["name"] == LOCATION_NAME


def test_every_defined_asset_is_in_the_ui(defs, ui_asset_nodes):
    defined = {key.to_user_string() for key in defs.resolve_all_asset_keys()}
    missing = defined - set(ui_asset_nodes)
    assert not missing, f"defined in recsys_platform.definitions but absent from the UI: {sorted(missing)}"


def _ui_check_names(node) -> set[str]:
    checks = node["assetChecksOrError"]
    assert checks["__typename"] == "AssetChecks", f"{node['assetKey']}: {checks}"
    return {check["name"] for check in checks["checks"]}


def test_ga4_events_carries_its_checks_in_the_ui(ui_asset_nodes):
    assert {"has_rows_every_day", "event_keys_unique"} <= _ui_check_names(ui_asset_nodes["ga4_events"])


def test_every_defined_asset_check_is_in_the_ui(defs, ui_asset_nodes):
    missing = sorted(
        (key.asset_key.to_user_string(), key.name)
        for key in defs.resolve_asset_graph().asset_check_keys
        if key.name not in _ui_check_names(ui_asset_nodes[key.asset_key.to_user_string()])
    )
    assert not missing, f"asset checks absent from the UI: {missing}"


def test_sensors_schedules_and_jobs_are_in_the_ui(defs, repository):
    ui_sensors = {sensor["name"] for sensor in repository["sensors"]}
    ui_schedules = {schedule["name"] for schedule in repository["schedules"]}
    ui_jobs = {job["name"] for job in repository["jobs"]}
    assert "ga4_export_sensor" in ui_sensors
    assert "ga4_daily_job_schedule" in ui_schedules

    repository_def = defs.get_repository_def()
    assert {sensor.name for sensor in repository_def.sensor_defs} <= ui_sensors
    assert {schedule.name for schedule in repository_def.schedule_defs} <= ui_schedules
    assert {job.name for job in repository_def.get_all_jobs()} <= ui_jobs


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    # The IHDR chunk opens every PNG: width and height are its first two big-endian 32-bit fields.
    return struct.unpack(">II", png[16:24])


def test_asset_graph_page_renders_in_headless_chromium(webserver_url, repository, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed: the UI screenshot needs /usr/bin/chromium")
    png_path = tmp_path / "asset_graph.png"
    screenshot_with_chromium(
        Path(chromium), f"{webserver_url}/asset-groups", png_path, tmp_path / "chromium_profile", (1400, 900)
    )
    png = png_path.read_bytes()
    assert _png_size(png) == (1400, 900)
    # A blank page of this size compresses to a few kilobytes; a drawn asset graph does not.
    assert len(png) > 20_000, f"the screenshot looks blank ({len(png)} bytes)"
