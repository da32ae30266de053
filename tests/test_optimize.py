"""The optimizer: budget, determinism, disjoint users, save/load, changed specs refused."""

from __future__ import annotations

import re
import shutil
import zlib
from collections.abc import Sequence
from pathlib import Path

import pytest

import recprompt
from recprompt.backends.base import Completion, Usage
from recprompt.data import Dataset
from recprompt.errors import BudgetError, ProgramError
from recprompt.optimize import CallMeter, Config, optimize, partition_users
from recprompt.optimize.search import search_space

ROOT = Path(__file__).resolve().parent.parent
RATING = ROOT / "recprompt" / "templates" / "p5" / "rating.yaml"


class FakeBackend:
    """Deterministic log-likelihoods from a hash of prompt and option; counts calls."""

    name = "fake"
    supports_logits = True

    def __init__(self) -> None:
        self.usage = Usage()
        self.prompts: list[str] = []

    def score(self, prompt: str, continuations: Sequence[str]) -> list[float]:
        self.usage.calls += 1
        self.prompts.append(prompt)
        return [-(zlib.crc32((prompt + c).encode()) % 1000) / 300 for c in continuations]

    def generate(self, prompt, *, constraint, max_tokens, temperature=0.0, seed=None):
        self.usage.calls += 1
        return Completion("3", Usage(calls=1))


def tiny_dataset(n_users: int = 24, n_items: int = 30) -> Dataset:
    users, items, ratings, times = [], [], [], []
    for u in range(n_users):
        for j in range(6):
            users.append(str(u))
            items.append(str((u * 7 + j * 3) % n_items))
            ratings.append(1 + (u + j) % 5)
            times.append(j)
    titles = {str(i): {"title": f"Movie {i} ({1990 + i % 10})"} for i in range(n_items)}
    return Dataset.from_records("tiny", users, items, ratings, times, items=titles)


SMALL = [
    Config("1-1", 0, "none", 20),
    Config("1-2", 0, "none", 20),
    Config("1-1", 2, "random", 20),
    Config("1-1", 2, "knn_users", 5),
    Config("1-5", 1, "history", 20),
    Config("1-2", 2, "fixed", 5, 1),
]


def run(tmp_path: Path, budget: int = 60, seed: int = 0, spec: Path = RATING, **kw):
    backend = FakeBackend()
    outcome = optimize(
        spec,
        tiny_dataset(),
        backend,
        budget=budget,
        out=tmp_path / "tuned.json",
        seed=seed,
        demo_users=6,
        valid_users=6,
        test_users=6,
        configs=kw.pop("configs", SMALL),
        max_prompt_tokens=None,
        announce=lambda _: None,
        **kw,
    )
    return outcome, backend


def test_space_never_holds_a_held_out_variant() -> None:
    spec = recprompt.load_spec(RATING)
    assert all(c.variant != "1-10" for c in search_space(spec))


def test_budget_is_never_exceeded(tmp_path: Path) -> None:
    for budget in (30, 45, 80):
        outcome, backend = run(tmp_path, budget=budget)
        assert backend.usage.calls <= budget
        assert outcome.report["calls"]["total"] == backend.usage.calls
    with pytest.raises(BudgetError):
        run(tmp_path, budget=10)  # below the report's own 24 calls
    meter = CallMeter(FakeBackend(), budget=1)
    meter.score("a", ["1"])
    meter.score("a", ["1"])  # memoized: free
    with pytest.raises(BudgetError):
        meter.score("b", ["1"])


def test_same_seed_same_result(tmp_path: Path) -> None:
    a, _ = run(tmp_path / "a", seed=3)
    b, _ = run(tmp_path / "b", seed=3)
    assert a.result.best == b.result.best
    assert a.result.trials == b.result.trials
    assert a.report["results"] == b.report["results"]


def test_test_users_are_never_seen_by_the_search(tmp_path: Path) -> None:
    outcome, _ = run(tmp_path, report=False)
    split = partition_users(tiny_dataset(), 0, 6, 6, 0)
    assert not set(split.demo) & set(split.valid)
    _, backend = run(tmp_path / "r")
    full = partition_users(tiny_dataset(), 0, 6, 6, 6)
    assert not set(full.test) & (set(full.demo) | set(full.valid))
    search_prompts = backend.prompts[: outcome.result.meter.calls]
    mentioned = {m for p in search_prompts for m in re.findall(r"user_(\d+)", p)}
    assert mentioned and not mentioned & set(full.test)
    assert not outcome.result.seen_users & set(full.test)
    pool_users = {ex.user_id for ex in outcome.result.program.demo_pool}
    assert pool_users <= set(full.demo)


def test_save_load_renders_identically(tmp_path: Path) -> None:
    for config in (Config("1-1", 2, "knn_users", 5), Config("1-2", 2, "fixed", 5, 1)):
        outcome, _ = run(tmp_path, configs=[config], report=False)
        tuned = outcome.result.program
        loaded = recprompt.load(outcome.path)
        inputs = {"user_id": "3", "item_id": "7", "history": [{"item_id": "1", "title": "A"}]}
        assert loaded.render(**inputs).text == tuned.render(**inputs).text
        assert loaded.variant == config.variant and len(loaded.demos(inputs)) == 2


def test_cli_renders_a_tuned_program(tmp_path: Path, cli) -> None:
    from recprompt.cli import app

    outcome, _ = run(tmp_path, configs=[Config("1-1", 1, "random", 5)], report=False)
    result = cli.invoke(
        app, ["render", str(outcome.path), "-i", '{"user_id": "1", "item_id": "2"}']
    )
    assert result.exit_code == 0, result.output
    assert "user_1" in result.output


def test_changed_spec_is_refused(tmp_path: Path) -> None:
    spec = tmp_path / "rating.yaml"
    shutil.copy(RATING, spec)
    outcome, _ = run(tmp_path, spec=spec, configs=[Config("1-1", 1, "random", 5)], report=False)
    recprompt.load(outcome.path)  # unchanged: loads
    spec.write_text(spec.read_text().replace("(worst) to 5 (best)", "(bad) to 5 (good)", 1))
    with pytest.raises(ProgramError, match="changed since this program was tuned"):
        recprompt.load(outcome.path)


@pytest.mark.model
def test_real_model_tiny_optimize(tmp_path: Path, data_root: Path) -> None:
    from recprompt.backends import get_backend
    from recprompt.data import load_dataset

    ds = load_dataset(str(data_root / "ml-100k"))
    outcome = optimize(
        RATING,
        ds,
        get_backend("local"),
        budget=24,
        out=tmp_path / "t.json",
        demo_users=6,
        valid_users=2,
        test_users=2,
        configs=SMALL[:3],
        announce=lambda _: None,
    )
    assert outcome.report["calls"]["total"] <= 24
    assert recprompt.load(outcome.path).render(user_id="1", item_id="2").text


def test_report_pairs_tuned_with_zero_shot_on_the_same_test_users(tmp_path: Path) -> None:
    outcome, _ = run(tmp_path)
    paired = outcome.report["paired_test"]
    assert set(paired) == {"mse", "mae"}  # RMSE pairs per-case squared errors
    mae = paired["mae"]
    results = outcome.report["results"]
    expected = (
        results["tuned"]["test"]["mae"]["value"] - results["zero_shot"]["test"]["mae"]["value"]
    )
    assert mae["difference"] == pytest.approx(expected)
    assert mae["cases"] == results["tuned"]["test"]["cases"] > 0
    assert mae["low"] <= mae["difference"] <= mae["high"] and 0 < mae["p_value"] <= 1
    markdown = (tmp_path / "tuned.report.md").read_text()
    assert "Tuned minus zero-shot on the same test users (rmse)" in markdown


def test_a_budget_short_of_calibration_estimates_does_not_blame_the_report() -> None:
    """optimize --no-report on rank.letters.rerank said '--budget 12 does not cover the
    report's 176 calls' with the hint 'or pass --no-report': the 176 were calls set aside
    for calibration estimates, and --no-report was already given."""
    from recprompt.errors import BudgetError
    from recprompt.optimize.search import make_plan

    with pytest.raises(BudgetError) as caught:
        make_plan(44, 3, 12, report_calls=0, reserved=176)
    assert "176 calls for the calibration estimates" in caught.value.message
    assert "report" not in caught.value.message and "--no-report" not in caught.value.hint
    plan, _ = make_plan(4, 3, 200, report_calls=12, reserved=16)
    assert plan.total == plan.search_calls + 28 and "calibration estimates 16" in plan.describe()


def test_out_over_the_spec_is_refused_in_python(tmp_path: Path) -> None:
    """optimize(SPEC, ..., out=SPEC) from Python wrote the tuned JSON over the spec file (the
    CLI refused it; the function did not), and the report beside it."""
    from recprompt.errors import InputError

    spec = tmp_path / "rating.yaml"
    shutil.copy(RATING, spec)
    before = spec.read_text()
    backend = FakeBackend()
    with pytest.raises(InputError, match="would overwrite"):
        optimize(spec, tiny_dataset(), backend, budget=60, out=spec, demo_users=6,
                 valid_users=6, test_users=6, configs=SMALL, announce=lambda _: None)  # fmt: skip
    assert spec.read_text() == before and backend.usage.calls == 0
    assert not (tmp_path / "rating.report.json").exists()


@pytest.mark.parametrize("name", ["tuned.yaml", "tuned", "tuned.JSON"])
def test_a_tuned_program_is_saved_only_under_a_name_that_loads(tmp_path: Path, name, cli) -> None:
    """optimize --out tuned.yaml (or no suffix) wrote the program, which recprompt.load and
    every command then read as a YAML spec: 'name: Field required' and 14 more errors."""
    from recprompt.cli import app
    from recprompt.errors import InputError

    backend = FakeBackend()
    with pytest.raises(InputError, match=r"a tuned program is a \.json file"):
        optimize(RATING, tiny_dataset(), backend, budget=60, out=tmp_path / name, demo_users=6,
                 valid_users=6, test_users=6, configs=SMALL, announce=lambda _: None)  # fmt: skip
    assert backend.usage.calls == 0 and not (tmp_path / name).exists()
    (tmp_path / "data").mkdir()
    args = ["optimize", "p5.rating", "--data", str(tmp_path / "data"), "--budget", "9"]
    result = cli.invoke(app, [*args, "--out", str(tmp_path / name)])
    assert result.exit_code == 2 and "a tuned program is a .json file" in result.output
    result = cli.invoke(app, [*args, "--out", str(tmp_path / "new" / "deeper" / name)])
    assert result.exit_code == 2 and not (tmp_path / "new").exists()  # no folder left behind


@pytest.mark.parametrize(
    ("given", "word"),
    [({"budget": 30.5}, "--budget"), ({"budget": float("nan")}, "--budget"),
     ({"budget": float("inf")}, "--budget"), ({"valid_users": 2.5}, "--valid-users"),
     ({"seed": "a"}, "seed"), ({"seed": -1}, "seed")],
)  # fmt: skip
def test_optimize_numbers_from_python_are_whole(tmp_path: Path, given, word) -> None:
    """budget=30.5 was spent as 30, nan was reported as too small for one config, inf ran,
    and seed='a' raised numpy's TypeError."""
    from recprompt.errors import InputError

    backend = FakeBackend()
    options = {"budget": 60, "seed": 0, "valid_users": 6} | given
    with pytest.raises(InputError, match=word):
        optimize(RATING, tiny_dataset(), backend, out=tmp_path / "t.json", demo_users=6,
                 test_users=6, configs=SMALL, announce=lambda _: None, **options)  # fmt: skip
    assert backend.usage.calls == 0
