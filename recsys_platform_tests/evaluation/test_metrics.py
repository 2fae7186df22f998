import math

import numpy as np
import pytest

from recsys_platform.shared.offline_metrics import (
    UserScores,
    bootstrap_interval,
    per_user_scores,
    personalize_metrics,
)
from recsys_platform.shared.paired_comparison import paired_difference
from recsys_platform.shared.personalize_facts import METRIC_KEYS


def test_docs_worked_example_hits_at_ranks_2_and_5():
    recommended = {"u": ["a", "x", "b", "c", "y", "d"]}
    metrics = personalize_metrics(recommended, {"u": {"x", "y"}}, catalog_size=100)
    assert round(metrics["normalized_discounted_cumulative_gain_at_5"], 4) == 0.6241
    assert metrics["precision_at_5"] == pytest.approx(2 / 5)
    assert metrics["precision_at_10"] == pytest.approx(2 / 10)
    assert metrics["mean_reciprocal_rank_at_25"] == pytest.approx(1 / 2)


def test_keys_are_get_solution_metrics_keys():
    metrics = personalize_metrics({"u": ["a"]}, {"u": {"a"}}, catalog_size=1)
    assert list(metrics) == list(METRIC_KEYS)
    assert set(METRIC_KEYS) == {
        "coverage",
        "mean_reciprocal_rank_at_25",
        "normalized_discounted_cumulative_gain_at_5",
        "normalized_discounted_cumulative_gain_at_10",
        "normalized_discounted_cumulative_gain_at_25",
        "precision_at_5",
        "precision_at_10",
        "precision_at_25",
    }


def test_hand_computed_two_users():
    recommended = {"u1": ["a", "b", "c"], "u2": ["c", "d", "e"], "u3": ["a"]}
    targets = {"u1": {"c"}, "u2": {"c", "e", "z"}, "u3": set()}  # u3 has no target: not scored
    metrics = personalize_metrics(recommended, targets, catalog_size=10)
    # u1: hit at rank 3. u2: hits at ranks 1 and 3, three targets (ideal: ranks 1, 2, 3)
    ndcg_u1 = (1 / math.log2(4)) / 1.0
    ndcg_u2 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3) + 1 / math.log2(4))
    assert metrics["normalized_discounted_cumulative_gain_at_25"] == pytest.approx((ndcg_u1 + ndcg_u2) / 2)
    assert metrics["mean_reciprocal_rank_at_25"] == pytest.approx((1 / 3 + 1) / 2)
    assert metrics["precision_at_5"] == pytest.approx((1 / 5 + 2 / 5) / 2)
    assert metrics["coverage"] == pytest.approx(5 / 10)  # a, b, c, d, e
    scores = per_user_scores(recommended, targets)
    assert scores.users == ["u1", "u2"]


def test_ndcg_at_k_counts_only_top_k_and_repeated_items_once():
    metrics = personalize_metrics({"u": ["x", "x", "a", "b", "c", "d", "y"]}, {"u": {"x", "y"}}, 10)
    # duplicates collapse: list is x, a, b, c, d, y -> y at rank 6, outside the top 5
    assert metrics["normalized_discounted_cumulative_gain_at_5"] == pytest.approx(1 / (1 + 1 / math.log2(3)))
    assert metrics["precision_at_5"] == pytest.approx(1 / 5)


def test_missing_recommendations_score_zero_and_no_targets_is_nan():
    metrics = personalize_metrics({}, {"u": {"a"}}, catalog_size=5)
    assert metrics["precision_at_5"] == 0.0 and metrics["coverage"] == 0.0
    empty = personalize_metrics({"u": ["a"]}, {}, catalog_size=5)
    assert math.isnan(empty["normalized_discounted_cumulative_gain_at_25"])


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="catalog_size"):
        personalize_metrics({}, {}, catalog_size=0)
    with pytest.raises(ValueError, match="k_values"):
        personalize_metrics({}, {}, catalog_size=1, k_values=(0,))


def test_provisioning_interval_contains_mean_and_is_seeded():
    values = np.random.default_rng(3).random(400)
    low, high = bootstrap_interval(values, seed=1)
    assert low < values.mean() < high
    assert (low, high) == bootstrap_interval(values, seed=1)
    assert bootstrap_interval([0.5, 0.5], seed=0) == (0.5, 0.5)
    assert all(math.isnan(v) for v in bootstrap_interval([], seed=0))


def test_paired_difference_separates_signal_from_noise():
    rng = np.random.default_rng(0)
    users = [f"u{i}" for i in range(300)]
    base = rng.random(300)
    better = UserScores(users, {"m": base + 0.1})
    same = UserScores(users, {"m": base + rng.normal(0, 1e-3, 300)})
    reference = UserScores(users, {"m": base})
    assert paired_difference(better, reference, "m").verdict() == "A better"
    assert paired_difference(reference, better, "m").verdict() == "B better"
    noisy = UserScores(users, {"m": base + rng.normal(0, 0.3, 300)})
    assert paired_difference(noisy, reference, "m").verdict() == "within noise"
    assert paired_difference(same, reference, "m").users == 300
    with pytest.raises(ValueError, match="unknown metric"):
        paired_difference(same, reference, "nope")


def test_paired_difference_needs_enough_users_for_a_verdict():
    few = UserScores(["a", "b"], {"m": np.array([1.0, 1.0])})
    none = UserScores(["a", "b"], {"m": np.array([0.0, 0.0])})
    comparison = paired_difference(few, none, "m")
    assert comparison.difference == 1.0 and not comparison.differs
    assert comparison.verdict() == "too few users"
    assert paired_difference(few, UserScores(["z"], {"m": np.array([0.0])}), "m").verdict() == "no common users"
