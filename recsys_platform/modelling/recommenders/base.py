"""The model interface shared by every recipe.

A model is fitted on an `InteractionLog` (the columns of Personalize's interactions dataset, as
arrays) and answers `recommend(user_id, num_results)`. `registry.create_recommender(recipe, ...)` maps a
Personalize recipe name or ARN to a model class.

`recommend(..., recent=RecentInteractions(...))` folds interactions recorded after training into the
user's history for that one request, as Personalize's User-Personalization does with events recorded
through PutEvents ("adds the new recorded event data to the user's history ... for this user only").

Models are stored with `save`/`load` in a format that cannot run code when read (`model_files`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from recsys_platform.modelling.recommenders import model_files


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


@dataclass(frozen=True)
class RecentInteractions:
    """One user's interactions recorded after the model was trained, oldest first or in any order:
    ITEM_ID, TIMESTAMP (epoch s) and EVENT_TYPE as parallel sequences."""

    item_ids: Sequence[str]
    timestamps: Sequence[int]
    event_types: Sequence[str]

    def __post_init__(self) -> None:
        if not len(self.item_ids) == len(self.timestamps) == len(self.event_types):
            raise ValueError("RecentInteractions: item_ids, timestamps and event_types differ in length")

    def __len__(self) -> int:
        return len(self.item_ids)


class Recommender(ABC):
    """A fitted model. Subclasses are deterministic for a given log and parameters."""

    recipe: str = ""

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        model_files.register_class(cls)  # only registered library classes can be loaded from a file

    @abstractmethod
    def fit(self, log: InteractionLog) -> Recommender: ...

    @abstractmethod
    def recommend(
        self,
        user_id: str,
        num_results: int = 25,
        exclude: Sequence[str] | None = None,
        recent: RecentInteractions | None = None,
    ) -> list[tuple[str, float]]:
        """Top items for a user as (item_id, score), best first. Unknown users get the fallback list.

        `recent`: the user's interactions since training, folded into the history by models that read
        one (ignored by the others, e.g. popularity, as Personalize's Popularity-Count needs retraining).
        """

    def save(self, destination: str | Path | BinaryIO) -> None:
        """Write the model (npz + JSON; a path is created 0600). See `model_files`."""
        model_files.save_model(self, destination)

    @staticmethod
    def load(source: str | Path | BinaryIO) -> Recommender:
        """Read a model written by `save`; `model_files.ModelFileError` for anything else (a pickle
        included: it is refused, never run)."""
        return model_files.load_model(source)
