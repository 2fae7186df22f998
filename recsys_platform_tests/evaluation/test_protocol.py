import math

import numpy as np
import pytest

from recsys_platform.modelling.evaluation.recent_purchases_split import recent_purchases_split
from recsys_platform.shared.personalize_facts import METRIC_KEYS
from recsys_platform.modelling.evaluation.protocol import evaluate_split, personalize_split, train_and_evaluate
from recsys_platform.modelling.recommenders.base import InteractionLog
from recsys_platform_tests.evaluation.helpers import random_log


def test_split_holds_out_ten_percent_of_users_and_newest_tenth_of_each():
    log = random_log(n_users=50, per_user=20)
    split = personalize_split(log, seed=0)
    assert len(split.held_out_users) == 5  # round_half_up(0.1 * 50)
    assert len(split.target_log) == 5 * 2  # ceil(0.1 * 20) per held-out user
    assert len(split.train) + len(split.target_log) == len(log)
    for user in split.held_out_users:
        rows = log.user_ids == user
        times = np.sort(log.timestamps[rows])
        target_times = split.target_log.timestamps[split.target_log.user_ids == user]
        assert sorted(target_times.tolist()) == times[-2:].tolist()
        assert len(split.inputs[user]) == 18
    # every other user's interactions are all in training
    others = ~np.isin(log.user_ids, split.held_out_users)
    assert np.isin(split.train.user_ids, log.user_ids[others]).sum() == others.sum()


def test_split_rounding_rules_are_pinned():
    # 25 users -> round_half_up(2.5) = 3 held out; 11 interactions -> ceil(1.1) = 2 targets
    log = random_log(n_users=25, per_user=11)
    split = personalize_split(log, seed=4)
    assert len(split.held_out_users) == 3
    assert len(split.target_log) == 3 * 2
    # a single-interaction user that is held out has no input and one target
    single = InteractionLog(
        np.array(["a", "b"], dtype=object), np.array(["x", "y"], dtype=object),
        np.array([1, 2]), np.array(["view", "view"], dtype=object),
    )
    split = personalize_split(single, seed=0)
    assert len(split.held_out_users) == 1 and split.inputs[split.held_out_users[0]] == []


def test_split_orders_ties_by_row_order_and_is_seed_deterministic():
    users = np.array(["u"] * 10 + ["v"] * 10, dtype=object)
    items = np.array([f"i{k}" for k in range(20)], dtype=object)
    log = InteractionLog(users, items, np.zeros(20, dtype=np.int64), np.array(["view"] * 20, dtype=object))
    split = personalize_split(log, seed=0)
    held = split.held_out_users[0]
    last_row = np.flatnonzero(users == held)[-1]
    assert split.targets() == {held: {items[last_row]}}
    assert personalize_split(log, seed=0).held_out_users == split.held_out_users
    many = random_log(n_users=200)
    draws = {tuple(personalize_split(many, seed=seed).held_out_users) for seed in range(5)}
    assert len(draws) == 5


def test_split_rejects_bad_input():
    with pytest.raises(ValueError, match="holdout_fraction"):
        personalize_split(random_log(), holdout_fraction=1.5)
    one_user = InteractionLog(np.array(["a"], dtype=object), np.array(["x"], dtype=object),
                              np.array([1]), np.array(["view"], dtype=object))
    with pytest.raises(ValueError, match="at least 2 users"):
        personalize_split(one_user)


def test_train_and_evaluate_reports_metrics_users_settings_and_a_serving_model():
    log = random_log(n_users=60, per_user=15)
    result = train_and_evaluate(log, "aws-popularity-count", seed=1)
    assert list(result.metrics) == list(METRIC_KEYS)
    assert result.users_scored == 6
    assert result.train_seconds >= 0
    assert result.settings["exclude_seen"] is False and result.settings["target_event_types"] == "all"
    assert result.settings["held_out_users"] == 6
    # the serving model was refitted on all data: it knows every user
    assert len(result.model.recommend("u000", 5)) == 5
    low, high = result.intervals["precision_at_25"]
    assert low <= result.metrics["precision_at_25"] <= high


def test_purchase_targets_score_only_users_with_held_out_purchases():
    log = random_log(n_users=100, per_user=10, purchase_share=0.1)
    all_targets = train_and_evaluate(log, "aws-popularity-count")
    purchases = train_and_evaluate(log, "aws-popularity-count", target_event_types=["purchase"])
    split = personalize_split(log)
    expected = len(split.targets(["purchase"]))
    assert purchases.users_scored == expected < all_targets.users_scored


def test_exclude_seen_removes_input_items():
    # every user interacts with the same item twice: without exclusion it is the top recommendation
    users = np.repeat([f"u{i}" for i in range(20)], 4).astype(object)
    items = np.tile(["hot", "hot", "a", "b"], 20).astype(object)
    items[3::4] = [f"own{i}" for i in range(20)]
    log = InteractionLog(users, items, np.tile([1, 2, 3, 4], 20), np.array(["view"] * 80, dtype=object))
    split = personalize_split(log, seed=0)
    kept = evaluate_split(split, "aws-popularity-count")
    excluded = evaluate_split(split, "aws-popularity-count", exclude_seen=True)
    user = split.held_out_users[0]
    assert kept.recommended[user][0] == "hot"
    assert "hot" not in excluded.recommended[user] and "a" not in excluded.recommended[user]


def test_recent_purchases_split_scores_every_recent_buyer_with_history():
    log = random_log(n_users=80, per_user=20, purchase_share=0.2)
    split = recent_purchases_split(log, recent_fraction=0.2)
    cut = split.settings["cut_time"]
    purchases = log.event_types == "purchase"
    recent_buyers = set(log.user_ids[purchases & (log.timestamps > cut)])
    with_history = set(log.user_ids[log.timestamps <= cut])
    assert set(split.held_out_users) == recent_buyers & with_history
    assert (split.target_log.timestamps > cut).all()
    assert set(split.target_log.event_types) == {"purchase"}
    # held-out users' future is not in training; everyone else's is
    held = np.isin(split.train.user_ids, split.held_out_users)
    assert (split.train.timestamps[held] <= cut).all()
    held_future = np.isin(log.user_ids, split.held_out_users) & (log.timestamps > cut)
    assert len(split.train) == len(log) - int(held_future.sum())
    # it scores far more users on purchases than Personalize's newest-10% split
    assert len(split.targets()) > len(personalize_split(log).targets(["purchase"]))


def test_recent_purchases_split_compares_models_on_the_same_users():
    log = random_log(n_users=80, per_user=20, purchase_share=0.3)
    split = recent_purchases_split(log, max_users=20, seed=3)
    purchases_only = evaluate_split(split, "aws-popularity-count", training_event_types=["purchase"])
    all_events = evaluate_split(split, "aws-popularity-count")
    assert purchases_only.per_user.users == all_events.per_user.users
    assert len(split.held_out_users) == 20
    with pytest.raises(ValueError, match="no training interactions"):
        evaluate_split(split, "aws-popularity-count", training_event_types=["like"])


def test_recent_purchases_split_needs_purchases():
    log = random_log(purchase_share=0.0)
    with pytest.raises(ValueError, match="purchase"):
        recent_purchases_split(log)


def test_metrics_are_nan_when_no_user_has_a_target_kind():
    log = random_log(purchase_share=0.0)
    result = train_and_evaluate(log, "aws-popularity-count", target_event_types=["purchase"])
    assert result.users_scored == 0 and math.isnan(result.metrics["precision_at_5"])


def test_max_scored_users_scores_a_seeded_sample_of_held_out_users():
    log = random_log(n_users=200, per_user=10)
    split = personalize_split(log, seed=0)
    sampled = evaluate_split(split, "aws-popularity-count", max_scored_users=7, seed=2)
    assert len(sampled.recommended) == 7 and sampled.users_scored == 7
    assert set(sampled.recommended) <= set(split.held_out_users)
    again = evaluate_split(split, "aws-popularity-count", max_scored_users=7, seed=2)
    assert again.per_user.users == sampled.per_user.users
