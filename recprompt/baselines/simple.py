"""Random and popularity rankers: the floor every LLM ranker must clear.

Random's metrics are known exactly, so reports give its expected value rather than one
seeded draw (whose interval can exclude chance itself): with one positive among ``n``
candidates its rank is uniform on 1..n, hence ``HR@k = min(k, n) / n``,
``NDCG@k = (1/n) * sum_{r=1..min(k, n)} 1/log2(r + 1)`` and ``MRR = H_n / n``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import numpy as np

from recprompt.baselines.base import Baseline
from recprompt.data.dataset import Dataset
from recprompt.data.sampling import user_rng

__all__ = ["Popularity", "RandomRanker", "expected_random_metrics", "expected_random_values"]


class RandomRanker(Baseline):
    """Uniform random scores, seeded per user (same user + seed -> same scores)."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, train: Dataset) -> Self:
        return self

    def score(self, user: str, candidates: Sequence[str]) -> np.ndarray:
        return user_rng(self.seed + 1_000_003, user).random(len(candidates))

    @staticmethod
    def expected(n_candidates: Sequence[int], ks: Sequence[int] = (1, 5, 10)) -> dict:
        """Exact expected metrics over cases with these candidate counts (see the module)."""
        return expected_random_metrics(n_candidates, ks)


def expected_random_values(
    n_candidates: Sequence[int], ks: Sequence[int] = (1, 5, 10)
) -> dict[str, np.ndarray]:
    """Per-case expected metric of a uniformly random ranker (closed form, no sampling).

    Each case has one positive among ``n`` candidates, equally likely at every rank: HR@k is
    min(k, n)/n, NDCG@k the mean of 1/log2(r+1) over r <= min(k, n), MRR the mean of 1/r.
    """
    counts = np.asarray(n_candidates, dtype=np.int64)
    if counts.size == 0 or (counts < 1).any():
        raise ValueError("every case needs at least one candidate")
    top = int(counts.max())
    gains = 1.0 / np.log2(np.arange(2, top + 2, dtype=np.float64))  # rank r -> 1/log2(r+1)
    cum_gain = np.r_[0.0, np.cumsum(gains)]
    harmonic = np.r_[0.0, np.cumsum(1.0 / np.arange(1, top + 1, dtype=np.float64))]
    values = {"mrr": harmonic[counts] / counts}
    for k in ks:
        reach = np.minimum(k, counts)
        values[f"hr@{k}"] = reach / counts
        values[f"ndcg@{k}"] = cum_gain[reach] / counts
    return values


def expected_random_metrics(
    n_candidates: Sequence[int], ks: Sequence[int] = (1, 5, 10)
) -> dict[str, dict[str, float | bool]]:
    """``{metric: {"value", "ci_low", "ci_high", "exact"}}`` for a uniformly random ranker:
    the mean over cases of the closed form; the interval is the value itself."""
    return {
        name: {"value": (v := float(vector.mean())), "ci_low": v, "ci_high": v, "exact": True}
        for name, vector in expected_random_values(n_candidates, ks).items()
    }


class Popularity(Baseline):
    """Training-set interaction counts; unseen items score 0. Ties are left as ties."""

    name = "popularity"

    def fit(self, train: Dataset) -> Self:
        self.counts = train.popularity()
        return self

    def score(self, user: str, candidates: Sequence[str]) -> np.ndarray:
        return np.array([self.counts.get(str(c), 0) for c in candidates], dtype=float)
