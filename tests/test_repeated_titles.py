"""Items with one title are never confused: display text, case building, ranking by id.

MovieLens 100K holds 18 pairs of distinct items with equal titles. At 1+19 candidates and
seed 0 the candidate lists of users 98, 347 and 367 hold such a pair; at 1+99, 58 of the
943 users do. Every case is built here for every user, and every case that holds a
repeated raw title is ranked end to end with a scripted (model-free) backend.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import pytest

from recprompt.backends.base import Completion, Usage
from recprompt.compile.program import Program
from recprompt.data import Dataset, load_dataset
from recprompt.errors import InputError
from recprompt.eval.cases import build_cases, default_protocol
from recprompt.rank import rank
from recprompt.spec import load_spec

TEMPLATES = Path(__file__).resolve().parent.parent / "recprompt" / "templates" / "rank"


class HashBackend:
    """Scores a continuation by a hash of its text: cheap, deterministic, no model."""

    name = "hash"
    supports_logits = True

    def __init__(self) -> None:
        self.usage = Usage()

    def tokenize(self, text: str, *, bos: bool = True) -> list[int]:
        return [0] * max(len(text.split()), 1)

    def score(self, prompt: str, continuations: list[str]) -> list[float]:
        self.usage.add(Usage(calls=1))
        return [-float(zlib.crc32(c.encode()) % 1000) for c in continuations]

    def generate(self, prompt: Any, *, constraint: Any, max_tokens: int, **_: Any) -> Completion:
        self.usage.add(Usage(calls=1))
        best = sorted(constraint.items, key=lambda n: zlib.crc32(n.encode()))[: constraint.k]
        return Completion(repr(best), Usage(calls=1))


def _program(name: str) -> Program:
    return Program(load_spec(TEMPLATES / f"{name}.yaml"), backend=HashBackend())


@pytest.mark.parametrize("negatives", [19, 99])
def test_ml100k_every_user_every_case_has_distinct_names_and_ranks(
    data_root: Path, negatives: int
) -> None:
    ds = load_dataset(data_root / "ml-100k")
    program = _program("likelihood")
    protocol = default_protocol(program.spec, ds.name, n_negatives=negatives, seed=0)
    cases = list(build_cases(program.spec, ds, protocol))
    assert len(cases) == 943
    repeated = []
    for case in cases:
        names = case.meta["candidate_names"]
        assert len(names) == negatives + 1
        assert len(set(names)) == len(names), f"user {case.id}: two candidates share a name"
        assert names.count(case.label) == 1
        assert names[case.meta["positive_index"]] == case.label
        raw = [ds.item_title(i) for i in case.meta["candidates"]]
        if len(set(raw)) < len(raw):
            repeated.append(case)
    # the users the issue names: the fix must cover exactly these collisions
    expected = {19: {"98", "347", "367"}, 99: None}[negatives]
    if expected is not None:
        assert {c.id for c in repeated} == expected
    else:
        assert len(repeated) == 58
    for case in repeated:
        result = rank(program, case.inputs, case.meta["candidate_items"], user=case.id)
        assert result.valid
        assert sorted(result.ids) == sorted(case.meta["candidates"])
        assert sorted(result.ranking) == sorted(case.meta["candidate_names"])
        assert case.label in result.ranking


def test_display_titles_append_year_when_it_differs_else_the_id() -> None:
    from recprompt.data import disambiguate

    titles = {"1": "Heat", "2": "Heat", "3": "Babe (1995)", "4": "Babe (1995)", "5": "7"}
    meta = {"1": {"release_date": "01-Jan-1995"}, "2": {"release_date": "01-Jan-1986"}}
    shown = disambiguate(titles | {"7": None}, meta)
    assert shown["1"] == "Heat (1995)" and shown["2"] == "Heat (1986)"
    assert shown["3"] == "Babe (1995) [id 3]" and shown["4"] == "Babe (1995) [id 4]"
    # an item without a title shows its id; if that equals another title, both get ids
    assert shown["5"] == "7 [id 5]" and shown["7"] == "7 [id 7]"
    assert len(set(shown.values())) == len(shown)


def test_dataset_display_titles_are_shared_by_its_splits() -> None:
    ds = Dataset.from_records(
        "twins",
        ["u", "u", "v"],
        ["a", "b", "a"],
        items={"a": {"title": "Twin"}, "b": {"title": "Twin"}},
    )
    assert ds.display_title("a") != ds.display_title("b")
    sub = ds.subset([0])
    assert sub.display_title("b") == ds.display_title("b")
    assert ds.item_title("a") == "Twin"  # the raw title is kept


def _twins(n: int = 6) -> list[dict[str, str]]:
    """n candidates where items 0 and 1 share a title (distinct ids)."""
    items = [{"item_id": str(i), "title": f"Movie {i}"} for i in range(n)]
    items[1]["title"] = "Movie 0"
    return items


@pytest.mark.parametrize("name", ["likelihood", "letters", "listwise", "pointwise"])
def test_rank_keys_by_id_when_two_candidates_share_a_title(name: str) -> None:
    history = [{"item_id": "h1", "title": "Heat (1995)"}]
    n = 10 if name == "listwise" else 6  # a top-10 list needs 10 candidates
    result = rank(_program(name), {"history": history}, _twins(n))
    assert result.valid, result.error
    assert sorted(result.ids) == sorted(str(i) for i in range(n))
    assert len(set(result.ranking)) == n  # the twins are told apart by id
    assert {"Movie 0 [id 0]", "Movie 0 [id 1]"} <= set(result.ranking)
    assert result.scores is not None and len(result.scores) == n


def test_rank_refuses_candidates_whose_ids_repeat() -> None:
    items = _twins()
    items[2]["item_id"] = "0"
    with pytest.raises(InputError, match="candidates repeat"):
        rank(_program("likelihood"), {"history": []}, items)
