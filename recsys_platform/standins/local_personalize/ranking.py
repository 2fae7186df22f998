"""A model's ranking for one request, with a filter applied: the best `num_results` allowed items.

The model ranks; the filter decides per item. When the filter drops items, the model is asked for a
longer ranking (four times as long each round) until enough items pass or the catalogue is exhausted,
so a filtered request still gets `num_results` items whenever that many exist.
"""

from __future__ import annotations

from collections.abc import Callable

from recsys_platform.modelling.recommenders.base import RecentInteractions, Recommender


def ranked(
    model: Recommender,
    user_id: str,
    num_results: int,
    recent: RecentInteractions | None = None,
    allowed: Callable[[str], bool] | None = None,
) -> list[tuple[str, float]]:
    if allowed is None:
        return model.recommend(user_id, num_results, recent=recent)
    asked = max(num_results * 2, 50)
    while True:
        candidates = model.recommend(user_id, asked, recent=recent)
        kept = [(item, score) for item, score in candidates if allowed(item)]
        if len(kept) >= num_results or len(candidates) < asked:
            return kept[:num_results]
        asked *= 4
