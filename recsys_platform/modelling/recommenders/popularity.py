"""`aws-popularity-count`: the most interacted-with items, the same list for everyone.

Event weights count like Personalize's eventsConfig (see `encoding.event_weight_per_row`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from recsys_platform.modelling.recommenders.base import InteractionLog, RecentInteractions, Recommender
from recsys_platform.modelling.recommenders.encoding import event_weight_per_row


class PopularityRecommender(Recommender):
    recipe = "aws-popularity-count"

    def __init__(self, event_weights: Mapping[str, float] | None = None) -> None:
        self.event_weights = dict(event_weights or {})
        self.items: np.ndarray = np.array([], dtype=object)
        self.scores: np.ndarray = np.array([], dtype=np.float64)

    def fit(self, log: InteractionLog) -> PopularityRecommender:
        if len(log) == 0:
            raise ValueError("cannot fit a model on an empty interaction log")
        weights = event_weight_per_row(log.event_types, self.event_weights).astype(np.float64)
        items, inverse = np.unique(log.item_ids.astype(str), return_inverse=True)
        totals = np.bincount(inverse, weights=weights, minlength=len(items))
        if not (totals > 0).any():
            raise ValueError(f"no interaction has an event type with positive weight in {self.event_weights}")
        order = np.lexsort((items, -totals))  # ties broken by item id: deterministic
        order = order[totals[order] > 0]  # items only seen in unweighted event types are not counted
        self.items, self.scores = items[order].astype(object), totals[order]
        return self

    def recommend(
        self,
        user_id: str,
        num_results: int = 25,
        exclude: Sequence[str] | None = None,
        recent: RecentInteractions | None = None,
    ) -> list[tuple[str, float]]:
        # `recent` is ignored: the same list for everyone until the next training, as Personalize's
        # Popularity-Count ("you must manually create a new solution version ... to reflect updates")
        skip = set(exclude or ())
        out: list[tuple[str, float]] = []
        for item, score in zip(self.items, self.scores):
            if item in skip:
                continue
            out.append((str(item), float(score)))
            if len(out) == num_results:
                break
        return out
