"""What GetRecommendations computes per request gives exactly what the plain formulation gives: the
profile sums (`profile_scores`, `sum_by_code`) bit for bit on every path they take (small catalogue, sums
over the catalogue, sorted codes), the ALS candidates as argpartition over every item picks them, the
popular fill."""

import threading

import numpy as np
import pytest
import scipy.sparse as sp

from recsys_platform.modelling.recommenders.encoding import sum_by_code
from recsys_platform.modelling.recommenders.item_knn import profile_scores
from recsys_platform.modelling.recommenders.registry import create_recommender
from recsys_platform.modelling.recommenders.sequential import (
    ALS_CANDIDATES,
    FactorsByNorm,
    SequentialRecommender,
    factors_by_norm,
)

from recsys_platform_tests.recommenders.test_models import make_log


def sparse_profile_scores(neighbours, item_codes, weights):
    """The definition, with scipy: the chosen rows, scaled by their weights, summed per column."""
    rows = neighbours[item_codes]
    contribution = sp.csr_matrix(rows.multiply(np.asarray(weights, dtype=np.float32)[:, None]))
    if rows.shape[1] < 4096:
        summed = np.asarray(contribution.sum(axis=0)).ravel()
        candidates = np.flatnonzero(summed)
        return candidates, summed[candidates]
    coo = contribution.tocoo()
    candidates, inverse = np.unique(coo.col, return_inverse=True)
    return candidates, np.bincount(inverse, weights=coo.data, minlength=candidates.size)


def random_neighbours(items: int, per_row: int, rng) -> sp.csr_matrix:
    """Items x items, about `per_row` positive float32 entries a row, like a pruned neighbour matrix."""
    rows = np.repeat(np.arange(items), per_row)
    columns = rng.integers(0, items, rows.size)
    values = rng.random(rows.size).astype(np.float32) + np.float32(1e-3)
    return sp.csr_matrix((values, (rows, columns)), shape=(items, items))


@pytest.mark.parametrize(
    ("items", "per_row", "max_rows"),
    [
        (300, 15, 40),  # under 4,096 items: dense float32 sums
        (5_000, 10, 2),  # few entries for the catalogue: sorted codes
        (5_000, 100, 60),  # many entries: sums over the catalogue
        (100_000, 10, 30),
        (100_000, 100, 60),
    ],
)
def test_profile_scores_match_the_sparse_product(items, per_row, max_rows):
    rng = np.random.default_rng(0)
    neighbours = random_neighbours(items, per_row, rng)
    for _ in range(40):
        codes = np.unique(rng.integers(0, items, rng.integers(0, max_rows + 1)))
        weights = rng.random(codes.size) * (rng.random(codes.size) > 0.2)  # some weights 0
        expected = sparse_profile_scores(neighbours, codes, weights)
        got = profile_scores(neighbours, codes, weights)
        assert got[0].dtype == expected[0].dtype and got[1].dtype == expected[1].dtype
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])  # the same sums in the same order: exact


@pytest.mark.parametrize("size", [50, 100_000])  # sums over the range / sorted codes
def test_sum_by_code_keeps_every_code_that_occurs(size):
    codes = np.array([7, 3, 7, 40, 3, 9], dtype=np.int32)
    values = np.array([0.5, 1.0, 0.25, 0.0, -1.0, 2.0])
    distinct, sums = sum_by_code(codes, values, size)
    assert distinct.dtype == np.int32
    assert distinct.tolist() == [3, 7, 9, 40]  # 3 sums to 0 and 40 has 0: both still candidates
    assert sums.tolist() == [0.0, 0.75, 2.0, 0.0]
    empty_codes, empty_sums = sum_by_code(np.array([], dtype=np.int64), np.array([]), size)
    assert empty_codes.size == 0 and empty_sums.size == 0


def test_popular_fill_skips_excluded_items_far_down_the_list():
    # 200 items, item i seen by i+1 users: popularity order is item199, item198, ...
    rows, t = [], 0
    for item in range(200):
        for user in range(item + 1):
            t += 1
            rows.append((f"u{user}", f"item{item:03d}", t, "view"))
    model = create_recommender("aws-user-personalization-v2").fit(make_log(rows))
    by_popularity = [f"item{item:03d}" for item in range(199, -1, -1)]
    excluded = by_popularity[:150:2] + by_popularity[160:170]
    expected = [item for item in by_popularity if item not in excluded][:30]
    got = model.recommend("stranger", 30, exclude=excluded)
    assert [item for item, _ in got] == expected
    assert [score for _, score in got] == [float(int(item[4:]) + 1) for item in expected]


def als_serving_model(item_factors: np.ndarray) -> SequentialRecommender:
    """Just what `_als_scores` reads of a fitted model with ALS similarity."""
    model = SequentialRecommender()
    model.item_factors = item_factors.astype(np.float32)
    model.item_gram = model.item_factors.T @ model.item_factors
    model.als_alpha, model.als_regularization = 1.0, 0.05
    return model


def plain_als_candidates(model, codes, profile):
    """The definition: the user's ALS vector, every item scored, argpartition's best."""
    f = model.item_factors[codes]
    confidence = 1.0 + model.als_alpha * profile
    lhs = model.item_gram + (f.T * (confidence - 1.0)) @ f
    lhs[np.diag_indices_from(lhs)] += model.als_regularization
    scores = np.einsum("ij,j->i", model.item_factors, np.linalg.solve(lhs, f.T @ confidence).astype(np.float32))
    best = np.argpartition(scores, scores.size - ALS_CANDIDATES)[-ALS_CANDIDATES:]
    return best, scores[best]


def factors(kind: str, items: int = 3 * ALS_CANDIDATES, seed: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.standard_normal((items, 8))
    if kind == "tied":  # most items identical: their tie straddles the cut, which of them are in is argpartition's
        values[100:] = values[0]
    if kind == "long tail":  # norms over orders of magnitude, as rare items have: the scan stops early
        values *= np.exp(2.0 * rng.standard_normal(items))[:, None]
    return values


@pytest.mark.parametrize("kind", ["similar norms", "tied", "long tail"])
def test_als_candidates_are_the_best_as_argpartition_picks_them(kind):
    model = als_serving_model(factors(kind))
    for codes, profile in [([1, 7, 9], [1.0, 0.5, 2.0]), ([3], [1.0]), ([0, 1000, 1499], [0.2, 0.2, 5.0])]:
        codes, profile = np.array(codes), np.array(profile)
        best, best_scores = model._als_scores(codes, profile)
        expected, expected_scores = plain_als_candidates(model, codes, profile)
        assert best.size == ALS_CANDIDATES
        order, expected_order = np.argsort(best), np.argsort(expected)
        np.testing.assert_array_equal(best[order], expected[expected_order])
        np.testing.assert_array_equal(best_scores[order], expected_scores[expected_order])  # bit for bit


def test_the_scan_by_norm_stops_early_on_a_long_tail():
    by_norm = FactorsByNorm(factors("long tail", items=20_000).astype(np.float32))
    rng = np.random.default_rng(1)
    scanned = []
    for _ in range(20):
        vector = rng.standard_normal(8).astype(np.float32)
        codes, scores, rows = by_norm.best(vector, ALS_CANDIDATES)
        everything = np.einsum("ij,j->i", by_norm.source, vector)
        expected = np.argpartition(everything, everything.size - ALS_CANDIDATES)[-ALS_CANDIDATES:]
        assert sorted(codes.tolist()) == sorted(expected.tolist())
        np.testing.assert_array_equal(scores, everything[codes])
        scanned.append(rows)
    assert max(scanned) < 20_000  # no test of speed: only that the bound does cut the scan short


def test_the_scan_by_norm_reaches_small_items_that_score_well():
    # 2,000 items of norm 100, scored first, with products spread over [0.9, 1) for the vector e0; 6,000
    # items along e0 with norms (= products) spread over [0, 1): the best include small items whose
    # bound only just lets them in (a bound 1% too tight would drop some)
    rng = np.random.default_rng(2)
    big_products = 0.9 + 0.1 * rng.random(2_000)
    side = rng.standard_normal((2_000, 7))
    side *= (np.sqrt(100.0**2 - big_products**2) / np.linalg.norm(side, axis=1))[:, None]
    big = np.column_stack([big_products, side])
    small = np.zeros((6_000, 8))
    small[:, 0] = rng.random(6_000)
    item_factors = rng.permutation(np.vstack([big, small])).astype(np.float32)
    vector = np.eye(8, dtype=np.float32)[0]
    codes, scores, _ = FactorsByNorm(item_factors).best(vector, ALS_CANDIDATES)
    everything = np.einsum("ij,j->i", item_factors, vector)
    expected = np.argpartition(everything, everything.size - ALS_CANDIDATES)[-ALS_CANDIDATES:]
    assert sorted(codes.tolist()) == sorted(expected.tolist())
    np.testing.assert_array_equal(scores, everything[codes])


def test_the_scan_by_norm_follows_a_refitted_model():
    model = als_serving_model(factors("long tail"))
    codes, profile = np.array([1, 7, 9]), np.array([1.0, 0.5, 2.0])
    model._als_scores(codes, profile)
    first = factors_by_norm(model)
    refitted = als_serving_model(factors("long tail", seed=6))
    model.item_factors, model.item_gram = refitted.item_factors, refitted.item_gram
    best, _ = model._als_scores(codes, profile)
    assert factors_by_norm(model) is not first
    assert sorted(best.tolist()) == sorted(plain_als_candidates(model, codes, profile)[0].tolist())


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_rows_scored_on_several_threads_give_one_pass_products_bit_for_bit(monkeypatch, workers):
    import recsys_platform.modelling.recommenders.sequential as sequential

    monkeypatch.setattr(sequential, "PARALLEL_SCAN_ROWS", 1_000)
    monkeypatch.setattr(sequential, "scan_workers", lambda: workers)
    monkeypatch.setattr(sequential, "_scan_threads", None)
    scored_on = []
    real_einsum = np.einsum

    def einsum(*args, **kwargs):
        scored_on.append((threading.current_thread().name, args[1].shape[0]))
        return real_einsum(*args, **kwargs)

    rng = np.random.default_rng(3)
    item_factors = (rng.standard_normal((7_919, 64)) * np.exp(rng.standard_normal(7_919))[:, None]).astype(np.float32)
    vector = rng.standard_normal(64).astype(np.float32)
    one_pass = real_einsum("ij,j->i", item_factors, vector)
    monkeypatch.setattr(sequential.np, "einsum", einsum)
    out = np.full(item_factors.shape[0], np.nan, dtype=np.float32)
    sequential.item_products(item_factors, vector, out)
    np.testing.assert_array_equal(out, one_pass)
    assert sum(rows for _, rows in scored_on) == item_factors.shape[0]
    # one part per thread; a pool thread done early may take a second part
    threads = {name for name, _ in scored_on}
    assert len(scored_on) == workers + 1 and threading.current_thread().name in threads
    assert (len(threads) > 1) == (workers > 0)
    # and through the scan by norm, which scores its rows in two runs
    scored_on.clear()
    codes, scores, _ = FactorsByNorm(item_factors).best(vector, ALS_CANDIDATES)
    expected = np.argpartition(one_pass, one_pass.size - ALS_CANDIDATES)[-ALS_CANDIDATES:]
    assert sorted(codes.tolist()) == sorted(expected.tolist())
    np.testing.assert_array_equal(scores, one_pass[codes])
    assert (len({name for name, _ in scored_on}) > 1) == (workers > 0)
