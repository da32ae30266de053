"""The built-in prompt library in templates/: every spec loads, cites its source, and renders.

P5 families must keep P5's prompt ids, with the last prompt of each family held out for
zero-shot evaluation (and no other).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from recprompt.spec import load_spec
from recprompt.spec.model import Spec

TEMPLATES = Path(__file__).resolve().parent.parent / "recprompt" / "templates"
SPEC_FILES = sorted(TEMPLATES.rglob("*.yaml"))

P5_FAMILIES = {
    "rating.yaml": [f"1-{i}" for i in range(1, 11)],
    "sequential.yaml": [f"2-{i}" for i in range(1, 14)],
    "explanation.yaml": [f"3-{i}" for i in range(1, 13)],
    "review_summary.yaml": [f"4-{i}" for i in range(1, 5)],
    "direct_yes_no.yaml": [f"5-{i}" for i in range(1, 5)],
    "direct.yaml": [f"5-{i}" for i in range(5, 9)],
}

HISTORY_TITLES = ["Heat (1995)", "Fargo (1996)", "Babe (1995)"]
STR_VALUES = {
    "user_id": "12",
    "item_id": "55",
    "item_title": "Toy Story (1995)",
    "target_title": "Toy Story (1995)",
    "user_name": "Ada",
    "review": "Soft on the skin and the scent lasts all day. Would buy again.",
    "review_headline": "Lovely scent",
    "feature": "scent",
    "item_category": "Beauty",
    "item_description": "An animated film about toys that come alive.",
    "profile": 'crime: "Heat (1995)", "Fargo (1996)"; family: "Babe (1995)"',
    "item_a": "Ronin (1998)",
    "item_b": "Casper (1995)",
    "example_target": "Babe (1995)",
    "item_kind": "movies",
}


def _render(spec: Spec, variant_id: str, inputs: dict[str, Any]) -> str:
    """The prompt text: through the compiler's renderer when present, else the bare template."""
    try:
        from recprompt.compile.render import render
    except ImportError:  # the compiler is not there yet: render the template alone
        from recprompt.spec.template import compile_template

        values = {name: inputs.get(name) for name in spec.inputs}
        return compile_template(spec.variant(variant_id).template).render(**values).rstrip() + " "
    return render(spec, inputs, variant=variant_id).text


def _history() -> list[dict[str, Any]]:
    return [
        {"item_id": str(n), "title": t, "rating": 4.0 + (n % 2), "timestamp": 1000 + n}
        for n, t in enumerate(HISTORY_TITLES, 1)
    ]


def _items(n: int) -> list[dict[str, Any]]:
    return [
        {
            "item_id": str(100 + i),
            "title": f"Candidate movie {i}",
            "explanation": "great for a quiet evening",
            "review": "Nice texture, fades quickly.",
            "summary": "nice but short-lived",
            "rating": 4,
        }
        for i in range(n)
    ]


def realistic_inputs(spec: Spec, *, optional: bool = True) -> dict[str, Any]:
    """One plausible value per declared input (omitting optional ones unless ``optional``)."""
    values: dict[str, Any] = {}
    for name, declared in spec.inputs.items():
        if declared.optional and not optional:
            continue
        if declared.type == "history":
            values[name] = _history() if name == "history" else _history()[:-1]
        elif declared.type == "candidates":
            values[name] = _items(declared.count or 20)
        elif declared.type == "items":
            values[name] = _items(2)
        elif declared.type == "int":
            values[name] = 4
        elif declared.type == "float":
            values[name] = 4.0
        elif declared.type == "bool":
            values[name] = True
        elif declared.default is not None and name not in STR_VALUES:
            continue
        else:
            values[name] = STR_VALUES.get(name, f"some {name}")
    return values


@pytest.fixture(scope="module", params=SPEC_FILES, ids=lambda p: str(p.relative_to(TEMPLATES)))
def spec(request: pytest.FixtureRequest) -> Spec:
    return load_spec(request.param)


def test_library_is_complete() -> None:
    names = {str(p.relative_to(TEMPLATES)) for p in SPEC_FILES}
    expected = (
        {f"p5/{f}" for f in P5_FAMILIES}
        | {
            f"chatgpt/{t}.yaml"
            for t in ("rating", "sequential", "direct", "explanation", "review_summary")
        }
        | {
            "llmrank/ranking.yaml",
            "prp/pairwise.yaml",
            "tallrec/binary.yaml",
            "palr/profile.yaml",
            "palr/ranking.yaml",
            "llmrec/enrichment.yaml",
        }
    )
    assert expected <= names


def test_names_are_unique() -> None:
    names = [load_spec(p).name for p in SPEC_FILES]
    assert len(names) == len(set(names))


def test_every_spec_cites_its_source(spec: Spec) -> None:
    assert spec.source and spec.source.strip()
    assert spec.description and spec.description.strip()


@pytest.mark.parametrize("file", sorted(P5_FAMILIES))
def test_p5_family_ids_and_held_out(file: str) -> None:
    spec = load_spec(TEMPLATES / "p5" / file)
    assert [v.id for v in spec.variants] == P5_FAMILIES[file]
    held_out = [v.id for v in spec.variants if v.held_out]
    assert held_out == [P5_FAMILIES[file][-1]]


def test_p5_direct_family_is_whole_across_two_files() -> None:
    ids = [
        v.id
        for f in ("direct_yes_no.yaml", "direct.yaml")
        for v in load_spec(TEMPLATES / "p5" / f).variants
    ]
    assert ids == [f"5-{i}" for i in range(1, 9)]


def test_p5_direct_ranks_100_candidates() -> None:
    spec = load_spec(TEMPLATES / "p5" / "direct.yaml")
    assert spec.inputs["candidates"].count == 100
    assert spec.output.k == 10 and spec.metric == "ndcg@10"


def test_chatgpt_specs_mark_zero_and_few_shot() -> None:
    for path in sorted((TEMPLATES / "chatgpt").glob("*.yaml")):
        ids = {v.id for v in load_spec(path).variants}
        assert {"zero-shot", "few-shot"} <= ids, path.name


def test_llmrank_variants() -> None:
    spec = load_spec(TEMPLATES / "llmrank" / "ranking.yaml")
    assert [v.id for v in spec.variants] == ["sequential", "recency_focused", "in_context"]
    assert spec.inputs["candidates"].count == 20


def test_llmrec_variants() -> None:
    spec = load_spec(TEMPLATES / "llmrec" / "enrichment.yaml")
    assert [v.id for v in spec.variants] == [
        "basic",
        "recommendation_driven",
        "engagement_guided",
        "recommendation_driven_engagement_guided",
    ]


def test_scored_binary_specs_read_logits() -> None:
    for rel in ("tallrec/binary.yaml", "p5/direct_yes_no.yaml"):
        spec = load_spec(TEMPLATES / rel)
        assert spec.output.options == ("Yes", "No") and spec.output.positive == "Yes"
        assert spec.output.decode == "score" and spec.metric == "auc"
    pair = load_spec(TEMPLATES / "prp" / "pairwise.yaml")
    assert pair.output.options == ("A", "B") and pair.output.decode == "score"


def test_every_variant_renders_with_realistic_inputs(spec: Spec) -> None:
    inputs = realistic_inputs(spec)
    for variant in spec.all_variants():
        text = _render(spec, variant.id, inputs)
        where = f"{spec.name}[{variant.id}]"
        assert text.endswith(": "), f"{where} must end with an answer cue and one space"
        assert "None" not in text, f"{where} rendered a missing value as None"
        if "history" in variant.template and "history" in inputs:
            for title in HISTORY_TITLES:
                assert title in text, f"{where} lacks history title {title!r}"
        if "candidates" in variant.template:
            assert "Candidate movie 0" in text and "Candidate movie 19" in text, where
        if "item_title" in variant.template and "item_title" in inputs:
            assert STR_VALUES["item_title"] in text, where


def test_every_variant_renders_without_optional_inputs(spec: Spec) -> None:
    inputs = realistic_inputs(spec, optional=False)
    for variant in spec.all_variants():
        text = _render(spec, variant.id, inputs)
        where = f"{spec.name}[{variant.id}]"
        assert text.endswith(": "), where
        assert "None" not in text and "none]" not in text, f"{where} shows a missing input"


def test_more_candidates_than_letters_is_a_clear_input_error() -> None:
    """27 candidates cannot be lettered A-Z: the error says so instead of an index error."""
    import recprompt
    from recprompt.errors import InputError

    program = recprompt.load("rank.letters")
    items = [{"item_id": str(n), "title": f"Movie {n}"} for n in range(27)]
    with pytest.raises(InputError, match="labels at most 26 items"):
        program.render(history=items[:2], candidates=items)
    assert "Z. Movie 25" in program.render(history=items[:2], candidates=items[:26]).text
