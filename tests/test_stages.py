"""Multi-stage programs: one stage output per key, reused from memory, the store and the cache."""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import pytest

import recprompt
from recprompt.backends.base import Completion, Usage
from recprompt.backends.cache import CachedBackend
from recprompt.cli import app
from recprompt.data import load_dataset
from recprompt.errors import SpecError
from recprompt.eval.cases import build_cases, default_protocol
from recprompt.eval.evaluate import evaluate
from recprompt.rank import rank
from recprompt.spec import parse_spec

PER_USER = 21  # pointwise: 20 candidates + 1 shared-prefix warm-up call

POINTWISE = """
name: test.profile_pointwise
task: ranking
stages:
  - {spec: palr.profile, into: profile, per: user}
inputs:
  profile: str
  history: {type: history, max_length: 5}
  item_title: {type: str, default: ""}
output: {name: likes, type: choice, options: ["Yes", "No"], positive: "Yes", decode: score}
rank: {strategy: pointwise, candidate_input: item_title, top_k: 10}
variants:
  - id: a
    template: |
      Profile: {{ profile }}
      Watched: {{ history | titles | join("; ") }}
      Will the user enjoy "{{ item_title }}"? Answer:
  - id: b
    template: |
      The user likes {{ profile }}. Will they enjoy "{{ item_title }}"? Answer:
"""


class CountingBackend:
    """Generates a fixed profile, scores by a hash; counts what reaches it."""

    name = "counting"
    supports_logits = True

    def __init__(self) -> None:
        self.usage = Usage()
        self.generated: list[str] = []
        self.scored: list[str] = []

    def generate(self, prompt: Any, *, constraint: Any, max_tokens: int, **_: Any) -> Completion:
        self.usage.calls += 1
        self.generated.append(prompt)
        return Completion('drama: "Heat"; comedy: "Fargo"', Usage(calls=1, completion_tokens=9))

    def score(self, prompt: str, continuations: list[str]) -> list[float]:
        self.usage.calls += 1
        self.scored.append(prompt)
        return [-(zlib.crc32((prompt + c).encode()) % 1000) / 300 for c in continuations]


@pytest.fixture(scope="module")
def ml(data_root: Path) -> Any:
    return load_dataset(data_root / "ml-100k")


def _program(tmp_path: Path, backend: Any, text: str = POINTWISE) -> Any:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return recprompt.load(path, backend=backend)


def _protocol(program: Any, ml: Any, users: int = 3) -> Any:
    return default_protocol(program.spec, ml.name, n_users=users, seed=0)


def test_one_profile_per_user_across_candidates(tmp_path, ml):
    backend = CountingBackend()
    program = _program(tmp_path, backend)
    report = evaluate(
        program, ml, _protocol(program, ml), tmp_path / "run", baselines=[], progress=False
    )
    assert report["cases"] == 3
    assert len(backend.generated) == 3  # one profile per user, not one per candidate
    assert all(p.rstrip().endswith("Profile:") for p in backend.generated)
    assert len(backend.scored) == 3 * PER_USER  # the final stage scores every candidate
    stage = report["stages"]["profile"]
    assert stage["computed"] == stage["distinct_keys"] == 3
    assert stage["this_invocation"]["calls"] == 3
    assert report["stages"]["final"]["all_invocations"]["calls"] == 3 * PER_USER
    assert "## Cost per stage" in (tmp_path / "run" / "report.md").read_text()


def test_a_rerun_makes_no_stage_call(tmp_path, ml):
    first = CountingBackend()
    program = _program(tmp_path, first)
    evaluate(program, ml, _protocol(program, ml), tmp_path / "run", baselines=[], progress=False)
    # every case resumed: no call at all
    again = CountingBackend()
    program = _program(tmp_path, again)
    evaluate(program, ml, _protocol(program, ml), tmp_path / "run", baselines=[], progress=False)
    assert again.usage.calls == 0
    # cases lost, stage outputs kept: profiles come from the resumable store
    (tmp_path / "run" / "results.jsonl").unlink()
    third = CountingBackend()
    program = _program(tmp_path, third)
    report = evaluate(
        program, ml, _protocol(program, ml), tmp_path / "run", baselines=[], progress=False
    )
    assert third.generated == [] and len(third.scored) == 3 * PER_USER
    assert report["stages"]["profile"]["reused_from_store"] == 3


def test_a_rerun_elsewhere_is_answered_by_the_disk_cache(tmp_path, ml):
    for n, folder in enumerate(("one", "two")):
        inner = CountingBackend()
        program = _program(tmp_path, CachedBackend(inner, tmp_path / "cache"))
        evaluate(
            program, ml, _protocol(program, ml), tmp_path / folder, baselines=[], progress=False
        )
        assert inner.usage.calls == (3 + 3 * PER_USER if n == 0 else 0)


def test_profiles_are_reused_across_variants(tmp_path, ml):
    backend = CountingBackend()
    program = _program(tmp_path, backend)
    cases = list(build_cases(program.spec, ml, _protocol(program, ml, users=2)))
    for variant in ("a", "b"):
        program.variant = variant
        for case in cases:
            result = rank(program, case.inputs, case.meta["candidate_items"])
            assert len(result.ranking) == 20
    assert len(backend.generated) == 2
    assert any("The user likes drama" in p for p in backend.scored)


def test_enrichment_once_per_item_across_users(ml):
    backend = CountingBackend()
    program = recprompt.load("llmrec.ranking", backend=backend)
    protocol = _protocol(program, ml, users=3)
    cases = list(build_cases(program.spec, ml, protocol))
    items = {c for case in cases for c in case.meta["candidates"]}
    for case in cases:
        rank(program, case.inputs, case.meta["candidate_items"])
    assert len(backend.generated) == len(items)  # one enrichment per distinct item
    assert len(backend.scored) == 3
    for case in cases[:2]:  # the same items again: no new enrichment
        rank(program, case.inputs, case.meta["candidate_items"])
    assert len(backend.generated) == len(items)
    assert all('drama: "Heat"' in p for p in backend.scored)  # candidates carry enrichments


def test_dry_run_renders_both_stages(cli, data_root, monkeypatch):
    monkeypatch.setenv("RECPROMPT_DATA", str(data_root))
    result = cli.invoke(app, ["dry-run", "palr.ranking", "--data", "ml-100k", "--limit", "2"])
    assert result.exit_code == 0, result.output
    assert "stage profile (palr.profile, per user)" in result.output
    assert "Profile:" in result.output and "Top 10:" in result.output
    assert "<palr.profile output>" in result.output
    rows = [line for line in result.output.splitlines() if line.startswith("│ stage")]
    assert len(rows) == 2  # the profile stage, then the final (ranking) stage
    assert "stage profile (palr.profile)" in rows[0] and "│ 2 calls" in rows[0]
    # the final stage is a top-K list: 1 call per case, plus bounded repairs on a server
    assert "stage final (palr.ranking)" in rows[1] and "│ 2..8 calls" in rows[1]


def test_dry_run_counts_calls_per_stage(ml):
    from recprompt.eval.dryrun import dry_run

    program = recprompt.load("llmrec.ranking")
    result, rendered = dry_run(program, ml, _protocol(program, ml, users=3), limit=3)
    cases = [case for case, _ in rendered]
    summary = result.summary()["stages"]
    items = {c for case in cases for c in case.meta["candidates"]}
    assert summary["enriched"]["model_calls"] == len(items)
    assert summary["enriched"]["prompt_tokens_total"] > 0
    assert summary["final"]["model_calls"] == 3


def test_a_stage_into_an_undeclared_input_is_a_spec_error():
    text = POINTWISE.replace("into: profile", "into: profiel")
    with pytest.raises(SpecError) as info:
        parse_spec(text, "s.yaml")
    assert "profiel" in str(info.value) and "s.yaml:5:32" in str(info.value)


def test_optimize_tunes_the_last_stage_with_profiles_fixed(tmp_path, ml):
    from recprompt.optimize.budget import CallMeter
    from recprompt.optimize.search import Config, partition_users, search

    spec_text = """
name: test.profile_rating
task: rating
stages:
  - {spec: palr.profile, into: profile, per: user}
inputs:
  profile: str
  history: {type: history, max_length: 5}
  item_title: str
output: {name: rating, type: rating, scale: [1, 5], step: 1, decode: expected}
metric: rmse
variants:
  - id: a
    template: "Profile: {{ profile }}. Rating of {{ item_title }} (1-5):"
  - id: b
    template: "A fan of {{ profile }} rates {{ item_title }} from 1 to 5:"
"""
    backend = CountingBackend()
    program = _program(tmp_path, backend, spec_text)
    split = partition_users(ml, 0, 4, 4, 0)
    configs = [Config(v, k, s, 5) for v in ("a", "b") for k, s in ((0, "none"), (1, "random"))]
    result = search(
        program.spec, ml, CallMeter(backend, 200), budget=200, split=split, configs=configs,
        announce=lambda _: None,
    )  # fmt: skip
    users = set(split.demo) | set(split.valid)
    assert 0 < len(backend.generated) <= len(users)  # profiles once per user, all configs
    assert len(set(backend.generated)) == len(backend.generated)
    assert result.best.variant in ("a", "b")
    assert result.program.stage_runner_for().stages[0].spec.name == "palr.profile"


def test_saved_stage_outputs_are_json(tmp_path, ml):
    program = _program(tmp_path, CountingBackend())
    evaluate(
        program, ml, _protocol(program, ml, users=1), tmp_path / "run", baselines=[], progress=False
    )
    line = (tmp_path / "run" / "stages.jsonl").read_text().splitlines()[0]
    record = json.loads(json.loads(line)["payload"])
    assert record["stage"] == "profile" and record["spec"] == "palr.profile"
