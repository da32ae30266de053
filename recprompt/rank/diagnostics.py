"""Checks that belong in every ranking report: position bias, popularity bias, cost.

They read the eval runner's records (``id``, ``label``, ``value`` = the ranking, ``usage``,
``meta`` with ``positive``, ``positive_index``, ``candidates`` and ``candidate_names``;
``ranking_ids`` = the ranking as item ids when the record has it), so they work on a
finished ``results.jsonl`` as well as in a benchmark. Items are looked up by id, never by
title (two items may share one).

* Position bias (LLMRank): hit rate by where the positive stood in the prompt's candidate
  list. A flat profile is the goal; a falling one means the model reads order, not taste.
* Popularity bias: how popular the recommended top-k items are against the held-out items
  (train interaction counts and their percentile among all items). An LLM that only echoes
  blockbusters has a recommended popularity far above the ground truth's.
* Cost: calls, tokens and seconds per user, the price of each strategy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["cost_per_user", "popularity_bias", "position_hit_rate", "ranking_diagnostics"]


def position_hit_rate(
    records: Sequence[dict[str, Any]], k: int = 10, bucket: int = 1
) -> list[dict[str, Any]]:
    """HR@k by the 1-based position of the positive in the candidate list shown to the model.

    ``bucket`` groups positions (5 gives 1-5, 6-10, ...): with few users per position, single
    positions are too noisy to show a trend.
    """
    by_position: dict[int, list[bool]] = {}
    for r in records:
        position = r.get("meta", {}).get("positive_index")
        if position is None:
            continue
        ranking = r["value"] if isinstance(r.get("value"), list) else []
        group = int(position) // bucket
        by_position.setdefault(group, []).append(r["label"] in ranking[:k])
    return [
        {
            "position": g * bucket + 1 if bucket == 1 else f"{g * bucket + 1}-{(g + 1) * bucket}",
            "cases": len(h),
            "hit_rate": float(np.mean(h)),
        }
        for g, h in sorted(by_position.items())
    ]


def _percentiles(popularity: Mapping[str, float]) -> dict[str, float]:
    """Each item's popularity percentile in (0, 1] among all items of the training set."""
    items = list(popularity)
    counts = np.array([popularity[i] for i in items], dtype=np.float64)
    order = np.sort(counts)
    ranks = np.searchsorted(order, counts, side="right") / max(len(order), 1)
    return dict(zip(items, ranks.tolist(), strict=True))


def popularity_bias(
    records: Sequence[dict[str, Any]], popularity: Mapping[str, float], k: int = 10
) -> dict[str, float]:
    """Mean train popularity (count and percentile) of the top-k recommended items, the
    ground-truth items and the candidate pool. ``popularity`` maps item_id -> count."""
    pct = _percentiles(popularity)
    rec, rec_pct, truth, truth_pct, pool = [], [], [], [], []
    for r in records:
        meta = r.get("meta", {})
        ranked_ids = r.get("ranking_ids")
        if isinstance(ranked_ids, list) and ranked_ids:
            top = [str(i) for i in ranked_ids[:k]]
        else:
            names = meta.get("candidate_names", [])
            ids = dict(zip(names, meta.get("candidates", []), strict=False))
            ranking = r["value"] if isinstance(r.get("value"), list) else []
            top = [ids[n] for n in ranking[:k] if n in ids]
        rec += [float(popularity.get(i, 0)) for i in top]
        rec_pct += [pct.get(i, 0.0) for i in top]
        pool += [float(popularity.get(i, 0)) for i in meta.get("candidates", [])]
        positive = meta.get("positive")
        if positive is not None:
            truth.append(float(popularity.get(positive, 0)))
            truth_pct.append(pct.get(positive, 0.0))

    def mean(values: list[float]) -> float:
        return float(np.mean(values)) if values else float("nan")

    return {
        "k": k,
        "recommended_mean_count": mean(rec),
        "recommended_mean_percentile": mean(rec_pct),
        "ground_truth_mean_count": mean(truth),
        "ground_truth_mean_percentile": mean(truth_pct),
        "candidates_mean_count": mean(pool),
    }


def cost_per_user(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Mean calls, tokens and seconds per user (one record per user), and median seconds."""
    if not records:
        return {}
    usage = [r.get("usage", {}) for r in records]

    def column(key: str) -> np.ndarray:
        return np.array([float(u.get(key, 0.0)) for u in usage])

    tokens = column("prompt_tokens") + column("completion_tokens")
    return {
        "users": len(records),
        "calls": float(column("calls").mean()),
        "prompt_tokens": float(column("prompt_tokens").mean()),
        "completion_tokens": float(column("completion_tokens").mean()),
        "tokens": float(tokens.mean()),
        "seconds": float(column("seconds").mean()),
        "seconds_median": float(np.median(column("seconds"))),
    }


def ranking_diagnostics(
    records: Sequence[dict[str, Any]],
    popularity: Mapping[str, float],
    k: int = 10,
    bucket: int = 1,
) -> dict[str, Any]:
    """All three checks, ready to be put under ``report["diagnostics"]``."""
    return {
        "position": position_hit_rate(records, k, bucket),
        "popularity": popularity_bias(records, popularity, k),
        "cost": cost_per_user(records),
    }
