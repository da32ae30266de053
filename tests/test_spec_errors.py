"""Every bad-spec case gives file:line:column, what is wrong and what to do; CLI exits 2."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from recprompt.cli import app
from recprompt.errors import SpecError, TemplateError
from recprompt.spec import load_spec

GOOD = """\
name: demo.rating
task: rating
inputs:
  user_id: str
  history: {type: history, max_length: 5}
  candidates: {type: candidates, count: 5}
template: |
  User {{ user_id }} watched {{ history | titles | join(', ') }}.
  Rating:
output: {type: rating, scale: [1, 5]}
metric: rmse
"""

LETTERED = GOOD.replace(
    "{type: rating, scale: [1, 5]}", "{type: choice, options: [A, B, C, D, E], decode: score}"
).replace("metric: rmse", "rank: {strategy: letters, top_k: 5}")

# (case, spec text, error class, expected line, expected column, words in message, hint words)
CASES = [
    ("yaml syntax", GOOD.replace("task: rating", "task: [rating"), SpecError, 3, 7, "YAML", ""),
    ("unknown key", GOOD.replace("metric:", "metirc:"), SpecError, 11, 1, "metirc", "'metric'"),
    (
        "unknown nested key",
        GOOD.replace("scale: [1, 5]", "scael: [1, 5]"),
        SpecError,
        10,
        24,
        "scael",
        "'scale'",
    ),
    (
        "wrong type",
        GOOD.replace("max_length: 5", "max_length: lots"),
        SpecError,
        5,
        40,
        "integer",
        "",
    ),
    (
        "undeclared variable",
        GOOD.replace("{{ user_id }} watched", "{{ usr_id }} watched"),
        TemplateError,
        8,
        11,
        "usr_id",
        "declare",
    ),
    (
        "python internals",
        GOOD.replace("{{ user_id }} watched", "{{ user_id.__class__.__mro__ }} watched"),
        TemplateError,
        8,
        19,
        "__class__",
        "public fields",
    ),
    ("empty scale", GOOD.replace("[1, 5]", "[5, 5]"), SpecError, 10, 31, "empty", ""),
    (
        "k above candidate count",
        GOOD.replace("{type: rating, scale: [1, 5]}", "{type: item_list, k: 10}"),
        SpecError,
        10,
        30,
        "larger than the 5 candidates",
        "lower k",
    ),
    (
        "unknown output type",
        GOOD.replace("type: rating,", "type: stars,"),
        SpecError,
        10,
        9,
        "",
        "output type",
    ),
    (
        "rank top_k above candidate count",
        LETTERED.replace("top_k: 5", "top_k: 8"),
        SpecError,
        11,
        34,
        "rank.top_k=8 is larger than the 5 candidates",
        "lower top_k",
    ),
    (
        "fewer letters than candidates",
        LETTERED.replace("[A, B, C, D, E]", "[A, B, C]"),
        SpecError,
        10,
        33,
        "3 letter options label only 3 of the 5 candidates",
        "A to E",
    ),
    (
        "letter options out of order",
        LETTERED.replace("[A, B, C, D, E]", "[A, B, C, D, F]"),
        SpecError,
        10,
        33,
        "letters ranking labels the candidates A, B, C, ... in order, but the options are",
        "A to E",
    ),
    (
        "tune_users without a prior",
        LETTERED.replace("top_k: 5}", "top_k: 5, tune_users: 20}"),
        SpecError,
        11,
        7,
        "tune_users tunes the prior's weight, but prior is none",
        "",
    ),
    (
        "prior_weight without a prior",
        LETTERED.replace("top_k: 5}", "top_k: 5, prior_weight: 0.4}"),
        SpecError,
        11,
        7,
        "prior_weight 0.4 weighs the prior, but prior is none",
        "",
    ),
    (
        "top_k is a boolean",
        LETTERED.replace("top_k: 5", "top_k: true"),
        SpecError,
        11,
        34,
        "rank.top_k",
        "",
    ),
    (
        "PriDe's permutations under contextual calibration",
        LETTERED + "calibration: {method: contextual, permutations: 3}\n",
        SpecError,
        12,
        14,
        "permutations is not used by method contextual",
        "",
    ),
    (
        "contextual's content-free text under PriDe",
        LETTERED + "calibration: {method: pride, content_free: X}\n",
        SpecError,
        12,
        14,
        "content_free is not used by method pride",
        "",
    ),
    (
        "samples without a calibration method",
        LETTERED + "calibration: {samples: 10}\n",
        SpecError,
        12,
        14,
        "samples is not used by method none",
        "",
    ),
    (
        "a pairwise setting on letters",
        LETTERED.replace("top_k: 5}", "top_k: 5, method: allpair}"),
        SpecError,
        11,
        45,
        "rank.method is used by strategy pairwise only",
        "remove rank.method",
    ),
    (
        "pointwise into an undeclared input",
        GOOD.replace(
            "{type: rating, scale: [1, 5]}", "{type: choice, options: ['Yes', 'No']}"
        ).replace("metric: rmse", "rank: {strategy: pointwise, top_k: 5, candidate_input: title}"),
        SpecError,
        11,
        56,
        "'title' is not declared",
        "user_id",
    ),
    (
        "tune_users is a boolean",
        LETTERED.replace("top_k: 5}", "top_k: 5, prior: bpr, tune_users: true}"),
        SpecError,
        11,
        61,
        "rank.tune_users",
        "",
    ),
    (
        "prior_weight is a boolean",
        LETTERED.replace("top_k: 5}", "top_k: 5, prior: bpr, prior_weight: true}"),
        SpecError,
        11,
        63,
        "rank.prior_weight",
        "",
    ),
    (
        "bootstrap is a boolean",
        LETTERED.replace("top_k: 5}", "top_k: 5, bootstrap: true}"),
        SpecError,
        11,
        48,
        "rank.bootstrap",
        "",
    ),
    (
        "history length is a boolean",
        GOOD.replace("max_length: 5", "max_length: true"),
        SpecError,
        5,
        40,
        "max_length",
        "",
    ),
    (
        "rating scale holds a boolean",
        GOOD.replace("scale: [1, 5]", "scale: [true, 5]"),
        SpecError,
        10,
        32,
        "scale",
        "",
    ),
    (
        "negative shuffle seed",
        LETTERED.replace("top_k: 5}", "top_k: 5, seed: -1}"),
        SpecError,
        11,
        43,
        "rank.seed",
        "",
    ),
    (
        "letters strategy with words as options",
        LETTERED.replace("[A, B, C, D, E]", "[AB, CD, EF, GH, IJ]"),
        SpecError,
        10,
        33,
        "one letter per candidate",
        "single capital letters",
    ),
    (
        "variant id with a space",
        GOOD.replace(
            "template: |\n  User {{ user_id }} watched {{ history | titles | join(', ') }}"
            ".\n  Rating:\n",
            "variants:\n  - id: 'a b'\n    template: \"Rating:\"\n",
        ),
        SpecError,
        8,
        9,
        "variants.0.id",
        "letters, digits",
    ),
    (
        "include",
        GOOD.replace("Rating:", "{% include 'rating.j2' %}Rating:"),
        TemplateError,
        9,
        6,
        "'include'",
        "self-contained",
    ),
    (
        "import",
        GOOD.replace("Rating:", "{% from 'm.j2' import x %}Rating:"),
        TemplateError,
        9,
        6,
        "'from'",
        "self-contained",
    ),
    (
        "default of the wrong type",  # passed validate; every call without user_id failed
        GOOD.replace("  user_id: str\n", "  user_id: str\n  n: {type: int, default: many}\n"),
        SpecError,
        5,
        27,
        "input 'n' must be int, got 'many' as its default",
        "default of type int",
    ),
    (
        "template syntax",
        GOOD.replace("Rating:", "{% if %}Rating:"),
        TemplateError,
        9,
        3,
        "syntax",
        "",
    ),
]


@pytest.mark.parametrize(
    ("case", "text", "error", "line", "column", "words", "hint"), CASES, ids=[c[0] for c in CASES]
)
def test_bad_spec_is_located(tmp_path, case, text, error, line, column, words, hint):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(error) as caught:
        load_spec(path)
    exc = caught.value
    assert exc.location is not None
    assert (exc.location.file, exc.location.line, exc.location.column) == (str(path), line, column)
    assert words in exc.message
    assert hint in (exc.hint or "")


@pytest.mark.parametrize("case", [c for c in CASES], ids=[c[0] for c in CASES])
def test_cli_exits_2_without_traceback(tmp_path, cli, case):
    path = tmp_path / "bad.yaml"
    path.write_text(case[1])
    result = cli.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert re.search(rf"{re.escape(str(path))}:{case[3]}:{case[4]}: ", result.output)


def test_good_spec_loads(tmp_path):
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    spec = load_spec(path)
    assert spec.output.values() == [1, 2, 3, 4, 5]
    assert spec.inputs["history"].max_length == 5


def test_sandbox_refuses_at_render_time(tmp_path):
    """A filter-based escape is not visible statically; the sandbox still refuses it."""
    import recprompt

    spec = recprompt.parse_spec(
        GOOD.replace("{{ user_id }} watched", "{{ user_id | attr('__class__') }} watched")
    )
    with pytest.raises(recprompt.RecpromptError, match=r"sandbox|unsafe|refused"):
        recprompt.Program(spec).render(user_id="1", history=[], candidates=[])


def test_missing_file_and_unknown_builtin(cli):
    result = cli.invoke(app, ["validate", "no/such/spec.yaml"])
    assert result.exit_code == 2 and "not found" in result.output
    result = cli.invoke(app, ["render", "p5.ratnig", "--input", "{}"])
    assert result.exit_code == 2 and "recprompt list" in result.output


@pytest.mark.parametrize("given", [None, 3, "", b"name: x", {"name": "x"}])
def test_loading_something_that_is_not_a_name_path_or_text_says_so(given):
    """load(None) and load_spec(3) raised os.fspath's TypeError, load('') read the current
    folder as a spec, and parse_spec(b'...') or parse_spec({...}) raised AttributeError."""
    import recprompt

    for function in (recprompt.load, load_spec):
        if isinstance(given, bytes | dict):
            continue
        with pytest.raises(SpecError, match=r"got (an empty|int|NoneType)") as caught:
            function(given)
        assert "recprompt.load" in caught.value.hint
    if not isinstance(given, str):
        with pytest.raises(SpecError, match="parse_spec takes the spec's YAML text"):
            recprompt.parse_spec(given)


def test_schema_is_current():
    """schemas/ is generated from the model; regenerate with 'recprompt schema'."""
    from recprompt.spec.schema import SCHEMA_FILE, schema_text

    on_disk = (Path(__file__).parent.parent / "recprompt" / "schemas" / SCHEMA_FILE).read_text()
    assert on_disk == schema_text(), "stale JSON Schema: run 'recprompt schema'"


def test_schema_validates_specs():
    import json

    import jsonschema
    import yaml

    from recprompt.spec.schema import spec_json_schema

    validator = jsonschema.Draft202012Validator(spec_json_schema())
    assert not list(validator.iter_errors(yaml.safe_load(GOOD)))
    bad = yaml.safe_load(GOOD.replace("metric:", "metirc:"))
    assert any("metirc" in e.message for e in validator.iter_errors(bad)), json.dumps(bad)
