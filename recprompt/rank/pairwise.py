"""Pairwise Ranking Prompting (Qin et al. 2023): all pairs, sliding window, heap-sort top-k.

A *comparison* asks the A/B prompt in both orders, (a, b) and (b, a), to cancel the model's
position bias: if both orders agree the winner gets 1, a conflict is a tie worth 0.5 each
(score = wins + 0.5 * ties). Each comparison therefore costs two model calls, and results
are memoised per unordered pair, so no pair is ever asked twice for one user.

Cost in comparisons (calls = 2x), for N candidates and top-k:

* all pairs: N(N-1)/2 comparisons, exactly N(N-1) calls;
* sliding window (bubble passes from the bottom, one per top position):
  at most sum_{p<k}(N-1-p) = k(2N-k-1)/2 comparisons;
* heap sort top-k: heapify at most 2N, each of k extractions at most 2*floor(log2 N).

The sorts take a ``compare(a, b) -> float`` (1: a preferred, 0: b, 0.5: tie), so the call
counts are a property of the algorithm, testable with a scripted comparator.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations
from typing import Any

from recprompt.errors import InputError
from recprompt.rank.base import Context, OrderScores

__all__ = ["Comparator", "all_pairs", "heap_top_k", "pairwise", "sliding_window"]

Compare = Callable[[str, str], float]


class Comparator:
    """Memoised both-order comparison; ``wins`` holds wins + 0.5 * ties seen so far."""

    def __init__(self, ask: Callable[[str, str], float]) -> None:
        self.ask = ask
        """One prompt: 1 if the first item is preferred, 0 if the second, 0.5 if equal."""
        self.memo: dict[tuple[str, str], float] = {}
        self.wins: dict[str, float] = {}

    def __call__(self, a: str, b: str) -> float:
        if (a, b) in self.memo:
            return self.memo[(a, b)]
        forward, backward = self.ask(a, b), 1.0 - self.ask(b, a)
        result = forward if forward == backward else 0.5
        self.memo[(a, b)], self.memo[(b, a)] = result, 1.0 - result
        self.wins[a] = self.wins.get(a, 0.0) + result
        self.wins[b] = self.wins.get(b, 0.0) + 1.0 - result
        return result

    @property
    def comparisons(self) -> int:
        return len(self.memo) // 2


def all_pairs(names: list[str], compare: Comparator) -> dict[str, float]:
    """Every pair in both orders; score = wins + 0.5 * ties."""
    for a, b in combinations(names, 2):
        compare(a, b)
    return {n: compare.wins.get(n, 0.0) for n in names}


def sliding_window(names: list[str], compare: Comparator, k: int) -> dict[str, float]:
    """k bubble passes from the bottom; pass p lifts the best remaining item to position p.

    A tie never swaps. Score = N - final position (only the top k are fully ordered).
    """
    order = list(names)
    n = len(order)
    for p in range(min(k, n - 1)):
        for j in range(n - 2, p - 1, -1):
            if compare(order[j + 1], order[j]) > 0.5:
                order[j], order[j + 1] = order[j + 1], order[j]
    return {name: float(n - i) for i, name in enumerate(order)}


def heap_top_k(names: list[str], compare: Comparator, k: int) -> dict[str, float]:
    """Max-heap by comparisons, then k extractions. The top k score 2N - position; the
    rest score the wins + 0.5 * ties of the comparisons already made (always below N)."""
    heap = list(names)
    n = len(heap)

    def better(x: str, y: str) -> bool:
        return compare(x, y) > 0.5

    def sift(i: int, size: int) -> None:
        while True:
            left, right, top = 2 * i + 1, 2 * i + 2, i
            if left >= size:
                return
            child = right if right < size and better(heap[right], heap[left]) else left
            if not better(heap[child], heap[top]):
                return
            heap[i], heap[child] = heap[child], heap[i]
            i = child

    for i in range(n // 2 - 1, -1, -1):
        sift(i, n)
    top: list[str] = []
    for size in range(n, max(n - k, 0), -1):
        top.append(heap[0])
        heap[0], heap[size - 1] = heap[size - 1], heap[0]
        sift(0, size - 1)
    scores = {name: compare.wins.get(name, 0.0) for name in names}
    scores.update({name: float(2 * n - i) for i, name in enumerate(top)})
    return scores


def _asker(ctx: Context, names: dict[str, str]) -> Callable[[str, str], float]:
    """One A/B prompt between two item keys, shown by their ``names``."""
    spec = ctx.program.spec
    a_in, b_in = ctx.rank.pair_inputs
    options = tuple(getattr(spec.output, "options", ()))
    if a_in not in spec.inputs or b_in not in spec.inputs or len(options) != 2:
        raise InputError(
            f"{spec.name}: pairwise ranking needs inputs {a_in!r}, {b_in!r} and a two-option "
            "choice output (A/B)",
            hint="see templates/rank/pairwise.yaml; rank.pair_inputs names the two inputs",
        )
    first, second = options

    def ask(a: str, b: str) -> float:
        logps = ctx.choice({**ctx.inputs, a_in: names[a], b_in: names[b]})
        if logps[first] == logps[second]:
            return 0.5
        return 1.0 if logps[first] > logps[second] else 0.0

    return ask


def pairwise(ctx: Context, items: list[dict[str, Any]]) -> OrderScores:
    """PRP with the spec's method (allpair, sliding, heap) on one candidate order."""
    shown = {ctx.id(i): ctx.name(i) for i in items}
    names = list(shown)  # item keys: the sorts compare ids, prompts show names
    compare = Comparator(_asker(ctx, shown))
    if ctx.rank.method == "allpair":
        return OrderScores(all_pairs(names, compare))
    if ctx.rank.method == "sliding":
        return OrderScores(sliding_window(names, compare, ctx.rank.top_k))
    return OrderScores(heap_top_k(names, compare, ctx.rank.top_k))
