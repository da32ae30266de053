"""Specs that validate must not break later: bounded YAML, bounded templates, names and metrics
that evaluation can honour, duplicate keys and YAML booleans reported where they are."""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import pytest

import recprompt
from recprompt.cli import app
from recprompt.errors import SpecError, TemplateError
from recprompt.library import builtin_specs, resolve_spec_path
from recprompt.spec import load_spec, parse_spec
from recprompt.spec.limits import MAX_STRING
from recprompt.spec.yamlsafe import MAX_SPEC_BYTES

BASE = """\
name: t.bounds
task: rating
inputs:
  user_id: str
  history: {type: history, max_length: 5}
template: |
  User {{ user_id }} watched {{ history | titles | join(', ') }}.
  Rating:
output: {name: rating, type: rating, scale: [1, 5]}
metric: rmse
"""


def lol(depth: int = 9, fan: int = 9) -> str:
    """Billion-laughs anchors: each level refers to the previous one ``fan`` times."""
    lines = ['  - &l0 ["lol"]']
    for n in range(1, depth + 1):
        refs = ", ".join(f"*l{n - 1}" for _ in range(fan))
        lines.append(f"  - &l{n} [{refs}]")
    return "\n".join(lines)


# --- item 5: exponential YAML and huge files ------------------------------------------------


def test_billion_laughs_under_demo_examples_is_refused_fast() -> None:
    text = BASE + "demos:\n  examples:\n    - user_id: '1'\n      rating: 4\n      history:\n"
    text += "\n".join("    " + line for line in lol().splitlines()) + "\n"
    started = time.monotonic()
    with pytest.raises(SpecError, match="expands to more than") as caught:
        parse_spec(text, "bomb.yaml")
    assert time.monotonic() - started < 5
    assert caught.value.location.file == "bomb.yaml" and caught.value.location.line > 10


def test_billion_laughs_under_output_schema_is_refused_fast() -> None:
    text = BASE.replace(
        "output: {name: rating, type: rating, scale: [1, 5]}",
        "output:\n  type: object\n  schema:\n    type: object\n    enum:\n"
        + "\n".join("      " + line for line in lol().splitlines()),
    ).replace("metric: rmse\n", "")
    started = time.monotonic()
    with pytest.raises(SpecError, match="expands to more than"):
        parse_spec(text, "bomb.yaml")
    assert time.monotonic() - started < 5


def test_recursive_anchor_is_refused() -> None:
    text = BASE + "demos:\n  examples: &a [*a]\n"
    with pytest.raises(SpecError, match="recursive anchor"):
        parse_spec(text, "loop.yaml")


def test_deep_brackets_are_refused_before_the_quadratic_scanner() -> None:
    started = time.monotonic()
    with pytest.raises(SpecError, match="nest deeper than 100") as caught:
        parse_spec(BASE + "x: " + "[" * 100_000 + "\n", "deep.yaml")
    assert time.monotonic() - started < 2
    assert (caught.value.location.line, caught.value.location.column) == (11, 104)


def test_aliases_within_the_bound_still_load() -> None:
    text = BASE.replace("metric: rmse", "metric: &m rmse\ndescription: *m")
    assert parse_spec(text).description == "rmse"


def test_spec_file_size_is_capped(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(BASE + "description: '" + "x" * (MAX_SPEC_BYTES + 10) + "'\n")
    started = time.monotonic()
    with pytest.raises(SpecError, match="above the limit") as caught:
        load_spec(path)
    assert time.monotonic() - started < 2
    assert caught.value.location.file == str(path)


def test_unreadable_spec_is_a_clear_error(tmp_path: Path, cli) -> None:
    folder = tmp_path / "adir.yaml"
    folder.mkdir()
    with pytest.raises(SpecError, match="cannot read spec"):
        load_spec(folder)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(SpecError, match="not UTF-8"):
        load_spec(binary)
    result = cli.invoke(app, ["validate", str(folder)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    if os.geteuid() != 0:  # root reads any file
        locked = tmp_path / "locked.yaml"
        locked.write_text(BASE)
        locked.chmod(0)
        with pytest.raises(SpecError, match="cannot read spec"):
            load_spec(locked)


# --- item 6: template resources -------------------------------------------------------------

BOMBS = {
    "percent width": "{{ ('%0' ~ 300000000 ~ 'd') % 1 }}",
    "chained power": "{{ ((2 ** 64) ** 64) ** 64 }}",
    "center method": "{{ user_id.center(10 ** 9) }}",
    "center filter": "{{ user_id | center(1000000000) }}",
    "indent filter": "{{ user_id | indent(1000000000) }}",
    "format method": "{{ '{:0300000000d}'.format(1) }}",
    "format filter": "{{ '%0300000000d' | format(1) }}",
    "nested loops": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}"
    "{% endfor %}",
    "doubling concat": "{% macro d(s, n) %}{% if n %}{{ d(s ~ s, n - 1) }}{% else %}"
    "{{ s | length }}{% endif %}{% endmacro %}{{ d(user_id, 64) }}",
    "huge join": "{{ range(100000) | join('x' * 100000) }}",
    "huge replace": "{{ ('x' * 100000) | replace('x', 'y' * 100000) }}",
    "fan-out macro": "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}"
    "{% endmacro %}{{ f(40) }}",
    "long output": "{% for i in range(100000) %}{{ 'x' * 50 }}{% endfor %}",
}


@pytest.mark.parametrize("template", BOMBS.values(), ids=list(BOMBS))
def test_resource_bombs_fail_validate_with_a_location(template: str) -> None:
    text = BASE.replace("Rating:", "Rating: " + template)
    started = time.monotonic()
    with pytest.raises(TemplateError, match="too much") as caught:
        parse_spec(text, "bomb.yaml")
    assert time.monotonic() - started < 5
    # the template's second line in the file; the output's total size is only known at the end
    assert caught.value.location.line == (7 if "rendered text" in caught.value.message else 8)


@pytest.mark.parametrize("template", BOMBS.values(), ids=list(BOMBS))
def test_resource_bombs_fail_at_render_time_too(template: str) -> None:
    """A bomb that passes validation (e.g. one that depends on input values, which a trial
    render cannot know) is bounded when rendering: validation is skipped here on purpose."""
    spec = parse_spec(BASE)
    spec = spec.model_copy(update={"template": "Rating: " + template})
    program = recprompt.Program(spec)
    started = time.monotonic()
    with pytest.raises(TemplateError, match="sandbox refused"):
        program.render(user_id="go", history=[])
    assert time.monotonic() - started < 5


def test_ordinary_formatting_still_renders() -> None:
    template = (
        "{% for h in history %}{{ loop.index }}. {{ h.title ~ '!' }} {% endfor %}"
        "{{ '%5.2f' % 3.14159 }} {{ '{:>4}'.format('a') }} {{ user_id | center(5) }}|"
        "{{ history | join(', ', attribute='title') }} {{ 2 ** 10 }} {{ 'ab' * 3 }}"
    )
    program = recprompt.Program(parse_spec(BASE.replace("Rating:", template)))
    prompt = program.render(user_id="7", history=[{"title": "A"}, {"title": "B"}]).prompt
    assert "1. A! 2. B! " in prompt and " 3.14    a   7  |A, B 1024 ababab" in prompt
    assert MAX_STRING >= 100_000


# --- item 7: names and values that validate but break ---------------------------------------


@pytest.mark.parametrize("name", ["error", "value", "usage", "model_dump", "valid", "scores"])
def test_output_names_that_clash_with_prediction_fields(name: str) -> None:
    text = BASE.replace("name: rating, type: rating", f"name: {name}, type: rating")
    with pytest.raises(SpecError, match="clashes with a field every prediction has") as caught:
        parse_spec(text, "clash.yaml")
    assert (caught.value.location.line, caught.value.location.column) == (9, 16)


def test_output_name_must_be_a_field_name_and_not_an_input() -> None:
    with pytest.raises(SpecError, match="not a valid field name"):
        parse_spec(BASE.replace("name: rating,", "name: my-rating,"))
    with pytest.raises(SpecError, match="also an input"):
        parse_spec(BASE.replace("name: rating,", "name: user_id,"))


@pytest.mark.parametrize(
    ("metric", "words"),
    [("auc", "not computed for an output of type rating"), ("ndcg@10", "type rating")],
)
def test_metric_that_the_output_never_computes(metric: str, words: str) -> None:
    with pytest.raises(SpecError, match=words) as caught:
        parse_spec(BASE.replace("metric: rmse", f"metric: {metric}"), "m.yaml")
    assert caught.value.location.line == 10
    assert "rmse, mae" in caught.value.hint


def test_ranking_cutoff_that_is_not_computed() -> None:
    ranking = resolve_spec_path("p5.sequential").read_text(encoding="utf-8")
    assert "metric: ndcg@10" in ranking
    with pytest.raises(SpecError, match=r"'ndcg@7' is not computed"):
        parse_spec(ranking.replace("metric: ndcg@10", "metric: ndcg@7"))
    with pytest.raises(SpecError, match="hr@K equals recall@K"):
        parse_spec(ranking.replace("metric: ndcg@10", "metric: recall@10"))


def test_every_builtin_metric_is_computed_for_its_spec() -> None:
    for name, path in builtin_specs().items():
        assert load_spec(path).name == name  # loads, so its metric passed the check


def test_rank_ks_match_the_scoring_cutoffs() -> None:
    from recprompt.eval.scoring import RANK_KS as SCORED
    from recprompt.spec.model import RANK_KS

    assert tuple(SCORED) == tuple(RANK_KS)


def test_duplicate_keys_are_an_error_with_both_positions() -> None:
    text = BASE.replace("metric: rmse", "metric: rmse\nmetric: mae")
    with pytest.raises(SpecError, match=r"duplicate key 'metric' \(first at line 10") as caught:
        parse_spec(text, "dup.yaml")
    assert (caught.value.location.line, caught.value.location.column) == (11, 1)
    nested = BASE.replace("scale: [1, 5]}", "scale: [1, 5], scale: [1, 10]}")
    with pytest.raises(SpecError, match="duplicate key 'scale'"):
        parse_spec(nested)


def test_unquoted_yes_no_says_yaml_read_booleans() -> None:
    text = BASE.replace(
        "output: {name: rating, type: rating, scale: [1, 5]}",
        "output: {name: liked, type: choice, options: [Yes, No]}",
    ).replace("metric: rmse", "metric: accuracy")
    with pytest.raises(SpecError, match="YAML read the unquoted 'Yes' as the boolean True") as c:
        parse_spec(text, "yn.yaml")
    assert (c.value.location.line, c.value.location.column) == (9, 47)
    assert "quote it ('Yes')" in c.value.hint
    assert parse_spec(text.replace("[Yes, No]", "['Yes', 'No']")).output.options == ("Yes", "No")


# --- item 11: the library survives a bad file -----------------------------------------------


def test_undecodable_library_file_is_skipped_with_a_warning(tmp_path: Path, monkeypatch) -> None:
    from recprompt import library

    (tmp_path / "bad.yaml").write_bytes(b"name: \xff\xfe bad\n")
    (tmp_path / "mine.yaml").write_text(BASE.replace("t.bounds", "my.rating"))
    monkeypatch.setenv("RECPROMPT_TEMPLATES", str(tmp_path))
    library._index.cache_clear()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert resolve_spec_path("p5.rating").name == "rating.yaml"  # a built-in
            assert resolve_spec_path("my.rating") == tmp_path / "mine.yaml"
        assert any("skipping" in str(w.message) and "bad.yaml" in str(w.message) for w in caught)
        assert {"p5.rating", "my.rating"} <= set(builtin_specs())
    finally:
        library._index.cache_clear()


def test_validate_a_folder_that_cannot_be_listed(tmp_path: Path, cli, monkeypatch) -> None:
    def vanish(self, pattern):  # /proc's entries vanish while rglob lists them
        raise FileNotFoundError(2, "No such file or directory", str(self / "1234"))

    monkeypatch.setattr(Path, "rglob", vanish)
    result = cli.invoke(app, ["validate", str(tmp_path)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "cannot list the folder" in result.output
