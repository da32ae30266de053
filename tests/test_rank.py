"""recprompt.rank: strategies, PRP call counts, bootstrap, fusion, diagnostics.

Most tests use a scripted backend whose preferences are known (a title's number is its
worth), so call counts and orders are properties of the algorithms, not of a model. The
``model`` tests run the real Gemma 3 270M on a handful of candidates.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recprompt.backends.base import Completion, Usage
from recprompt.compile.program import Program
from recprompt.errors import InputError
from recprompt.rank import (
    attach_prior,
    bootstrap_orders,
    borda,
    fuse,
    order_by,
    popularity_bias,
    position_hit_rate,
    rank,
    ranking_diagnostics,
    tune_weight,
)
from recprompt.rank.pairwise import Comparator, all_pairs, heap_top_k, sliding_window
from recprompt.spec import load_spec

TEMPLATES = Path(__file__).resolve().parent.parent / "recprompt" / "templates" / "rank"
HISTORY = [{"item_id": "h1", "title": "Heat (1995)"}, {"item_id": "h2", "title": "Babe (1995)"}]


def worth(title: str) -> float:
    return float(re.search(r"Movie (\d+)", title).group(1))


class ScriptedBackend:
    """Prefers higher-numbered 'Movie n' titles; ``bias_a`` answers A whatever it is asked."""

    name = "scripted"
    supports_logits = True

    def __init__(self, bias_a: bool = False) -> None:
        self.usage = Usage()
        self.bias_a = bias_a

    def tokenize(self, text: str, *, bos: bool = True) -> list[int]:
        return [0] * max(len(text.split()), 1)

    def score(self, prompt: str, continuations: list[str]) -> list[float]:
        self.usage.add(Usage(calls=1, prompt_tokens=len(prompt.split())))
        if continuations == ["A", "B"]:
            if self.bias_a:
                return [0.0, -1.0]
            a = re.search(r"^A: (.*)$", prompt, re.M).group(1)
            b = re.search(r"^B: (.*)$", prompt, re.M).group(1)
            return [worth(a), worth(b)]
        if continuations == ["Yes", "No"]:
            return [worth(re.search(r'"(Movie \d+)"', prompt).group(1)), 0.0]
        if all(re.fullmatch(r"[A-T]", c) for c in continuations):
            lines = dict(re.findall(r"^([A-T])\. (.*)$", prompt, re.M))
            return [worth(lines[c]) for c in continuations]
        if all(c.startswith("Movie") for c in continuations):
            return [worth(c) for c in continuations]
        return [0.0 for _ in continuations]

    def generate(self, prompt: Any, *, constraint: Any, max_tokens: int, **_: Any) -> Completion:
        self.usage.add(Usage(calls=1, completion_tokens=10))
        best = sorted(constraint.items, key=worth, reverse=True)[: constraint.k]
        return Completion(repr(best), Usage(calls=1))


def candidates(n: int, ascending: bool = True) -> list[dict[str, str]]:
    numbers = range(n) if ascending else range(n - 1, -1, -1)
    return [{"item_id": str(i), "title": f"Movie {i}"} for i in numbers]


def program(name: str, backend: Any = None, **rank_overrides: Any) -> Program:
    spec = load_spec(TEMPLATES / f"{name}.yaml")
    if rank_overrides:
        spec = spec.model_copy(update={"rank": spec.rank.model_copy(update=rank_overrides)})
    return Program(spec, backend=backend or ScriptedBackend())


STRATEGY_CASES = [
    ("pointwise", {}),
    ("likelihood", {}),
    ("letters", {}),
    ("listwise", {}),
    ("pairwise", {"method": "allpair"}),
    ("pairwise", {"method": "sliding", "top_k": 3}),
    ("pairwise", {"method": "heap", "top_k": 3}),
]


@pytest.mark.parametrize(("name", "overrides"), STRATEGY_CASES)
def test_each_strategy_returns_a_full_permutation(name: str, overrides: dict) -> None:
    items = candidates(12)
    result = rank(program(name, **overrides), {"history": HISTORY}, items)
    assert sorted(result.ranking) == sorted(c["title"] for c in items)
    assert result.error is None and result.usage.calls > 0
    assert result.ranking[:3] == ["Movie 11", "Movie 10", "Movie 9"]
    assert list(result.scores) == result.ranking  # scores ordered like the ranking


def test_allpair_makes_exactly_n_n_minus_1_calls_and_the_sorts_fewer() -> None:
    n, k = 10, 3
    calls = {}
    for method in ("allpair", "sliding", "heap"):
        backend = ScriptedBackend()
        rank(
            program("pairwise", backend, method=method, top_k=k),
            {"history": HISTORY},
            candidates(n),
        )
        calls[method] = backend.usage.calls
    assert calls["allpair"] == n * (n - 1)
    # worst case for bubbling (best item last): every pass is new pairs, exactly k(2N-k-1)
    assert calls["sliding"] == k * (2 * n - k - 1) < n * (n - 1)
    assert calls["heap"] <= 2 * (2 * n + 2 * k * math.floor(math.log2(n))) < n * (n - 1)


def test_sort_comparison_counts_on_a_scripted_comparator() -> None:
    asked: list[tuple[str, str]] = []

    def ask(a: str, b: str) -> float:
        asked.append((a, b))
        return 1.0 if worth(a) > worth(b) else 0.0

    names = [f"Movie {i}" for i in range(20)]
    top = order_by(heap_top_k(names, cmp := Comparator(ask), 10), names)
    assert top[:10] == [f"Movie {i}" for i in range(19, 9, -1)]
    assert len(asked) == 2 * cmp.comparisons  # both orders per comparison
    assert cmp.comparisons <= 2 * 20 + 2 * 10 * 4
    asked.clear()
    sliding_window(names, Comparator(ask), 10)
    assert len(asked) == 10 * (2 * 20 - 10 - 1)


def test_a_position_biased_model_gets_only_ties() -> None:
    names = [f"Movie {i}" for i in range(5)]
    backend = ScriptedBackend(bias_a=True)
    result = rank(
        program("pairwise", backend, method="allpair"), {"history": HISTORY}, candidates(5)
    )
    assert set(result.llm_scores.values()) == {2.0}  # (N-1) * 0.5: every pair conflicts
    compare = Comparator(lambda a, b: 1.0)
    assert all_pairs(names, compare) == dict.fromkeys(names, 2.0)


def test_bootstrap_orders_differ_and_are_aggregated() -> None:
    items = candidates(6)
    names = [c["title"] for c in items]
    orders = bootstrap_orders(items, 5, seed=3, names=names)
    assert orders[0] == items
    assert len({tuple(c["title"] for c in o) for o in orders}) == 5
    assert bootstrap_orders(items, 5, seed=3, names=names) == orders  # seeded
    result = rank(program("letters", bootstrap=4), {"history": HISTORY}, items)
    assert len({tuple(o) for o in result.orders}) == 4
    assert result.strategy == "letters+borda4" and result.usage.calls == 4
    assert result.ranking[0] == "Movie 5"
    with pytest.raises(InputError):
        bootstrap_orders(items[:3], 7, seed=0, names=names[:3])  # 3! = 6 < 7


def test_borda_averages_tied_ranks() -> None:
    agg = borda([{"a": 3.0, "b": 1.0, "c": 1.0}, {"a": 0.0, "b": 2.0, "c": 1.0}])
    assert agg == {"a": 1.0, "b": 1.25, "c": 0.75}


class FixedPrior:
    def score(self, user: str, ids: list[str]) -> np.ndarray:
        return np.array([-float(i) if i != "3" else -np.inf for i in ids])


def test_fusion_weight_zero_is_the_llm_and_one_is_the_prior() -> None:
    items = candidates(8)
    names = [c["title"] for c in items]
    alone = rank(program("likelihood"), {"history": HISTORY}, items)
    prog = program("likelihood")
    for weight, expected in ((0.0, alone.ranking), (1.0, None)):
        attach_prior(prog, FixedPrior(), weight=weight)
        fused = rank(prog, {"history": HISTORY}, items, user="u1")
        if expected is None:
            expected = order_by(fused.prior_scores, fused.ranking)
            assert expected[0] == "Movie 0" and expected[-1] == "Movie 3"  # -inf is last
        assert fused.ranking == expected
    llm = dict(zip(names, np.arange(8.0), strict=True))
    prior = dict(zip(names, -np.arange(8.0), strict=True))
    assert order_by(fuse(llm, prior, 0.0), names) == order_by(llm, names)
    assert order_by(fuse(llm, prior, 1.0, "rank"), names) == order_by(prior, names)


def test_a_declared_prior_must_be_attached() -> None:
    prog = program("letters", prior="bpr", prior_weight=0.3)
    with pytest.raises(InputError, match="attach_prior"):
        rank(prog, {"history": HISTORY}, candidates(4))


def test_tune_weight_finds_the_mix_that_ranks_the_label_first() -> None:
    names = ["a", "b", "c"]
    llm = {"a": 1.5, "b": 2.0, "c": 0.0}
    prior = {"a": 1.5, "b": 0.0, "c": 2.0}
    cases = [(llm, prior, "a")]  # a is second for each alone, first when both count
    result = tune_weight(cases, grid=(0.0, 0.5, 1.0), k=1)
    assert result.weight == 0.5 and result.metric == 1.0
    assert result.table[0.0] == result.table[1.0] == 0.0
    assert order_by(fuse(llm, prior, 0.5), names)[0] == "a"


def test_tune_weight_leans_to_the_prior_unless_validation_shows_the_llm_helps() -> None:
    """One-standard-error rule: a best weight won by noise gives way to the prior."""
    mix = ({"a": 1.5, "b": 2.0, "c": 0.0}, {"a": 1.5, "b": 0.0, "c": 2.0}, "a")  # only 0.5 wins
    anti = ({"a": 0.0, "b": 2.0, "c": 1.0}, {"a": 2.0, "b": 0.0, "c": 1.8}, "a")  # only 1.0
    agree = ({"a": 2.0, "b": 1.0, "c": 0.0}, {"a": 2.0, "b": 1.0, "c": 0.0}, "a")  # every w
    grid = (0.0, 0.5, 1.0)
    noisy = tune_weight([mix, mix, anti, *[agree] * 7], grid=grid, k=1)
    assert noisy.table == {0.0: 0.7, 0.5: 0.9, 1.0: 0.8}  # 0.5 is best by one case in ten
    assert noisy.best == 0.5 and noisy.weight == 1.0 and noisy.metric == 0.8
    clear = tune_weight([mix] * 8 + [agree] * 2, grid=grid, k=1)
    assert clear.best == clear.weight == 0.5  # every mixed case gains: the LLM keeps its weight


def test_diagnostics_from_records() -> None:
    records = [
        {
            "label": "x",
            "value": ["x", "y"],
            "usage": {"calls": 2, "seconds": 1.0},
            "meta": {
                "positive_index": 0,
                "positive": "1",
                "candidates": ["1", "2"],
                "candidate_names": ["x", "y"],
            },
        },
        {
            "label": "y",
            "value": ["x", "y"],
            "usage": {"calls": 4, "seconds": 3.0},
            "meta": {
                "positive_index": 1,
                "positive": "2",
                "candidates": ["1", "2"],
                "candidate_names": ["x", "y"],
            },
        },
    ]
    assert position_hit_rate(records, k=1) == [
        {"position": 1, "cases": 1, "hit_rate": 1.0},
        {"position": 2, "cases": 1, "hit_rate": 0.0},
    ]
    assert position_hit_rate(records, k=1, bucket=2) == [
        {"position": "1-2", "cases": 2, "hit_rate": 0.5}
    ]
    pop = popularity_bias(records, {"1": 10, "2": 2, "3": 0}, k=1)
    assert pop["recommended_mean_count"] == 10 and pop["ground_truth_mean_count"] == 6
    report = ranking_diagnostics(records, {"1": 10, "2": 2}, k=1)
    assert report["cost"]["calls"] == 3 and report["cost"]["seconds"] == 2.0


@pytest.mark.model
def test_real_model_strategies_rank_every_candidate() -> None:
    from recprompt.backends import get_backend

    backend = get_backend("local")
    items = [
        {"item_id": "1", "title": "Toy Story (1995)"},
        {"item_id": "2", "title": "Heat (1995)"},
        {"item_id": "3", "title": "Fargo (1996)"},
    ]
    for name, overrides in (
        ("letters", {}),
        ("pointwise", {}),
        ("pairwise", {"method": "allpair"}),
    ):
        result = rank(program(name, backend, **overrides), {"history": HISTORY}, items)
        assert sorted(result.ranking) == sorted(i["title"] for i in items), name
        assert result.error is None and all(math.isfinite(v) for v in result.scores.values())
        if name == "pairwise":
            assert result.usage.calls == 3 * 2  # N(N-1) on the real backend too
