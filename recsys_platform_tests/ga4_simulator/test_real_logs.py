"""Real-log readers: inline samples of every format, bad input, and the shared real files when present."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsys_platform.standins.ga4_simulator.real_logs import (
    REAL_LOG_SCHEMA,
    RealLogError,
    parse_column_mapping,
    parse_event_map,
    read_real_log,
)
from recsys_platform_tests.ga4_simulator.conftest import REAL_DATA



def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_taobao_maps_behaviours_and_keeps_utc_seconds(tmp_path):
    path = write(tmp_path, "t.csv", "1,10,100,pv,1511658000\n1,10,100,cart,1511658001\n2,11,,fav,1511658002\n"
                 "2,11,101,buy,1511658003\n")
    table = read_real_log(path, "taobao")
    assert table.schema.equals(REAL_LOG_SCHEMA)
    assert table.column("ga4_event").to_pylist() == ["view_item", "add_to_cart", "add_to_wishlist", "purchase"]
    assert table.column("timestamp").to_pylist() == [1511658000, 1511658001, 1511658002, 1511658003]
    assert table.column("category").to_pylist() == ["100", "100", None, "101"]
    assert table.schema.metadata[b"format"] == b"taobao"


def test_tmall_places_days_at_china_midnight(tmp_path):
    path = write(tmp_path, "tm.csv", "user_id,item_id,cat_id,merchant_id,brand_id,month,day,action,age_range,"
                 "gender,province\n7,70,5,1,1,08,29,0,0,1,x\n7,71,5,1,1,11,11,2,0,1,x\n7,72,6,1,1,11,11,3,0,1,x\n")
    table = read_real_log(path, "tmall", tmall_year=2014)
    # 2014-08-29 00:00 at UTC+8 is 2014-08-28 16:00 UTC.
    assert table.column("timestamp").to_pylist()[0] == 1409241600
    assert table.column("ga4_event").to_pylist() == ["view_item", "purchase", "add_to_wishlist"]


def test_jd_drops_remove_from_cart_and_normalises_float_user_ids(tmp_path):
    path = write(tmp_path, "jd.csv", "user_id,sku_id,time,model_id,type,cate,brand\n"
                 "266079.0,138778,2016-01-31 23:59:02,,1,8,403\n266079.0,138778,2016-01-31 23:59:03,0,3,8,403\n"
                 "266079.0,5,2016-02-01 00:00:00,0,4,8,403\n3.0,6,2016-02-01 00:00:01,0,5,9,1\n")
    table = read_real_log(path, "jd")
    assert table.column("user_id").to_pylist() == ["266079", "266079", "3"]
    assert table.column("ga4_event").to_pylist() == ["view_item", "purchase", "add_to_wishlist"]
    assert table.column("timestamp").to_pylist()[0] == 1454255942  # 2016-01-31 15:59:02 UTC
    assert table.schema.metadata[b"rows_dropped"] == b"1"


def test_ga4_purchase_items_skips_not_set_items(tmp_path):
    path = write(tmp_path, "g.csv", "user_pseudo_id,item_id,item_name,price,event_date,event_timestamp\n"
                 "1.5,(not set),(not set),,20201121,1605937059520352\n2.5,9195197,Shirt,24,20201121,1605924623681729\n")
    table = read_real_log(path, "ga4_purchase_items")
    assert table.to_pylist() == [
        {"user_id": "2.5", "item_id": "9195197", "timestamp": 1605924623, "ga4_event": "purchase", "category": None}
    ]
    assert table.schema.metadata[b"rows_read"] == b"2"


def test_otto_sessions_become_users(tmp_path):
    path = write(tmp_path, "o.jsonl", '{"session":4,"events":[{"aid":1,"ts":1659304800025,"type":"clicks"},'
                 '{"aid":2,"ts":1659304801000,"type":"carts"},{"aid":2,"ts":1659304802000,"type":"orders"}]}\n')
    table = read_real_log(path, "otto")
    assert table.column("user_id").to_pylist() == ["4", "4", "4"]
    assert table.column("timestamp").to_pylist() == [1659304800, 1659304801, 1659304802]
    assert table.column("ga4_event").to_pylist() == ["view_item", "add_to_cart", "purchase"]


def test_generic_csv_with_mapping_and_units(tmp_path):
    path = write(tmp_path, "c.csv", "uid,sku,ts,type,cat\nu1,s1,1700000000123,pv,c1\nu1,s2,1700000001000,rm,c1\n"
                 "u2,s1,1700000002000,purchase,\n")
    table = read_real_log(
        path,
        "csv",
        columns=parse_column_mapping("user_id=uid,item_id=sku,timestamp=ts,event=type,category=cat"),
        event_map=parse_event_map("pv=view_item,rm="),
        timestamp_unit="ms",
    )
    assert table.to_pylist() == [
        {"user_id": "u1", "item_id": "s1", "timestamp": 1700000000, "ga4_event": "view_item", "category": "c1"},
        {"user_id": "u2", "item_id": "s1", "timestamp": 1700000002, "ga4_event": "purchase", "category": None},
    ]


def test_bad_timestamp_names_file_line_and_column(tmp_path):
    path = write(tmp_path, "bad.csv", "1,10,100,pv,1511658000\n1,10,100,pv,soon\n")
    with pytest.raises(RealLogError) as caught:
        read_real_log(path, "taobao")
    assert caught.value.line == 2 and caught.value.column == "unix_ts"
    assert "bad.csv, line 2, column 'unix_ts'" in str(caught.value) and "'soon'" in str(caught.value)


def test_unknown_event_and_ragged_row_and_bad_json_are_located(tmp_path):
    unknown = write(tmp_path, "u.csv", "1,10,100,pv,1\n1,10,100,pv,2\n1,10,100,zap,3\n")
    with pytest.raises(RealLogError, match=r"line 3, column 'behavior'.*'zap'"):
        read_real_log(unknown, "taobao")
    ragged = write(tmp_path, "r.csv", "1,10,100,pv,1\n1,10,100,pv\n")
    with pytest.raises(RealLogError, match=r"r.csv, line 2: expected 5 fields, found 4"):
        read_real_log(ragged, "taobao")
    broken = write(tmp_path, "b.jsonl", '{"session":1,"events":[]}\n{"session":2,"events":[\n')
    with pytest.raises(RealLogError, match=r"b.jsonl, line 2: invalid JSON"):
        read_real_log(broken, "otto")
    empty_user = write(tmp_path, "e.csv", "1,10,100,pv,1\n,10,100,pv,2\n")
    with pytest.raises(RealLogError, match=r"line 2, column 'user_id': empty id"):
        read_real_log(empty_user, "taobao")


def test_mapping_errors_are_clear(tmp_path):
    path = write(tmp_path, "c.csv", "uid,sku,ts,type\nu1,s1,1,pv\n")
    with pytest.raises(ValueError, match="needs a column mapping for event"):
        read_real_log(path, "csv", columns={"user_id": "uid", "item_id": "sku", "timestamp": "ts"})
    with pytest.raises(RealLogError, match="missing column\\(s\\) kind"):
        read_real_log(path, "csv", columns=parse_column_mapping("user_id=uid,item_id=sku,timestamp=ts,event=kind"))
    with pytest.raises(ValueError, match="target must be one of"):
        parse_event_map("pv=page_view")
    with pytest.raises(ValueError, match="unknown target"):
        parse_column_mapping("user=uid")
    with pytest.raises(ValueError, match="unknown log format"):
        read_real_log(path, "parquet")
    with pytest.raises(RealLogError, match="no such file"):
        read_real_log(tmp_path / "absent.csv", "taobao")


REAL_FILES = [
    ("taobao_users_tail.csv", "taobao", 10_000, {"view_item": 9046, "add_to_cart": 536, "add_to_wishlist": 212,
                                                  "purchase": 206}),
    ("taobao_2h_timeslice.csv", "taobao", 110_300, {"purchase": 2493}),
    ("tmall_userlog_head.csv", "tmall", 9_999, {"view_item": 8750, "purchase": 672, "add_to_wishlist": 577}),
    ("jd_action_2016-03_head.csv", "jd", None, {}),
    ("ga4_purchase_items.csv", "ga4_purchase_items", None, {}),
    ("otto_test_sessions.jsonl", "otto", 862, {}),
]


@pytest.mark.parametrize("name,log_format,rows,event_counts", REAL_FILES)
def test_real_files(name, log_format, rows, event_counts):
    path = REAL_DATA / name
    if not path.is_file():
        pytest.skip(f"real log {path} is not present (shared data folder absent)")
    table = read_real_log(path, log_format)
    assert table.schema.equals(REAL_LOG_SCHEMA)
    assert table.num_rows > 0
    if rows is not None:
        assert table.num_rows == rows
    counts = {row["ga4_event"]: row["count"] for row in table.group_by("ga4_event").aggregate(
        [("ga4_event", "count")]).rename_columns(["ga4_event", "count"]).to_pylist()}
    for event, count in event_counts.items():
        assert counts[event] == count
    # every timestamp is a plausible epoch second (2010..2030), not ms or µs
    timestamps = table.column("timestamp").to_numpy()
    assert timestamps.min() > 1_262_304_000 and timestamps.max() < 1_893_456_000
