"""`recsys-platform replay-events`: a GA4 intraday table replayed into PutEvents changes the users' next
recommendations without a retraining; held-out users' events are never recorded."""

from __future__ import annotations

import datetime as dt
import hashlib
import time

import duckdb
import pyarrow as pa
import pytest
from dagster import DagsterInstance

from recsys_platform.cli.main import main
from recsys_platform.defs.personalize.personalize_setup import load_setup
from recsys_platform_tests.ga4_fixtures import PROPERTY_ID, SHARD_SCHEMA, event
from recsys_platform_tests.personalize.chain import chain_assets, metadata, run_chain
from recsys_platform_tests.personalize.synthetic_shop import TRAINING_DATE

DAY = dt.date(2026, 3, 1)
INTRADAY_SCHEMA = SHARD_SCHEMA.append(pa.field("privacy_info", pa.struct([("analytics_storage", pa.string())])))


def held_out(user_id: str) -> bool:
    holdout = load_setup().holdout
    return int(hashlib.md5((holdout.seed + user_id).encode()).hexdigest()[:8], 16) % 100 < holdout.percent_users


def write_intraday(export_db, rows: list[dict]) -> None:
    dataset, name = f"analytics_{PROPERTY_ID}", f"events_intraday_{DAY.strftime('%Y%m%d')}"
    table = pa.Table.from_pylist([{"privacy_info": {"analytics_storage": "Yes"}, **row} for row in rows],
                                 schema=INTRADAY_SCHEMA)
    now_ms = int(time.time() * 1000)
    export_db.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(export_db)) as con:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {dataset}")
        con.execute(f'CREATE TABLE {dataset}."__TABLES__" (project_id VARCHAR, dataset_id VARCHAR, table_id VARCHAR, '
                    "creation_time BIGINT, last_modified_time BIGINT, row_count BIGINT, size_bytes BIGINT, type INTEGER)")
        con.register("rows", table)
        con.execute(f"CREATE TABLE {dataset}.{name} AS SELECT * FROM rows")
        con.execute(f'INSERT INTO {dataset}."__TABLES__" VALUES (?, ?, ?, ?, ?, ?, 0, 1)',
                    ["local", dataset, name, now_ms, now_ms, len(rows)])


def views(pseudo: str, items: list[str], hour: int, **fields) -> list[dict]:
    return [event(DAY, hour, "view_item", pseudo, items=[{"item_id": item, "price": 20.0}], minute=n, **fields)
            for n, item in enumerate(items)]


def top(runtime, campaign_arn: str, user: str, count: int = 10, **request) -> list[str]:
    answer = runtime.get_recommendations(campaignArn=campaign_arn, userId=user, numResults=count, **request)
    return [item["itemId"] for item in answer["itemList"]]


def test_replayed_intraday_events_change_recommendations_and_skip_held_out_users(
        recsys_home, warehouse, lake, personalize, local_personalize, monkeypatch, capsys):
    monkeypatch.setenv("RECSYS_PERSONALIZE_ENDPOINT_URL", local_personalize.endpoint_url)
    trained = run_chain(chain_assets(), TRAINING_DATE, warehouse, lake, personalize, DagsterInstance.ephemeral())
    campaign_arn = metadata(trained, "personalize_campaign")["campaign_arn"]
    runtime = personalize.get_runtime_client()

    # Synthetic shoppers of cluster 0 (u % 4 == 0) buy items i0..i14; the replay shows them i45..i47.
    shopper = next(f"u{n}" for n in range(0, 120, 4) if not held_out(f"u{n}"))
    held = next(f"u{n}" for n in range(0, 120, 4) if held_out(f"u{n}"))
    visitor = next(f"v{n}" for n in range(100) if not held_out(f"anon:1000:v{n}"))
    rows = [
        # Browsing before the login is the shopper's too (stitched to the login of the same pseudo id).
        *views("p-shopper", ["i45"], 9),
        *views("p-shopper", ["i46", "i47"], 10, user_id=shopper),
        event(DAY, 11, "add_to_cart", "p-shopper", user_id=shopper, items=[{"item_id": "i47", "price": 20.0}]),
        event(DAY, 12, "page_view", "p-shopper", user_id=shopper),  # not in the taxonomy
        # Without analytics consent: never recorded (nor is it in interactions).
        *views("p-shopper", ["i30"], 13, user_id=shopper, privacy_info={"analytics_storage": "No"}),
        *views("p-held", ["i45", "i46", "i47"], 10, user_id=held),
        *views(visitor, ["i33"], 10),  # never logs in: recorded as anon:<stream>:<pseudo id>
    ]
    write_intraday(recsys_home / "ga4_export.duckdb", rows)
    before = {user: top(runtime, campaign_arn, user) for user in (shopper, held)}
    assert not {"i45", "i46", "i47"} & set(before[shopper][:3])

    assert main(["replay-events", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"analytics_{PROPERTY_ID}.events_intraday_20260301: 8 item rows of tracked events; 5 events of 2 users" in out
    assert "left out: 3 events of 1 held-out users" in out and "dry run: nothing recorded" in out
    assert top(runtime, campaign_arn, shopper) == before[shopper]

    assert main(["replay-events", "--day", "2026-03-01"]) == 0
    out = capsys.readouterr().out
    assert "recorded 5 events in 2 PutEvents calls" in out and "cart 1, view 4" in out
    after = top(runtime, campaign_arn, shopper)
    # The recorded events lead the shopper's next recommendations, newest first: no retraining happened.
    assert after[:3] == ["i47", "i46", "i45"], after
    assert "i30" not in after[:3]
    assert top(runtime, campaign_arn, held) == before[held]  # the held-out user's events were not recorded
    assert top(runtime, campaign_arn, f"anon:1000:{visitor}")[0] == "i33"
    client = personalize.get_client()
    solution_arn = trained.asset_value("personalize_solution_version").solution_arn
    assert len(client.list_solution_versions(solutionArn=solution_arn)["solutionVersions"]) == 1


def test_replay_says_what_is_missing(recsys_home, monkeypatch):
    monkeypatch.setenv("RECSYS_PERSONALIZE_ENDPOINT_URL", "http://127.0.0.1:9")
    with pytest.raises(SystemExit, match="has no events_intraday_YYYYMMDD table to replay"):
        main(["replay-events"])
    write_intraday(recsys_home / "ga4_export.duckdb", views("p", ["i1"], 9, user_id="u1"))
    with pytest.raises(SystemExit, match="events_intraday_20260302 does not exist; intraday tables: "
                                         "events_intraday_20260301"):
        main(["replay-events", "--day", "20260302"])
    with pytest.raises(SystemExit, match="--day 'March' is not a date"):
        main(["replay-events", "--day", "March"])
