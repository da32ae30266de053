"""BLEU and ROUGE for explanation / review-summary tasks, via the reference libraries.

Both are reported on a 0-100 scale, as in P5's tables. BLEU is sacrebleu's corpus BLEU
(13a tokenizer, exp smoothing); ROUGE is rouge-score's F1 with Porter stemming, averaged over
cases. Confidence intervals resample cases: for BLEU each resample sums the cases' n-gram
statistics and recomputes corpus BLEU with sacrebleu's own formula (as sacrebleu's paired
bootstrap does), so the point value is exactly ``sacrebleu.corpus_bleu``. The libraries are
imported lazily (they are in the ``eval`` extra) so that importing recprompt stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from recprompt.errors import RecpromptError

__all__ = ["bleu", "bleu4", "rouge", "rouge_per_case", "sentence_bleu", "text_metrics"]

ROUGE_KEYS = {"rouge-1": "rouge1", "rouge-2": "rouge2", "rouge-l": "rougeL"}


def _check(hyps: Sequence[str], refs: Sequence[str]) -> None:
    if len(hyps) != len(refs) or not hyps:
        raise ValueError(f"need as many hypotheses as references, got {len(hyps)}/{len(refs)}")


def _sacrebleu() -> Any:
    try:
        import sacrebleu
    except ImportError as exc:
        raise RecpromptError("BLEU needs sacrebleu", hint="pip install 'recprompt[eval]'") from exc
    return sacrebleu


def _scorer() -> Any:
    try:
        from rouge_score import rouge_scorer
    except ImportError as exc:
        raise RecpromptError(
            "ROUGE needs rouge-score", hint="pip install 'recprompt[eval]'"
        ) from exc
    return rouge_scorer.RougeScorer(list(ROUGE_KEYS.values()), use_stemmer=True)


def bleu(hypotheses: Sequence[str], references: Sequence[str], order: int = 4) -> float:
    """Corpus BLEU-``order`` (sacrebleu defaults otherwise), 0-100."""
    _check(hypotheses, references)
    metric = _sacrebleu().BLEU(max_ngram_order=order)
    return float(metric.corpus_score(list(hypotheses), [list(references)]).score)


def bleu4(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU-4 (sacrebleu defaults: 13a tokenizer, exp smoothing), 0-100."""
    return bleu(hypotheses, references, 4)


def sentence_bleu(hypothesis: str, reference: str, order: int = 4) -> float:
    """sacrebleu's sentence BLEU (effective order), 0-100: a per-case tuning signal."""
    metric = _sacrebleu().BLEU(max_ngram_order=order, effective_order=True)
    return float(metric.sentence_score(hypothesis, [reference]).score)


def rouge_per_case(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, np.ndarray]:
    """ROUGE-1/2/L F1 of every case (rouge-score, Porter stemming), 0-100."""
    _check(hypotheses, references)
    scorer = _scorer()
    out = {name: np.zeros(len(hypotheses)) for name in ROUGE_KEYS}
    for n, (hyp, ref) in enumerate(zip(hypotheses, references, strict=True)):
        result = scorer.score(ref, hyp)  # (target, prediction)
        for name, key in ROUGE_KEYS.items():
            out[name][n] = 100.0 * result[key].fmeasure
    return out


def rouge(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F1 (rouge-score, Porter stemming), 0-100, keyed rouge1/rouge2/rougeL."""
    per_case = rouge_per_case(hypotheses, references)
    return {ROUGE_KEYS[name]: float(v.mean()) for name, v in per_case.items()}


def _bleu_stats(metric: Any, hyps: Sequence[str], refs: Sequence[str]) -> np.ndarray:
    """Per-case sufficient statistics: sys_len, ref_len, correct[order], total[order]."""
    rows = []
    for hyp, ref in zip(hyps, refs, strict=True):
        s = metric.sentence_score(hyp, [ref])
        rows.append([s.sys_len, s.ref_len, *s.counts, *s.totals])
    return np.asarray(rows, dtype=np.int64)


def _bleu_from(metric: Any, sums: np.ndarray, order: int) -> float:
    return float(
        metric.compute_bleu(
            sums[2 : 2 + order].tolist(),
            sums[2 + order :].tolist(),
            int(sums[0]),
            int(sums[1]),
            smooth_method=metric.smooth_method,
            smooth_value=metric.smooth_value,
            max_ngram_order=order,
        ).score
    )


def _bleu_with_ci(
    hyps: Sequence[str], refs: Sequence[str], order: int, idx: np.ndarray
) -> dict[str, float]:
    metric = _sacrebleu().BLEU(max_ngram_order=order)
    # effective_order changes only sentence *scores*, not the n-gram statistics read here
    counter = _sacrebleu().BLEU(max_ngram_order=order, effective_order=True)
    stats = _bleu_stats(counter, hyps, refs)
    value = _bleu_from(metric, stats.sum(axis=0), order)
    samples = [_bleu_from(metric, stats[row].sum(axis=0), order) for row in idx]
    low, high = np.quantile(samples, [0.025, 0.975])
    return {"value": value, "ci_low": float(low), "ci_high": float(high)}


def text_metrics(
    hypotheses: Sequence[str],
    references: Sequence[str],
    *,
    seed: int = 0,
    n_resamples: int = 1000,
) -> dict[str, dict[str, float]]:
    """BLEU-1, BLEU-4 (corpus) and ROUGE-1/2/L (mean F1), each with a seeded 95% bootstrap
    interval over cases; the same resamples serve every metric so intervals are comparable."""
    _check(hypotheses, references)
    hyps, refs = [h or "" for h in hypotheses], list(references)
    idx = np.random.default_rng(seed).integers(0, len(hyps), size=(n_resamples, len(hyps)))
    out = {f"bleu-{n}": _bleu_with_ci(hyps, refs, n, idx) for n in (1, 4)}
    for name, values in rouge_per_case(hyps, refs).items():
        low, high = np.quantile(values[idx].mean(axis=1), [0.025, 0.975])
        out[name] = {"value": float(values.mean()), "ci_low": float(low), "ci_high": float(high)}
    return out
