"""Metrics of an evaluation from its stored records, by output type.

Invalid outputs stay in every denominator: a ranking that did not parse is a miss; a rating
that did not parse is replaced by the training mean (the policy is written into the report).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from recprompt.metrics import auc, bootstrap_ci, rank_of, validity_report
from recprompt.spec.model import Spec
from recprompt.types import ChoiceOutput, ItemListOutput, ItemOutput, RatingOutput, TextOutput

__all__ = ["per_case_values", "score_records", "summarize"]

RANK_KS = (1, 5, 10)


def summarize(values: dict[str, np.ndarray], seed: int) -> dict[str, dict[str, float]]:
    """Mean and seeded 95% bootstrap interval of each per-case metric."""
    out = {}
    for name, vector in values.items():
        if name == "auc":
            out[name] = {"value": float(vector[0])}
            continue
        ci = bootstrap_ci(vector, seed=seed)
        out[name] = {"value": float(np.mean(vector)), "ci_low": ci.low, "ci_high": ci.high}
        if name in ("rmse",):
            out[name] = _rmse_ci(vector, seed)
    return out


def _rmse_ci(squared: np.ndarray, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(squared), size=(1000, len(squared)))
    samples = np.sqrt(squared[idx].mean(axis=1))
    low, high = np.percentile(samples, [2.5, 97.5])
    return {"value": float(np.sqrt(squared.mean())), "ci_low": float(low), "ci_high": float(high)}


def ranking_values(ranks: Sequence[float]) -> dict[str, np.ndarray]:
    r = np.asarray(ranks, dtype=float)
    values = {"mrr": np.where(np.isfinite(r), 1.0 / r, 0.0)}
    for k in RANK_KS:
        values[f"hr@{k}"] = (r <= k).astype(float)
        values[f"ndcg@{k}"] = np.where(r <= k, 1.0 / np.log2(np.minimum(r, k) + 1.0), 0.0)
    return values


def per_case_values(spec: Spec, records: Sequence[dict[str, Any]], fallback: float) -> dict:
    """Per-case metric vectors (squared errors for RMSE) of the program's predictions."""
    output = spec.output
    if spec.rank is not None:
        return ranking_values([rank_of(r["value"], r["label"]) for r in records])
    if isinstance(output, ItemListOutput | ItemOutput):
        ranks = []
        for r in records:
            value = r["value"]
            if isinstance(output, ItemOutput) and r.get("scores"):
                ordered = sorted(r["scores"], key=r["scores"].get, reverse=True)
                ranks.append(rank_of(ordered, r["label"]))
            else:
                ranked = value if isinstance(value, list) else ([value] if value else None)
                ranks.append(rank_of(ranked, r["label"]))
        return ranking_values(ranks)
    if isinstance(output, RatingOutput):
        labels = np.array([r["label"] for r in records], dtype=float)
        preds = np.array(
            [fallback if r["value"] is None else float(r["value"]) for r in records], dtype=float
        )
        return {"rmse": (preds - labels) ** 2, "mae": np.abs(preds - labels)}
    if isinstance(output, ChoiceOutput):
        positive = output.positive or output.options[0]
        labels = np.array([r["label"] == positive for r in records], dtype=bool)
        correct = np.array([r["value"] == r["label"] for r in records], dtype=float)
        scores = np.array(
            [
                (r["scores"] or {}).get(positive, float(r["value"] == positive))
                if r.get("scores")
                else float(r["value"] == positive)
                for r in records
            ]
        )
        values: dict[str, np.ndarray] = {"accuracy": correct}
        if labels.any() and (~labels).any():
            values["auc"] = np.array([auc(labels, scores)])
        return values
    if isinstance(output, TextOutput):
        from recprompt.eval.text_eval import text_case_values

        return text_case_values(records)
    return {}


def validity(spec: Spec, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Error rates: parse failures for every type, list defects for item lists."""
    failed = sum(1 for r in records if r.get("error"))
    base = {
        "n": len(records),
        "invalid": failed,
        "invalid_rate": failed / len(records) if records else 0.0,
    }
    if isinstance(spec.output, ItemListOutput):
        report = validity_report(
            [r["value"] for r in records],
            [r["meta"]["candidate_names"] for r in records],
            [r["meta"]["history_names"] for r in records],
        )
        base.update(report.as_dict())
    return base


def score_records(
    spec: Spec, records: Sequence[dict[str, Any]], *, fallback: float, seed: int
) -> dict[str, Any]:
    values = per_case_values(spec, records, fallback)
    return {"metrics": summarize(values, seed), "validity": validity(spec, records)}
