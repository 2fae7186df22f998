"""Small synthetic interaction logs for evaluation tests."""

import numpy as np

from recsys_platform.modelling.recommenders.base import InteractionLog


def random_log(n_users=50, n_items=40, per_user=20, seed=0, purchase_share=0.2) -> InteractionLog:
    rng = np.random.default_rng(seed)
    users = np.repeat([f"u{i:03d}" for i in range(n_users)], per_user)
    items = np.array([f"i{k:03d}" for k in rng.integers(0, n_items, users.size)], dtype=object)
    timestamps = rng.integers(1_600_000_000, 1_600_100_000, users.size)
    events = np.where(rng.random(users.size) < purchase_share, "purchase", "view").astype(object)
    return InteractionLog(users.astype(object), items, timestamps.astype(np.int64), events)
