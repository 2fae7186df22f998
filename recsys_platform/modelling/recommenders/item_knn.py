"""Item-kNN: items scored by their cosine similarity to the items in the user's history."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys_platform.modelling.recommenders.collaborative import (
    CollaborativeRecommender,
    hyperparameter_float,
    hyperparameter_int,
)
from recsys_platform.modelling.recommenders.encoding import EncodedLog, prune_rows


def cosine_neighbours(user_items: sp.csr_matrix, neighbours: int, shrink: float) -> sp.csr_matrix:
    """Items x items cosine similarity of the user-item columns, top `neighbours` per row, sparse."""
    user_items = sp.csr_matrix(user_items, dtype=np.float32)
    norms = np.sqrt(np.asarray(user_items.multiply(user_items).sum(axis=0)).ravel())
    co_occurrence = (user_items.T @ user_items).tocoo()
    denominators = norms[co_occurrence.row] * norms[co_occurrence.col] + shrink
    similarity = sp.csr_matrix(
        (co_occurrence.data / denominators, (co_occurrence.row, co_occurrence.col)), shape=co_occurrence.shape
    )
    return prune_rows(similarity, neighbours)


def profile_scores(neighbours: sp.csr_matrix, item_codes: np.ndarray, weights: np.ndarray):
    """Sum of `weights[i] * neighbours[item_codes[i]]` as (candidate codes, scores)."""
    rows = neighbours[item_codes]
    contribution = sp.csr_matrix(rows.multiply(np.asarray(weights, dtype=np.float32)[:, None]))
    summed = np.asarray(contribution.sum(axis=0)).ravel() if rows.shape[1] < 4096 else None
    if summed is not None:
        candidates = np.flatnonzero(summed)
        return candidates, summed[candidates]
    coo = contribution.tocoo()
    candidates, inverse = np.unique(coo.col, return_inverse=True)
    return candidates, np.bincount(inverse, weights=coo.data, minlength=candidates.size)


def history_profile(item_codes: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct items of a history with their summed weights, log-dampened like the training matrix."""
    codes, inverse = np.unique(item_codes, return_inverse=True)
    return codes, np.log1p(np.bincount(inverse, weights=weights, minlength=codes.size))


class ItemKNNRecommender(CollaborativeRecommender):
    """Hyperparameters: `neighbours` kept per item (default 100), cosine `shrink` (default 10)."""

    recipe = "item-knn"

    def _fit_encoded(self, encoded: EncodedLog) -> None:
        neighbours = hyperparameter_int(self.hyperparameters, "neighbours", 100)
        shrink = hyperparameter_float(self.hyperparameters, "shrink", 10.0)
        self.neighbours = cosine_neighbours(encoded.user_matrix(dampen=True), neighbours, shrink)

    def _score_history(self, user_code, items, times, weights):
        codes, profile = history_profile(items, weights)
        return profile_scores(self.neighbours, codes, profile)
