"""Tuned programs are verified whole; the search's pick is stable under noise; the numeric
environment is recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_optimize import RATING, SMALL, FakeBackend, run, tiny_dataset

import recprompt
from recprompt.errors import ProgramError
from recprompt.eval.identity import content_sha256
from recprompt.optimize import Config, optimize
from recprompt.optimize.search import TOLERANCE, rank_configs

FIXED = Config("1-2", 2, "fixed", 5, 1)
KNN = Config("1-1", 2, "knn_users", 5)


def tuned(tmp_path: Path, config: Config = FIXED) -> Path:
    outcome, _ = run(tmp_path, configs=[config], report=False)
    return outcome.path


def edit(path: Path, change, *, reseal: bool = False) -> None:
    """Apply ``change`` to the saved JSON; ``reseal`` recomputes the file's own checksum,
    as a careful hand-editor would, so the deeper checks are what must refuse it."""
    state = json.loads(path.read_text())
    change(state)
    if reseal and "sha256" in state:
        state["sha256"] = content_sha256(state)
    path.write_text(json.dumps(state))


def test_untouched_program_loads_and_records_its_environment(tmp_path: Path) -> None:
    path = tuned(tmp_path)
    program = recprompt.load(path)
    assert program.saved["environment"]["backend"] == "fake"
    assert program.saved["settings"]["tolerance"] == TOLERANCE


def test_edited_demo_is_refused(tmp_path: Path) -> None:
    path = tuned(tmp_path)

    def bump(state: dict) -> None:
        demo = state["demos"][0]["data"]
        demo["rating"] = float(demo["rating"]) % 5 + 1  # another valid rating

    edit(path, bump)
    with pytest.raises(ProgramError, match="changed after optimize wrote it"):
        recprompt.load(path)
    edit(path, lambda s: None, reseal=True)
    with pytest.raises(ProgramError, match="rebuilt program differs"):
        recprompt.load(path)


@pytest.mark.parametrize(
    ("config", "change", "words"),
    [
        (FIXED, lambda s: s["config"].update(k=1), "2 fixed demonstrations for k=1"),
        (KNN, lambda s: s["selector"].update(name="random"), "selector 'random' differs"),
        (KNN, lambda s: s["config"].update(selector="mmr"), "differs from the config's 'mmr'"),
        (
            FIXED,
            lambda s: (s["config"].update(variant="1-10"), s.update(variant="1-10")),
            "held out for zero-shot evaluation",
        ),
        (FIXED, lambda s: s.update(variant="1-1"), "differs from the config"),
    ],
    ids=["k", "selector", "config selector", "held-out variant", "variant"],
)
def test_hand_edited_choice_is_refused(tmp_path: Path, config, change, words) -> None:
    path = tuned(tmp_path, config)
    edit(path, change)
    with pytest.raises(ProgramError, match="changed after optimize wrote it"):
        recprompt.load(path)
    edit(path, lambda s: None, reseal=True)
    with pytest.raises(ProgramError, match=words):
        recprompt.load(path)


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s.pop("config"),
        lambda s: s.pop("sha256"),
        lambda s: s["spec"].pop("sha256"),
        lambda s: s.update(config="1-1"),
        lambda s: s.update(demos=[{"no": "data"}]),
        lambda s: s["config"].update(k="two"),
        lambda s: s.update(selector={"name": "nosuch"}),
    ],
    ids=["no config", "no sha256", "no spec sha256", "config str", "demo", "k type", "selector"],
)
def test_malformed_program_is_a_clear_error(tmp_path: Path, change, cli) -> None:
    from recprompt.cli import app

    path = tuned(tmp_path)
    edit(path, change, reseal=True)
    with pytest.raises(ProgramError):
        recprompt.load(path)
    result = cli.invoke(app, ["render", str(path), "-i", '{"user_id": "1", "item_id": "2"}'])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_not_json_and_wrong_format(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    for text in ("{", "[]", '{"format": "recprompt.program/1"}', "\xff"):
        path.write_text(text, encoding="latin-1")
        with pytest.raises(ProgramError):
            recprompt.load(path)


# --- the search's pick is stable under noise below the tolerance ----------------------------


def test_ties_within_tolerance_go_to_the_simpler_config() -> None:
    zero = Config("1-1", 0, "none", 20)
    other_variant = Config("1-3", 0, "none", 20)
    shorter = Config("1-1", 0, "none", 5)
    knn = Config("1-1", 2, "knn_users", 20)
    scored = [(-0.990, knn), (-0.995, other_variant), (-0.996, zero), (-0.999, shorter)]
    assert rank_configs(scored, TOLERANCE, "1-1")[0] == shorter
    assert rank_configs(scored, 0.0, "1-1")[0] == knn  # no tolerance: raw best
    clear = [(-0.90, knn), (-0.996, zero)]
    assert rank_configs(clear, TOLERANCE, "1-1")[0] == knn  # a real gain still wins


class NoisyBackend(FakeBackend):
    """The fake model plus noise that differs between 'builds': small next to the tolerance."""

    def __init__(self, noise: float) -> None:
        super().__init__()
        self.noise = noise

    def score(self, prompt, continuations):
        return [v + self.noise * ((len(prompt) + i) % 3 - 1) for i, v in enumerate(
            super().score(prompt, continuations)
        )]  # fmt: skip


def test_noise_below_tolerance_does_not_change_the_pick(tmp_path: Path) -> None:
    picks = set()
    for n, noise in enumerate((0.0, 0.002, -0.002)):
        outcome = optimize(
            RATING,
            tiny_dataset(),
            NoisyBackend(noise),
            budget=80,
            out=tmp_path / f"t{n}.json",
            demo_users=6,
            valid_users=6,
            test_users=6,
            configs=SMALL,
            max_prompt_tokens=None,
            announce=lambda _: None,
            tolerance=0.05,
        )
        picks.add(outcome.result.best)
    assert len(picks) == 1


def _set_threads(backend, threads: int) -> None:
    """Switch a loaded llama.cpp model's thread count (loading it twice would double RSS)."""
    import llama_cpp

    llm = backend.llm
    llama_cpp.llama_set_n_threads(llm._ctx.ctx, threads, threads)
    llm.n_threads = llm.n_threads_batch = threads


@pytest.mark.model
def test_one_and_two_threads_pick_the_same_config(tmp_path: Path) -> None:
    from recprompt.backends.local import LocalBackend

    backend = LocalBackend()
    results = []
    for threads in (1, 2):
        _set_threads(backend, threads)
        outcome = optimize(
            RATING,
            tiny_dataset(),
            backend,
            budget=12,
            out=tmp_path / f"t{threads}.json",
            demo_users=4,
            valid_users=4,
            test_users=0,
            report=False,
            configs=[SMALL[0], SMALL[1], SMALL[2]],
            max_prompt_tokens=None,
            announce=lambda _: None,
        )
        saved = json.loads(outcome.path.read_text())
        results.append((saved["config"], saved["environment"]))
    (first, env1), (second, env2) = results
    assert (env1["threads"], env2["threads"]) == (1, 2)
    assert env1["model_sha256"] == env2["model_sha256"] and len(env1["model_sha256"]) == 64
    assert "llama_cpp_python" in env1
    assert first == second
