"""Text evaluation: references from real reviews, BLEU/ROUGE equal to the libraries', baselines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import recprompt
from recprompt.backends.base import Completion, Usage
from recprompt.cli import app
from recprompt.data import load_dataset
from recprompt.errors import DataError
from recprompt.eval.cases import build_cases, default_protocol
from recprompt.eval.evaluate import evaluate
from recprompt.eval.text_eval import copies_input, length_stats
from recprompt.eval.text_targets import explanation_of, feature_vocabulary
from recprompt.metrics.text import text_metrics

AMAZON = "amazon-2018-all-beauty-5core"
HYPS = ["great smell and soft skin", "", "love this shampoo", "the the the", "works well"]
REFS = ["Great smell, soft skin!", "Five Stars", "I love this shampoo so much", "nice", "Works"]


@pytest.fixture(scope="module")
def amazon(data_root: Path) -> Any:
    if not (data_root / AMAZON).is_dir():
        pytest.skip(f"{AMAZON} not under {data_root}")
    return load_dataset(data_root / AMAZON)


def test_text_metrics_equal_the_libraries_own():
    import sacrebleu
    from rouge_score import rouge_scorer

    got = text_metrics(HYPS, REFS, seed=0)
    assert got["bleu-4"]["value"] == pytest.approx(sacrebleu.corpus_bleu(HYPS, [REFS]).score)
    bleu1 = sacrebleu.metrics.BLEU(max_ngram_order=1).corpus_score(HYPS, [REFS]).score
    assert got["bleu-1"]["value"] == pytest.approx(bleu1)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    scores = [scorer.score(r, h) for h, r in zip(HYPS, REFS, strict=True)]
    for name, key in (("rouge-1", "rouge1"), ("rouge-2", "rouge2"), ("rouge-l", "rougeL")):
        expected = 100 * np.mean([s[key].fmeasure for s in scores])
        assert got[name]["value"] == pytest.approx(expected)
    for cell in got.values():
        assert cell["ci_low"] <= cell["value"] <= cell["ci_high"]
    assert text_metrics(HYPS, REFS, seed=0) == got  # seeded


def test_explanations_are_feature_sentences():
    reviews = [(f"u{n}", "The scent is great. I use it daily.") for n in range(5)]
    reviews += [("u9", "Shipping was slow.")]
    vocab = feature_vocabulary(reviews)
    assert "scent" in vocab and "shipping" not in vocab
    found = explanation_of("Arrived today. The scent is really great on skin!", vocab)
    assert found is not None
    assert found.sentence == "The scent is really great on skin!" and found.feature == "scent"
    assert explanation_of("Arrived today. Good.", vocab) is None


def test_copies_and_lengths():
    assert copies_input("soft skin", ["It leaves soft skin behind"])
    assert not copies_input("skin soft", ["It leaves soft skin behind"])
    assert not copies_input("", ["anything"])
    stats = length_stats(["one two", "", "a b c d"])
    assert stats["empty_rate"] == pytest.approx(1 / 3) and stats["words_max"] == 4


def test_review_summary_cases_use_the_reviews_own_summary(amazon):
    spec = recprompt.load("p5.review_summary").spec
    cases = list(build_cases(spec, amazon, default_protocol(spec, amazon.name, n_users=20)))
    assert len(cases) == 20 and len({c.meta["user_id"] for c in cases}) == 20
    for case in cases:
        user, item = case.id.split(":")
        text = amazon.texts[(user, item)]
        assert case.label == text["summary"].strip()
        assert case.inputs["review"].split()[:5] == text["reviewText"].split()[:5]
        assert "review_headline" not in case.inputs  # the reference is never an input


def test_explanation_cases_carry_a_feature_from_the_sentence(amazon):
    spec = recprompt.load("p5.explanation").spec
    cases = list(build_cases(spec, amazon, default_protocol(spec, amazon.name, n_users=30)))
    assert len(cases) == 30
    for case in cases:
        user, item = case.id.split(":")
        assert case.label in amazon.texts[(user, item)]["reviewText"]
        assert case.inputs["feature"] in case.label.lower()
        assert "review" not in case.inputs


def test_movielens_has_no_reviews(data_root, cli, monkeypatch):
    spec = recprompt.load("p5.review_summary").spec
    ml = load_dataset(data_root / "ml-100k")
    with pytest.raises(DataError, match=r"ml-100k.*no reviews"):
        list(build_cases(spec, ml, default_protocol(spec, ml.name, n_users=2)))
    monkeypatch.setenv("RECPROMPT_DATA", str(data_root))
    result = cli.invoke(app, ["dry-run", "p5.explanation", "--data", "ml-100k", "--limit", "1"])
    assert result.exit_code == 2
    assert "p5.explanation needs review texts" in result.output
    assert "Traceback" not in result.output


class EchoBackend:
    """Answers with the first three words of the review (the line before the answer cue)."""

    name = "echo"
    supports_logits = False

    def __init__(self) -> None:
        self.usage = Usage()

    def generate(self, prompt: Any, *, constraint: Any, max_tokens: int, **_: Any) -> Completion:
        self.usage.calls += 1
        review = prompt.rstrip().split("\n")[-2].removeprefix("Review: ").split()
        return Completion(" " + " ".join(review[:3]) + "\n", Usage(calls=1))

    def score(self, prompt: str, continuations: list[str]) -> list[float]:
        raise AssertionError("text is generated")


def test_eval_writes_text_metrics_and_baselines(amazon, tmp_path):
    program = recprompt.load("p5.review_summary", backend=EchoBackend())
    protocol = default_protocol(program.spec, amazon.name, n_users=12, seed=0)
    report = evaluate(program, amazon, protocol, tmp_path, progress=False)
    assert report["cases"] == 12
    assert set(report["metrics"]) == {"bleu-1", "bleu-4", "rouge-1", "rouge-2", "rouge-l"}
    assert set(report["baselines"]) == {"item_top_summary", "nearest_review_summary"}
    text = report["text"]
    assert text["systems"]["program"]["copy_rate"] == 1.0  # every output copies the review
    assert text["systems"]["program"]["lengths"]["words_max"] <= 3
    assert report["validity"]["invalid"] == 0
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["text"]["reference"].startswith("the review's own 'summary'")
    assert "## Text outputs" in (tmp_path / "report.md").read_text()


def test_item_top_summary_is_the_items_most_frequent(amazon, tmp_path):
    from collections import Counter

    from recprompt.baselines.text import TextBaselines
    from recprompt.eval.runner import train_split

    spec = recprompt.load("p5.review_summary").spec
    protocol = default_protocol(spec, amazon.name, n_users=5)
    train = train_split(amazon, protocol)
    baselines = TextBaselines(train)
    for case in build_cases(spec, amazon, protocol):
        item = case.meta["item_id"]
        counts = Counter(
            train.texts[(u, i)]["summary"].strip()
            for u, i in zip(train.user.tolist(), train.item.tolist(), strict=True)
            if i == item
            and train.texts[(u, i)].get("summary")
            and train.texts[(u, i)].get("reviewText")
        )
        if not counts:  # an item with no training review: the corpus-wide top summary
            assert baselines.item_top_summary(case) == baselines.global_summary
            continue
        assert counts[baselines.item_top_summary(case)] == max(counts.values())
        assert baselines.nearest_review_summary(case)


@pytest.mark.model
def test_eval_review_summary_on_the_local_model(data_root, tmp_path, cli, monkeypatch):
    monkeypatch.setenv("RECPROMPT_DATA", str(data_root))
    monkeypatch.setenv("RECPROMPT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    args = ["eval", "p5.review_summary", "--data", AMAZON, "--users", "3", "--out", str(out)]
    result = cli.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["validity"]["invalid"] == 0
    assert all(r["lengths"]["words_max"] <= 24 for r in report["text"]["systems"].values())
    assert "rouge-l" in report["metrics"] and "item_top_summary" in report["baselines"]


def test_optimizer_tunes_a_text_spec_against_rouge_l(amazon, tmp_path):
    from recprompt.optimize import optimize
    from recprompt.optimize.search import Config

    backend = EchoBackend()
    configs = [
        Config(v, k, s, None) for v in ("4-1", "4-3") for k, s in ((0, "none"), (1, "random"))
    ]
    outcome = optimize(
        "p5.review_summary", amazon, backend, budget=60, out=tmp_path / "tuned.json",
        demo_users=6, valid_users=6, test_users=6, configs=configs, announce=lambda _: None,
    )  # fmt: skip
    report = outcome.report
    assert report["metric"] == "rouge-l"
    assert {t["label"] for t in report["trials"]} >= {c.label() for c in configs}
    assert all(0.0 <= t["objective"] <= 100.0 for t in report["trials"])
    tuned = report["results"]["tuned"]["test"]["rouge-l"]
    assert tuned["ci_low"] <= tuned["value"] <= tuned["ci_high"]
    assert recprompt.load(outcome.path).spec.name == "p5.review_summary"


def test_users_without_a_reference_are_not_called_short_of_interactions(data_root, cli):
    """A run of an explanation spec over every All_Beauty user warned that 440 users have
    fewer than 2 interactions; 10 have, the other 430 have no explanation sentence."""
    if not (data_root / AMAZON).is_dir():
        pytest.skip(f"{AMAZON} not under {data_root}")
    result = cli.invoke(
        app, ["dry-run", "chatgpt.explanation", "--data", str(data_root / AMAZON), "--show", "0"]
    )
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "440 of the dataset's 991 users have no case (10 have fewer than 2" in said, said
    assert "430 whose held-out review has no explanation sentence to score against" in said


def test_a_baselines_only_text_run_does_not_claim_text_has_no_baselines(data_root, cli, tmp_path):
    """It said 'text outputs have no baselines' (they have: item_top_summary, ...) and
    hinted 'choose --baselines', which changed nothing."""
    if not (data_root / AMAZON).is_dir():
        pytest.skip(f"{AMAZON} not under {data_root}")
    out = tmp_path / "run"
    result = cli.invoke(
        app,
        ["eval", "chatgpt.review_summary", "--data", str(data_root / AMAZON), "--users", "2",
         "--baselines-only", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())
    assert "is not supported: a text spec's baselines are scored beside the model's" in said
    assert "have no baselines" not in said and not (out / "run.json").exists()
