"""Text tasks and a multi-stage program on the default local model (Gemma 3 270M).

Runs, in one process, through the default disk cache (a rerun is free; ``calls`` says how
many calls missed it, and seconds per case are real only where they all did):

* review summaries (p5.review_summary), 100 cases on Amazon 2018 All_Beauty 5-core: the
  zero-shot program, the program tuned against ROUGE-L on other users, and the baselines;
* explanations (p5.explanation), 100 cases: the same;
* PALR (palr.ranking: profile -> rank) on ML-100K, 50 users: stage-1 calls (must equal the
  users, not users x candidates) and NDCG@10 beside plain p5.sequential on the same users and
  candidates.

The tuned programs come from recprompt's optimizer (successive halving over variant x k x
selector) on demo and validation users disjoint from the 100 evaluated ones. Writes
bench/results/text.json.

    RECPROMPT_DATA=../shared/data nice -n 10 python bench/text.py

Sizes: TEXT_CASES (100), PALR_USERS (50), TEXT_BUDGET (90 optimizer calls) in the environment.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import recprompt
from recprompt.backends import get_backend
from recprompt.backends.cache import CachedBackend
from recprompt.data import load_dataset, sample_users
from recprompt.eval.cases import build_cases, default_protocol
from recprompt.eval.evaluate import evaluate
from recprompt.optimize.budget import CallMeter
from recprompt.optimize.search import Config, UserSplit, search

from _common import merge_result

TEXT_CASES = int(os.environ.get("TEXT_CASES", 100))
PALR_USERS = int(os.environ.get("PALR_USERS", 50))
BUDGET = int(os.environ.get("TEXT_BUDGET", 90))
VALID_USERS = int(os.environ.get("TEXT_VALID_USERS", 16))
TEXT_CONFIGS = [(k, s) for k, s in ((0, "none"), (2, "random"), (2, "fixed"), (4, "random"))]


def _metrics(report: dict[str, Any]) -> dict[str, Any]:
    return report["metrics"]


def _text_run(name: str, spec_name: str, data: Any, work: Path, backend: Any) -> dict[str, Any]:
    program = recprompt.load(spec_name, backend=backend)
    protocol = default_protocol(program.spec, data.name, n_users=TEXT_CASES, seed=0)
    cases = list(build_cases(program.spec, data, protocol))
    started = time.monotonic()
    report = evaluate(program, data, protocol, work / f"{name}-zero-shot", progress=False)
    zero_seconds = time.monotonic() - started

    # tune against ROUGE-L on users disjoint from the evaluated ones
    evaluated = {c.meta["user_id"] for c in cases}
    spec = program.spec.model_copy(update={"metric": "rouge-l"})
    counts: dict[str, int] = {}
    for u in data.user.tolist():
        counts[u] = counts.get(u, 0) + 1
    others = sorted(u for u, n in counts.items() if n >= 3 and u not in evaluated)
    order = [others[i] for i in np.random.default_rng(0).permutation(len(others))]
    split = UserSplit(sorted(order[:40]), sorted(order[40 : 40 + VALID_USERS]), [])
    variants = [v.id for v in spec.all_variants() if not v.held_out]
    configs = [
        Config(v, k, s, None if "history" not in spec.inputs else spec.inputs["history"].max_length)
        for v in variants
        for k, s in TEXT_CONFIGS
    ]
    meter = CallMeter(backend, BUDGET)
    started = time.monotonic()
    result = search(
        spec, data, meter, budget=BUDGET, seed=0, split=split, configs=configs,
        announce=lambda text: print(text, file=sys.stderr),
    )  # fmt: skip
    search_seconds = time.monotonic() - started
    tuned = result.program
    tuned.backend = backend  # the search's call meter has spent its budget
    tuned.spec = tuned.spec.model_copy(update={"metric": program.spec.metric})
    started = time.monotonic()
    tuned_report = evaluate(tuned, data, protocol, work / f"{name}-tuned", progress=False)
    tuned_seconds = time.monotonic() - started
    text = report["text"]
    return {
        "spec": spec_name,
        "cases": report["cases"],
        "protocol": report["protocol"],
        "reference": text["reference"],
        "program": {
            "variant": report["variant"],
            "metrics": _metrics(report),
            "lengths": text["systems"]["program"]["lengths"],
            "copy_rate": text["systems"]["program"]["copy_rate"],
            "seconds_per_case": round(zero_seconds / report["cases"], 3),
            "calls_this_invocation": report["usage"]["this_invocation"],
        },
        "tuned": {
            "config": result.best.label(),
            "objective": "rouge-l (mean F1 on validation users)",
            "search_calls": meter.calls,
            "search_seconds": round(search_seconds, 1),
            "users": {"demo": len(split.demo), "valid": len(split.valid)},
            "metrics": _metrics(tuned_report),
            "lengths": tuned_report["text"]["systems"]["program"]["lengths"],
            "copy_rate": tuned_report["text"]["systems"]["program"]["copy_rate"],
            "seconds_per_case": round(tuned_seconds / tuned_report["cases"], 3),
        },
        "baselines": {
            k: {"metrics": v["metrics"], "lengths": v["lengths"], "copy_rate": v["copy_rate"]}
            for k, v in text["systems"].items()
            if k != "program"
        },
        "reference_lengths": text["reference_lengths"],
        "examples": text["examples"][:3],
    }


def _palr(ml: Any, work: Path, backend: Any) -> dict[str, Any]:
    palr = recprompt.load("palr.ranking", backend=backend)
    protocol = default_protocol(palr.spec, ml.name, n_users=PALR_USERS, seed=0)
    started = time.monotonic()
    report = evaluate(palr, ml, protocol, work / "palr", progress=False)
    palr_seconds = time.monotonic() - started
    stage = report["stages"]["profile"]
    sequential = recprompt.load("p5.sequential", backend=backend)
    seq_protocol = default_protocol(sequential.spec, ml.name, n_users=PALR_USERS, seed=0)
    assert seq_protocol == protocol, (seq_protocol, protocol)  # same users and candidates
    started = time.monotonic()
    seq = evaluate(sequential, ml, seq_protocol, work / "p5-sequential", progress=False)
    seq_seconds = time.monotonic() - started
    users = len(sample_users(ml.user_ids(), PALR_USERS, 0))
    return {
        "users": users,
        "protocol": report["protocol"],
        "stage1_profile": {
            "backend_calls": stage["this_invocation"]["calls"],
            "distinct_keys": stage["distinct_keys"],
            "computed": stage["computed"],
            "reused": stage["reused_in_memory"] + stage["reused_from_store"],
            "calls_equal_users": stage["this_invocation"]["calls"] == report["cases"],
            "usage": stage["this_invocation"],
        },
        "stage2_calls": report["usage"]["this_invocation"]["calls"],
        "palr": {
            "ndcg@10": report["metrics"]["ndcg@10"],
            "hr@10": report["metrics"]["hr@10"],
            "validity": report["validity"],
            "seconds_per_case": round(palr_seconds / report["cases"], 3),
        },
        "p5.sequential": {
            "ndcg@10": seq["metrics"]["ndcg@10"],
            "hr@10": seq["metrics"]["hr@10"],
            "validity": seq["validity"],
            "seconds_per_case": round(seq_seconds / seq["cases"], 3),
        },
        "baselines_ndcg@10": {k: v["ndcg@10"]["value"] for k, v in report["baselines"].items()},
    }


def main() -> None:
    """``python bench/text.py [explanation|palr|review_summary ...]``: each part is merged
    into results/text.json, so parts can run in separate processes."""
    parts = sys.argv[1:] or ["explanation", "palr", "review_summary"]
    work = Path(tempfile.mkdtemp(prefix="recprompt-text-"))
    backend = CachedBackend(get_backend("local"))
    sizes = {"text_cases": TEXT_CASES, "palr_users": PALR_USERS, "budget": BUDGET}
    for part in parts:
        if part == "palr":
            value = _palr(load_dataset("ml-100k"), work, backend)
        else:
            spec = "p5.explanation" if part == "explanation" else "p5.review_summary"
            value = _text_run(
                part, spec, load_dataset("amazon-2018-all-beauty-5core"), work, backend
            )
        value |= {
            "model": "local (Gemma 3 270M Q4_K_M)",
            "sizes": sizes,
            "note": "seconds per case are wall time on a 2-core machine shared with other "
            f"benchmarks (load average {os.getloadavg()[0]:.1f} at the end), through the disk "
            "cache; compare them within this file only",
        }
        merge_result("text", part, value)
        print(part, "done", file=sys.stderr)


if __name__ == "__main__":
    main()
