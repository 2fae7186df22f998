import argparse
import re
import json

import numpy as np
import pytest

from recsys_platform.cli import evaluate as cli
from recsys_platform.shared.personalize_facts import METRIC_KEYS


def run_cli(argv):
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["evaluate", *argv])
    return args.func(args)


@pytest.fixture
def interactions_csv(tmp_path):
    rng = np.random.default_rng(0)
    lines = ["USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE"]
    for row in range(1500):
        user = f"u{rng.integers(0, 100)}"
        item = f"i{rng.integers(0, 60)}"
        event = rng.choice(["view", "cart", "purchase"], p=[0.7, 0.2, 0.1])
        lines.append(f"{user},{item},{1_600_000_000 + row},{event},")
    path = tmp_path / "interactions.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_json_last_line_has_metrics_settings_and_training_time(interactions_csv, capsys):
    code = run_cli(["--interactions", str(interactions_csv), "--recipe", "aws-user-personalization-v2",
                    "--targets", "purchase", "--exclude-seen", "--seed", "3", "--json"])
    assert code == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert "users scored" in "\n".join(out[:-1])
    result = json.loads(out[-1])
    assert set(result["metrics"]) == set(METRIC_KEYS)
    assert result["settings"]["target_event_types"] == ["purchase"]
    assert result["settings"]["exclude_seen"] is True and result["settings"]["seed"] == 3
    assert result["train_seconds"] >= 0 and result["users_scored"] >= 1


def test_event_types_items_and_weights(interactions_csv, tmp_path, capsys):
    items = tmp_path / "items.csv"
    items.write_text("ITEM_ID\n" + "\n".join(f"i{k}" for k in range(120)) + "\n")
    code = run_cli(["--interactions", str(interactions_csv), "--items", str(items), "--recipe", "item-knn",
                    "--event-types", "view,cart", "--event-weights", "view=0.5,cart=1",
                    "--hyperparameter", "neighbours=20", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["settings"]["catalog_size"] == 120
    assert result["settings"]["training_event_types"] == ["view", "cart"]
    assert result["settings"]["event_weights"] == {"view": 0.5, "cart": 1.0}
    assert result["settings"]["hyperparameters"] == {"neighbours": "20"}


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--recipe", "nope"], "unknown recipe 'nope'"),
        (["--recipe", "als", "--event-types", "like"], "--event-types: \\['like'\\] not in the file"),
        (["--recipe", "als", "--event-weights", "view"], "--event-weights: expected NAME=VALUE"),
        (["--recipe", "item-knn", "--hyperparameter", "neighbours=lots"], "neighbours='lots'"),
    ],
)
def test_errors_exit_2_with_a_message(interactions_csv, capsys, extra, message):
    assert run_cli(["--interactions", str(interactions_csv), *extra]) == 2
    assert re.search(message, capsys.readouterr().err)


def test_missing_file_is_reported(tmp_path, capsys):
    assert run_cli(["--interactions", str(tmp_path / "none.csv"), "--recipe", "als"]) == 2
    assert "interactions file not found" in capsys.readouterr().err


def test_recent_purchases_holdout_scores_purchases_of_recent_buyers(interactions_csv, capsys):
    code = run_cli(["--interactions", str(interactions_csv), "--recipe", "aws-popularity-count",
                    "--holdout", "recent-purchases", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["settings"]["protocol"] == "recent_purchases_split"
    assert result["users_scored"] == result["settings"]["held_out_users"] > 10
    assert result["settings"]["target_event_types"] == ["purchase"]
