"""EASE (Steck, 2019): a closed-form item-item linear model, B = I - P / diag(P) with P = (X'X + l2 I)^-1.

Fitting inverts a dense items x items matrix, so it suits catalogues up to a few tens of thousands of
items; serving keeps only each item's strongest `neighbours` weights, sparse.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from recsys_platform.modelling.recommenders.collaborative import (
    CollaborativeRecommender,
    hyperparameter_float,
    hyperparameter_int,
)
from recsys_platform.modelling.recommenders.encoding import EncodedLog, prune_rows
from recsys_platform.modelling.recommenders.item_knn import history_profile, profile_scores

DEFAULT_EASE_MAX_ITEMS = 30_000


def ease_weights(user_items, l2: float, neighbours: int, min_item_users: int = 2):
    """EASE's item-item weight matrix, top `neighbours` positive weights per item, as sparse CSR.

    Only items with at least `min_item_users` users take part: an item one user touched co-occurs
    with nothing else, and leaving it out shrinks the dense matrix that is inverted.
    """
    user_items = sp.csr_matrix(user_items)
    n_items = user_items.shape[1]
    users_per_item = np.bincount(user_items.indices, minlength=n_items)
    kept = np.flatnonzero(users_per_item >= min_item_users)
    if kept.size == 0:
        return sp.csr_matrix((n_items, n_items), dtype=np.float32)
    # float32 halves memory for big catalogues; float64 keeps small ones exact
    dtype = np.float64 if kept.size <= 10_000 else np.float32
    columns = user_items[:, kept]
    gram = (columns.T @ columns).toarray().astype(dtype, copy=False)
    gram[np.diag_indices(kept.size)] += l2
    # in place where possible: at 30k items one dense matrix is 3.6 GB in float32
    weights = scipy.linalg.inv(gram, overwrite_a=True, check_finite=False)
    del gram
    weights /= -np.diag(weights)
    pruned = prune_rows(weights, neighbours, drop_diagonal=True).tocoo()
    return sp.csr_matrix(
        (pruned.data, (kept[pruned.row], kept[pruned.col])), shape=(n_items, n_items), dtype=np.float32
    )


class EaseRecommender(CollaborativeRecommender):
    """Hyperparameters: `l2` regularisation (default 200), `neighbours` kept per item (default 200),
    `min_item_users` (default 2), `ease_max_items` (default 30000): a larger catalogue is refused
    (use ALS)."""

    recipe = "ease"

    def _fit_encoded(self, encoded: EncodedLog) -> None:
        l2 = hyperparameter_float(self.hyperparameters, "l2", 200.0)
        neighbours = hyperparameter_int(self.hyperparameters, "neighbours", 200)
        max_items = hyperparameter_int(self.hyperparameters, "ease_max_items", DEFAULT_EASE_MAX_ITEMS)
        if encoded.n_items > max_items:
            raise ValueError(
                f"EASE needs a dense {encoded.n_items} x {encoded.n_items} matrix; catalogues above "
                f"ease_max_items={max_items} are trained with ALS instead"
            )
        min_item_users = hyperparameter_int(self.hyperparameters, "min_item_users", 2)
        self.weights = ease_weights(encoded.user_matrix(dampen=True), l2, neighbours, min_item_users)

    def _score_history(self, user_code, items, times, weights):
        codes, profile = history_profile(items, weights)
        return profile_scores(self.weights, codes, profile)
