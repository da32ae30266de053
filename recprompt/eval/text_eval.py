"""Scores and statistics of a text evaluation: BLEU/ROUGE with intervals for the program and
its non-LLM baselines on the same cases, output lengths, and how often outputs copy input.

An output that failed (no text) is scored as the empty string: it stays in every
denominator. An output *copies its input* when its words appear, in order and contiguously,
inside one of the texts the case showed the model (the review, its headline, the user's
earlier reviews): extractive answers are then visible next to the metric they inflate.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

import numpy as np

from recprompt.baselines.text import EXPLANATION_BASELINES, SUMMARY_BASELINES, TextBaselines
from recprompt.data import Dataset
from recprompt.eval.text_cases import extraction_note
from recprompt.eval.text_targets import words
from recprompt.metrics.text import rouge_per_case, sentence_bleu, text_metrics
from recprompt.spec.model import Spec

__all__ = [
    "copies_input",
    "default_text_baselines",
    "length_stats",
    "text_case_values",
    "text_section",
]


def default_text_baselines(kind: str) -> list[str]:
    return list(SUMMARY_BASELINES if kind == "summary" else EXPLANATION_BASELINES)


def copies_input(output: str, sources: Sequence[str]) -> bool:
    """True when the output's words occur contiguously in one of ``sources``."""
    out = words(output)
    if not out:
        return False
    n = len(out)
    for source in sources:
        tokens = words(source)
        if any(tokens[i : i + n] == out for i in range(len(tokens) - n + 1)):
            return True
    return False


def length_stats(texts: Sequence[str]) -> dict[str, float]:
    counts = [len(words(t)) for t in texts] or [0]
    return {
        "words_mean": round(statistics.fmean(counts), 2),
        "words_median": float(statistics.median(counts)),
        "words_p90": float(np.percentile(counts, 90)),
        "words_max": max(counts),
        "empty_rate": sum(c == 0 for c in counts) / len(counts),
    }


def _outputs(records: Sequence[dict[str, Any]]) -> list[str]:
    return [r["value"] if isinstance(r.get("value"), str) else "" for r in records]


def text_case_values(records: Sequence[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Per-case ROUGE F1 and sentence BLEU (0-100): what the optimizer averages."""
    hyps, refs = _outputs(records), [str(r["label"]) for r in records]
    values = rouge_per_case(hyps, refs)
    values["bleu"] = np.array([sentence_bleu(h, r) for h, r in zip(hyps, refs, strict=True)])
    return values


def _row(outputs: list[str], cases: Sequence[Any], refs: list[str], seed: int) -> dict:
    copied = [
        copies_input(o, c.meta.get("input_texts", [])) for o, c in zip(outputs, cases, strict=True)
    ]
    return {
        "metrics": text_metrics(outputs, refs, seed=seed),
        "lengths": length_stats(outputs),
        "copy_rate": sum(copied) / len(copied),
    }


def text_section(
    spec: Spec,
    records: Sequence[dict[str, Any]],
    cases: Sequence[Any],
    train: Dataset,
    seed: int,
    baselines: list[str] | None,
) -> dict[str, Any]:
    """Everything the report says about a text task (``report.json['text']``)."""
    kind = cases[0].meta["target"]
    refs = [str(c.label) for c in cases]
    outputs = _outputs(records)
    names = default_text_baselines(kind) if baselines is None else baselines
    fitted = TextBaselines(train) if names else None
    rows: dict[str, dict[str, Any]] = {"program": _row(outputs, cases, refs, seed)}
    examples: dict[str, list[str]] = {}
    for name in names:
        predict = fitted.predictor(name)  # type: ignore[union-attr]
        guesses = [predict(c) for c in cases]
        rows[name] = _row(guesses, cases, refs, seed)
        examples[name] = guesses[:5]
    return {
        **extraction_note(kind),
        "spec_metric": spec.metric,
        "max_tokens": spec.output.max_tokens,
        "cases": len(cases),
        "systems": rows,
        "reference_lengths": length_stats(refs),
        "cases_whose_review_is_in_train": sum(bool(c.meta.get("review_in_train")) for c in cases),
        "examples": [
            {"id": c.id, "reference": c.label, "program": o}
            | {name: examples[name][n] for name in examples}
            for n, (c, o) in enumerate(zip(cases[:5], outputs[:5], strict=False))
        ],
        "scoring": "BLEU-1/BLEU-4: sacrebleu corpus BLEU (13a, exp smoothing); ROUGE-1/2/L: "
        "rouge-score F1 with Porter stemming, mean over cases; all 0-100, seeded 95% "
        "bootstrap over cases (1000 resamples); a failed output scores as empty text",
    }
