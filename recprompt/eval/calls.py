"""How many model calls one case of a spec costs, per ranking strategy, as a stated range.

The range is what a dry-run can promise without a model. Its low end is the local backend
with the most favourable answers: constraints are enforced while decoding (no repair) and
choices are scored from logits. Its high end is the least favourable answers on a server
without logits, where every answer is generated and may need up to R repairs (re-asks). A
disk-cache hit costs no call, so a rerun costs less than either end.

Per candidate order, for N candidates, k = min(rank.top_k, N - 1), W = 1 + R:

* no ``rank:`` (one prediction)       1 .. W
* pointwise                            N .. N·W (N + 1 on logits: one prefix warm-up)
* likelihood, letters                  1 (one scored prompt; these need logits)
* listwise                             1 .. W
* pairwise allpair                     N(N-1) (both orders of every pair) .. N(N-1)·W
* pairwise sliding                     2(N-1) .. k(2N-k-1)·W: k bubble passes, pairs memoised
* pairwise heap                        2(N-1) .. 2(2N + 2k·floor(log2 N))·W: heapify + k pops

The low end of the sorts is the fewest comparisons that can establish the top item (N - 1);
their high ends are the algorithms' worst cases; their *typical* count is the median over 25
seeded random preference orders, which the dry-run's time estimate uses. ``rank.bootstrap``
= B multiplies everything by B.
"""

from __future__ import annotations

import functools
import math
import random
import statistics
from dataclasses import dataclass

from recprompt.rank import resolve_strategy
from recprompt.spec.model import RankSpec, Spec

__all__ = ["REPAIRS", "CallRange", "calls_per_case", "pairwise_calls"]

REPAIRS = 3
"""Re-asks a server backend makes at most for one invalid answer (``max_repairs`` default)."""


@dataclass(frozen=True)
class CallRange:
    """Model calls of one case: at least ``low``, at most ``high``, ``typical`` on the local
    backend (for sorts: the median over random preference orders); ``how`` says why."""

    low: int
    high: int
    how: str
    typical: int = -1

    def __post_init__(self) -> None:
        if self.typical < 0:
            object.__setattr__(self, "typical", self.low)


def pairwise_calls(method: str, n: int, top_k: int) -> tuple[int, int]:
    """Calls (two per comparison) of one PRP run over ``n`` candidates."""
    if n < 2:
        return 0, 0
    k = max(1, min(top_k, n - 1))
    if method == "allpair":
        return n * (n - 1), n * (n - 1)
    if method == "sliding":
        return 2 * (n - 1), k * (2 * n - k - 1)
    pops = 2 * k * math.floor(math.log2(n))
    return 2 * (n - 1), min(2 * (2 * n + pops), n * (n - 1))


@functools.lru_cache(maxsize=64)
def typical_pairwise_calls(method: str, n: int, top_k: int, samples: int = 25) -> int:
    """Median calls of the sort over ``samples`` seeded random preference orders (no ties)."""
    from recprompt.rank.pairwise import Comparator, all_pairs, heap_top_k, sliding_window

    if n < 2:
        return 0
    rng = random.Random(f"{method}:{n}:{top_k}")
    counts = []
    for _ in range(samples):
        strength = {f"c{i}": rng.random() for i in range(n)}
        asked: list[int] = []

        def ask(a: str, b: str, strength: dict[str, float] = strength, asked=asked) -> float:
            asked.append(1)
            return 1.0 if strength[a] > strength[b] else 0.0

        compare = Comparator(ask)
        names = list(strength)
        if method == "allpair":
            all_pairs(names, compare)
        elif method == "sliding":
            sliding_window(names, compare, top_k)
        else:
            heap_top_k(names, compare, top_k)
        counts.append(len(asked))
    return int(statistics.median(counts))


def calls_per_case(spec: Spec, n_candidates: int, *, repairs: int = REPAIRS) -> CallRange:
    """The range of model calls one case of ``spec`` costs (see the module docstring)."""
    worst = 1 + repairs  # one answer on a server without logits: the ask and its repairs
    if spec.rank is None:
        return CallRange(1, worst, f"one answer; a server may need up to {repairs} repairs")
    settings = spec.rank or RankSpec()
    strategy = resolve_strategy(spec)
    n = n_candidates
    if strategy == "pointwise":
        one = CallRange(n, max(n + 1, n * worst), f"pointwise: one prompt per candidate ({n})")
    elif strategy in ("likelihood", "letters"):
        one = CallRange(1, 1, f"{strategy}: one scored prompt")
    elif strategy == "listwise":
        one = CallRange(1, worst, "listwise: one generated list")
    else:
        low, high = pairwise_calls(settings.method, n, settings.top_k)
        how = f"pairwise {settings.method} over {n} candidates, both orders per pair"
        typical = typical_pairwise_calls(settings.method, n, settings.top_k)
        one = CallRange(low, high * worst, how, typical)
    if settings.bootstrap > 1:
        b = settings.bootstrap
        one = CallRange(
            one.low * b, one.high * b, f"{one.how}; x{b} bootstrap orders", one.typical * b
        )
    return one
