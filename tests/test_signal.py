"""Calibrated option scoring, retrieve-then-rerank, and the fusion weight tuned on validation.

A scripted backend plants a letter prior (letters early in the alphabet win whatever they
label) on top of a true taste (higher-numbered "Movie n" titles are better): calibration must
recover the taste, and tuning must never look at a test user.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recprompt.backends.base import Usage
from recprompt.cli import app
from recprompt.compile.program import Program
from recprompt.data import Dataset, Protocol, ranking_examples
from recprompt.errors import InputError
from recprompt.eval.cases import build_cases
from recprompt.rank import rank
from recprompt.rank.calibration import calibrate
from recprompt.rank.tune import tune_prior_weight
from recprompt.spec import load_spec
from recprompt.spec.template import LETTERS

TEMPLATES = Path(__file__).resolve().parent.parent / "recprompt" / "templates" / "rank"
BIAS = np.linspace(6.0, 0.0, len(LETTERS))  # planted: A +6 nats over T, whatever it labels


def worth(title: str) -> float:
    found = re.search(r"Movie (\d+)", title)
    return 0.2 * float(found.group(1)) if found else 0.0  # "N/A" has no content


class PlantedBackend:
    """Letter logit = taste of the lettered title + a planted prior of the letter."""

    name = "planted"
    supports_logits = True

    def __init__(self) -> None:
        self.usage = Usage()
        self.prompts: list[str] = []

    def score(self, prompt: str, continuations: list[str]) -> list[float]:
        self.usage.add(Usage(calls=1))
        self.prompts.append(prompt)
        lines = dict(re.findall(r"^([A-T])\. (.*)$", prompt, re.M))
        logits = np.array([worth(lines[c]) + BIAS[LETTERS.index(c)] for c in continuations])
        return (logits - np.log(np.exp(logits).sum())).tolist()


def letters_program(method: str = "none", **rank_overrides: Any) -> Program:
    spec = load_spec(TEMPLATES / "letters.yaml")
    update: dict[str, Any] = {"calibration": {"method": method}}
    if rank_overrides:
        update["rank"] = spec.rank.model_copy(update=rank_overrides)
    data = spec.model_dump(by_alias=True)
    data.update(update)
    if rank_overrides:
        data["rank"] = update["rank"].model_dump()
    from recprompt.spec.model import Spec

    return Program(Spec.model_validate(data), backend=PlantedBackend())


def shuffled(n: int, seed: int) -> list[dict[str, str]]:
    order = np.random.default_rng(seed).permutation(n)
    return [{"item_id": str(i), "title": f"Movie {i}"} for i in order]


@pytest.mark.parametrize("method", ["contextual", "pride"])
def test_calibration_removes_a_planted_option_prior(method: str) -> None:
    program = letters_program(method)
    history = [{"item_id": "h1", "title": "Heat (1995)"}]
    estimation = [{"history": history, "candidates": shuffled(12, s)} for s in range(3)]
    prior = calibrate(program, estimation)
    assert prior is not None and prior.method == method
    planted = BIAS[:12] - np.log(np.exp(BIAS[:12]).sum())
    estimated = np.array([prior.log_prior[c] for c in LETTERS[:12]])
    np.testing.assert_allclose(estimated, planted, atol=1e-6)  # the prior, found exactly
    items = shuffled(12, 99)
    truth = [f"Movie {i}" for i in range(11, -1, -1)]
    calibrated = rank(program, {"history": history}, items)
    assert calibrated.ranking == truth
    assert calibrated.uncalibrated_scores is not None
    program.option_prior = None
    raw = rank(program, {"history": history}, items)
    assert raw.ranking != truth  # without calibration the planted prior wins
    assert raw.ranking[0] == items[0]["title"]  # ... whatever letter A labels


def test_contextual_calibration_renders_content_free_candidates() -> None:
    program = letters_program("contextual")
    calibrate(program, [{"history": [], "candidates": shuffled(5, 0)}])
    prompt = program.backend.prompts[-1]
    assert "A. N/A" in prompt and "Movie" not in prompt


def ratings_dataset(users: int = 24, items: int = 30) -> Dataset:
    """Each user watched 8 items in time order; taste: user u likes items near 3u mod N."""
    rows = []
    rng = np.random.default_rng(0)
    for u in range(users):
        picks = rng.choice(items, size=8, replace=False)
        for t, i in enumerate(picks):
            rows.append((f"u{u}", f"i{i}", float(rng.integers(1, 6)), t))
    user, item, rating, ts = zip(*rows, strict=True)
    titles = {f"i{i}": {"title": f"Movie {i}"} for i in range(items)}
    return Dataset.from_records("toy", user, item, rating, ts, items=titles)


def test_the_fusion_weight_is_tuned_without_seeing_a_test_user(monkeypatch) -> None:
    ds = ratings_dataset()
    program = letters_program("none", prior="bpr", tune_users=8)
    protocol = Protocol(dataset="toy", n_negatives=9, n_users=10, seed=0)
    test_cases = list(build_cases(program.spec, ds, protocol))
    test_users = {c.id for c in test_cases}
    import recprompt.rank.runner as runner

    seen: list[tuple[str, str]] = []
    real = runner.rank

    def spy(program: Any, inputs: Any, candidates: Any, *, user: Any = None, prior: Any = None):
        seen.append((user, json.dumps(candidates, sort_keys=True)))
        return real(program, inputs, candidates, user=user, prior=prior)

    monkeypatch.setattr(runner, "rank", spy)
    tuning = tune_prior_weight(program, ds, protocol, test_users, 8)
    assert len(seen) == 8 and not {u for u, _ in seen} & test_users
    assert set(tuning.users) == {u for u, _ in seen}
    everyone = protocol.model_copy(update={"n_users": None})
    last = {e.user_id: e.positive for e in ranking_examples(ds, everyone)}
    for case_user, cands in seen:  # ranked like a test user: on their own last item
        assert f'"item_id": "{last[case_user]}"' in cands
    assert set(tuning.result.table) == {round(w, 2) for w in np.linspace(0, 1, 11)}
    assert 0.0 <= tuning.result.weight <= 1.0


def test_eval_reports_calibration_tuned_weight_and_retrieval(tmp_path: Path) -> None:
    from recprompt.eval.evaluate import evaluate

    ds = ratings_dataset()
    program = letters_program("contextual", prior="bpr", tune_users=6)
    protocol = Protocol(dataset="toy", n_users=10, seed=0, retriever="bpr", shortlist=10)
    report = evaluate(
        program, ds, protocol, tmp_path / "run", baselines=["bpr", "random"], progress=False
    )
    fusion = report["fusion"]
    assert fusion["valid_users"] == 6 and len(fusion["curve"]) == 11
    assert program.rank_prior.weight == fusion["weight"]
    cal = report["calibration"]
    assert cal["method"] == "contextual" and cal["calls"] == 4
    assert cal["position_before"] and cal["position_after"]
    before = report["usage"]["before_the_test_cases"]  # the Cost section counts them
    assert before == {"calibration_calls": 4, "fusion_tuning_calls": 6, "calls": 10}
    retrieval = report["retrieval"]
    assert retrieval["retriever"] == "bpr" and 0.0 <= retrieval["recall@10"] <= 1.0
    recall = np.mean(
        [c.meta["retriever_rank"] is not None for c in build_cases(program.spec, ds, protocol)]
    )
    assert retrieval["recall@10"] == pytest.approx(recall)
    # a user the retriever missed is a miss for the program and for BPR-MF alone
    assert report["metrics"]["hr@10"]["value"] <= recall + 1e-9
    assert report["baselines"]["bpr"]["hr@10"]["value"] <= recall + 1e-9
    assert report["baselines"]["random"]["hr@10"]["value"] <= recall + 1e-9
    md = (tmp_path / "run" / "report.md").read_text()
    assert "## Calibration (contextual)" in md and "## Fusion with bpr" in md
    assert "recall@10" in md
    assert (tmp_path / "run" / "position_bias_calibration.png").is_file()


def test_baselines_only_with_a_retriever_writes_every_report_file(tmp_path: Path) -> None:
    """The retrieval section read the program's NDCG@10, which a baselines-only run lacks:
    KeyError after report.json, and no report.md or report.html."""
    from recprompt.eval.evaluate import OUTPUT_FILES, evaluate

    ds = ratings_dataset()
    protocol = Protocol(dataset="toy", n_users=6, seed=0, retriever="popularity", shortlist=10)
    report = evaluate(
        letters_program(), ds, protocol, tmp_path / "run", baselines_only=True, progress=False
    )
    retrieval = report["retrieval"]  # measured on the cases, not on the absent records
    assert retrieval["retriever"] == "popularity" and retrieval["recall@10"] > 0
    assert report["baselines"]["popularity"]["hr@10"]["value"] == retrieval["retriever_hr@10"]
    md = (tmp_path / "run" / "report.md").read_text()
    assert "retriever recall@10" in md and "rerank NDCG@10" not in md
    assert {"report.md", "report.html"} <= set(OUTPUT_FILES)
    assert (tmp_path / "run" / "report.html").is_file()


def test_retrieval_candidates_come_from_the_retriever_and_exclude_training_items() -> None:
    ds = ratings_dataset()
    protocol = Protocol(dataset="toy", n_users=5, seed=0, retriever="popularity", shortlist=6)
    for ex in ranking_examples(ds, protocol):
        assert len(ex.candidates) == 6 and len(set(ex.candidates)) == 6
        history = {h.item_id for h in ex.history}
        assert not history & set(ex.candidates)
        if ex.retriever_rank is None:
            assert ex.positive_index == -1 and ex.positive not in ex.candidates
        else:
            assert ex.candidates[ex.positive_index] == ex.positive


def test_unknown_retriever_and_short_shortlist_are_input_errors() -> None:
    ds = ratings_dataset()
    with pytest.raises(InputError, match="unknown retriever 'nope'"):
        ranking_examples(ds, Protocol(dataset="toy", retriever="nope"))
    program = letters_program()
    with pytest.raises(InputError, match=r"shortlist has 5 candidates but .* top 10"):
        list(build_cases(program.spec, ds, Protocol(dataset="toy", retriever="bpr", shortlist=5)))


TEXT_SPEC = """\
name: my.text
task: explanation
inputs: {item_title: str}
template: "Why would someone like {{ item_title }}?"
output: {name: why, type: text}
calibration: {method: contextual}
"""


def test_cli_refuses_calibration_on_free_text(cli, tmp_path: Path) -> None:
    path = tmp_path / "text.yaml"
    path.write_text(TEXT_SPEC)
    result = cli.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert "calibration" in result.output and "free text" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--retriever", "nope"], "unknown retriever 'nope'"),
        (["--retriever", "bpr", "--shortlist", "5"], "shortlist has 5 candidates"),
        (["--retriever", "bpr", "--shortlist", "-5"], "--shortlist must be at least 1, got -5"),
        (["--retriever", "bpr", "--shortlist", "0"], "--shortlist must be at least 1, got 0"),
    ],
)
def test_cli_eval_refuses_bad_retrieval(cli, data_root: Path, tmp_path: Path, flags, message):
    args = ["eval", "rank.letters", "--data", str(data_root / "ml-100k"), "--users", "3"]
    result = cli.invoke(app, [*args, "--out", str(tmp_path / "run"), *flags])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_log_prior_is_a_distribution() -> None:
    program = letters_program("pride")
    prior = calibrate(program, [{"history": [], "candidates": shuffled(4, 1)}])
    assert math.isclose(sum(math.exp(v) for v in prior.log_prior.values()), 1.0)
    assert prior.calls == 4  # one per cyclic shift


def test_optimize_accepts_a_rank_spec_and_tunes_calibration_and_weight(tmp_path: Path) -> None:
    import yaml

    from recprompt.optimize import optimize
    from recprompt.optimize.saved import load_program
    from recprompt.optimize.search import Config

    data = yaml.safe_load((TEMPLATES / "letters.yaml").read_text())
    data["rank"].update({"prior": "bpr"})
    data["inputs"]["candidates"]["count"] = 10
    spec_path = tmp_path / "letters.yaml"
    spec_path.write_text(yaml.safe_dump(data))
    backend = PlantedBackend()
    configs = [
        Config("lettered", 0, "none", 20),
        Config("lettered", 0, "none", 20, calibration="contextual"),
        Config("lettered", 1, "random", 20, calibration="contextual"),
    ]
    outcome = optimize(
        spec_path,
        ratings_dataset(users=30),
        backend,
        budget=80,
        out=tmp_path / "tuned.json",
        demo_users=6,
        valid_users=8,
        test_users=8,
        configs=configs,
        announce=lambda _: None,
    )
    best = outcome.result.best
    assert best.prior_weight is not None and 0.0 <= best.prior_weight <= 1.0
    assert {t["config"]["calibration"] for t in outcome.result.trials} == {"none", "contextual"}
    assert outcome.result.meter.calls <= 80
    tuned = outcome.report["tuned"]["config"]
    assert tuned["prior_weight"] == best.prior_weight
    loaded = load_program(tmp_path / "tuned.json", backend=PlantedBackend())
    assert loaded.spec.rank.prior_weight == best.prior_weight
    assert (loaded.spec.calibration is not None) == (best.calibration != "none")
    test_users = set(outcome.result.split.test)
    assert not test_users & outcome.result.seen_users


RATING_SPEC = """\
name: my.rating
task: rating
inputs: {item_title: str}
template: "Stars for {{ item_title }} (1-5):"
output: {name: rating, type: rating, scale: [1, 5], decode: expected}
calibration: {method: contextual, samples: 2}
"""


class DigitBackend:
    """Digit logit = 2 if the digit is the title's true stars, plus a planted +3 on "5"."""

    name = "digits"
    supports_logits = True

    def __init__(self) -> None:
        self.usage = Usage()

    def score(self, prompt: str, continuations: list[str]) -> list[float]:
        found = re.search(r"Movie (\d)", prompt)
        true = found.group(1) if found else None
        return [(2.0 if c == true else 0.0) + (3.0 if c == "5" else 0.0) for c in continuations]


def test_expected_rating_calibration_divides_out_a_planted_digit_prior(tmp_path: Path) -> None:
    path = tmp_path / "rating.yaml"
    path.write_text(RATING_SPEC)
    program = Program(load_spec(path), backend=DigitBackend())
    raw = program(item_title="Movie 2").rating
    prior = calibrate(program, [{"item_title": "Movie 2"}, {"item_title": "Movie 4"}])
    assert prior is not None and prior.calls == 2
    assert max(prior.log_prior, key=prior.log_prior.get) == "5"
    calibrated = program(item_title="Movie 2").rating
    assert raw > 3.5  # the planted "5" drags the expectation up
    assert abs(calibrated - 2.0) < abs(raw - 2.0) and calibrated < 3.0


def test_shortlist_skips_an_item_whose_title_repeats_a_better_one() -> None:
    from recprompt.baselines import make_baseline
    from recprompt.data.retrieval import shortlist

    ds = ratings_dataset()
    ds.items["i1"] = {"title": ds.items["i0"]["title"]}  # two items, one title
    model = make_baseline("popularity").fit(ds)
    pool = ds.item_ids()
    top = shortlist(model, "u0", pool, set(), 30, lambda i: ds.item_title(i) or i)
    titles = [ds.item_title(i) for i in top]
    assert len(titles) == len(set(titles)) and not {"i0", "i1"} <= set(top)
    assert {"i0", "i1"} <= set(shortlist(model, "u0", pool, set(), 30))


def test_calls_on_validation_users_count_against_the_run_limits(tmp_path: Path) -> None:
    """Fusion tuning ran outside the run's meter: --max-calls 8 with rank.tune_users 6 made
    6 tuning calls and then 8 more on the test cases."""
    from recprompt.errors import BudgetError
    from recprompt.eval.evaluate import evaluate
    from recprompt.eval.runner import Limits

    ds = ratings_dataset()
    protocol = Protocol(dataset="toy", n_negatives=9, n_users=10, seed=0)
    program = letters_program("none", prior="bpr", tune_users=6)
    with pytest.raises(BudgetError, match="max_calls=8"):
        evaluate(program, ds, protocol, tmp_path / "a", limits=Limits(max_calls=8), progress=False)
    assert program.backend.usage.calls == 8  # 6 on validation users, 2 test cases
    program = letters_program("none", prior="bpr", tune_users=6)
    with pytest.raises(BudgetError, match="validation users before the first test case"):
        evaluate(program, ds, protocol, tmp_path / "b", limits=Limits(max_calls=4), progress=False)
    assert program.backend.usage.calls == 4


def test_a_run_over_every_user_cannot_tune_and_leaves_its_folder_unclaimed(tmp_path: Path):
    """With every user a test user, tuning failed after the model was loaded and run.json was
    written, so the rerun the hint asked for (fewer --users) was refused as another run."""
    from recprompt.errors import InputError
    from recprompt.eval.evaluate import evaluate

    ds = ratings_dataset()
    program = letters_program("none", prior="bpr", tune_users=6)
    everyone = Protocol(dataset="toy", n_negatives=9, seed=0)
    with pytest.raises(InputError, match=r"rank\.tune_users needs validation users") as caught:
        evaluate(program, ds, everyone, tmp_path / "run", progress=False)
    assert "--users" in caught.value.hint
    assert program.backend.usage.calls == 0 and not (tmp_path / "run" / "run.json").exists()
    n = len(list(build_cases(program.spec, ds, everyone)))
    warned: list[str] = []
    fewer = Protocol(dataset="toy", n_negatives=9, n_users=n - 2, seed=0)
    report = evaluate(
        program, ds, fewer, tmp_path / "run", progress=False, on_warning=warned.append
    )
    assert report["fusion"]["valid_users"] == 2
    assert any("rank.tune_users asks for 6 validation users, but only 2" in w for w in warned)
    assert warned == [w for w in report["warnings"] if w in warned]


def test_a_resumed_run_keeps_its_tuned_weight_and_calibration_without_new_calls(tmp_path):
    """Each invocation tuned again: a rerun of a finished run made its tune_users and
    calibration calls again (all of them under --no-cache), and a model that answered
    differently could rank the remaining cases under another weight than the stored ones."""
    from recprompt.errors import BudgetError
    from recprompt.eval.evaluate import evaluate
    from recprompt.eval.runner import Limits

    ds = ratings_dataset()
    protocol = Protocol(dataset="toy", n_negatives=9, n_users=10, seed=0)
    first = letters_program("contextual", prior="bpr", tune_users=6)
    with pytest.raises(BudgetError):
        evaluate(first, ds, protocol, tmp_path / "run", limits=Limits(max_calls=14), progress=False)
    assert first.backend.usage.calls == 14  # 4 calibration + 6 tuning + 4 test cases
    again = letters_program("contextual", prior="bpr", tune_users=6)
    report = evaluate(again, ds, protocol, tmp_path / "run", progress=False)
    assert again.backend.usage.calls == 6  # only the 6 test cases left
    assert again.rank_prior.weight == first.rank_prior.weight == report["fusion"]["weight"]
    assert again.option_prior.log_prior == first.option_prior.log_prior
    assert report["usage"]["before_the_test_cases"]["calls"] == 10
    last = letters_program("contextual", prior="bpr", tune_users=6)
    evaluate(last, ds, protocol, tmp_path / "run", progress=False)
    assert last.backend.usage.calls == 0  # a finished run rewrites its report without a call
    kept = tmp_path / "run" / "prepared.json"
    state = json.loads(kept.read_text())
    state["state"]["weight"] = 7.0  # not a weight: tuned again rather than trusted
    kept.write_text(json.dumps(state))
    edited = letters_program("contextual", prior="bpr", tune_users=6)
    evaluate(edited, ds, protocol, tmp_path / "run", progress=False)
    assert edited.rank_prior.weight == first.rank_prior.weight


def test_an_edited_or_foreign_prepared_json_is_tuned_again_not_trusted(tmp_path):
    """A weight edited within [0, 1] was trusted: the remaining cases were ranked under it
    while the report still gave the tuned weight. So was a prepared.json copied from a run
    on other data."""
    import shutil

    from recprompt.errors import BudgetError
    from recprompt.eval.evaluate import evaluate
    from recprompt.eval.runner import Limits

    ds = ratings_dataset()
    protocol = Protocol(dataset="toy", n_negatives=9, n_users=10, seed=0)
    first = letters_program("none", prior="bpr", tune_users=6)
    with pytest.raises(BudgetError):
        evaluate(first, ds, protocol, tmp_path / "run", limits=Limits(max_calls=8), progress=False)
    tuned = first.rank_prior.weight
    kept = tmp_path / "run" / "prepared.json"
    state = json.loads(kept.read_text())
    state["state"]["weight"] = 0.5 if tuned != 0.5 else 0.3
    kept.write_text(json.dumps(state))
    edited = letters_program("none", prior="bpr", tune_users=6)
    report = evaluate(edited, ds, protocol, tmp_path / "run", progress=False)
    assert edited.rank_prior.weight == tuned == report["fusion"]["weight"]
    other = tmp_path / "other"  # the same spec on other users' data
    evaluate(letters_program("none", prior="bpr", tune_users=6), ratings_dataset(users=30),
             protocol, other, progress=False)  # fmt: skip
    shutil.copy(other / "prepared.json", kept)
    again = letters_program("none", prior="bpr", tune_users=6)
    report = evaluate(again, ds, protocol, tmp_path / "run", progress=False)
    assert again.backend.usage.calls == 6  # tuned again on this run's validation users
    assert again.rank_prior.weight == tuned == report["fusion"]["weight"]
    kept.write_text("[]")  # valid JSON, but not the object prepared.json holds
    listed = letters_program("none", prior="bpr", tune_users=6)
    report = evaluate(listed, ds, protocol, tmp_path / "run", progress=False)
    assert listed.backend.usage.calls == 6 and report["fusion"]["weight"] == tuned


@pytest.mark.parametrize("holdout", ["last", "random"])
def test_a_retrievers_cases_show_the_same_history_as_sampled_ones(holdout: str) -> None:
    """With --retriever the history was 'every row but the last': under --holdout random
    that dropped the user's real last event and showed the held-out positive itself."""
    ds = ratings_dataset()
    sampled = Protocol(dataset="toy", n_negatives=9, seed=0, holdout=holdout)
    retrieved = sampled.model_copy(update={"retriever": "bpr", "shortlist": 10})
    history = {e.user_id: e.history for e in ranking_examples(ds, sampled)}
    examples = ranking_examples(ds, retrieved)
    assert examples and {e.user_id for e in examples} == set(history)
    for example in examples:
        assert example.history == history[example.user_id]
        assert example.positive not in {event.item_id for event in example.history}


def test_a_retriever_fitted_for_one_holdout_is_not_reused_for_another() -> None:
    """The fitted retriever was cached without the holdout: after a --holdout last run in
    the same process, a --holdout random one reused a model fitted on its held-out items."""
    from recprompt.data import retrieval

    ds = ratings_dataset()
    last = Protocol(dataset="toy", seed=0, retriever="bpr", shortlist=10)
    shuffled = last.model_copy(update={"holdout": "random"})
    retrieval._FITTED.clear()
    alone = [e.candidates for e in ranking_examples(ds, shuffled)]
    retrieval._FITTED.clear()
    ranking_examples(ds, last)
    assert [e.candidates for e in ranking_examples(ds, shuffled)] == alone


def test_a_retriever_is_never_reused_for_another_dataset_of_the_same_size() -> None:
    """The cache keyed on id(dataset): once a dataset was freed, another of the same size
    could get its id and be shortlisted by the first one's model."""
    import gc

    from recprompt.data import retrieval

    protocol = Protocol(dataset="toy", seed=0, retriever="popularity", shortlist=10)
    retrieval._FITTED.clear()
    ranking_examples(ratings_dataset(), protocol)
    gc.collect()
    ((_key, (kept, _model)),) = retrieval._FITTED.items()
    assert kept is not None and _key[0] == id(kept)  # alive: its id cannot be reused


def small_catalogue() -> Dataset:
    """12 titled items, 8 users who have each seen 4: a shortlist holds at most 8."""
    rows = [(f"u{u}", f"i{(u + j) % 12}", 4.0, j) for u in range(8) for j in range(4)]
    user, item, rating, ts = zip(*rows, strict=True)
    titles = {f"i{i}": {"title": f"Movie {i}"} for i in range(12)}
    return Dataset.from_records("small", user, item, rating, ts, items=titles)


def test_a_shortlist_shorter_than_a_top_k_list_stops_before_any_call(tmp_path: Path) -> None:
    """On a small catalogue the retriever shortlists fewer items than --shortlist (only
    unseen ones): a listwise top-10 run stopped at the first such user, after the others'
    calls and with run.json written, on 'asks for 10 distinct candidates, but 9 were given'."""
    from recprompt.eval.evaluate import evaluate

    ds = small_catalogue()
    program = Program(load_spec(TEMPLATES / "listwise.yaml"), backend=PlantedBackend())
    protocol = Protocol(dataset="small", seed=0, retriever="popularity", shortlist=10)
    with pytest.raises(InputError, match="asks for a top-10 list, but 8 case") as caught:
        evaluate(program, ds, protocol, tmp_path / "run", progress=False)
    assert "shortlist holds only the items a user has not seen" in caught.value.message
    assert "k at most 8" in caught.value.hint  # 11 items, 3 seen by each user
    assert program.backend.usage.calls == 0 and not (tmp_path / "run" / "run.json").exists()


def test_a_shortlist_longer_than_the_unseen_items_is_reported(tmp_path: Path) -> None:
    """--shortlist 5000 on a small catalogue ranked each user's unseen items (8 here) while
    the report said 'top 5000' and nothing else: the shortfall is a warning, and the
    retrieval section gives the candidates per case."""
    from recprompt.eval.evaluate import evaluate
    from recprompt.eval.signal import signal_markdown

    ds = small_catalogue()
    program = Program(load_spec(TEMPLATES / "likelihood.yaml"), backend=PlantedBackend())
    protocol = Protocol(dataset="small", seed=0, retriever="popularity", shortlist=5000)
    warned: list[str] = []
    report = evaluate(
        program, ds, protocol, tmp_path / "run", progress=False, baselines_only=True,
        on_warning=warned.append,
    )  # fmt: skip
    assert any("--shortlist 5000" in w and "have fewer (8 to 8)" in w for w in warned), warned
    assert report["retrieval"]["candidates_per_case"] == {"min": 8, "max": 8}
    assert any("candidates per case: 8 to 8" in line for line in signal_markdown(report))


@pytest.mark.parametrize(
    ("rank", "warned"),
    [({"prior": "bpr"}, True), ({"prior": "bpr", "prior_weight": 0.5}, False),
     ({"prior": "bpr", "tune_users": 5}, False), ({}, False)],
)  # fmt: skip
def test_a_prior_with_no_weight_and_no_tuning_is_a_warning(cli, data_root, tmp_path, rank, warned):
    """It was fitted and then fused at weight 0: the run ranked by the model alone, silently."""
    import yaml

    data = yaml.safe_load((TEMPLATES / "letters.yaml").read_text())
    data["rank"].update(rank)
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(data))
    args = ["dry-run", str(tmp_path / "spec.yaml"), "--data", str(data_root / "ml-100k")]
    result = cli.invoke(app, [*args, "--limit", "1", "--users", "60"])
    assert result.exit_code == 0, result.output
    assert ("takes no part in the ranking" in result.output) is warned
