import json

import pyarrow.compute as pc
import pytest

import dataclasses

from recsys_platform.defs.personalize.holdout_scoring import load_holdout, parse_batch_output
from recsys_platform.defs.personalize.personalize_setup import load_setup
from recsys_platform.defs.personalize.snapshots import training_window
from recsys_platform_tests.personalize.synthetic_shop import TRAINING_DATE, fill_warehouse, synthetic_interactions


def test_batch_output_lines_with_errors_are_skipped():
    lines = [
        {"input": {"userId": "u1"}, "output": {"recommendedItems": ["i3", "i1"], "scores": [0.6, 0.4]}, "error": None},
        {"input": {"userId": "u2"}, "output": None, "error": "User not found"},
        {"input": {"userId": "u3"}, "output": {"recommendedItems": [], "scores": []}, "error": None},
    ]
    text = "\n".join(json.dumps(line) for line in lines) + "\n\n"
    assert parse_batch_output(text) == {"u1": ["i3", "i1"], "u3": []}


def test_holdout_targets_and_batch_input_are_the_held_out_users(warehouse, lake):
    setup = dataclasses.replace(load_setup(), window_days=30)
    window = training_window(TRAINING_DATE, setup, "Asia/Seoul")
    holdout = load_holdout(warehouse, lake, window, setup, "run-1")
    assert holdout.input_key == f"personalize/holdout/{TRAINING_DATE}/run-1/users.json"
    requested = [json.loads(line)["userId"] for line in lake.read_text(holdout.input_key).splitlines()]
    assert requested == sorted(holdout.targets) and requested
    assert all(len(items) == len(set(items)) > 0 for items in holdout.targets.values())


def test_empty_holdout_fails_naming_the_day_and_event(recsys_home, lake):
    source = synthetic_interactions()
    no_purchases = fill_warehouse(recsys_home / "np", source.filter(pc.not_equal(source["EVENT_TYPE"], "purchase")))
    setup = dataclasses.replace(load_setup(), window_days=30)
    window = training_window(TRAINING_DATE, setup, "Asia/Seoul")
    with pytest.raises(ValueError, match=f"the holdout of {TRAINING_DATE} is empty: no held-out user has a purchase"):
        load_holdout(no_purchases, lake, window, setup, "run-1")
    assert lake.list("personalize/holdout/") == []  # nothing half-written for a holdout that cannot score


def test_held_out_is_the_sql_predicate_of_training_and_the_holdout(warehouse):
    """The real-time path (event replay, the demo) asks the same predicate the snapshots use."""
    import hashlib

    from recsys_platform.defs.personalize.holdout_scoring import held_out

    setup = load_setup()
    users = [f"u{n}" for n in range(200)] + ["anon:1000:pseudo-1", "anon:1000:pseudo-2"]
    expected = {u for u in users
                if int(hashlib.md5((setup.holdout.seed + u).encode()).hexdigest()[:8], 16) % 100 < setup.holdout.percent_users}
    assert held_out(warehouse, setup, users) == expected and 5 < len(expected) < 40
    assert held_out(warehouse, setup, []) == set()
