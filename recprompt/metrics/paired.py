"""Paired differences between two systems scored on the same cases.

A difference between two programs (or a program and a baseline) is only meaningful on the
same cases, so the statistics here resample *case indices* and apply them to both systems at
once: per-case noise that both share cancels, which is what makes a paired test far more
sensitive than comparing two unpaired intervals.

The p-value is two-sided, from a sign-flip permutation test on the per-case differences
(under the null, each case's difference is as likely to have either sign). Identical systems
give differences of exactly zero, and the test returns p = 1.

Per-case differences of ranking metrics take few distinct values (hit or miss, one of K
ranks). Then both resamplings run on the value counts instead of the cases, with the same
distributions: resampling cases with replacement draws multinomial counts, and random signs
on the c cases that share a value v add up to v * (2 * Binomial(c, 1/2) - c). A 10,000-case
report pairs in milliseconds instead of drawing 10^8 indices per metric.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["PairedDifference", "paired_difference"]


@dataclass(frozen=True)
class PairedDifference:
    """``b - a`` on the same cases, with a bootstrap CI and a permutation p-value."""

    mean_a: float
    mean_b: float
    difference: float
    low: float
    high: float
    p_value: float
    cases: int
    confidence: float
    n_resamples: int
    seed: int

    @property
    def significant(self) -> bool:
        """Whether the interval excludes zero."""
        return self.low > 0.0 or self.high < 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_SIGNS = np.array([-1.0, 1.0])
_GROUPED = 4
"""Resample value counts when there are at most 1/_GROUPED as many distinct differences as
cases; resample cases otherwise."""
_CELLS = 2_000_000
"""Resamples are drawn in blocks of at most this many cells: 10,000 resamples of 10,000
cases would otherwise need 800 MB at once."""


def _blocks(resamples: int, cases: int) -> list[int]:
    """Resample counts per block, summing to ``resamples``."""
    rows = max(1, _CELLS // max(cases, 1))
    return [min(rows, resamples - start) for start in range(0, resamples, rows)]


def paired_difference(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedDifference:
    """Compare ``b`` against ``a``, where ``a[i]`` and ``b[i]`` score the same case ``i``.

    Raises ``ValueError`` when the two do not have the same, non-zero number of cases: a
    caller that cannot line cases up has nothing paired to compare.
    """
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired values need equal 1-D shapes, got {x.shape} and {y.shape}")
    if x.size == 0:
        raise ValueError("no cases to compare")
    diff = y - x
    rng = np.random.default_rng(seed)
    values, counts = np.unique(diff, return_counts=True)
    grouped = values.size * _GROUPED <= diff.size  # e.g. hit/miss: few distinct differences
    if grouped:
        boots = rng.multinomial(diff.size, counts / diff.size, size=n_resamples) @ values
        boots = boots / diff.size
    else:
        boots = np.concatenate(
            [
                diff[rng.integers(0, diff.size, size=(n, diff.size))].mean(1)
                for n in _blocks(n_resamples, diff.size)
            ]
        )
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(boots, [alpha, 1.0 - alpha])
    observed = abs(float(diff.mean()))
    p_value = 1.0  # identical systems: every sign assignment gives the observed 0
    if np.any(diff):
        if grouped:
            # Random signs on the c cases of one value v sum to v * (2 * Binomial(c, 1/2) - c).
            heads = rng.binomial(counts, 0.5, size=(n_resamples, counts.size))
            flipped = np.abs((2 * heads - counts) @ values) / diff.size
        else:
            flipped = np.concatenate(
                [
                    np.abs((rng.choice(_SIGNS, size=(n, diff.size)) * diff).mean(1))
                    for n in _blocks(n_resamples, diff.size)
                ]
            )
        # The observed assignment is one of the permutations: (count + 1) / (n + 1) keeps the
        # p-value valid (never exactly 0 from a finite sample).
        p_value = float((np.sum(flipped >= observed - 1e-12) + 1) / (n_resamples + 1))
    return PairedDifference(
        mean_a=float(x.mean()),
        mean_b=float(y.mean()),
        difference=float(diff.mean()),
        low=float(low),
        high=float(high),
        p_value=min(1.0, p_value),
        cases=int(diff.size),
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
    )
