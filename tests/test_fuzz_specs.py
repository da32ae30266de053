"""Fuzzing of spec loading: generated and mutated specs either load or fail with a located error.

Property (YAML): ``parse_spec(text, "fuzz.yaml")`` returns a :class:`Spec` or raises a
:class:`RecpromptError` whose location names ``fuzz.yaml`` and a line; nothing else escapes
and nothing hangs. Specs that load are also rendered with dummy inputs, which may only fail
with a :class:`RecpromptError`. Seeds are the library's own specs in ``templates/``.

Property (decorator): ``recprompt.task(...)(function)`` for random signatures, annotations,
docstrings and output dicts returns a program or raises a RecpromptError located in the
function's source file.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import recprompt
from recprompt.compile.inputs import make_item
from recprompt.compile.render import render
from recprompt.errors import RecpromptError
from recprompt.spec import Spec, parse_spec

ROOT = Path(__file__).resolve().parent.parent
SCALE = int(os.environ.get("RECPROMPT_FUZZ_SCALE", "1"))  # bench/fuzz.py runs more examples
SEED_TEXTS = sorted(
    (p.relative_to(ROOT).as_posix(), p.read_text(encoding="utf-8"))
    for p in (ROOT / "recprompt" / "templates").rglob("*.yaml")
)
SEED_DATA = [yaml.safe_load(text) for _, text in SEED_TEXTS]
FILE = "fuzz.yaml"

# --- strategies --------------------------------------------------------------------------------

JINJA_FRAGMENTS = [
    "{{ 7*7 }}",
    "{{ }}",
    "{{",
    "}}",
    "{%",
    "%}",
    "{# unclosed",
    "{% raw %}",
    "{% endfor %}",
    "{% for x in range(10**9) %}{{ x }}{% endfor %}",
    "{{ 1/0 }}",
    "{{ 1 // 0 }}",
    "{{ ''.__class__.__mro__ }}",
    "{{ candidates.__class__ }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ history['_private'] }}",
    "{{ undeclared_name }}",
    "{{ user_id | no_such_filter }}",
    "{% include 'x.txt' %}",
    "{% extends 'base.txt' %}",
    "{% import 'm' as m %}",
    "{{ LETTERS[100] }}",
    "{{ 99 | letter }}",
    "{{ 'x' | letter }}",
    "{{ candidates | pylist }}",
    "{{ candidates | numbered }}",
    "{{ history | lettered }}",
    "{{ history[-1] | name }}",
    "{{ history[1000] }}",
    "{{ user_id.upper() }}",
    "{{ self }}",
    "{{ loop.index }}",
    "{{ caller() }}",
    "{% set ns = namespace(a=1) %}{% set ns.a = 2 %}{{ ns.a }}",
    "{{ (((((((1))))))) }}",
    "{% macro m() %}x{% endmacro %}{{ m() }}",
    "{% macro r() %}{{ r() }}{% endmacro %}{{ r() }}",
    "{{ [].append(1) }}",
    "{{ {}.update(a=1) }}",
    "{{ 'a' ~ 1 }}",
    "{% if %}",
    "{{ x for x in y }}",
]
YAML_INJECTIONS = [
    ":",
    ": ",
    "- ",
    "[",
    "]",
    "{",
    "}",
    "&a ",
    "*a",
    "*undefined",
    "!!python/object:os.system ",
    "!!binary ",
    "? ",
    "|",
    ">",
    "'",
    '"',
    "#",
    "%YAML 1.1\n",
    "---\n",
    "...\n",
    "\t",
    "\x00",
    "\ufeff",
    "\n  ",
    "\n",
    "<<: *a\n",
    "@",
    "`",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["str", "items", "history", "candidates", "int", "float", "bool", "nope"]),
)
VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=3),
    st.dictionaries(st.text(max_size=6), SCALARS, max_size=3),
)
OUTPUTS = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            ["rating", "choice", "item", "item_list", "text", "object", "bogus", 3, None]
        )
    },
    optional={
        "scale": st.lists(
            st.one_of(st.integers(-5, 10), st.floats(allow_nan=True, allow_infinity=True)),
            max_size=3,
        ),
        "step": st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-1, 3)),
        "k": st.one_of(st.integers(-3, 40), st.text(max_size=3)),
        "options": st.lists(st.text(max_size=5), max_size=4),
        "from": st.sampled_from(["candidates", "history", "user_id", "items", "nope"]),
        "format": st.sampled_from(["python_list", "json", "lines", "xml"]),
        "decode": st.sampled_from(["generate", "expected", "argmax", "score", "beam"]),
        "positive": st.sampled_from(["Yes", "No", "", "x"]),
        "schema": st.sampled_from([{"type": "object"}, {"type": 5}, "x", {}]),
        "max_tokens": st.integers(-2, 100),
        "key": st.sampled_from(["title", "item_id", "x"]),
        "stop": st.lists(st.text(max_size=3), max_size=2),
        "name": SCALARS,
    },
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*path, index))
    return found


def _parent(data: Any, path: tuple[Any, ...]) -> Any:
    for step in path[:-1]:
        data = data[step]
    return data


@st.composite
def mutated_data(draw: st.DrawFn) -> Any:
    """A seed spec as data, with 1-4 structural mutations."""
    data = copy.deepcopy(draw(st.sampled_from(SEED_DATA)))
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(data) if p]
        op = draw(
            st.sampled_from(
                ["delete", "rename", "retype", "output", "jinja", "k", "add", "variants"]
            )
        )
        if op == "output":
            data["output"] = draw(OUTPUTS)
            continue
        if op == "k" and isinstance(data.get("output"), dict):
            data["output"]["k"] = draw(st.one_of(st.integers(-2, 60), VALUES))
            continue
        if op == "add":
            data[draw(st.sampled_from(["metirc", "rank", "demos", "mode", "system", "x"]))] = draw(
                st.one_of(
                    VALUES,
                    st.just({"strategy": "pairwise", "top_k": 0}),
                    st.just({"k": 3, "selector": "knn_users", "format": "{{ prompt }} {{ z }}"}),
                )
            )
            continue
        if op == "variants" and isinstance(data.get("variants"), list):
            variants = data["variants"]
            choice = draw(st.sampled_from(["dup", "hold", "empty", "both"]))
            if choice == "dup" and variants:
                variants.append(copy.deepcopy(variants[0]))
            elif choice == "hold":
                for v in variants:
                    if isinstance(v, dict):
                        v["held_out"] = True
            elif choice == "empty":
                data["variants"] = []
            else:
                data["template"] = "{{ user_id }}"
            continue
        if op == "jinja":
            targets = [p for p in paths if isinstance(_parent(data, p)[p[-1]], str)]
            if targets:
                path = draw(st.sampled_from(targets))
                parent, key = _parent(data, path), path[-1]
                text = parent[key]
                at = draw(st.integers(0, len(text)))
                fragment = draw(st.sampled_from(JINJA_FRAGMENTS))
                parent[key] = text[:at] + fragment + text[at:]
            continue
        if not paths:
            continue
        path = draw(st.sampled_from(paths))
        parent, key = _parent(data, path), path[-1]
        if op == "delete":
            del parent[key]
        elif op == "rename" and isinstance(parent, dict):
            new_key = draw(st.one_of(st.text(min_size=1, max_size=8), st.integers(0, 3)))
            parent[new_key] = parent.pop(key)
        else:
            parent[key] = draw(VALUES)
    return data


@st.composite
def fuzzed_text(draw: st.DrawFn) -> str:
    """YAML text: a mutated seed (dumped back), then optional byte-level damage."""
    if draw(st.booleans()):
        text = draw(st.sampled_from(SEED_TEXTS))[1]
    else:
        data = draw(mutated_data())
        try:
            text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=100)
        except yaml.YAMLError:
            text = draw(st.sampled_from(SEED_TEXTS))[1]
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["truncate", "inject", "jinja", "flip", "none"]))
        raw = text.encode("utf-8")
        if op == "truncate":
            text = raw[: draw(st.integers(0, len(raw)))].decode("utf-8", errors="ignore")
        elif op == "inject":
            at = draw(st.integers(0, len(text)))
            text = text[:at] + draw(st.sampled_from(YAML_INJECTIONS)) + text[at:]
        elif op == "jinja":
            at = draw(st.integers(0, len(text)))
            text = text[:at] + draw(st.sampled_from(JINJA_FRAGMENTS)) + text[at:]
        elif op == "flip" and raw:
            at = draw(st.integers(0, len(raw) - 1))
            byte = draw(st.integers(0, 255))
            text = (raw[:at] + bytes([byte]) + raw[at + 1 :]).decode("utf-8", errors="replace")
    return text


# --- the properties ----------------------------------------------------------------------------


def _dummy_inputs(spec: Spec) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, declared in spec.inputs.items():
        kind = declared.type
        if kind in ("items", "history", "candidates"):
            n = min(declared.count or 20, 60)
            values[name] = [make_item(str(i), f"Item {i}", rating=4.0) for i in range(n)]
        else:
            values[name] = {"str": "x", "int": 1, "float": 1.5, "bool": True}[kind]
    return values


def check_yaml(text: str) -> str:
    """The YAML property; returns 'ok' or the error class name (for statistics)."""
    try:
        spec = parse_spec(text, FILE)
    except RecpromptError as exc:
        assert exc.location is not None, f"{type(exc).__name__} without location: {exc}"
        assert exc.location.file == FILE, exc.location
        assert exc.location.line is not None, f"no line for: {exc}"
        assert exc.location.line >= 1
        return type(exc).__name__
    assert isinstance(spec, Spec)
    inputs = _dummy_inputs(spec)
    for variant in spec.all_variants():
        with contextlib.suppress(RecpromptError):
            render(spec, inputs, variant=variant.id)
    return "ok"


@pytest.mark.timeout(120 * SCALE)
@settings(
    max_examples=700 * SCALE,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(fuzzed_text())
def test_yaml_specs_load_or_fail_located(text: str) -> None:
    event(check_yaml(text))


def test_seed_specs_all_load() -> None:
    """The seeds are valid, so mutations start from real specs."""
    assert len(SEED_TEXTS) >= 10
    for name, text in SEED_TEXTS:
        assert isinstance(parse_spec(text, name), Spec)


# Regressions found by fuzzing (each crashed or hung before the fix).
GOOD = dict(SEED_TEXTS)["recprompt/templates/tallrec/binary.yaml"]
LAUGHS = "".join(
    f"z{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10 if i else ["1"] * 10) + "]\n" for i in range(9)
)
REGRESSIONS = {
    "recursive alias": GOOD + "\nx: &a [*a]\n",
    "recursive alias in a field": GOOD.replace("metric: auc", "metric: &m [*m]"),
    "billion laughs": LAUGHS + GOOD,
    "billion laughs in a field": GOOD.replace("demos: {k: 0, selector: random}", "")
    + LAUGHS.replace("z", "q")
    + "demos: {examples: [*a8]}\n",
    "deep yaml nesting": "a: " + "[" * 1200 + "]" * 1200,
    "deep jinja nesting": GOOD.replace("Output:", "{{ " + "(" * 1500 + "1" + ")" * 1500 + " }}"),
    "NUL byte": GOOD.replace("Output:", "Out\x00put:"),
    "infinite rating scale": GOOD.replace(
        'output: {name: likes, type: choice, options: ["Yes", "No"], positive: "Yes", '
        "decode: score}",
        "output: {type: rating, scale: [1, .inf]}",
    ),
    "nan rating scale": GOOD.replace(
        'output: {name: likes, type: choice, options: ["Yes", "No"], positive: "Yes", '
        "decode: score}",
        "output: {type: rating, scale: [.nan, 5]}",
    ),
    "tiny rating step": GOOD.replace(
        'output: {name: likes, type: choice, options: ["Yes", "No"], positive: "Yes", '
        "decode: score}",
        "output: {type: rating, scale: [0, 1000000], step: 0.001}",
    ),
    "division by zero in template": GOOD.replace("Output:", "{{ 1/0 }}"),
    "huge range in template": GOOD.replace("Output:", "{% for x in range(10**9) %}{% endfor %}"),
    "unknown filter": GOOD.replace("Output:", "{{ item_kind | no_such_filter }}"),
    "unknown test": GOOD.replace("Output:", "{{ item_kind is no_such_test }}"),
    "macro recursion": GOOD.replace("Output:", "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}"),
    "int key": GOOD.replace("  liked:", "  1: str\n  liked:"),
    "null key": GOOD.replace("  liked:", "  null: str\n  liked:"),
    "complex key": GOOD + "\n? [a, b]\n: 1\n",
    "empty": "",
    "only comment": "# nothing\n",
    "two documents": GOOD + "\n---\nname: x\n",
    "python tag": GOOD + "\nx: !!python/object/apply:os.system ['true']\n",
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", list(REGRESSIONS))
def test_fuzz_regressions(case: str) -> None:
    outcome = check_yaml(REGRESSIONS[case])
    if case in (
        "infinite rating scale",
        "nan rating scale",
        "tiny rating step",
        "deep yaml nesting",
    ):
        assert outcome == "SpecError"
    if case.startswith("unknown"):
        assert outcome == "TemplateError"
    if case.startswith(("recursive", "billion", "deep", "NUL", "python tag", "two documents")):
        assert outcome != "ok"


# --- decorator forms ---------------------------------------------------------------------------

_TMP = Path(tempfile.mkdtemp(prefix="recprompt-fuzz-"))
_COUNTER = itertools.count()


class Answer(BaseModel):
    """A pydantic return annotation for object outputs."""

    score: int
    reason: str


NAMESPACE = {
    "Literal": Literal,
    "History": recprompt.History,
    "Candidates": recprompt.Candidates,
    "Items": recprompt.Items,
    "Answer": Answer,
}
PARAM_NAMES = ["user_id", "history", "candidates", "target_title", "x", "liked", "k"]
ANNOTATIONS = [
    None,
    "str",
    "int",
    "float",
    "bool",
    "list[str]",
    "list",
    "History",
    "Candidates",
    "Items",
    "str | None",
    "History | None",
    "dict",
    "tuple[int, int]",
    "3",
    "'Undefined'",
    "'not valid ('",
    "Literal['a', 'b']",
    "[int]",
]
RETURNS = [
    None,
    "Literal['Yes', 'No']",
    "Literal['Yes']",
    "Literal['A', 'A']",
    "Literal[1, 2, 3]",
    "float",
    "int",
    "str",
    "list[str]",
    "dict",
    "None",
    "Answer",
    "'Missing'",
    "7",
]
DEFAULTS = [None, "None", "'x'", "3", "[]", "1.5"]
DECORATOR_OUTPUTS = st.one_of(
    st.none(),
    OUTPUTS,
    st.sampled_from(["rating", 3, [("type", "text")], {"type": "item_list", "k": 2}]),
)
EXTRA_FIELDS = st.sampled_from(
    [
        {},
        {"metric": "ndcg@10"},
        {"metric": "bogus"},
        {"demos": {"k": -1}},
        {"demos": {"k": 2, "format": "{{ prompt }} => {{ answer }} {{ nope }}"}},
        {"nonsense": 1},
        {"rank": {"top_k": 0}},
        {"mode": "chat", "system": "{{ user_id }}"},
        {"variants": [{"id": "a", "template": "x"}]},
    ]
)


@st.composite
def decorated(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """Source of a module defining ``f``, and the keyword arguments of ``recprompt.task``."""
    names = draw(st.lists(st.sampled_from(PARAM_NAMES), unique=True, max_size=4))
    params, defaulted = [], False
    for pname in names:
        annotation = draw(st.sampled_from(ANNOTATIONS))
        default = draw(st.sampled_from(DEFAULTS))
        if defaulted and default is None:
            default = "None"
        defaulted = defaulted or default is not None
        text = pname + (f": {annotation}" if annotation else "")
        if default is not None:
            text += " = " if annotation else "="
            text += default
        params.append(text)
    returns = draw(st.sampled_from(RETURNS))
    doc_parts = draw(
        st.lists(
            st.one_of(
                st.sampled_from(JINJA_FRAGMENTS),
                st.sampled_from([f"{{{{ {n} }}}}" for n in PARAM_NAMES]),
                st.text(max_size=15),
            ),
            max_size=4,
        )
    )
    doc = " ".join(doc_parts)
    future = draw(st.booleans())
    source = (
        ("from __future__ import annotations\n\n" if future else "")
        + f"def f({', '.join(params)})"
        + (f" -> {returns}" if returns else "")
        + ":\n"
        + (f"    {doc!r}\n" if doc or draw(st.booleans()) else "")
        + "    return None\n"
    )
    kwargs: dict[str, Any] = {}
    out = draw(DECORATOR_OUTPUTS)
    if out is not None:
        kwargs["output"] = out
    if draw(st.booleans()):
        kwargs["task"] = draw(st.sampled_from(["rating", "ranking", "other", "bogus"]))
    if draw(st.integers(0, 3)) == 0:
        kwargs["template"] = draw(st.sampled_from(JINJA_FRAGMENTS))
    if draw(st.integers(0, 3)) == 0:
        kwargs["name"] = draw(st.sampled_from(["ok.name", "bad name!", ""]))
    kwargs.update(draw(EXTRA_FIELDS))
    return source, kwargs


def check_decorated(source: str, kwargs: dict[str, Any]) -> str:
    path = _TMP / f"fuzz_task_{next(_COUNTER)}.py"
    path.write_text(source, encoding="utf-8")
    namespace = dict(NAMESPACE, __name__=path.stem)
    try:
        exec(compile(source, str(path), "exec"), namespace)
    except SyntaxError:
        return "syntax"  # not a Python function at all; nothing to decorate
    try:
        program = recprompt.task(**kwargs)(namespace["f"])
    except RecpromptError as exc:
        assert exc.location is not None, f"{type(exc).__name__} without location: {exc}"
        assert exc.location.file == str(path), (exc.location, source)
        return type(exc).__name__
    assert program.spec.template
    with contextlib.suppress(RecpromptError):
        render(program.spec, _dummy_inputs(program.spec))
    return "ok"


@pytest.mark.timeout(120 * SCALE)
@settings(
    max_examples=400 * SCALE,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(decorated())
def test_decorated_functions_build_or_fail_located(case: tuple[str, dict[str, Any]]) -> None:
    event(check_decorated(*case))


@pytest.mark.parametrize(
    ("source", "kwargs"),
    [
        ("def f(x: 3):\n    '{{ x }}'\n", {"output": {"type": "text"}}),
        ("def f(x: 'not valid ('):\n    '{{ x }}'\n", {"output": {"type": "text"}}),
        ("def f(x: str):\n    '{{ x }}'\n", {"output": "rating"}),
        ("def f(x: str):\n    '{{ x }}'\n", {"output": 3}),
        ("def f(x: str) -> 7:\n    '{{ x }}'\n", {}),
        ("def f(x: [int]):\n    '{{ x }}'\n", {"output": {"type": "text"}}),
    ],
)
def test_decorator_regressions(source: str, kwargs: dict[str, Any]) -> None:
    """Each raised TypeError, ValueError or SyntaxError out of the decorator before the fix."""
    assert check_decorated(source, kwargs) == "SpecError"


def test_good_decorated_function_still_builds() -> None:
    source = (
        "def f(user_id: str, history: History) -> Literal['Yes', 'No']:\n"
        "    '''User {{ user_id }} saw {{ history | titles | join(', ') }}. Like it?'''\n"
    )
    assert check_decorated(source, {}) == "ok"


def test_rating_scale_still_accepts_fine_steps() -> None:
    """The bound on rating labels leaves real scales alone (0..10 in halves, 1..5)."""
    text = (
        REGRESSIONS["tiny rating step"]
        .replace("scale: [0, 1000000], step: 0.001", "scale: [0, 10], step: 0.5")
        .replace("metric: auc", "metric: rmse")  # a rating computes rmse/mae, never auc
    )
    assert len(parse_spec(text, FILE).output.labels()) == 21
