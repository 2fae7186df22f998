"""Integer codes, event weights and sparse matrices shared by the collaborative models.

Items are coded in sorted item-id order, so "lowest code" is also "smallest item id": every tie in
a ranking is broken by item id, which keeps models deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recsys_platform.modelling.recommenders.base import InteractionLog


def event_weight_per_row(event_types: np.ndarray, event_weights: Mapping[str, float]) -> np.ndarray:
    """Weight of each interaction, like Personalize's `eventsConfig.eventParametersList`.

    No weights given: every event counts 1. Weights given: listed event types count their weight and
    unlisted types are not used (weight 0), as Personalize considers only the listed types.
    """
    if not event_weights:
        return np.ones(len(event_types), dtype=np.float32)
    for event_type, weight in event_weights.items():
        if not 0 <= float(weight) <= 1:
            raise ValueError(f"event weight for {event_type!r} must be within [0, 1], got {weight}")
    weights = np.zeros(len(event_types), dtype=np.float32)
    types = event_types.astype(str)
    for event_type, weight in event_weights.items():
        weights[types == event_type] = float(weight)
    return weights


@dataclass
class EncodedLog:
    """Interactions with positive weight, grouped by user and ordered by time within each user.

    Rows of user code u are `user_ptr[u]:user_ptr[u + 1]`, oldest first.
    """

    items: np.ndarray  # item id (str) per item code, sorted
    users: np.ndarray  # user id (str) per user code, sorted
    user_codes: np.ndarray  # int32 per row
    item_codes: np.ndarray  # int32 per row
    timestamps: np.ndarray  # int64 per row
    weights: np.ndarray  # float32 per row
    user_ptr: np.ndarray  # int64, n_users + 1

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def user_matrix(self, dampen: bool = False) -> sp.csr_matrix:
        """Users x items, the sum of event weights (log1p of it when `dampen`, so repeats saturate)."""
        matrix = sp.csr_matrix(
            (self.weights, (self.user_codes, self.item_codes)),
            shape=(self.n_users, self.n_items),
            dtype=np.float32,
        )
        matrix.sum_duplicates()
        if dampen:
            matrix.data = np.log1p(matrix.data)
        return matrix

    def item_totals(self) -> np.ndarray:
        return np.bincount(self.item_codes, weights=self.weights, minlength=self.n_items)


def encode_log(log: InteractionLog, event_weights: Mapping[str, float] | None = None) -> EncodedLog:
    if len(log) == 0:
        raise ValueError("cannot fit a model on an empty interaction log")
    weights = event_weight_per_row(log.event_types, event_weights or {})
    keep = weights > 0
    if not keep.any():
        listed = dict(event_weights or {})
        raise ValueError(f"no interaction has an event type with positive weight in {listed}")
    user_ids = log.user_ids[keep].astype(str)
    item_ids = log.item_ids[keep].astype(str)
    timestamps = np.asarray(log.timestamps, dtype=np.int64)[keep]
    weights = weights[keep]
    users, user_codes = np.unique(user_ids, return_inverse=True)
    items, item_codes = np.unique(item_ids, return_inverse=True)
    order = np.lexsort((np.arange(len(user_codes)), timestamps, user_codes))
    user_codes = user_codes[order].astype(np.int32)
    counts = np.bincount(user_codes, minlength=len(users))
    return EncodedLog(
        items=items.astype(object),
        users=users.astype(object),
        user_codes=user_codes,
        item_codes=item_codes[order].astype(np.int32),
        timestamps=timestamps[order],
        weights=weights[order],
        user_ptr=np.r_[0, np.cumsum(counts)].astype(np.int64),
    )


def sum_by_code(codes: np.ndarray, values: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct codes (ascending, in the codes' dtype) and each one's sum of values (float64, added in
    the order given); `size` bounds the codes. Serving calls it with a few thousand codes: up to a
    catalogue of 32 times that many, sums over the whole code range cost less than sorting the codes."""
    codes = np.asarray(codes)
    if size <= 32 * max(codes.size, 1):
        summed = np.bincount(codes, weights=values, minlength=size)
        present = np.zeros(summed.size, dtype=bool)
        present[codes] = True  # a code that occurs is kept whatever its sum
        distinct = np.flatnonzero(present).astype(codes.dtype, copy=False)
        return distinct, summed[distinct]
    distinct, inverse = np.unique(codes, return_inverse=True)
    return distinct, np.bincount(inverse, weights=values, minlength=distinct.size)


def top_k(codes: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best (code, score) pairs, best first; ties go to the lower code."""
    if k <= 0 or codes.size == 0:
        return codes[:0], scores[:0]
    if codes.size > k:
        threshold = np.partition(scores, codes.size - k)[codes.size - k]
        keep = scores >= threshold
        codes, scores = codes[keep], scores[keep]
    order = np.lexsort((codes, -scores))[:k]
    return codes[order], scores[order]


def prune_rows(matrix, keep_per_row: int, drop_diagonal: bool = True) -> sp.csr_matrix:
    """Keep each row's `keep_per_row` largest positive entries (dense or sparse input) as CSR float32."""
    n_rows, n_cols = matrix.shape
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    if sp.issparse(matrix):
        matrix = sp.csr_matrix(matrix)
        for row in range(n_rows):
            start, end = matrix.indptr[row], matrix.indptr[row + 1]
            codes, scores = matrix.indices[start:end], matrix.data[start:end]
            positive = (scores > 0) & ((codes != row) if drop_diagonal else True)
            codes, scores = top_k(codes[positive], scores[positive], keep_per_row)
            rows.append(np.full(codes.size, row, dtype=np.int32))
            cols.append(codes)
            vals.append(scores)
    else:
        matrix = np.asarray(matrix)
        k = min(keep_per_row, n_cols)
        chunk = 1024
        for start in range(0, n_rows, chunk):
            block = np.array(matrix[start : start + chunk], dtype=np.float32)
            if drop_diagonal:
                block[np.arange(block.shape[0]), np.arange(start, start + block.shape[0])] = 0
            best = np.argpartition(-block, k - 1, axis=1)[:, :k] if k < n_cols else np.tile(
                np.arange(n_cols), (block.shape[0], 1)
            )
            best_scores = np.take_along_axis(block, best, axis=1)
            positive = best_scores > 0
            row_index = np.repeat(np.arange(start, start + block.shape[0]), k).reshape(block.shape[0], k)
            rows.append(row_index[positive])
            cols.append(best[positive])
            vals.append(best_scores[positive])
    if not rows:
        return sp.csr_matrix((n_rows, n_cols), dtype=np.float32)
    return sp.csr_matrix(
        (np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_rows, n_cols),
    )
