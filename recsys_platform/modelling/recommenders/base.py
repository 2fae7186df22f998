"""The model interface shared by every recipe.

A model is fitted on an `InteractionLog` (the columns of Personalize's interactions dataset, as
arrays) and answers `recommend(user_id, num_results)`. `registry.create_recommender(recipe, ...)` maps a
Personalize recipe name or ARN to a model class.
"""

from __future__ import annotations

import pickle
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class InteractionLog:
    """Interactions as parallel arrays: USER_ID, ITEM_ID, TIMESTAMP (epoch s), EVENT_TYPE, EVENT_VALUE."""

    user_ids: np.ndarray  # dtype object/str
    item_ids: np.ndarray  # dtype object/str
    timestamps: np.ndarray  # int64 epoch seconds
    event_types: np.ndarray  # dtype object/str
    event_values: np.ndarray | None = None  # float64, NaN where absent

    def __post_init__(self) -> None:
        n = len(self.user_ids)
        for name in ("item_ids", "timestamps", "event_types"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"InteractionLog: {name} has {len(getattr(self, name))} rows, user_ids {n}")

    def __len__(self) -> int:
        return len(self.user_ids)

    def subset(self, mask_or_index: np.ndarray) -> InteractionLog:
        return InteractionLog(
            self.user_ids[mask_or_index],
            self.item_ids[mask_or_index],
            self.timestamps[mask_or_index],
            self.event_types[mask_or_index],
            None if self.event_values is None else self.event_values[mask_or_index],
        )


class Recommender(ABC):
    """A fitted model. Subclasses are deterministic for a given log and parameters."""

    recipe: str = ""

    @abstractmethod
    def fit(self, log: InteractionLog) -> Recommender: ...

    @abstractmethod
    def recommend(
        self, user_id: str, num_results: int = 25, exclude: Sequence[str] | None = None
    ) -> list[tuple[str, float]]:
        """Top items for a user as (item_id, score), best first. Unknown users get the fallback list."""

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL))

    @staticmethod
    def load(path: str | Path) -> Recommender:
        return pickle.loads(Path(path).read_bytes())
