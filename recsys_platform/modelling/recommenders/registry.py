"""Recipe name -> model factory(hyperparameters, event_weights).

Personalize's recipe names map to the local models that stand in for them; the local-only names
(`item-knn`, `ease`, `als`, `recent-items`) are there for evaluation and comparison.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from recsys_platform.modelling.recommenders.als import ALSRecommender
from recsys_platform.modelling.recommenders.base import Recommender
from recsys_platform.modelling.recommenders.collaborative import hyperparameter_int
from recsys_platform.modelling.recommenders.ease import DEFAULT_EASE_MAX_ITEMS, EaseRecommender
from recsys_platform.modelling.recommenders.item_knn import ItemKNNRecommender
from recsys_platform.modelling.recommenders.popularity import PopularityRecommender
from recsys_platform.modelling.recommenders.recent import RecentItemsRecommender
from recsys_platform.modelling.recommenders.sequential import SequentialRecommender

RecipeFactory = Callable[[dict, dict], Recommender]


class EaseOrALSRecommender(Recommender):
    """EASE for catalogues up to `ease_max_items` items (default 30,000), `implicit` ALS beyond:
    the choice is made at fit time, when the catalogue size is known."""

    recipe = "ease-or-als"

    def __init__(self, hyperparameters: dict, event_weights: dict) -> None:
        self.hyperparameters, self.event_weights = hyperparameters, event_weights
        self.max_items = hyperparameter_int(hyperparameters, "ease_max_items", DEFAULT_EASE_MAX_ITEMS)
        self.model: Recommender | None = None

    def fit(self, log) -> EaseOrALSRecommender:
        n_items = len(set(log.item_ids.tolist()))
        model_class = EaseRecommender if n_items <= self.max_items else ALSRecommender
        self.model = model_class(self.hyperparameters, self.event_weights).fit(log)
        return self

    def recommend(self, user_id, num_results=25, exclude=None, recent=None):
        if self.model is None:
            raise RuntimeError("fit the model before asking for recommendations")
        return self.model.recommend(user_id, num_results, exclude, recent)


RECIPES: dict[str, RecipeFactory] = {
    "aws-popularity-count": lambda hp, weights: PopularityRecommender(weights),
    "aws-user-personalization-v2": SequentialRecommender,
    "aws-user-personalization": SequentialRecommender,
    "item-knn": ItemKNNRecommender,
    "ease": EaseRecommender,
    "als": ALSRecommender,
    "ease-or-als": EaseOrALSRecommender,
    "recent-items": RecentItemsRecommender,
    "sequential": SequentialRecommender,
}


def create_recommender(
    recipe: str,
    hyperparameters: Mapping[str, str] | None = None,
    event_weights: Mapping[str, float] | None = None,
) -> Recommender:
    """The model for a Personalize recipe name or ARN (e.g. `arn:aws:personalize:::recipe/aws-popularity-count`).

    `event_weights` mirrors Personalize's `eventsConfig.eventParametersList[].weight`.
    """
    name = recipe.rsplit("/", 1)[-1]
    try:
        factory = RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown recipe {name!r}; known: {sorted(RECIPES)}") from None
    return factory(dict(hyperparameters or {}), dict(event_weights or {}))
