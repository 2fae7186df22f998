"""What every learned model shares: id codes, user histories, the popularity fallback, and serving.

A subclass implements `_fit_encoded(encoded)` and `_score_user(user_code)`, which returns candidate
item codes and scores (a sparse candidate list, never a dense items x items matrix). Serving then
drops excluded items, takes the top k with `argpartition`, and fills any remaining slots with the
most popular items, so every user, known or not, gets `num_results` items.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from recsys_platform.modelling.recommenders.base import InteractionLog, Recommender
from recsys_platform.modelling.recommenders.encoding import EncodedLog, encode_log, top_k

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

    def _score_user(self, user_code: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    # --- serving ---------------------------------------------------------------------------------

    def user_history(self, user_code: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The user's (item codes, timestamps, weights), oldest first."""
        start, end = self.user_ptr[user_code], self.user_ptr[user_code + 1]
        return self.history_items[start:end], self.history_times[start:end], self.history_weights[start:end]

    def recommend(
        self, user_id: str, num_results: int = 25, exclude: Sequence[str] | None = None
    ) -> list[tuple[str, float]]:
        if num_results < 0:
            raise ValueError(f"num_results must be non-negative, got {num_results}")
        excluded = {self.item_index[item] for item in (exclude or ()) if item in self.item_index}
        user_code = self.user_index.get(str(user_id))
        codes = np.array([], dtype=np.int64)
        scores = np.array([], dtype=np.float64)
        if user_code is not None:
            if self.exclude_seen:
                excluded.update(self.user_history(user_code)[0].tolist())
            codes, scores = self._score_user(user_code)
            codes, scores = np.asarray(codes), np.asarray(scores, dtype=np.float64)
            keep = scores > 0
            if excluded:
                keep &= ~np.isin(codes, np.fromiter(excluded, dtype=np.int64))
            codes, scores = top_k(codes[keep], scores[keep], num_results)
        out = [(self.items[code], float(score)) for code, score in zip(codes.tolist(), scores.tolist())]
        if len(out) < num_results:
            out.extend(self._popular_fill(num_results - len(out), excluded | set(codes.tolist()), user_code))
        return out

    def _popular_fill(self, count: int, skip: set[int], user_code: int | None) -> list[tuple[str, float]]:
        # A known user's fill ranks below every scored candidate (score 0); an unknown user sees counts.
        out: list[tuple[str, float]] = []
        for code, total in zip(self.popular_codes.tolist(), self.popular_scores.tolist()):
            if code in skip:
                continue
            out.append((self.items[code], 0.0 if user_code is not None else float(total)))
            if len(out) == count:
                break
        return out
