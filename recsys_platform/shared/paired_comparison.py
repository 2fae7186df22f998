"""Is model A better than model B, or is the difference noise? A paired bootstrap on the same users."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from recsys_platform.shared.offline_metrics import UserScores

# below this many paired users a bootstrap interval says little (one user gives a zero-width one)
MIN_USERS_FOR_VERDICT = 5


@dataclass(frozen=True)
class PairedComparison:
    metric: str
    users: int
    mean_a: float
    mean_b: float
    difference: float  # mean_a - mean_b
    low: float
    high: float
    level: float

    @property
    def differs(self) -> bool:
        """True when enough users were scored and the interval of the difference excludes zero."""
        return self.users >= MIN_USERS_FOR_VERDICT and not (self.low <= 0.0 <= self.high)

    def verdict(self) -> str:
        if self.users == 0:
            return "no common users"
        if self.users < MIN_USERS_FOR_VERDICT:
            return "too few users"
        if not self.differs:
            return "within noise"
        return "A better" if self.difference > 0 else "B better"


def paired_difference(
    a: UserScores, b: UserScores, metric: str, seed: int = 0, n: int = 1000, level: float = 0.95
) -> PairedComparison:
    """Bootstrap interval of mean(A) - mean(B) over the users both scored (resampled as pairs)."""
    from scipy import stats

    if metric not in a.values or metric not in b.values:
        raise ValueError(f"unknown metric {metric!r}; known: {sorted(a.values)}")
    common, index_a, index_b = np.intersect1d(a.users, b.users, return_indices=True)
    values_a, values_b = a.values[metric][index_a], b.values[metric][index_b]
    if common.size == 0:
        return PairedComparison(metric, 0, math.nan, math.nan, math.nan, math.nan, math.nan, level)
    differences = values_a - values_b
    mean = float(differences.mean())
    if np.all(differences == differences[0]):
        low = high = float(differences[0])
    else:
        result = stats.bootstrap(
            (differences,), np.mean, n_resamples=n, confidence_level=level, method="percentile",
            rng=np.random.default_rng(seed),
        )
        low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    return PairedComparison(
        metric, int(common.size), float(values_a.mean()), float(values_b.mean()), mean, low, high, level
    )
