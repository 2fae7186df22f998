"""The code location loads, with every asset, check, job, schedule and sensor the platform promises."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import AssetKey


@pytest.fixture(scope="module")
def defs():
    from recsys_platform.definitions import defs

    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("RECSYS_")]:
            patch.delenv(name)  # the defaults, whatever the developer's shell says
        patch.chdir(Path(__file__).parent)  # and no .env of the developer's
        return defs()  # what Dagster does when it loads the code location


GA4_ASSETS = {"ga4_export", "ga4_events", "ga4_item_views", "ga4_cart_adds", "ga4_wishlist_adds", "ga4_purchases",
              "interactions", "product_db/items", "product_db/users", "product_db/orders", "product_db/order_items"}


def test_every_asset_is_defined(defs):
    keys = {k.to_user_string() for k in defs.resolve_all_asset_keys()}
    assert GA4_ASSETS <= keys


def test_graph_flows_from_the_export_to_interactions(defs):
    graph = defs.resolve_asset_graph()
    assert AssetKey("ga4_export") in graph.get(AssetKey("ga4_events")).parent_keys
    for refined in ("ga4_item_views", "ga4_cart_adds", "ga4_wishlist_adds", "ga4_purchases"):
        assert graph.get(AssetKey(refined)).parent_keys == {AssetKey("ga4_events")}
        assert AssetKey(refined) in graph.get(AssetKey("interactions")).parent_keys
    assert AssetKey(["product_db", "order_items"]) in graph.get(AssetKey("interactions")).parent_keys


def test_checks_sensors_schedules_and_jobs(defs):
    check_keys = {(k.asset_key.to_user_string(), k.name) for k in defs.resolve_asset_graph().asset_check_keys}
    assert {("ga4_events", "event_keys_unique"), ("ga4_events", "has_rows_every_day"),
            ("ga4_item_views", "keys_not_null"), ("interactions", "event_types_known")} <= check_keys
    assert ("ga4_events", "merged_by_deadline") in check_keys
    assert defs.resolve_sensor_def("ga4_export_sensor")
    assert defs.resolve_sensor_def("run_failure_notifications")
    for schedule in ("ga4_daily_job_schedule", "ga4_intraday_schedule", "ga4_merge_deadline_schedule",
                     "personalize_retraining_schedule", "erasure_schedule"):
        assert defs.resolve_schedule_def(schedule)
    for job in ("ga4_daily_job", "personalize_retraining_job", "erasure_job", "ga4_merge_deadline_job"):
        assert defs.resolve_job_def(job)


def test_warehouse_steps_share_one_pool(defs):
    graph = defs.resolve_asset_graph()
    for key in ("ga4_events", "ga4_item_views", "interactions"):
        assert graph.get(AssetKey(key)).pools == {"warehouse"}


SNAPSHOT = Path(__file__).with_name("asset_graph.json")


def asset_graph_summary(defs) -> dict:
    """What a reviewer should see change on purpose: every asset's group, partitions, parents, checks, pool,
    kinds and hand-off IO manager, and the jobs, schedules and sensors."""
    graph = defs.resolve_asset_graph()
    checks = {}
    for key in graph.asset_check_keys:
        checks.setdefault(key.asset_key.to_user_string(), []).append(key.name)
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        partitions = node.partitions_def
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "partitions": None if partitions is None else f"{type(partitions).__name__}({partitions.timezone})",
            "parents": sorted(parent.to_user_string() for parent in node.parent_keys),
            "checks": sorted(checks.get(key.to_user_string(), [])),
            "pools": sorted(node.pools or []),
            "kinds": sorted(node.kinds),
            "executable": node.is_executable,
        }
    repository = defs.get_repository_def()
    return {
        "assets": assets,
        "jobs": sorted(job.name for job in repository.get_all_jobs() if not job.name.startswith("__")),
        "schedules": {s.name: s.cron_schedule for s in repository.schedule_defs},
        "sensors": sorted(s.name for s in repository.sensor_defs),
    }


def test_asset_graph_matches_its_snapshot(defs):
    """A change to keys, groups, partitions, lineage, checks or pools is deliberate: regenerate the snapshot
    with RECSYS_UPDATE_SNAPSHOT=1 and review its diff."""
    summary = asset_graph_summary(defs)
    if os.environ.get("RECSYS_UPDATE_SNAPSHOT"):
        SNAPSHOT.write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    assert summary == json.loads(SNAPSHOT.read_text())


def test_loading_the_code_location_pulls_in_no_stand_in_model_or_cloud_library(tmp_path):
    """What the run worker and the code server pay: importing and building the definitions in local mode."""
    code = (
        "import sys, json\n"
        "import recsys_platform.definitions as d\n"
        "d.defs()\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSYS_")}
    env["RECSYS_HOME"] = str(tmp_path)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = set(json.loads(result.stdout.splitlines()[-1]))
    unwanted = [m for m in loaded if m.startswith(("recsys_platform.standins", "recsys_platform.modelling",
                                                   "recsys_platform.cli", "implicit", "scipy", "google.cloud.bigquery",
                                                   "dagster_gcp", "dagster_aws",
                                                   # imported where rows are read or written, or a holdout
                                                   # scored, not to load
                                                   "pyarrow", "sqlglot", "numpy"))]
    assert unwanted == []
    assert "recsys_platform.defs.personalize.campaign" in loaded  # the probe did load the whole graph


def test_definitions_are_built_once_per_settings_and_environment(tmp_path, monkeypatch):
    """Dagster loads the code location several times per process; `defs()` builds it again only when what it
    is built from changed: a setting, any environment variable, or the folder a relative RECSYS_HOME is in."""
    import recsys_platform.definitions as definitions

    for name in [n for n in os.environ if n.startswith("RECSYS_")]:
        monkeypatch.delenv(name)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    monkeypatch.setenv("RECSYS_HOME", "state")  # relative: resolved against the working directory
    builds = []
    build = definitions.build_definitions
    monkeypatch.setattr(definitions, "build_definitions", lambda settings: builds.append(settings) or build(settings))

    first = definitions.defs()
    assert definitions.defs() is first and len(builds) == 1

    monkeypatch.setenv("RECSYS_PERSONALIZE_ENDPOINT_URL", "http://127.0.0.1:9")  # read by a resource, not a setting
    endpoint = definitions.defs()
    assert endpoint is not first and len(builds) == 2
    assert endpoint.resources["personalize"].endpoint_url == "http://127.0.0.1:9"

    monkeypatch.setenv("RECSYS_START_DATE", "2026-02-01")
    assert definitions.defs() is not endpoint and builds[-1].start_date.isoformat() == "2026-02-01"

    monkeypatch.chdir(tmp_path / "b")  # same environment, another RECSYS_HOME
    moved = definitions.defs()
    assert len(builds) == 4 and moved.resources["warehouse"].warehouse_path.startswith(str(tmp_path / "b"))
    assert definitions.defs() is moved and len(builds) == 4
