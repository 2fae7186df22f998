"""Offline metrics with Amazon Personalize's `GetSolutionMetrics` names and definitions.

For each scored user (one with at least one target item) and the top-K recommended items:

- `precision_at_K`: relevant items among the top K, divided by K.
- `normalized_discounted_cumulative_gain_at_K`: sum of 1/log2(1 + rank) over relevant items in the
  top K, divided by the same sum for an ideal list (min(#targets, K) hits at ranks 1..).
  Hits at ranks 2 and 5 with two targets: (1/log2 3 + 1/log2 6) / (1 + 1/log2 3) = 0.6241.
- `mean_reciprocal_rank_at_25`: 1/rank of the first relevant item in the top 25, 0 when none.
Each is averaged over scored users. `coverage` is the share of the catalogue that appears in any
user's recommendations (top max-K).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from recsys_platform.shared.personalize_facts import METRIC_CUTOFFS as DEFAULT_K_VALUES
from recsys_platform.shared.personalize_facts import metric_keys


@dataclass(frozen=True)
class UserScores:
    """Per-user metric values for the scored users, aligned with `users` (sorted)."""

    users: list[str]
    values: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.users)


def _check_k_values(k_values: Sequence[int]) -> tuple[int, ...]:
    k_values = tuple(int(k) for k in k_values)
    if not k_values or min(k_values) < 1:
        raise ValueError(f"k_values must be positive integers, got {k_values!r}")
    return k_values


def per_user_scores(
    recommended: Mapping[str, Sequence[str]],
    targets: Mapping[str, Collection[str]],
    k_values: Sequence[int] = DEFAULT_K_VALUES,
) -> UserScores:
    """Each scored user's reciprocal rank, NDCG@K and precision@K (users without targets are skipped;
    a scored user missing from `recommended` counts as an empty list)."""
    k_values = _check_k_values(k_values)
    top = max(k_values)
    users = sorted(user for user, items in targets.items() if len(items))
    discounts = 1.0 / np.log2(np.arange(2, top + 2))
    ideal = np.cumsum(discounts)
    values = {key: np.zeros(len(users)) for key in metric_keys(tuple(k_values)) if key != "coverage"}
    mrr_key = f"mean_reciprocal_rank_at_{top}"
    for row, user in enumerate(users):
        relevant = set(targets[user])
        ranked = list(dict.fromkeys(recommended.get(user, ())))[:top]  # a repeated item counts once
        hits = np.fromiter((item in relevant for item in ranked), dtype=bool, count=len(ranked))
        hit_ranks = np.flatnonzero(hits)
        if hit_ranks.size:
            values[mrr_key][row] = 1.0 / (hit_ranks[0] + 1)
        for k in k_values:
            in_top = hit_ranks[hit_ranks < k]
            values[f"precision_at_{k}"][row] = in_top.size / k
            values[f"normalized_discounted_cumulative_gain_at_{k}"][row] = (
                discounts[in_top].sum() / ideal[min(len(relevant), k) - 1]
            )
    return UserScores(users, values)


def personalize_metrics(
    recommended: Mapping[str, Sequence[str]],
    targets: Mapping[str, Collection[str]],
    catalog_size: int,
    k_values: Sequence[int] = DEFAULT_K_VALUES,
) -> dict[str, float]:
    """`GetSolutionMetrics`-style metrics: means over users with targets; NaN when no user has one."""
    k_values = _check_k_values(k_values)
    if catalog_size < 1:
        raise ValueError(f"catalog_size must be at least 1, got {catalog_size}")
    top = max(k_values)
    recommended_items: set[str] = set()
    for items in recommended.values():
        recommended_items.update(list(items)[:top])
    scores = per_user_scores(recommended, targets, k_values)
    metrics = {"coverage": min(1.0, len(recommended_items) / catalog_size)}
    for key, column in scores.values.items():
        metrics[key] = float(column.mean()) if len(scores) else math.nan
    return {key: metrics[key] for key in metric_keys(tuple(k_values))}


def bootstrap_interval(
    per_user_values: Sequence[float] | np.ndarray, seed: int, n: int = 1000, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean over users (NaNs when no user)."""
    from scipy import stats

    values = np.asarray(per_user_values, dtype=np.float64)
    if values.size == 0:
        return (math.nan, math.nan)
    if np.all(values == values[0]):  # resampling cannot move the mean
        return (float(values[0]), float(values[0]))
    result = stats.bootstrap(
        (values,),
        np.mean,
        n_resamples=n,
        confidence_level=level,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return (float(result.confidence_interval.low), float(result.confidence_interval.high))
