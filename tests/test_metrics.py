"""Metrics, cross-checked against independent formulations written differently here."""

from __future__ import annotations

import math
from itertools import permutations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recprompt.metrics import (
    auc,
    bleu4,
    bootstrap_ci,
    expected_metrics_from_scores,
    hit_rate_at_k,
    mae,
    mrr,
    ndcg_at_k,
    ndcg_at_k_graded,
    rank_of,
    ranks_from_scores,
    recall_at_k,
    rmse,
    rouge,
    validity_report,
)


def test_rmse_mae() -> None:
    assert rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(math.sqrt(4 / 3))
    assert mae([1, 2, 3], [2, 2, 5]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="nan"):
        rmse([float("nan")], [1.0])


def _brute_ndcg(ranked: list[str], relevant: str, k: int) -> float:
    # DCG of the list divided by DCG of the ideal list, with binary gains
    dcg = sum((item == relevant) / math.log(i + 2, 2) for i, item in enumerate(ranked[:k]))
    return dcg / 1.0


@settings(max_examples=60, deadline=None)
@given(st.permutations([f"i{k}" for k in range(8)]), st.integers(1, 8))
def test_single_item_metrics_match_brute_force(ranked: list[str], k: int) -> None:
    r = rank_of(ranked, "i3")
    assert ndcg_at_k([r], k) == pytest.approx(_brute_ndcg(ranked, "i3", k))
    assert hit_rate_at_k([r], k) == float("i3" in ranked[:k])
    assert mrr([r]) == pytest.approx(1 / (ranked.index("i3") + 1))
    assert ndcg_at_k_graded(ranked, {"i3": 1.0}, k) == pytest.approx(_brute_ndcg(ranked, "i3", k))


def test_missing_and_unparseable_count_as_zero() -> None:
    ranks = [rank_of(None, "a"), rank_of(["b", "c"], "a"), rank_of(["a"], "a")]
    assert hit_rate_at_k(ranks, 10) == pytest.approx(1 / 3)
    assert ndcg_at_k(ranks, 10) == pytest.approx(1 / 3)
    assert mrr(ranks) == pytest.approx(1 / 3)


def test_graded_ndcg_and_recall() -> None:
    rel = {"a": 3.0, "b": 1.0}
    ideal = 3 + 1 / math.log2(3)
    assert ndcg_at_k_graded(["b", "a"], rel, 2) == pytest.approx((1 + 3 / math.log2(3)) / ideal)
    assert ndcg_at_k_graded(["a", "a", "b"], rel, 3) == pytest.approx((3 + 1 / 2) / ideal)
    assert recall_at_k(["a", "x", "b"], {"a", "b"}, 2) == 0.5


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=2, max_size=6), st.data())
def test_expected_metrics_equal_average_over_all_tie_orders(
    scores: list[int], data: st.DataObject
) -> None:
    pos = data.draw(st.integers(0, len(scores) - 1))
    got = expected_metrics_from_scores(np.array([scores], float), [pos], ks=(1, 3))
    # brute force: every permutation of the candidate indices, ranked by score, stable
    totals = {"mrr": 0.0, "hr@1": 0.0, "ndcg@1": 0.0, "hr@3": 0.0, "ndcg@3": 0.0}
    perms = list(permutations(range(len(scores))))
    for perm in perms:
        order = sorted(perm, key=lambda i: -scores[i])  # sorted() is stable: perm breaks ties
        r = order.index(pos) + 1
        totals["mrr"] += 1 / r
        for k in (1, 3):
            totals[f"hr@{k}"] += r <= k
            totals[f"ndcg@{k}"] += (r <= k) / math.log2(r + 1)
    for key, total in totals.items():
        assert got[key] == pytest.approx(total / len(perms)), key


def test_ranks_from_scores_ties() -> None:
    s = np.array([[0.5, 0.9, 0.5, 0.1]])
    assert ranks_from_scores(s, [0], "optimistic").tolist() == [2.0]
    assert ranks_from_scores(s, [0], "pessimistic").tolist() == [3.0]


def test_auc_against_pair_counting() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(200) < 0.3
    s = np.round(rng.random(200), 1)  # many ties
    pairs = [(a, b) for a in s[y] for b in s[~y]]
    brute = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs) / len(pairs)
    assert auc(y, s) == pytest.approx(brute)
    assert auc([1, 0], [0.2, 0.2]) == 0.5 and auc([1, 0], [0.9, 0.1]) == 1.0
    with pytest.raises(ValueError):
        auc([True, True], [0.1, 0.2])


def test_text_metrics_use_the_libraries() -> None:
    import sacrebleu
    from rouge_score import rouge_scorer

    hyps = ["the cat sat on the mat", "great soap smells nice"]
    refs = ["the cat sat on a mat", "nice soap with a great smell"]
    assert bleu4(hyps, refs) == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    assert bleu4(refs, refs) == pytest.approx(100.0)
    got = rouge(hyps, refs)
    scorer = rouge_scorer.RougeScorer(["rouge1"], use_stemmer=True)
    want = np.mean([scorer.score(r, h)["rouge1"].fmeasure for h, r in zip(hyps, refs, strict=True)])
    assert got["rouge1"] == pytest.approx(100 * want)
    assert set(got) == {"rouge1", "rouge2", "rougeL"}


def test_bootstrap_ci_seeded_and_covers_mean() -> None:
    values = np.random.default_rng(1).random(500)
    a, b = bootstrap_ci(values, seed=3), bootstrap_ci(values, seed=3)
    assert a == b
    assert a.low < values.mean() < a.high and a.estimate == pytest.approx(values.mean())
    assert a.high - a.low == pytest.approx(2 * 1.96 * values.std() / math.sqrt(500), rel=0.2)
    med = bootstrap_ci(values, np.median, n_resamples=200, seed=0)
    assert med.low <= np.median(values) <= med.high


def test_validity_report_categories() -> None:
    cands = [["a", "b", "c", "d"]] * 6
    hist = [["z"], ["z"], ["z"], ["z"], ["z"], ["z"]]
    outputs = [
        None,  # unparseable
        ["a", "b", "c"],  # copy of the input order
        ["c", "c"],  # duplicate
        ["q", "a"],  # out of candidate
        ["z", "a"],  # already seen (and out of candidate)
        ["d", "a"],  # valid
    ]
    rep = validity_report(outputs, cands, hist)
    assert rep.counts == {
        "unparseable": 1,
        "out_of_candidate": 2,
        "duplicate": 1,
        "already_seen": 1,
        "copied_input_order": 1,
        "valid": 2,
    }
    assert rep.rates["valid"] == pytest.approx(2 / 6) and rep.n == 6
    assert rep.as_dict()["counts"] == rep.counts


def test_paired_difference_on_identical_runs_has_p_one() -> None:
    from recprompt.metrics import paired_difference

    values = np.random.default_rng(3).random(200)
    result = paired_difference(values, values.copy(), seed=0)
    assert result.p_value == 1.0
    assert result.difference == 0.0 and result.low == 0.0 and result.high == 0.0
    assert not result.significant


def test_paired_difference_detects_a_shift_that_unpaired_intervals_miss() -> None:
    from recprompt.metrics import bootstrap_ci, paired_difference

    rng = np.random.default_rng(0)
    base = rng.random(300)  # large per-case spread shared by both systems
    better = base + 0.02 + rng.normal(0, 0.005, 300)
    result = paired_difference(base, better, seed=0)
    assert result.low > 0.0 and result.p_value < 0.01
    assert abs(result.difference - float((better - base).mean())) < 1e-12
    # unpaired, the two intervals overlap: pairing is what detects the shift
    assert bootstrap_ci(better).low < bootstrap_ci(base).high


def test_paired_difference_refuses_unaligned_cases() -> None:
    from recprompt.metrics import paired_difference

    with pytest.raises(ValueError):
        paired_difference([1.0, 2.0], [1.0])


def test_paired_difference_on_value_counts_matches_resampling_cases(monkeypatch) -> None:
    import recprompt.metrics.paired as paired

    rng = np.random.default_rng(3)
    a = (rng.random(3000) < 0.3).astype(float)
    b = np.where(rng.random(3000) < 0.1, 1 - a, a)  # a hit/miss metric: 3 distinct differences
    grouped = paired.paired_difference(a, b, seed=0)
    monkeypatch.setattr(paired, "_GROUPED", 10**12)  # force the case-resampling path
    cases = paired.paired_difference(a, b, seed=0)
    assert grouped.difference == cases.difference
    assert abs(grouped.low - cases.low) < 0.004 and abs(grouped.high - cases.high) < 0.004
    assert abs(grouped.p_value - cases.p_value) < 0.02
