"""A spec's ``demos: {k, selector}`` reaches every prompt it renders, and list answers of
demonstrations are whole titles."""

from __future__ import annotations

from pathlib import Path

from test_optimize import FakeBackend, tiny_dataset

import recprompt
from recprompt.cli import app
from recprompt.library import resolve_spec_path
from recprompt.spec import parse_spec

HISTORY = [
    {"item_id": str(n), "title": f"Film {n} (199{n})", "rating": 1 + n % 5} for n in range(6)
]


def history_spec(k: int = 2) -> str:
    text = resolve_spec_path("chatgpt.rating").read_text(encoding="utf-8")
    assert "demos: {k: 0, selector: history}" in text
    return text.replace("demos: {k: 0, selector: history}", f"demos: {{k: {k}, selector: history}}")


def test_history_selector_of_the_spec_renders_k_demos() -> None:
    program = recprompt.Program(parse_spec(history_spec(2)))
    rendered = program.render(item_title="Heat (1995)", history=HISTORY)
    assert rendered.text.count("Rating:") == 3  # two demonstrations and the query
    assert rendered.text.rstrip().endswith("Rating:")
    zero = recprompt.Program(parse_spec(history_spec(0)))
    assert zero.render(item_title="Heat (1995)", history=HISTORY).text.count("Rating:") == 1


def test_cli_render_and_run_path_use_the_declared_demos(tmp_path: Path, cli) -> None:
    spec = tmp_path / "fewshot.yaml"
    spec.write_text(history_spec(2))
    import json

    inputs = json.dumps({"item_title": "Heat (1995)", "history": HISTORY})
    result = cli.invoke(app, ["render", str(spec), "-i", inputs])
    assert result.exit_code == 0, result.output
    assert result.output.count("Rating:") == 3
    program = recprompt.load(spec, backend=FakeBackend())  # what run and eval build
    assert len(program.demos({"item_title": "Heat (1995)", "history": HISTORY})) == 2


def test_eval_prompts_carry_the_declared_demos(tmp_path: Path) -> None:
    from recprompt.eval.cases import default_protocol
    from recprompt.eval.evaluate import evaluate

    backend = FakeBackend()
    spec = tmp_path / "fewshot.yaml"
    spec.write_text(history_spec(2))
    program = recprompt.load(spec, backend=backend)
    dataset = tiny_dataset()
    protocol = default_protocol(program.spec, dataset.name, n_users=3, seed=0)
    report = evaluate(program, dataset, protocol, tmp_path / "run", baselines=[], progress=False)
    assert backend.prompts and all(p.count("Rating:") == 3 for p in backend.prompts)
    assert report["environment"]["backend"] == "fake"  # the numeric environment is recorded


def test_selector_chooses_among_spec_examples_per_input() -> None:
    text = history_spec(1).replace("selector: history", "selector: knn_users, examples: [")
    examples = [
        {"item_title": "A", "history": [{"item_id": "1", "title": "One"}], "rating": 5},
        {"item_title": "B", "history": [{"item_id": "9", "title": "Nine"}], "rating": 1},
    ]
    import json

    text = text.replace("examples: [}", "examples: " + json.dumps(examples) + "}")
    program = recprompt.Program(parse_spec(text))
    near_one = program.render(item_title="Q", history=[{"item_id": "1", "title": "One"}]).text
    near_nine = program.render(item_title="Q", history=[{"item_id": "9", "title": "Nine"}]).text
    assert '"A"' in near_one and '"B"' not in near_one
    assert '"B"' in near_nine and '"A"' not in near_nine


def test_list_demo_answer_is_a_list_of_whole_titles() -> None:
    program = recprompt.load("p5.sequential")
    candidates = [{"item_id": str(n), "title": f"Film {n}"} for n in range(20)]
    demo = {"user_id": "3", "history": HISTORY[:2], "candidates": candidates}
    program.set_demos([{**demo, "ranking": "Star Wars (1977)"}])
    text = program.render(user_id="4", history=HISTORY, candidates=candidates).text
    assert "Top 10: ['Star Wars (1977)']" in text
    assert "'S', 't'" not in text
    assert program.spec.output.answer_text(["A", "B"]) == "['A', 'B']"
