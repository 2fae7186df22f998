"""The local model for `aws-user-personalization(-v2)`: it reads a user's history as a sequence.

Personalize's v2 recipe is a transformer over the interaction sequence. This model keeps what
matters for a shop on a CPU budget: order and recency. An interaction k distinct timestamps before
the user's newest one has recency `0.5 ** (k / recency_half_life)` (events logged at the same time are
equally recent). Signals, each scaled to a maximum of 1 per user, are weighted and summed:

- history: `history_boost` for every item the user touched, so their own items come first;
- repeat: the recency of the item's last interaction (shoppers return to what they just looked at);
- frequency: the sum of event weight x recency over the item's interactions;
- transitions: items that followed the user's items in other users' sequences (within
  `transition_window` steps, nearer steps weigh more), item-to-item, sparse;
- similarity: the frequency profile pushed through a collaborative model, EASE for catalogues up to
  `ease_max_items` (default 30,000) items and `implicit` ALS (user vector folded in from the
  profile) beyond.

Defaults were chosen on the real slices with `bench/recsys_quality.py` (Personalize protocol, all-event
targets, 3-5 pooled seeds, paired bootstrap against the baselines):

- recency matters more than frequency: a half-life of 1 distinct timestamp beat 2 and 4 on the JD
  slices (NDCG@25 0.849 vs 0.837 / 0.817 for 2 / 4 on jd-2016-02), and ordering the user's own items by
  last interaction (`repeat_weight` 1) with a small frequency term (0.2) tied "re-recommend recent
  items" there (+0.000 [-0.009, +0.009]) where the frequency-heavy blend lost (-0.041 [-0.055, -0.025]);
- boosting the whole history above unseen items beats letting similarity interleave: on these logs
  most targets are items the user already touched;
- transitions and EASE similarity (0.5 each) fill the list beyond the history and win where histories
  are long or repeat-poor: Tmall (NDCG@25 +0.029 [+0.004, +0.054] over recent items), the GA4 sample
  (+0.035 [+0.028, +0.041]), and always over popularity and default implicit ALS (e.g. jd-2016-03
  +0.237 [+0.206, +0.267]).
Where it does not win: on Taobao and JD it ties "recent items" (differences within noise), because
nearly every all-event target there is an item the user already viewed.
"""

from __future__ import annotations

import os
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp

from recsys_platform.modelling.recommenders.als import fit_als
from recsys_platform.modelling.recommenders.collaborative import (
    CollaborativeRecommender,
    hyperparameter_float,
    hyperparameter_int,
)
from recsys_platform.modelling.recommenders.ease import DEFAULT_EASE_MAX_ITEMS, ease_weights
from recsys_platform.modelling.recommenders.encoding import EncodedLog, prune_rows, sum_by_code
from recsys_platform.modelling.recommenders.item_knn import profile_scores

DEFAULTS = {
    "history_boost": 1.0,
    "recency_half_life": 1.0,
    "repeat_weight": 1.0,
    "frequency_weight": 0.2,
    "transition_weight": 0.5,
    "similarity_weight": 0.5,
    "transition_window": 3,
    "neighbours": 200,
    "l2": 200.0,
    "factors": 64,
    "regularization": 0.05,
    "iterations": 15,
}
ALS_CANDIDATES = 500
ALS_HYPERPARAMETERS = ("factors", "regularization", "iterations", "alpha", "random_state", "num_threads")


def transition_matrix(encoded: EncodedLog, window: int, neighbours: int) -> sp.csr_matrix:
    """Items x items: how often item b followed item a within `window` steps of one user's sequence,
    each pair weighted 1/steps, rows scaled to sum 1, top `neighbours` per row."""
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    for step in range(1, window + 1):
        if step > len(encoded.item_codes) - 1:
            break
        # rows are grouped by user, so equal users `step` rows apart means one user's sequence
        same_user = encoded.user_codes[step:] == encoded.user_codes[:-step]
        before, after = encoded.item_codes[:-step][same_user], encoded.item_codes[step:][same_user]
        distinct = before != after
        rows.append(before[distinct])
        cols.append(after[distinct])
        vals.append(np.full(int(distinct.sum()), 1.0 / step, dtype=np.float32))
    shape = (encoded.n_items, encoded.n_items)
    if not rows:
        return sp.csr_matrix(shape, dtype=np.float32)
    counts = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=shape)
    counts.sum_duplicates()
    row_sums = np.asarray(counts.sum(axis=1)).ravel()
    row_sums[row_sums == 0] = 1.0
    return prune_rows(sp.diags(1.0 / row_sums) @ counts, neighbours, drop_diagonal=True)


# Rows of item factors scored per thread, at least: below that, handing rows to a thread costs more than it
# saves. numpy's einsum releases the GIL, and a row's product does not depend on the slice it is scored in,
# so the products are bit for bit those of one pass (at 100,000 items x 64 factors, two threads halve the
# ~2.4 ms a request spent scanning).
PARALLEL_SCAN_ROWS = 16_384
_scan_threads: tuple[int, ThreadPoolExecutor] | None = None  # (process id, pool)
_scan_threads_lock = threading.Lock()


def scan_workers() -> int:
    """Threads that score rows beside the caller's: one per further core, up to 3 (none on one core)."""
    return min(4, os.cpu_count() or 1) - 1


def _scan_pool() -> ThreadPoolExecutor:
    global _scan_threads
    with _scan_threads_lock:
        if _scan_threads is None or _scan_threads[0] != os.getpid():  # a forked child has no threads
            _scan_threads = (os.getpid(), ThreadPoolExecutor(scan_workers(), thread_name_prefix="als-scan"))
        return _scan_threads[1]


def item_products(factors: np.ndarray, vector: np.ndarray, out: np.ndarray) -> None:
    """`out[i] = factors[i] . vector` (einsum's float32 products), the rows split over the scanning threads
    when there are enough of them."""
    parts = min(1 + scan_workers(), factors.shape[0] // PARALLEL_SCAN_ROWS)
    if parts <= 1:
        np.einsum("ij,j->i", factors, vector, out=out)
        return
    bounds = np.linspace(0, factors.shape[0], parts + 1).astype(int).tolist()
    others = [_scan_pool().submit(np.einsum, "ij,j->i", factors[a:b], vector, out=out[a:b])
              for a, b in zip(bounds[1:-1], bounds[2:])]
    np.einsum("ij,j->i", factors[:bounds[1]], vector, out=out[:bounds[1]])
    for part in others:
        part.result()


class FactorsByNorm:
    """Item factors sorted by norm, largest first, to find the items with the best inner products with a
    vector without scoring them all: an item's product is at most its norm times the vector's, so once
    that bound is below the k-th best product already seen, no further item can be among the best.
    Rare items have small factors, and ALS serves large catalogues, where most items are rare: on the
    latency benchmark's 100,000 items the scan stops after about 70% of the rows (median over users),
    and each request streams that much less memory. The products are the same einsum's, row by row."""

    def __init__(self, item_factors: np.ndarray) -> None:
        self.source = item_factors  # what this was derived from (a refitted model has new factors)
        # A float32 sum of d products can exceed the exact sum by about d roundings (d * 2**-24 of the
        # bound); the bound is widened by four times that, so that rounding never drops an item.
        self.margin = 2.0 * item_factors.shape[1] * float(np.finfo(np.float32).eps)
        norms = np.sqrt(np.einsum("ij,ij->i", item_factors, item_factors, dtype=np.float64))
        self.order = np.argsort(-norms, kind="stable")
        self.factors = np.ascontiguousarray(item_factors[self.order])
        self.norms = norms[self.order]
        self.negated_norms = -self.norms  # ascending, for searchsorted
        # a factor that is not finite makes products NaN, which only argpartition over all ranks as before
        self.finite = bool(np.isfinite(norms).all())

    def best(self, vector: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray, int] | None:
        """The `count` items with the largest products (item codes, float32 products exactly as
        `einsum` over all items gives them) and how many rows were scored. None when the products tie
        across the cut, or are not finite: which tied items are in is then argpartition's choice over
        all items, and the caller scores them all."""
        n = self.norms.size
        reach = float(np.linalg.norm(vector.astype(np.float64))) * (1.0 + self.margin)
        if not (self.finite and count < n and reach > 0 and np.isfinite(reach)):
            return None
        products = np.empty(n, dtype=np.float32)
        first = max(count, n // 4)  # enough rows for a k-th best that bounds the rest usefully
        item_products(self.factors[:first], vector, products[:first])
        floor = float(np.partition(products[:first], first - count)[first - count])
        if not np.isfinite(floor):
            return None
        # rows from `stop` on have norm * |vector| < floor: below the count-th best
        stop = first + int(np.searchsorted(self.negated_norms[first:], -floor / reach, side="right"))
        item_products(self.factors[first:stop], vector, products[first:stop])
        # the best are among the rows at or above the floor (it is a k-th best of some of them)
        pool = np.flatnonzero(products[:stop] >= floor)
        pooled = products[pool]
        cut = pool.size - count
        if cut < 0:  # NaN products (they compare False), which argpartition ranks first
            return None
        best = pool[pooled >= np.partition(pooled, cut)[cut]]
        if best.size != count:
            return None
        return self.order[best], products[best], stop


# Serving state derived from a model's item factors, kept out of the model's attributes (they are
# what a model file stores): model -> FactorsByNorm, gone with the model.
_FACTORS_BY_NORM: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def factors_by_norm(model: SequentialRecommender) -> FactorsByNorm:
    prepared = _FACTORS_BY_NORM.get(model)
    if prepared is None or prepared.source is not model.item_factors:
        prepared = _FACTORS_BY_NORM[model] = FactorsByNorm(model.item_factors)
    return prepared


def _scaled(codes: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    positive = scores > 0
    codes, scores = codes[positive], scores[positive]
    if scores.size:
        scores = scores / scores.max()
    return codes, scores


class SequentialRecommender(CollaborativeRecommender):
    """Recency-weighted repeat + item transitions + EASE/ALS similarity. Hyperparameters: see DEFAULTS."""

    recipe = "aws-user-personalization-v2"

    def _setting(self, name: str) -> float:
        return hyperparameter_float(self.hyperparameters, name, DEFAULTS[name])

    def _fit_encoded(self, encoded: EncodedLog) -> None:
        neighbours = hyperparameter_int(self.hyperparameters, "neighbours", DEFAULTS["neighbours"])
        window = hyperparameter_int(self.hyperparameters, "transition_window", DEFAULTS["transition_window"])
        max_items = hyperparameter_int(self.hyperparameters, "ease_max_items", DEFAULT_EASE_MAX_ITEMS)
        self.half_life = self._setting("recency_half_life")
        self.history_boost = self._setting("history_boost")
        self.blend = {
            "repeat": self._setting("repeat_weight"),
            "frequency": self._setting("frequency_weight"),
            "transitions": self._setting("transition_weight"),
            "similarity": self._setting("similarity_weight"),
        }
        self.transitions = None
        if self.blend["transitions"]:
            self.transitions = transition_matrix(encoded, window, neighbours)
        self.similarity_model = "none"
        if self.blend["similarity"]:
            user_items = encoded.user_matrix(dampen=True)
            if encoded.n_items <= max_items:
                self.similarity_model = "ease"
                self.ease = ease_weights(user_items, self._setting("l2"), neighbours)
            else:
                self.similarity_model = "als"
                als_parameters = {
                    name: self.hyperparameters.get(name, DEFAULTS.get(name))
                    for name in ALS_HYPERPARAMETERS
                    if self.hyperparameters.get(name, DEFAULTS.get(name)) is not None
                }
                model = fit_als(user_items, als_parameters)
                self.item_factors = np.asarray(model.item_factors, dtype=np.float32)
                self.item_gram = self.item_factors.T @ self.item_factors
                self.als_regularization = float(model.regularization)
                self.als_alpha = float(model.alpha)

    def recency_profile(
        self, items: np.ndarray, times: np.ndarray, weights: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Distinct items of a history with (recency of their last interaction, decayed weight sum).

        Steps back are counted in distinct timestamps, so events logged at the same time (a log with
        day granularity) are equally recent rather than ordered by accident of file order.
        """
        distinct_times, time_rank = np.unique(times, return_inverse=True)
        steps_back = (distinct_times.size - 1 - time_rank).astype(np.float64)
        recency = np.power(0.5, steps_back / self.half_life)
        codes, inverse = np.unique(items, return_inverse=True)
        last = np.zeros(codes.size)
        np.maximum.at(last, inverse, recency)
        return codes, last, np.bincount(inverse, weights=weights * recency, minlength=codes.size)

    def _als_scores(self, codes: np.ndarray, profile: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # ALS user equation for one user (implicit feedback, confidence 1 + alpha * weight)
        factors = self.item_factors[codes]
        confidence = 1.0 + self.als_alpha * profile
        lhs = self.item_gram + (factors.T * (confidence - 1.0)) @ factors
        lhs[np.diag_indices_from(lhs)] += self.als_regularization
        user_vector = np.linalg.solve(lhs, factors.T @ confidence).astype(np.float32)
        # only the best ALS candidates take part in the blend: merging 100k dense scores would cost
        # more than the whole request budget, and lower ones cannot reach a top-25 anyway
        if self.item_factors.shape[0] > ALS_CANDIDATES:
            found = factors_by_norm(self).best(user_vector, ALS_CANDIDATES)
            if found is not None:
                return found[0], found[1]
        scores = np.einsum("ij,j->i", self.item_factors, user_vector)
        if scores.size > ALS_CANDIDATES:
            best = np.argpartition(scores, scores.size - ALS_CANDIDATES)[-ALS_CANDIDATES:]
            return best, scores[best]
        return np.arange(scores.size), scores

    def _score_history(self, user_code, items, times, weights):
        # history-based throughout (the ALS similarity folds the profile in by one solve), so
        # interactions recorded since training and users the model never saw are served the same way
        codes, last_seen, profile = self.recency_profile(items, times, weights)
        # every item of the history gets `history_boost`: with the default 1.0 the user's own items rank
        # above all others (other signals add up to at most transition + similarity weight = 1.0)
        signals = [
            (self.history_boost, codes, np.ones(codes.size)),
            (self.blend["repeat"], codes, last_seen),
            (self.blend["frequency"], codes, profile),
        ]
        if self.transitions is not None:
            signals.append((self.blend["transitions"], *profile_scores(self.transitions, codes, profile)))
        if self.similarity_model == "ease":
            signals.append((self.blend["similarity"], *profile_scores(self.ease, codes, profile)))
        elif self.similarity_model == "als":
            signals.append((self.blend["similarity"], *self._als_scores(codes, profile)))
        all_codes, all_scores = [], []
        for weight, signal_codes, signal_scores in signals:
            if weight <= 0:
                continue
            signal_codes, signal_scores = _scaled(np.asarray(signal_codes), np.asarray(signal_scores, float))
            all_codes.append(signal_codes)
            all_scores.append(weight * signal_scores)
        if not all_codes:
            return np.array([], dtype=np.int64), np.array([])
        return sum_by_code(np.concatenate(all_codes), np.concatenate(all_scores), self.items.size)
