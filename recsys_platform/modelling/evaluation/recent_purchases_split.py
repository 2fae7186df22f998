"""A split for offline evaluation (`recsys-platform evaluate --holdout recent-purchases`): recent purchases,
scored for as many users as the data allows. Not the pipeline's holdout, which holds out a hashed share
of users (`defs/personalize/sql/macros/is_held_out.sql`).

Personalize's protocol keeps only the newest 10% of a held-out user's interactions as targets; on
shop data few of those are purchases, so purchase-only scores rest on a handful of users. Here the
cut is in time instead: every user who bought something after the cut and did anything before it is
held out; their interactions before the cut are input, their purchases after it are targets. Other
users keep all their interactions for training. Models trained on different event types (purchases
only, or all events) are then scored on exactly the same users and purchases.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from recsys_platform.modelling.evaluation.protocol import EvaluationSplit, as_string_log, chronological_order
from recsys_platform.modelling.recommenders.base import InteractionLog


def purchase_cut_time(
    log: InteractionLog, purchase_event_types: Collection[str], recent_fraction: float
) -> int:
    """The time after which the newest `recent_fraction` of purchases happened."""
    purchase_times = np.sort(log.timestamps[np.isin(log.event_types.astype(str), list(purchase_event_types))])
    if purchase_times.size == 0:
        raise ValueError(f"no interactions of event types {sorted(purchase_event_types)} to hold out")
    index = int(np.floor((1.0 - recent_fraction) * purchase_times.size))
    index = min(max(index, 0), purchase_times.size - 1)
    # "after" means strictly later than the cut, so purchases at the same second as the first
    # recent one are recent too
    return int(purchase_times[index]) - 1


def recent_purchases_split(
    log: InteractionLog,
    *,
    purchase_event_types: Collection[str] = ("purchase",),
    recent_fraction: float = 0.2,
    cut_time: int | None = None,
    max_users: int | None = None,
    seed: int = 0,
) -> EvaluationSplit:
    """Hold out users with a purchase after `cut_time` (default: the newest `recent_fraction` of
    purchases are after it) and any interaction at or before it; `max_users` samples them (seeded)."""
    if not 0 < recent_fraction < 1:
        raise ValueError(f"recent_fraction must be in (0, 1), got {recent_fraction}")
    log = as_string_log(log)
    if cut_time is None:
        cut_time = purchase_cut_time(log, purchase_event_types, recent_fraction)
    after = log.timestamps > cut_time
    is_purchase = np.isin(log.event_types.astype(str), list(purchase_event_types))
    buyers_after = np.unique(log.user_ids[after & is_purchase].astype(str))
    active_before = np.unique(log.user_ids[~after].astype(str))
    held = np.intersect1d(buyers_after, active_before)
    if held.size == 0:
        raise ValueError(
            f"no user both bought after {cut_time} and interacted at or before it; nothing to score"
        )
    if max_users is not None and held.size > max_users:
        held = np.sort(np.random.default_rng(seed).choice(held, size=max_users, replace=False))
    is_held = np.isin(log.user_ids.astype(str), held)
    order = chronological_order(log)
    input_rows = order[(is_held & ~after)[order]]
    inputs: dict[str, list[str]] = {str(user): [] for user in held}
    for user, item in zip(log.user_ids[input_rows], log.item_ids[input_rows]):
        inputs[user].append(item)
    target_rows = order[(is_held & after & is_purchase)[order]]
    return EvaluationSplit(
        train=log.subset(np.flatnonzero(~(is_held & after))),
        held_out_users=[str(user) for user in held],
        inputs=inputs,
        target_log=log.subset(target_rows),
        settings={
            "protocol": "recent_purchases_split",
            "cut_time": int(cut_time),
            "recent_fraction": recent_fraction,
            "purchase_event_types": sorted(purchase_event_types),
            "held_out_users": int(held.size),
            "split_rule": "held-out users bought after cut_time and interacted at or before it; "
            "input = their interactions up to cut_time, targets = their purchases after it",
        },
    )
