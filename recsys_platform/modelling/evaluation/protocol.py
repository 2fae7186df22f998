"""Amazon Personalize's offline evaluation protocol, reproduced so local numbers read like AWS's.

Split (`personalize_split`), with the rounding pinned down because AWS does not document it:
- held-out users: `round_half_up(holdout_fraction * number_of_users)` users drawn at random with
  `numpy.random.default_rng(seed)` from the sorted distinct user ids, at least 1 and at most all but one;
- for each held-out user, interactions are ordered by (TIMESTAMP, row order in the file); the newest
  `ceil(target_fraction * n)` of the user's n interactions are targets (so always at least one) and the
  older ones are input. A user with a single interaction has no input and is served the fallback list.
The model for scoring is trained on every other user's interactions plus the held-out users' input;
each held-out user then gets 25 recommendations, scored against the distinct target items.
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from recsys_platform.shared.offline_metrics import (
    DEFAULT_K_VALUES,
    UserScores,
    bootstrap_interval,
    per_user_scores,
    personalize_metrics,
)
from recsys_platform.modelling.recommenders.base import InteractionLog, Recommender
from recsys_platform.modelling.recommenders.registry import create_recommender

NUM_RESULTS = 25


def round_half_up(value: float) -> int:
    return int(math.floor(value + 0.5))


@dataclass(frozen=True)
class EvaluationSplit:
    """Training interactions, and for each held-out user the input items and target interactions."""

    train: InteractionLog
    held_out_users: list[str]
    inputs: dict[str, list[str]]  # held-out user -> input item ids, oldest first
    target_log: InteractionLog  # the held-out users' target interactions
    settings: dict = field(default_factory=dict)

    def targets(self, event_types: Collection[str] | None = None) -> dict[str, set[str]]:
        """Held-out user -> distinct target items, optionally only interactions of `event_types`."""
        log = self.target_log
        if event_types is not None:
            log = log.subset(np.isin(log.event_types.astype(str), list(event_types)))
        out: dict[str, set[str]] = {}
        for user, item in zip(log.user_ids, log.item_ids):
            out.setdefault(user, set()).add(item)
        return out


def as_string_log(log: InteractionLog) -> InteractionLog:
    """The same log with ids and event types as Python str (so dict keys compare as the CSV spells them)."""
    return InteractionLog(
        log.user_ids.astype(str).astype(object),
        log.item_ids.astype(str).astype(object),
        np.asarray(log.timestamps, dtype=np.int64),
        log.event_types.astype(str).astype(object),
        log.event_values,
    )


def chronological_order(log: InteractionLog) -> np.ndarray:
    """Row indices sorted by user, then TIMESTAMP, then original row order."""
    return np.lexsort((np.arange(len(log)), log.timestamps, log.user_ids.astype(str)))


def personalize_split(
    log: InteractionLog, holdout_fraction: float = 0.1, seed: int = 0, target_fraction: float = 0.1
) -> EvaluationSplit:
    """Personalize's split: a random `holdout_fraction` of users, whose newest `target_fraction` of
    interactions are targets."""
    if not 0 < holdout_fraction < 1 or not 0 < target_fraction <= 1:
        raise ValueError(
            f"holdout_fraction must be in (0, 1) and target_fraction in (0, 1]; "
            f"got {holdout_fraction}, {target_fraction}"
        )
    log = as_string_log(log)
    users = np.unique(log.user_ids.astype(str))
    if users.size < 2:
        raise ValueError(f"need interactions of at least 2 users to hold some out, got {users.size}")
    n_held = min(max(1, round_half_up(holdout_fraction * users.size)), users.size - 1)
    held = np.sort(np.random.default_rng(seed).choice(users, size=n_held, replace=False))

    order = chronological_order(log)
    sorted_users = log.user_ids[order].astype(str)
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    counts = np.diff(np.r_[starts, len(order)])
    position = np.arange(len(order)) - np.repeat(starts, counts)
    size = np.repeat(counts, counts)
    n_targets = np.ceil(target_fraction * size - 1e-9).astype(np.int64)  # 1e-9: 0.1 * 10 must be 1
    is_held = np.isin(sorted_users, held)
    is_target = is_held & (position >= size - n_targets)

    input_rows = order[is_held & ~is_target]
    inputs: dict[str, list[str]] = {str(user): [] for user in held}
    for user, item in zip(log.user_ids[input_rows], log.item_ids[input_rows]):
        inputs[user].append(item)
    train_rows = np.sort(order[~is_target])
    return EvaluationSplit(
        train=log.subset(train_rows),
        held_out_users=[str(user) for user in held],
        inputs=inputs,
        target_log=log.subset(order[is_target]),
        settings={
            "protocol": "personalize",
            "holdout_fraction": holdout_fraction,
            "target_fraction": target_fraction,
            "held_out_users": int(n_held),
            "split_rule": "held-out users = round_half_up(fraction * users); "
            "targets = newest ceil(target_fraction * n) interactions per held-out user",
        },
    )


def recommend_for_users(
    model: Recommender,
    users: Iterable[str],
    num_results: int = NUM_RESULTS,
    exclude_by_user: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, list[str]]:
    """Each user's recommended item ids, best first."""
    exclude_by_user = exclude_by_user or {}
    return {
        user: [item for item, _ in model.recommend(user, num_results, exclude=exclude_by_user.get(user))]
        for user in users
    }


@dataclass
class EvaluationResult:
    """A model refitted on all data for serving, and its offline metrics on the split."""

    model: Recommender
    metrics: dict[str, float]
    users_scored: int
    train_seconds: float
    settings: dict
    per_user: UserScores
    intervals: dict[str, tuple[float, float]]  # metric -> 95% bootstrap interval over scored users
    evaluation_train_seconds: float = 0.0

    def as_json(self) -> dict:
        return {
            "metrics": self.metrics,
            "settings": self.settings,
            "train_seconds": self.train_seconds,
            "users_scored": self.users_scored,
            "intervals": {key: list(bounds) for key, bounds in self.intervals.items()},
            "evaluation_train_seconds": self.evaluation_train_seconds,
        }


def score_recommendations(
    recommended: Mapping[str, Sequence[str]],
    targets: Mapping[str, Collection[str]],
    catalog_size: int,
    seed: int = 0,
    k_values: Sequence[int] = DEFAULT_K_VALUES,
) -> tuple[dict[str, float], UserScores, dict[str, tuple[float, float]]]:
    """Metrics, per-user values and a bootstrap interval for every per-user metric."""
    metrics = personalize_metrics(recommended, targets, catalog_size, k_values)
    per_user = per_user_scores(recommended, targets, k_values)
    intervals = {key: bootstrap_interval(values, seed) for key, values in per_user.values.items()}
    return metrics, per_user, intervals


def _fit_timed(recipe, hyperparameters, event_weights, log) -> tuple[Recommender, float]:
    started = time.perf_counter()
    model = create_recommender(recipe, hyperparameters, event_weights).fit(log)
    return model, time.perf_counter() - started


@dataclass
class SplitScore:
    """A model trained on a split's training data and scored on its held-out users."""

    model: Recommender
    metrics: dict[str, float]
    per_user: UserScores
    intervals: dict[str, tuple[float, float]]
    train_seconds: float
    recommended: dict[str, list[str]]

    @property
    def users_scored(self) -> int:
        return len(self.per_user)


def evaluate_split(
    split: EvaluationSplit,
    recipe: str,
    hyperparameters: Mapping[str, str] | None = None,
    event_weights: Mapping[str, float] | None = None,
    *,
    seed: int = 0,
    exclude_seen: bool = False,
    target_event_types: Collection[str] | None = None,
    training_event_types: Collection[str] | None = None,
    catalog_size: int | None = None,
    max_scored_users: int | None = None,
) -> SplitScore:
    """Train `recipe` on `split.train` (only `training_event_types` when given) and score it.

    `max_scored_users` scores a seeded random sample of the held-out users (all of them stay out of
    training), to bound the time spent on very large splits.

    Two models scored on the same split are scored on the same users and targets, so their per-user
    values can be compared pairwise (`evaluation.compare.paired_difference`).
    """
    train = split.train
    if training_event_types is not None:
        train = train.subset(np.isin(train.event_types.astype(str), list(training_event_types)))
        if len(train) == 0:
            raise ValueError(f"no training interactions of event types {sorted(training_event_types)}")
    model, seconds = _fit_timed(recipe, hyperparameters, event_weights, train)
    users = split.held_out_users
    if max_scored_users is not None and len(users) > max_scored_users:
        sample = np.random.default_rng(seed).choice(users, size=max_scored_users, replace=False)
        users = sorted(sample.tolist())
    recommended = recommend_for_users(model, users, exclude_by_user=split.inputs if exclude_seen else None)
    targets = split.targets(target_event_types)
    targets = {user: targets[user] for user in users if user in targets}
    if catalog_size is None:
        catalog_size = len(set(split.train.item_ids.tolist()) | set(split.target_log.item_ids.tolist()))
    metrics, per_user, intervals = score_recommendations(recommended, targets, catalog_size, seed)
    return SplitScore(model, metrics, per_user, intervals, seconds, recommended)


def train_and_evaluate(
    log: InteractionLog,
    recipe: str,
    hyperparameters: Mapping[str, str] | None = None,
    event_weights: Mapping[str, float] | None = None,
    seed: int = 0,
    *,
    exclude_seen: bool = False,
    target_event_types: Collection[str] | None = None,
    catalog: Collection[str] | None = None,
    holdout_fraction: float = 0.1,
    split: EvaluationSplit | None = None,
) -> EvaluationResult:
    """Score `recipe` with Personalize's protocol, then refit it on ALL of `log` for serving.

    `exclude_seen`: a held-out user's input items are removed from their recommendations (AWS does not
    say whether it does this). `target_event_types`: only target interactions of these types count
    (None = all). `catalog`: item ids of the items dataset; coverage divides by the size of its union
    with the interacted items. `split`: score on this split of `log` instead (e.g. the platform's
    purchase holdout).
    """
    if len(log) == 0:
        raise ValueError("no interactions to train on")
    if split is None:
        split = personalize_split(log, holdout_fraction=holdout_fraction, seed=seed)
    catalog_items = set(np.unique(log.item_ids.astype(str)).tolist()) | set(map(str, catalog or ()))
    scored = evaluate_split(
        split,
        recipe,
        hyperparameters,
        event_weights,
        seed=seed,
        exclude_seen=exclude_seen,
        target_event_types=target_event_types,
        catalog_size=len(catalog_items),
    )
    model, train_seconds = _fit_timed(recipe, hyperparameters, event_weights, log)
    settings = {
        "recipe": recipe,
        "model": type(model).__name__,
        "hyperparameters": dict(hyperparameters or {}),
        "event_weights": dict(event_weights or {}),
        "seed": seed,
        "exclude_seen": exclude_seen,
        "target_event_types": "all" if target_event_types is None else sorted(target_event_types),
        "interactions": len(log),
        "catalog_size": len(catalog_items),
        "num_results": NUM_RESULTS,
        **split.settings,
    }
    return EvaluationResult(
        model=model,
        metrics=scored.metrics,
        users_scored=scored.users_scored,
        train_seconds=train_seconds,
        settings=settings,
        per_user=scored.per_user,
        intervals=scored.intervals,
        evaluation_train_seconds=scored.train_seconds,
    )
