import hashlib
import csv
import io

import pyarrow.csv as pa_csv
import pytest
import dataclasses

from dagster import materialize

from recsys_platform.defs.personalize.holdout_scoring import iter_holdout_rows
from recsys_platform.defs.personalize.personalize_setup import load_setup, parse_setup
from recsys_platform.defs.personalize.snapshots import build_interactions_snapshot, training_window
from recsys_platform.lib.handoff_io_manager import LakeHandoffIOManager
from recsys_platform.lib.partitions import daily_partitions
from recsys_platform.settings import PlatformSettings
from recsys_platform_tests.code_location import SNAPSHOT_NAMES, assets
from recsys_platform_tests.personalize.synthetic_shop import TRAINING_DATE, fill_warehouse, synthetic_interactions

personalize_interactions_csv, personalize_items_csv, personalize_users_csv = assets(*SNAPSHOT_NAMES)


def _held_out(user_id, setup):
    # The SQL's hash, computed independently: first 32 bits of md5(seed || USER_ID), mod 100.
    digest = hashlib.md5((setup.holdout.seed + user_id).encode()).hexdigest()
    return int(digest[:8], 16) % 100 < setup.holdout.percent_users


def _materialize(assets, warehouse, lake, run_config=None):
    return materialize(assets, resources={"warehouse": warehouse, "lake": lake,
                                          "handoff_io_manager": LakeHandoffIOManager(lake=lake)},
                       partition_key=TRAINING_DATE, run_config=run_config, raise_on_error=False)


def _snapshot(result, asset_name):
    materialization = result.asset_materializations_for_node(asset_name)[0]
    return materialization.metadata


def test_snapshots_follow_personalize_csv_rules(warehouse, lake):
    result = _materialize([personalize_interactions_csv, personalize_items_csv, personalize_users_csv], warehouse, lake)
    assert result.success
    items_meta = _snapshot(result, "personalize_items_csv")
    items = result.asset_value("personalize_items_csv")
    key = items.key
    assert key.startswith(f"personalize/items/{TRAINING_DATE}/") and key.endswith(f"{result.run_id}.csv")
    assert items_meta["uri"].value == items.uri == f"s3://recsys-lake/{key}"
    text = lake.read_text(key)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == ["ITEM_ID", "PRICE", "CATEGORIES", "IS_AVAILABLE", "CREATION_TIMESTAMP"]
    by_id = {row["ITEM_ID"]: row for row in rows}
    assert len(by_id) == 60 and items_meta["dagster/row_count"].value == items.rows == 60
    assert items.sha256 == hashlib.sha256(text.encode()).hexdigest()
    assert by_id["i1"]["CATEGORIES"] == "Bags/Totes|L2-1"  # a '|' in a name must not split the level
    assert by_id["i3"]["CATEGORIES"] == "Bags/Totes"  # no second level: no trailing separator
    assert by_id["i0"]["IS_AVAILABLE"] == "False" and by_id["i1"]["IS_AVAILABLE"] == "True"  # categorical, not boolean
    assert by_id["i0"]["CREATION_TIMESTAMP"] == "1748736000"  # 2025-06-01T00:00:00Z in epoch seconds
    assert float(by_id["i5"]["PRICE"]) == 15.0
    users = pa_csv.read_csv(io.BytesIO(lake.read_bytes(result.asset_value("personalize_users_csv").key)))
    assert users.schema.names == ["USER_ID", "SIGNUP_TIMESTAMP"] and users.num_rows == 120
    checks = {(e.asset_key.path[-1], e.check_name): e.passed for e in result.get_asset_check_evaluations()}
    assert all(checks.values()) and len(checks) == 4


def test_interactions_snapshot_window_and_holdout_partition_the_data(warehouse, lake):
    settings = PlatformSettings.from_environment(read_dotenv=False)
    setup = dataclasses.replace(load_setup(), window_days=20)
    snapshot_asset = build_interactions_snapshot(setup, daily_partitions(settings), settings.timezone)
    result = _materialize([snapshot_asset], warehouse, lake)
    assert result.success
    meta = _snapshot(result, "personalize_interactions_csv")
    handed_over = result.asset_value("personalize_interactions_csv")
    snapshot = pa_csv.read_csv(io.BytesIO(lake.read_bytes(handed_over.key)))
    assert snapshot.schema.names == ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE"]
    window = training_window(TRAINING_DATE, setup, settings.timezone)
    assert handed_over.window == window and meta["window_days"].value == 20
    source = synthetic_interactions()
    in_window = source.filter(
        (source["event_date"].to_numpy() >= window.start) & (source["event_date"].to_numpy() <= window.training_date)
    )
    held_users = {u for u in source["USER_ID"].to_pylist() if _held_out(u, setup)}
    assert 0 < len(held_users) < 30  # about 10% of 120 users
    holdout = [r for b in iter_holdout_rows(warehouse, window, setup) for r in b.to_pylist()]
    assert holdout and all(r["USER_ID"] in held_users and r["TIMESTAMP"] >= window.holdout_cut for r in holdout)
    expected_holdout = [
        r for r in in_window.to_pylist()
        if r["USER_ID"] in held_users and r["TIMESTAMP"] >= window.holdout_cut and r["EVENT_TYPE"] == "purchase"
    ]
    assert len(holdout) == len(expected_holdout)
    # Nothing of a held-out user from the cut on is in training; everything else in the window is.
    snap_rows = set(zip(*(snapshot[c].to_pylist() for c in ("USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE"))))
    for user, stamp in zip(snapshot["USER_ID"].to_pylist(), snapshot["TIMESTAMP"].to_pylist()):
        assert not (user in held_users and stamp >= window.holdout_cut)
    excluded = [
        r for r in in_window.to_pylist()
        if (r["USER_ID"], r["ITEM_ID"], r["TIMESTAMP"], r["EVENT_TYPE"]) not in snap_rows
    ]
    assert excluded and all(r["USER_ID"] in held_users and r["TIMESTAMP"] >= window.holdout_cut for r in excluded)
    assert meta["dagster/row_count"].value == handed_over.rows == snapshot.num_rows == in_window.num_rows - len(excluded)
    assert snapshot["TIMESTAMP"].to_pylist() == sorted(snapshot["TIMESTAMP"].to_pylist())
    minimums = {e.check_name: e for e in result.get_asset_check_evaluations()}["personalize_minimums"]
    assert minimums.passed
    assert minimums.metadata["interactions"].value == snapshot.num_rows
    # The increment (what an INCREMENTAL import appends) is the training day's rows of the snapshot, none of
    # a held-out user: the whole day lies after the holdout cut.
    increment = handed_over.increment
    assert increment.first_day == increment.last_day == window.training_date
    assert increment.key.endswith(".increment.csv") and meta["increment_rows"].value == increment.rows
    rows = pa_csv.read_csv(io.BytesIO(lake.read_bytes(increment.key)))
    assert increment.sha256 == hashlib.sha256(lake.read_bytes(increment.key)).hexdigest()
    source_day = [r for r in in_window.to_pylist() if r["event_date"] == window.training_date
                  and r["USER_ID"] not in held_users]
    assert rows.num_rows == increment.rows == len(source_day) > 0
    assert set(rows["USER_ID"].to_pylist()).isdisjoint(held_users)
    assert sorted(zip(rows["USER_ID"].to_pylist(), rows["TIMESTAMP"].to_pylist())) == sorted(
        (r["USER_ID"], r["TIMESTAMP"]) for r in source_day)


def test_minimums_check_fails_with_the_numbers_and_blocks(tmp_path, lake):
    small = fill_warehouse(tmp_path / "small", synthetic_interactions(n_users=20, n_events=300))
    result = _materialize([personalize_interactions_csv], small, lake)
    minimums = {e.check_name: e for e in result.get_asset_check_evaluations()}["personalize_minimums"]
    assert not minimums.passed
    assert "interactions (Personalize needs at least 1000)" in minimums.description
    assert "users with 2+ interactions (Personalize needs at least 25)" in minimums.description


def test_window_must_be_longer_than_holdout():
    import yaml

    from recsys_platform.defs.personalize.personalize_setup import CONFIG_FILE

    raw = yaml.safe_load(CONFIG_FILE.read_text())
    raw["training"] = {"window_days": 5}
    with pytest.raises(ValueError, match="must be shorter than training.window_days"):
        parse_setup(raw, CONFIG_FILE.parent)


def test_lineage_follows_the_configured_window():
    settings = PlatformSettings.from_environment(read_dotenv=False)
    for window_days in (20, 90):
        setup = dataclasses.replace(load_setup(), window_days=window_days)
        snapshot_asset = build_interactions_snapshot(setup, daily_partitions(settings), settings.timezone)
        [dep] = [d for d in snapshot_asset.specs_by_key[snapshot_asset.key].deps if d.asset_key.path == ["interactions"]]
        assert dep.partition_mapping.start_offset == -(window_days - 1)


def test_snapshots_land_in_s3_with_the_same_asset_code(warehouse, monkeypatch):
    import boto3
    from moto import mock_aws

    from recsys_platform.lib.aws_session import AwsSession
    from recsys_platform.lib.lake import S3Lake

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="shop-lake")
        s3_lake = S3Lake(aws=AwsSession(region_name="us-east-1"), bucket="shop-lake", prefix="recsys")
        result = _materialize([personalize_users_csv], warehouse, s3_lake)
        assert result.success
        users = result.asset_value("personalize_users_csv")
        assert _snapshot(result, "personalize_users_csv")["uri"].value == users.uri == f"s3://shop-lake/recsys/{users.key}"
        assert s3_lake.read_text(users.key).startswith("USER_ID,SIGNUP_TIMESTAMP\n")


def test_schema_check_names_what_is_wrong(lake):
    import pyarrow as pa

    from recsys_platform.defs.personalize.snapshots import csv_schema, schema_check, write_csv_snapshot

    spec = load_setup().datasets["interactions"]
    schema = csv_schema(spec)
    rows = pa.record_batch({"user_id": ["u1", None], "ITEM_ID": ["i1", "i2"], "TIMESTAMP": [1, 2],
                            "EVENT_TYPE": ["view", "purchase"], "EVENT_VALUE": [None, 3.5]})
    stats = write_csv_snapshot([rows], schema, lake, "snap/bad.csv")
    assert lake.read_text("snap/bad.csv").splitlines()[0] == "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE"
    result = schema_check(spec, schema, lake, "snap/bad.csv", stats)
    assert not result.passed and "1 rows have no USER_ID (required)" in result.metadata["problems"].value

    lake.put_text("snap/header.csv", "USER_ID,ITEM_ID,EVENT_TYPE\n")
    result = schema_check(spec, schema, lake, "snap/header.csv", stats)
    assert "header ['USER_ID', 'ITEM_ID', 'EVENT_TYPE'] != schema fields" in result.metadata["problems"].value

    with pytest.raises(ValueError, match="lacks schema fields"):
        write_csv_snapshot([pa.record_batch({"USER_ID": ["u1"]})], schema, lake, "snap/missing.csv")
    assert not lake.exists("snap/missing.csv")


def test_timestamps_that_are_not_epoch_seconds_are_refused_and_nothing_is_written(lake):
    import datetime as dt

    import pyarrow as pa

    from recsys_platform.defs.personalize.snapshots import csv_schema, write_csv_snapshot

    schema = csv_schema(load_setup().datasets["users"])
    signup = pa.array([dt.datetime(2025, 1, 1)], pa.timestamp("us"))
    with pytest.raises(ValueError, match=r"SIGNUP_TIMESTAMP is timestamp\[us\], but Personalize needs epoch seconds"):
        write_csv_snapshot([pa.record_batch({"USER_ID": ["u1"], "SIGNUP_TIMESTAMP": signup})], schema, lake, "snap/t.csv")
    assert not lake.exists("snap/t.csv")
    epoch = pa.array([1735689600], pa.int64())
    write_csv_snapshot([pa.record_batch({"USER_ID": ["u1"], "SIGNUP_TIMESTAMP": epoch})], schema, lake, "snap/t.csv")
    assert lake.read_text("snap/t.csv") == 'USER_ID,SIGNUP_TIMESTAMP\n"u1",1735689600\n'


def test_preview_table_keeps_multi_value_categories_in_one_cell():
    import pyarrow as pa

    from recsys_platform.defs.personalize.snapshots import markdown_table

    table = pa.table({"ITEM_ID": ["i1", "i2"], "CATEGORIES": ["Bags|Totes", None]})
    assert markdown_table(table).splitlines() == [
        "| ITEM_ID | CATEGORIES |", "|---|---|", "| i1 | Bags\\|Totes |", "| i2 |  |",
    ]
    assert markdown_table(table.slice(0, 0)) == "(no rows)"
