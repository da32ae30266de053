"""Paired differences of the program against each baseline, on the same cases.

Every ranking and rating report answers "does the program beat this baseline?" with the
difference of per-case metric values (program minus baseline), its seeded bootstrap interval
and a sign-flip permutation p-value (:func:`recprompt.metrics.paired_difference`). Only
metrics defined per case are paired: AUC is a property of the whole set. RMSE is paired on the
per-case squared errors, so its row is the difference of mean squared errors (``mse``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from recprompt.metrics import paired_difference

__all__ = ["LOWER_IS_BETTER", "markdown_lines", "paired_name", "paired_table", "per_case_json"]

LOWER_IS_BETTER = frozenset({"rmse", "mse", "mae"})


def paired_name(metric: str) -> str:
    """The name of a per-case vector's paired row (squared errors pair as MSE)."""
    return "mse" if metric == "rmse" else metric


def _pairable(values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, dtype=float) for k, v in values.items() if k != "auc"}


def paired_table(
    program: Mapping[str, np.ndarray],
    others: Mapping[str, Mapping[str, np.ndarray]],
    *,
    seed: int = 0,
) -> dict[str, dict[str, dict[str, Any]]]:
    """``{other: {metric: difference}}``: program minus each other system, case by case.

    Each difference carries ``better`` (``higher`` or ``lower``) so a reader knows which sign
    favours the program.
    """
    mine = _pairable(program)
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for name, values in others.items():
        theirs = _pairable(values)
        rows = {}
        for metric, vector in mine.items():
            if metric not in theirs or len(theirs[metric]) != len(vector) or not len(vector):
                continue
            result = paired_difference(theirs[metric], vector, seed=seed).as_dict()
            result["better"] = "lower" if metric in LOWER_IS_BETTER else "higher"
            rows[paired_name(metric)] = result
        if rows:
            table[name] = rows
    return table


def per_case_json(
    ids: list[str],
    program: Mapping[str, np.ndarray],
    baselines: Mapping[str, Mapping[str, np.ndarray]],
) -> dict[str, Any]:
    """Per-case metric values of the program and the baselines (``per_case.json``), so that
    ``recprompt compare`` and other tools can pair runs without recomputing anything."""

    def columns(values: Mapping[str, np.ndarray]) -> dict[str, list[float]]:
        return {
            k: [round(float(x), 6) for x in np.asarray(v, dtype=float)]
            for k, v in _pairable(values).items()
            if len(v) == len(ids)
        }

    return {
        "ids": ids,
        "program": columns(program),
        "baselines": {name: columns(v) for name, v in baselines.items()},
        "note": "rmse columns hold per-case squared errors",
    }


def markdown_lines(paired: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> list[str]:
    """The paired table of ``report.md``: one row per baseline and metric."""
    if not paired:
        return []
    lines = [
        "",
        "## Program minus each baseline, paired on the same cases",
        "",
        "| baseline | metric | difference | 95% CI | p-value | better |",
        "|---|---|---|---|---|---|",
    ]
    for baseline, rows in paired.items():
        for metric, d in rows.items():
            lines.append(
                f"| {baseline} | {metric} | {d['difference']:+.4f} | "
                f"[{d['low']:+.3f}, {d['high']:+.3f}] | {d['p_value']:.4f} | {d['better']} |"
            )
    lines += [
        "",
        "Seeded paired bootstrap over cases; two-sided sign-flip permutation p-value.",
    ]
    return lines
