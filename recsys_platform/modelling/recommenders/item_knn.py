"""Item-kNN: items scored by their cosine similarity to the items in the user's history."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys_platform.modelling.recommenders.collaborative import (
    CollaborativeRecommender,
    hyperparameter_float,
    hyperparameter_int,
)
from recsys_platform.modelling.recommenders.encoding import EncodedLog, prune_rows, sum_by_code


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
    """Sum of `weights[i] * neighbours[item_codes[i]]` as (candidate codes, scores).

    Runs at request time, so it reads the CSR arrays directly: a history touches a few dozen rows, and
    building scipy matrices for them (row indexing, multiply, sum) cost several times the arithmetic.
    The sums are taken row after row in the given order, as a sparse product would take them.
    """
    item_codes = np.asarray(item_codes, dtype=np.int64)
    starts = neighbours.indptr[item_codes]
    lengths = neighbours.indptr[item_codes + 1] - starts
    row_ends = np.cumsum(lengths)
    total = int(row_ends[-1]) if row_ends.size else 0
    # stored position of every entry of the chosen rows: its row's start plus its offset in the row
    positions = np.repeat(starts - (row_ends - lengths), lengths) + np.arange(total)
    columns = neighbours.indices[positions]
    products = neighbours.data[positions] * np.repeat(np.asarray(weights, dtype=np.float32), lengths)
    if neighbours.shape[1] < 4096:
        # a small catalogue: dense sums in the matrix's precision
        summed = np.zeros(neighbours.shape[1], dtype=products.dtype)
        np.add.at(summed, columns, products)
        candidates = np.flatnonzero(summed)
        return candidates, summed[candidates]
    return sum_by_code(columns, products, neighbours.shape[1])


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
