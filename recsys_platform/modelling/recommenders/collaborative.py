"""What every learned model shares: id codes, user histories, the popularity fallback, and serving.

A subclass implements `_fit_encoded(encoded)` and `_score_history(user_code, items, times, weights)`,
which returns candidate item codes and scores (a sparse candidate list, never a dense items x items
matrix) for a history (item codes, timestamps, weights; oldest first). Serving then drops excluded
items, takes the top k with `argpartition`, and fills any remaining slots with the most popular items,
so every user, known or not, gets `num_results` items.

The history is the user's training history plus, when given, the interactions recorded since
(`recent`): known items only (a new item needs a retraining to get a code), weighted by the solution's
event weights. A user the model never saw but who has recent interactions is scored from those alone.
`user_code` is None for such a user; models that need a trained user vector (ALS) then have nothing
to score and the user gets the popular fill.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from recsys_platform.modelling.recommenders.base import InteractionLog, RecentInteractions, Recommender
from recsys_platform.modelling.recommenders.encoding import EncodedLog, encode_log, event_weight_per_row, top_k

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def hyperparameter_float(
    hyperparameters: Mapping[str, str], name: str, default: float, minimum: float = 0.0
) -> float:
    """A numeric hyperparameter (Personalize passes them as strings); clear error when malformed."""
    raw = hyperparameters.get(name, default)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"hyperparameter {name}={raw!r} is not a number") from None
    if value < minimum:
        raise ValueError(f"hyperparameter {name}={raw!r} must be at least {minimum}")
    return value


def hyperparameter_int(hyperparameters: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    value = hyperparameter_float(hyperparameters, name, default, minimum)
    if value != int(value):
        raise ValueError(f"hyperparameter {name}={hyperparameters.get(name)!r} must be a whole number")
    return int(value)


def hyperparameter_bool(hyperparameters: Mapping[str, str], name: str, default: bool) -> bool:
    raw = str(hyperparameters.get(name, default)).strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ValueError(f"hyperparameter {name}={hyperparameters.get(name)!r} must be true or false")


class CollaborativeRecommender(Recommender):
    """Base of the learned models. Hyperparameter `exclude_seen` (default false) hides a user's own items."""

    def __init__(
        self,
        hyperparameters: Mapping[str, str] | None = None,
        event_weights: Mapping[str, float] | None = None,
    ) -> None:
        self.hyperparameters = dict(hyperparameters or {})
        self.event_weights = dict(event_weights or {})
        self.exclude_seen = hyperparameter_bool(self.hyperparameters, "exclude_seen", False)
        self.items = np.array([], dtype=object)
        self.item_index: dict[str, int] = {}
        self.user_index: dict[str, int] = {}
        self.user_ptr = np.zeros(1, dtype=np.int64)
        self.history_items = np.array([], dtype=np.int32)
        self.history_times = np.array([], dtype=np.int64)
        self.history_weights = np.array([], dtype=np.float32)
        self.popular_codes = np.array([], dtype=np.int32)
        self.popular_scores = np.array([], dtype=np.float64)

    # --- fitting ---------------------------------------------------------------------------------

    def fit(self, log: InteractionLog) -> CollaborativeRecommender:
        encoded = encode_log(log, self.event_weights)
        self.items = encoded.items
        self.item_index = {item: code for code, item in enumerate(encoded.items)}
        self.user_index = {user: code for code, user in enumerate(encoded.users)}
        self.user_ptr = encoded.user_ptr
        self.history_items = encoded.item_codes
        self.history_times = encoded.timestamps
        self.history_weights = encoded.weights
        totals = encoded.item_totals()
        order = np.lexsort((np.arange(encoded.n_items), -totals))
        self.popular_codes, self.popular_scores = order.astype(np.int32), totals[order]
        self._fit_encoded(encoded)
        return self

    def _fit_encoded(self, encoded: EncodedLog) -> None:
        raise NotImplementedError

    def _score_history(
        self, user_code: int | None, items: np.ndarray, times: np.ndarray, weights: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _score_user(self, user_code: int) -> tuple[np.ndarray, np.ndarray]:
        """Candidates for a known user from the training history alone."""
        return self._score_history(user_code, *self.user_history(user_code))

    # --- serving ---------------------------------------------------------------------------------

    def user_history(self, user_code: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The user's (item codes, timestamps, weights), oldest first."""
        start, end = self.user_ptr[user_code], self.user_ptr[user_code + 1]
        return self.history_items[start:end], self.history_times[start:end], self.history_weights[start:end]

    def history_with(
        self, user_code: int | None, recent: RecentInteractions
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The user's training history (if any) with the recent interactions of known items, weighted
        like training, ordered by time (a training row before a recent one at the same time).
        None when there is neither."""
        history = None if user_code is None else self.user_history(user_code)
        codes = [self.item_index.get(str(item)) for item in recent.item_ids]
        known = np.fromiter((code is not None for code in codes), dtype=bool, count=len(codes))
        if not known.any():
            return history
        weights = event_weight_per_row(np.asarray(list(recent.event_types), dtype=object)[known], self.event_weights)
        positive = weights > 0
        items = np.array([code for code in codes if code is not None], dtype=np.int32)[positive]
        times = np.asarray(list(recent.timestamps), dtype=np.int64)[known][positive]
        weights = weights[positive]
        if items.size == 0:
            return history
        if history is not None:
            items = np.concatenate([history[0], items])
            times = np.concatenate([history[1], times])
            weights = np.concatenate([history[2], weights])
        order = np.lexsort((np.arange(items.size), times))
        return items[order], times[order], weights[order]

    def recommend(
        self,
        user_id: str,
        num_results: int = 25,
        exclude: Sequence[str] | None = None,
        recent: RecentInteractions | None = None,
    ) -> list[tuple[str, float]]:
        if num_results < 0:
            raise ValueError(f"num_results must be non-negative, got {num_results}")
        excluded = {self.item_index[item] for item in (exclude or ()) if item in self.item_index}
        user_code = self.user_index.get(str(user_id))
        if recent is not None and len(recent):
            history = self.history_with(user_code, recent)
        else:
            history = None if user_code is None else self.user_history(user_code)
        codes = np.array([], dtype=np.int64)
        scores = np.array([], dtype=np.float64)
        if history is not None:
            if self.exclude_seen:
                excluded.update(history[0].tolist())
            codes, scores = self._score_history(user_code, *history)
            codes, scores = np.asarray(codes), np.asarray(scores, dtype=np.float64)
            keep = scores > 0
            if excluded:
                keep &= ~np.isin(codes, np.fromiter(excluded, dtype=np.int64))
            codes, scores = top_k(codes[keep], scores[keep], num_results)
        out = [(self.items[code], float(score)) for code, score in zip(codes.tolist(), scores.tolist())]
        if len(out) < num_results:
            skip = excluded | set(codes.tolist())
            out.extend(self._popular_fill(num_results - len(out), skip, personal=history is not None))
        return out

    def _popular_fill(self, count: int, skip: set[int], personal: bool) -> list[tuple[str, float]]:
        # A user with a history gets the fill below every scored candidate (score 0); others see counts.
        out: list[tuple[str, float]] = []
        # at most len(skip) of the most popular are skipped: no need to walk the whole catalogue
        head = count + len(skip)
        for code, total in zip(self.popular_codes[:head].tolist(), self.popular_scores[:head].tolist()):
            if code in skip:
                continue
            out.append((self.items[code], 0.0 if personal else float(total)))
            if len(out) == count:
                break
        return out
