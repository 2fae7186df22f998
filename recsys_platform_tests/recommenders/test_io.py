import numpy as np
import pyarrow as pa
import pytest

from recsys_platform.defs.ga4.taxonomy import load_taxonomy

from recsys_platform.modelling.recommenders.io import (
    interaction_log_from_ga4_events,
    read_interactions_csv,
    read_items_csv,
)


def write(path, text):
    path.write_text(text)
    return path


def test_reads_personalize_interactions_ignoring_extra_columns(tmp_path):
    path = write(tmp_path / "i.csv", "user_id,Item_Id,TIMESTAMP,EVENT_TYPE,EVENT_VALUE,junk\n"
                 "u1,i1,100,view,,x\nu2,i2,101,purchase,9.5,y\n")
    log = read_interactions_csv(path)
    assert log.user_ids.tolist() == ["u1", "u2"]
    assert log.item_ids.tolist() == ["i1", "i2"]
    assert log.timestamps.dtype == np.int64 and log.timestamps.tolist() == [100, 101]
    assert log.event_types.tolist() == ["view", "purchase"]
    assert np.isnan(log.event_values[0]) and log.event_values[1] == 9.5


def test_event_value_is_optional(tmp_path):
    path = write(tmp_path / "i.csv", "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\nu,i,1,view\n")
    log = read_interactions_csv(path)
    assert log.event_values is None and len(log) == 1


def test_ids_stay_strings(tmp_path):
    path = write(tmp_path / "i.csv", "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\n007,0042,1,view\n")
    log = read_interactions_csv(path)
    assert log.user_ids.tolist() == ["007"] and log.item_ids.tolist() == ["0042"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("USER_ID,ITEM_ID,EVENT_TYPE\nu,i,view\n", "missing column\\(s\\) TIMESTAMP"),
        ("USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\nu,i,1,view\nu,i,soon,view\n", "line 3: TIMESTAMP 'soon'"),
        ("USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\nu,i,1,view\n,i,2,view\n", "line 3: empty USER_ID"),
        ("", "empty file"),
    ],
)
def test_errors_name_the_problem(tmp_path, text, message):
    path = write(tmp_path / "bad.csv", text)
    with pytest.raises(ValueError, match=message):
        read_interactions_csv(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="interactions file not found"):
        read_interactions_csv(tmp_path / "nope.csv")


def test_items_csv(tmp_path):
    path = write(tmp_path / "items.csv", "ITEM_ID,CATEGORY\nb,x\na,y\nb,z\n")
    assert read_items_csv(path) == ["b", "a"]
    with pytest.raises(ValueError, match="ITEM_ID"):
        read_items_csv(write(tmp_path / "bad.csv", "ID,CATEGORY\nb,x\n"))


def test_ga4_event_table_maps_through_taxonomy():
    table = pa.table({"user_id": ["u", "u"], "item_id": ["a", "b"], "timestamp": pa.array([1, 2], pa.int64()),
                      "ga4_event": ["view_item", "purchase"]})
    log = interaction_log_from_ga4_events(table, load_taxonomy().event_type_by_ga4_event)
    assert log.event_types.tolist() == ["view", "purchase"]
    with pytest.raises(ValueError, match="not in the taxonomy"):
        interaction_log_from_ga4_events(table.set_column(3, "ga4_event", pa.array(["scroll", "purchase"])),
                                        load_taxonomy().event_type_by_ga4_event)
