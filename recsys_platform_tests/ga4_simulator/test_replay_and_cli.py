"""Replaying a real log as a GA4 export, and the `simulate` command line."""

from __future__ import annotations

import argparse

import duckdb
import pytest

from recsys_platform.cli import simulate as cli
from recsys_platform.standins.ga4_simulator.export_store import list_shards
from recsys_platform.standins.ga4_simulator.simulation import SimulationConfig, simulate
from recsys_platform_tests.ga4_simulator.conftest import REAL_DATA

# 2017-11-25 15:00:00 UTC is 2017-11-26 00:00 in Seoul.
TAOBAO_SAMPLE = """\
1,100,7,pv,1511622000
1,101,7,pv,1511622000
1,101,7,cart,1511622060
1,101,7,buy,1511622120
1,102,8,pv,1511629200
2,100,7,pv,1511621999
2,103,,fav,1511621000
"""


def sql(path, query, params=()):
    with duckdb.connect(str(path), read_only=True) as connection:
        return connection.execute(query, params).fetchall()


def param(name):
    return f"(SELECT p.value.int_value FROM UNNEST(event_params) AS t(p) WHERE p.key = '{name}')"


@pytest.fixture
def replayed(tmp_path):
    log = tmp_path / "sample.csv"
    log.write_text(TAOBAO_SAMPLE)
    return simulate(SimulationConfig(home=tmp_path / "home", from_log=log, log_format="taobao", property_id="42",
                                     timezone="Asia/Seoul"))


def test_replay_writes_one_shard_per_local_day(replayed):
    assert replayed.shards == ("events_20171125", "events_20171126")
    assert [d.events for d in replayed.days] == [2, 5]
    assert [row["row_count"] for row in list_shards(replayed.export_db, "42")] == [2, 5]
    names = sql(replayed.export_db, "SELECT event_name FROM analytics_42.events_20171125 ORDER BY event_timestamp")
    assert names == [("add_to_wishlist",), ("view_item",)]
    # A 2017 shard has the export's columns of 2017: none of the fields Google added from 2023 on.
    columns = {r[0] for r in sql(replayed.export_db, "DESCRIBE analytics_42.events_20171125")}
    assert "privacy_info" in columns and not columns & {"collected_traffic_source", "is_active_user", "batch_page_id"}


def test_replayed_events_keep_users_order_and_sessions(replayed):
    rows = sql(
        replayed.export_db,
        f"SELECT user_id, event_name, event_timestamp, items[1].item_id, items[1].item_category, "
        f"{param('ga_session_number')}, {param('ga_session_id')} "
        "FROM analytics_42.events_20171126 WHERE user_id = '1' ORDER BY event_timestamp",
    )
    assert [(r[1], r[3]) for r in rows] == [("view_item", "100"), ("view_item", "101"), ("add_to_cart", "101"),
                                           ("purchase", "101"), ("view_item", "102")]
    # two rows in the same second keep their file order, one microsecond apart
    assert rows[1][2] - rows[0][2] == 1
    assert rows[0][2] == 1511622000 * 1_000_000
    # a gap of more than 30 minutes starts the user's second session
    assert [r[5] for r in rows] == [1, 1, 1, 1, 2]
    assert rows[4][6] == 1511629200
    assert rows[0][4] == "7"


def test_replayed_purchases_are_product_db_orders(replayed):
    (transaction, user, revenue), = sql(
        replayed.export_db,
        "SELECT ecommerce.transaction_id, user_id, ecommerce.purchase_revenue FROM analytics_42.events_20171126 "
        "WHERE event_name = 'purchase'",
    )
    orders = sql(replayed.product_db, "SELECT order_id, user_id, status FROM product_db.product_db.orders")
    assert orders == [(transaction, "1", "paid")]
    lines = sql(replayed.product_db, "SELECT item_id, quantity, unit_price FROM product_db.product_db.order_items")
    assert lines == [("101", 1, revenue)]
    items = dict(sql(replayed.product_db, "SELECT item_id, category_l1 FROM product_db.product_db.items"))
    assert items == {"100": "7", "101": "7", "102": "8", "103": "unknown"}
    prices = [r[0] for r in sql(replayed.product_db, "SELECT price FROM product_db.product_db.items")]
    assert all(5 <= p <= 200 for p in prices)
    users = sql(replayed.product_db, "SELECT user_id FROM product_db.product_db.users ORDER BY 1")
    assert users == [("1",), ("2",)]


def test_replay_of_a_real_log(tmp_path):
    path = REAL_DATA / "jd_action_2016-03_head.csv"
    if not path.is_file():
        pytest.skip(f"real log {path} is not present (shared data folder absent)")
    from recsys_platform.standins.ga4_simulator.real_logs import read_real_log

    log = read_real_log(path, "jd")
    summary = simulate(SimulationConfig(home=tmp_path, from_log=path, log_format="jd", timezone="Asia/Shanghai"))
    assert summary.events == log.num_rows
    assert summary.shards == ("events_20160229", "events_20160301")  # the slice straddles midnight
    purchases = sum(
        sql(summary.export_db, f"SELECT count(*) FROM analytics_{summary.property_id}.{shard} "
                               "WHERE event_name = 'purchase'")[0][0]
        for shard in summary.shards
    )
    assert purchases == summary.orders == log.column("ga4_event").to_pylist().count("purchase")


def run_cli(argv):
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["simulate", *argv])
    return args.func(args)


def test_cli_simulates_and_prints_a_summary(tmp_path, capsys):
    code = run_cli(["--home", str(tmp_path), "--days", "2", "--events-per-day", "500", "--users", "80",
                    "--items", "60", "--start-date", "2026-05-01", "--property-id", "314", "--seed", "3"])
    out = capsys.readouterr().out
    assert code == 0
    assert "2026-05-01" in out and "2026-05-02" in out
    assert "2 days" in out and "2 shards (analytics_314)" in out and "orders" in out
    assert "events_intraday_20260502" in out  # per-day tables in the summary
    assert [r["table_id"] for r in list_shards(tmp_path / "ga4_export.duckdb", "314")] == [
        "events_20260501", "events_20260502", "events_intraday_20260502"]


def test_cli_replays_a_mapped_csv(tmp_path, capsys):
    log = tmp_path / "log.csv"
    log.write_text("uid,sku,ts,type\nu1,s1,1700000000000,pv\nu1,s1,1700000060000,buy\nu2,s2,1700000100000,pv\n")
    code = run_cli(["--home", str(tmp_path / "h"), "--from-log", str(log), "--columns",
                    "user_id=uid,item_id=sku,timestamp=ts,event=type", "--event-map", "pv=view_item,buy=purchase",
                    "--timestamp-unit", "ms", "--timezone", "UTC"])
    out = capsys.readouterr().out
    assert code == 0 and "3 events" in out and "1 orders" in out


def test_cli_reports_bad_input_clearly(tmp_path, capsys):
    log = tmp_path / "log.csv"
    log.write_text("uid,sku,ts,type\nu1,s1,later,pv\n")
    code = run_cli(["--home", str(tmp_path / "h"), "--from-log", str(log), "--columns",
                    "user_id=uid,item_id=sku,timestamp=ts,event=type"])
    assert code == 2
    assert "log.csv, line 2, column 'ts': expected an integer" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        run_cli(["--days", "0"])


def test_cli_flags_reach_the_simulation(tmp_path, capsys):
    code = run_cli(["--home", str(tmp_path), "--days", "2", "--events-per-day", "400", "--users", "60", "--items",
                    "40", "--start-date", "2026-05-01", "--property-id", "314", "--app-streams", "--app-property-id",
                    "315", "--fresh-daily-export", "--over-limit-day", "2026-05-01", "--replica-layout", "datastream",
                    "--consent-denied-share", "0", "--erasure-request-share", "0"])
    out = capsys.readouterr().out
    assert code == 0
    assert "analytics_315.events_fresh_20260501" in out and "2 days" in out
    export = tmp_path / "ga4_export.duckdb"
    assert [r["table_id"] for r in list_shards(export, "314")] == [
        "events_20260502", "events_fresh_20260501", "events_fresh_20260502", "events_intraday_20260501",
        "events_intraday_20260502"]
    assert [r["table_id"] for r in list_shards(export, "315")][0] == "events_20260502"
    assert sql(export, "SELECT count(*) FROM analytics_314.events_20260502 WHERE user_pseudo_id IS NULL") == [(0,)]
    assert sql(tmp_path / "product_db.duckdb", "SELECT count(*) FROM product_db.product_db.shop_erasure_requests") == [
        (0,)]


def test_cli_refuses_a_share_outside_zero_to_one(tmp_path):
    with pytest.raises(SystemExit):
        run_cli(["--home", str(tmp_path), "--pii-url-share", "1.5"])
