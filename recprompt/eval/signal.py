"""The parts of an evaluation that make the model's signal count, and their report sections.

Before the test run (:func:`prepare`): the spec's calibration is estimated on validation
cases of users outside the test users, then the fusion weight is tuned on other such users
(``rank.tune_users``). After it (:func:`sections`): the position table before and after
calibration, the tuned weight with its validation curve, and for retrieve-then-rerank the
retriever's recall@N and NDCG@10 over the full catalogue beside the rerank's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recprompt.data import Dataset, Protocol
from recprompt.eval.identity import content_sha256

__all__ = ["plan", "plot_calibration", "prepare", "sections", "signal_markdown"]


def plan(
    program: Any, dataset: Dataset, protocol: Protocol, cases: Sequence[Any]
) -> tuple[dict[str, list[Any]], list[str]]:
    """The validation cases that calibration and fusion tuning will use, and warnings.

    Drawn before any model call or the results folder is claimed, so that a run leaving
    no user outside its test users stops with an InputError at once. A spec asking for more
    validation users than remain gets a warning: the report would otherwise say only
    "tuned on 3 validation users" when ``rank.tune_users: 50`` was asked for.
    """
    from recprompt.rank.tune import validation_cases

    wanted: dict[str, tuple[int, str]] = {}
    settings = getattr(program.spec, "calibration", None)
    if settings is not None and settings.method != "none":
        wanted["calibration"] = (settings.samples, "calibration.samples")
    rank = program.spec.rank
    if rank is not None and rank.tune_users and rank.prior != "none":
        wanted["fusion"] = (rank.tune_users, "rank.tune_users")
    test_users = {c.meta.get("user_id", c.id) for c in cases}
    drawn: dict[str, list[Any]] = {}
    warnings = []
    for key, (n, setting) in wanted.items():
        drawn[key] = validation_cases(program, dataset, protocol, test_users, n, asked_by=setting)
        if len(drawn[key]) < n:
            warnings.append(
                f"{setting} asks for {n} validation users, but only {len(drawn[key])} "
                f"user(s) are left outside the {len(test_users)} test users: "
                f"{'the weight is tuned' if key == 'fusion' else 'calibration is estimated'} "
                f"on {len(drawn[key])}"
            )
    return drawn, warnings


def prepare(
    program: Any,
    dataset: Dataset,
    protocol: Protocol,
    cases: Sequence[Any],
    validation: dict[str, list[Any]] | None = None,
) -> dict:
    """Calibrate and tune (as the spec asks) before the test run; returns report sections.

    ``validation``: the cases :func:`plan` drew (drawn here when not given).
    """
    from recprompt.rank.calibration import calibrate
    from recprompt.rank.tune import tune_prior_weight

    if validation is None:
        validation, _ = plan(program, dataset, protocol, cases)
    out: dict[str, Any] = {}
    test_users = {c.meta.get("user_id", c.id) for c in cases}
    if "calibration" in validation:
        prior = calibrate(program, [c.inputs for c in validation["calibration"]])
        if prior is not None:
            out["calibration"] = {**prior.as_dict(), "estimated_on": "validation users"}
    rank = program.spec.rank
    if "fusion" in validation:
        tuning = tune_prior_weight(
            program,
            dataset,
            protocol,
            test_users,
            rank.tune_users,
            cases=validation["fusion"],
        )
        program.rank_prior.weight = tuning.result.weight
        out["fusion"] = {"prior": rank.prior, **tuning.as_dict()}
    return out


PREPARED = "prepared.json"
"""What :func:`prepare` fixed before the test cases, kept in the run folder for resuming."""


def save_prepared(
    path: Path, program: Any, prepared: dict[str, Any], run: str | None = None
) -> None:
    """Keep the report sections and the state they fixed (the fusion weight, the option
    prior), so that a resumed run ranks its remaining cases as the first invocation did.

    ``run`` (the run's identity) and a checksum over the whole file are kept with them: a
    prepared.json of another run, or one edited by hand, is tuned again, never trusted."""
    from recprompt._files import write_text_atomic

    state: dict[str, Any] = {}
    if "fusion" in prepared:
        state["weight"] = program.rank_prior.weight
    prior = getattr(program, "option_prior", None)
    if "calibration" in prepared and prior is not None:
        state["option_prior"] = {
            "method": prior.method,
            "log_prior": prior.log_prior,
            "calls": prior.calls,
            "cases": prior.cases,
            "details": prior.details,
        }
    kept = json.loads(json.dumps({"sections": prepared, "state": state, "run": run}, default=str))
    kept["sha256"] = content_sha256(kept)
    write_text_atomic(path, json.dumps(kept))


def load_prepared(
    path: Path, program: Any, wanted: Sequence[str], run: str | None = None
) -> dict[str, Any] | None:
    """The sections :func:`save_prepared` kept, with their state restored on ``program``;
    None when there is no such file, it does not hold every section in ``wanted``, another
    run wrote it, or it changed since (its state, e.g. the weight, would no longer be what
    its sections report)."""
    from recprompt.rank.calibration import OptionPrior

    try:
        kept = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(kept, dict):  # '[]' raised AttributeError on .get
            return None
        if kept.get("run") != run or kept.get("sha256") != content_sha256(kept):
            return None
        sections, state = kept["sections"], kept["state"]
        if not isinstance(sections, dict) or set(sections) != set(wanted):
            return None
        weight = float(state["weight"]) if "fusion" in wanted else None
        prior = OptionPrior(**state["option_prior"]) if "calibration" in wanted else None
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None
    if weight is not None and not 0.0 <= weight <= 1.0:  # NaN fails too: not a tuned weight
        return None
    if weight is not None:
        program.rank_prior.weight = weight
    if prior is not None:
        program.option_prior = prior
    return sections


def _position(records: Sequence[dict[str, Any]], key: str, k: int = 10) -> list[dict]:
    """Hit rate at k by the positive's position, ranking by ``record[key]`` scores."""
    by_position: dict[int, list[bool]] = {}
    for r in records:
        position = r["meta"].get("positive_index")
        scores = r.get(key)
        if position is None or not scores:
            continue
        ordered = sorted(scores, key=lambda n: -scores[n] if scores[n] == scores[n] else np.inf)
        by_position.setdefault(int(position), []).append(r["label"] in ordered[:k])
    return [
        {"position": p + 1, "cases": len(h), "hit_rate": sum(h) / len(h)}
        for p, h in sorted(by_position.items())
    ]


def _retrieval(metas: Sequence[dict[str, Any]], protocol: Protocol) -> dict[str, Any]:
    ranks = [m.get("retriever_rank") for m in metas]
    found = np.array([x is not None for x in ranks], dtype=float)
    ndcg = np.array([1.0 / np.log2(x + 1) if x is not None and x <= 10 else 0.0 for x in ranks])
    hr = np.array([1.0 if x is not None and x <= 10 else 0.0 for x in ranks])
    sizes = [len(m.get("candidates", ())) for m in metas] or [0]
    return {
        "retriever": protocol.retriever,
        "n": protocol.shortlist,
        # fewer than n when a user has fewer unseen items: "top n" alone overstated them
        "candidates_per_case": {"min": min(sizes), "max": max(sizes)},
        f"recall@{protocol.shortlist}": float(found.mean()) if len(found) else 0.0,
        "retriever_ndcg@10": float(ndcg.mean()) if len(ndcg) else 0.0,
        "retriever_hr@10": float(hr.mean()) if len(hr) else 0.0,
        "note": "over the full catalogue minus the user's training items; a user whose "
        "positive the retriever missed counts as a miss for the retriever and the rerank",
    }


def sections(
    prepared: dict[str, Any],
    records: Sequence[dict[str, Any]],
    protocol: Protocol,
    cases: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Report sections: calibration (with position before/after), fusion, retrieval.

    The retriever is measured over ``cases`` when given (a baselines-only run, which has
    no records and whose baselines score every case), else over the finished records."""
    out = dict(prepared)
    if "calibration" in out:
        out["calibration"] = {
            **out["calibration"],
            "position_before": _position(records, "uncalibrated_scores"),
            "position_after": _position(records, "llm_scores"),
        }
    if protocol.retriever is not None:
        metas = [c.meta for c in cases] if cases is not None else [r["meta"] for r in records]
        out["retrieval"] = _retrieval(metas, protocol)
    return out


def signal_markdown(report: dict[str, Any]) -> list[str]:
    """Markdown lines for the sections above (empty when the report has none)."""
    lines: list[str] = []
    cal = report.get("calibration")
    if cal:
        lines += ["", f"## Calibration ({cal['method']})", ""]
        lines += [
            f"Option prior estimated on {cal['cases']} validation cases with {cal['calls']} "
            "calls (labels never read), divided out of every score.",
            "",
            "| position | cases | HR@10 before | HR@10 after |",
            "|---|---|---|---|",
        ]
        after = {p["position"]: p for p in cal.get("position_after", [])}
        for p in cal.get("position_before", []):
            a = after.get(p["position"], {}).get("hit_rate", float("nan"))
            lines.append(f"| {p['position']} | {p['cases']} | {p['hit_rate']:.3f} | {a:.3f} |")
    fusion = report.get("fusion")
    if fusion:
        lines += ["", f"## Fusion with {fusion['prior']}", ""]
        lines += [
            f"Weight {fusion['weight']:.2f}, tuned on {fusion['valid_users']} validation users "
            f"(none of them test users; {fusion['calls']} calls): the largest weight within one "
            "paired standard error of the best one"
            f" ({fusion.get('best_weight', fusion['weight']):.2f}). Validation NDCG@10 by weight:",
            "",
            "```json",
            json.dumps(fusion["curve"]),
            "```",
        ]
    retrieval = report.get("retrieval")
    if retrieval:
        n = retrieval["n"]
        lines += ["", f"## Retrieve ({retrieval['retriever']}, top {n}), then rerank", ""]
        sizes = retrieval.get("candidates_per_case")
        if sizes and sizes["min"] < n:
            lines.append(
                f"- candidates per case: {sizes['min']} to {sizes['max']} (fewer than {n}: "
                "only items a user has not seen are shortlisted)"
            )
        lines += [
            f"- retriever recall@{n}: {retrieval[f'recall@{n}']:.3f}",
            f"- retriever alone NDCG@10: {retrieval['retriever_ndcg@10']:.4f}, "
            f"HR@10: {retrieval['retriever_hr@10']:.4f}",
        ]
        rerank = (report.get("metrics") or {}).get("ndcg@10")
        if rerank is not None:  # a baselines-only run has no program row
            lines.append(f"- rerank NDCG@10: {rerank['value']:.4f} (the program row above)")
        lines.append(f"- {retrieval['note']}")
    return lines


def plot_calibration(out: Path, report: dict[str, Any]) -> Path | None:
    """``position_bias_calibration.png``: HR@10 by position, before and after calibration."""
    cal = report.get("calibration")
    if not cal or not cal.get("position_before"):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    for key, label, shift in (
        ("position_before", "raw", -0.2),
        ("position_after", "calibrated", 0.2),
    ):
        table = cal.get(key, [])
        ax.bar(
            [p["position"] + shift for p in table], [p["hit_rate"] for p in table], 0.4, label=label
        )
    ax.set_xlabel("position of the positive in the candidate list")
    ax.set_ylabel("HR@10")
    ax.set_title(f"Position bias before and after {cal['method']} calibration")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "position_bias_calibration.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
