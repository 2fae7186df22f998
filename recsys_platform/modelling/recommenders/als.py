"""Matrix factorisation with `implicit`'s CPU alternating least squares (Hu, Koren & Volinsky, 2008).

Deterministic: a fixed `random_state` and a fixed thread count. Defaults are `implicit`'s own.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys_platform.modelling.recommenders.collaborative import (
    CollaborativeRecommender,
    hyperparameter_float,
    hyperparameter_int,
)
from recsys_platform.modelling.recommenders.encoding import EncodedLog


def fit_als(user_items: sp.csr_matrix, hyperparameters) -> object:
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    # implicit's own loops are threaded; a multi-threaded BLAS underneath only contends with them
    with threadpool_limits(limits=1, user_api="blas"):
        model = AlternatingLeastSquares(
            factors=hyperparameter_int(hyperparameters, "factors", 100),
            regularization=hyperparameter_float(hyperparameters, "regularization", 0.01),
            alpha=hyperparameter_float(hyperparameters, "alpha", 1.0),
            iterations=hyperparameter_int(hyperparameters, "iterations", 15),
            random_state=hyperparameter_int(hyperparameters, "random_state", 42, minimum=0),
            num_threads=hyperparameter_int(hyperparameters, "num_threads", 1),
        )
        model.fit(sp.csr_matrix(user_items, dtype=np.float32), show_progress=False)
    return model


class ALSRecommender(CollaborativeRecommender):
    """Hyperparameters (`implicit` names): factors, regularization, alpha, iterations, random_state,
    num_threads (default 1)."""

    recipe = "als"

    def _fit_encoded(self, encoded: EncodedLog) -> None:
        model = fit_als(encoded.user_matrix(), self.hyperparameters)
        self.user_factors = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.asarray(model.item_factors, dtype=np.float32)

    def _score_history(self, user_code, items, times, weights):
        # The trained user vector is the model: interactions recorded since training are not folded
        # in (that needs a solve per request; the sequential model does it), and a user the model
        # never saw has no vector, so gets the popular fill.
        if user_code is None:
            return np.array([], dtype=np.int64), np.array([])
        # einsum, not BLAS: a threaded BLAS matvec is slower on a busy machine than one plain loop
        scores = np.einsum("ij,j->i", self.item_factors, self.user_factors[user_code])
        return np.arange(scores.size), scores
