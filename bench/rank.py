"""Ranking strategies on MovieLens 100K, beside popularity and BPR-MF, and the fused program.

Protocol: leave-one-out, 1 positive + 19 uniformly sampled negatives, a seeded sample of
users (the same users for every strategy; pairwise PRP runs on the first few of them only,
because all-pair costs N(N-1) = 380 calls per user), history = last 20 items, default local
model (Gemma 3 270M). Per strategy: NDCG@10, HR@10, calls, tokens and seconds per user, and
the baselines' NDCG@10 on exactly the same users. Fusion: the LLM scores of one strategy
mixed with a prior (BPR-MF, popularity); the weight is tuned on validation users
(``Protocol(target="valid")``) and reported on the test users against its two parts.

    python bench/rank.py --users 10 --prp-users 3 --allpair-users 1
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recprompt.compile.program import Program
from recprompt.data import Protocol, load_dataset, split_dataset
from recprompt.eval.cases import Case, build_cases
from recprompt.rank import order_by, rank, ranking_diagnostics, tune_weight
from recprompt.rank.base import tiebreak_rng
from recprompt.rank.fusion import fuse
from recprompt.spec import load_spec

from _common import write_result

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("RECPROMPT_DATA", "/work/shared/data")) / "ml-100k"
K = 10


def baseline(name: str, train: Any, seed: int) -> Any:
    try:
        from recprompt.baselines import make_baseline
    except ImportError:  # the factory is still being finished: build the classes directly
        from recprompt.baselines import BPRMF, Popularity

        return (BPRMF(seed=seed) if name == "bpr" else Popularity()).fit(train)
    return make_baseline(name, seed=seed).fit(train)


def metrics(ranking: list[str], label: str) -> tuple[float, float]:
    position = ranking.index(label) + 1 if label in ranking else 10**9
    hit = float(position <= K)
    return (1.0 / float(np.log2(position + 1)) if hit else 0.0), hit


def baseline_scores(model: Any, case: Case) -> dict[str, float]:
    values = np.asarray(model.score(case.meta["user_id"], case.meta["candidates"]), float)
    return dict(zip(case.meta["candidate_names"], values.tolist(), strict=True))


def baseline_row(model: Any, cases: list[Case], seed: int) -> dict[str, float]:
    ndcg, hr = [], []
    for case in cases:
        scores = baseline_scores(model, case)
        names = list(scores)
        n, h = metrics(
            order_by(scores, list(tiebreak_rng(seed, names).permutation(names))), case.label
        )
        ndcg.append(n)
        hr.append(h)
    return {"ndcg@10": float(np.mean(ndcg)), "hr@10": float(np.mean(hr))}


def run_strategy(program: Program, cases: list[Case]) -> tuple[list[dict], list[Any]]:
    records, results = [], []
    for case in cases:
        result = rank(program, case.inputs, case.meta["candidate_items"], user=case.id)
        usage = result.usage.as_dict()
        records.append(
            {
                "id": case.id,
                "label": case.label,
                "value": result.ranking,
                "error": result.error,
                "usage": usage,
                "meta": case.meta,
            }
        )
        results.append(result)
        print(
            f"  user {case.id}: rank {result.ranking.index(case.label) + 1}, "
            f"{usage['calls']} calls, {usage['seconds']:.1f} s",
            flush=True,
        )
    return records, results


def spec_for(name: str, **overrides: Any) -> Program:
    spec = load_spec(ROOT / "recprompt" / "templates" / "rank" / f"{name}.yaml")
    if overrides:
        spec = spec.model_copy(update={"rank": spec.rank.model_copy(update=overrides)})
    return Program(spec)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--prp-users", type=int, default=3)
    parser.add_argument("--allpair-users", type=int, default=1)
    parser.add_argument("--fusion", default="letters", help="strategy fused with the prior")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--strategies",
        default="letters,likelihood,pointwise,pairwise-heap,listwise,"
        "pairwise-allpair,pairwise-sliding",
    )
    args = parser.parse_args()
    ds = load_dataset(DATA)
    protocol = Protocol(
        dataset="ml-100k", n_negatives=19, n_users=args.users, seed=args.seed, history_length=20
    )
    train = split_dataset(ds, protocol).train
    priors = {
        "popularity": baseline("popularity", train, args.seed),
        "bpr": baseline("bpr", train, args.seed),
    }
    popularity = train.popularity()
    plans = {
        "letters": ("letters", {}, args.users),
        "likelihood": ("likelihood", {}, args.users),
        "pointwise": ("pointwise", {}, args.users),
        "listwise": ("listwise", {}, args.users),
        "pairwise-heap": ("pairwise", {"method": "heap"}, args.prp_users),
        "pairwise-sliding": ("pairwise", {"method": "sliding"}, args.prp_users),
        "pairwise-allpair": ("pairwise", {"method": "allpair"}, args.allpair_users),
    }
    out: dict[str, Any] = {
        "protocol": protocol.model_dump(mode="json"),
        "k": K,
        "model": "local:gemma-3-270m (Q4_K_M)",
        "strategies": {},
        "baselines": {},
        "notes": [],
    }
    first = spec_for("letters")
    test_cases = list(build_cases(first.spec, ds, protocol))[: args.users]
    for p, model in priors.items():
        row = baseline_row(model, test_cases, args.seed)
        out["baselines"][p] = {"users": len(test_cases), **row}
    out["notes"].append(
        f"pairwise methods ran on the first {args.prp_users} (heap, sliding) and "
        f"{args.allpair_users} (all-pair) of the {args.users} users: compare them with their "
        "same_users_baselines, not with the full-sample baselines"
    )
    for label in args.strategies.split(","):
        name, overrides, n_users = plans[label]
        program = spec_for(name, **overrides)
        cases = list(build_cases(program.spec, ds, protocol))[:n_users]
        print(f"{label}: {len(cases)} users", flush=True)
        started = time.perf_counter()
        records, results = run_strategy(program, cases)
        ranks = [metrics(r["value"], r["label"]) for r in records]
        out["strategies"][label] = {
            "users": len(cases),
            "ndcg@10": float(np.mean([n for n, _ in ranks])),
            "hr@10": float(np.mean([h for _, h in ranks])),
            "errors": sum(1 for r in records if r["error"]),
            "wall_seconds": time.perf_counter() - started,
            "same_users_baselines": {
                p: baseline_row(m, cases, args.seed)["ndcg@10"] for p, m in priors.items()
            },
            "diagnostics": ranking_diagnostics(records, popularity, K, bucket=5),
        }
        write_result("rank", out)
        if label == args.fusion:  # right away: the fusion result matters more than PRP's
            test = [(r.llm_scores, c) for r, c in zip(results, cases, strict=True)]
            out["fusion"] = fusion(args, ds, priors, test)
            write_result("rank", out)


def fusion(args: Any, ds: Any, priors: dict[str, Any], test: list[Any]) -> dict[str, Any]:
    """Tune w on validation users, then report NDCG@10 of LLM, prior and fused on test."""
    program = spec_for(args.fusion)
    valid = Protocol(
        dataset="ml-100k",
        n_negatives=19,
        n_users=args.users,
        seed=args.seed,
        history_length=20,
        target="valid",
    )
    valid_cases = list(build_cases(program.spec, ds, valid))
    print(f"fusion: {args.fusion} on {len(valid_cases)} validation users", flush=True)
    _, valid_results = run_strategy(program, valid_cases)
    out: dict[str, Any] = {
        "strategy": args.fusion,
        "valid_users": len(valid_cases),
        "test_users": len(test),
    }
    for p, model in priors.items():
        tuned = tune_weight(
            [
                (r.llm_scores, baseline_scores(model, c), c.label)
                for r, c in zip(valid_results, valid_cases, strict=True)
            ],
            seed=args.seed,
        )
        row: dict[str, Any] = {"weight": tuned.weight, "valid_table": tuned.table}
        for label, w in (("llm_alone", 0.0), ("prior_alone", 1.0), ("fused", tuned.weight)):
            scores = []
            for llm, case in test:
                fused = fuse(llm, baseline_scores(model, case), w)
                names = list(llm)
                tb = list(tiebreak_rng(args.seed, names).permutation(names))
                scores.append(metrics(order_by(fused, tb), case.label)[0])
            row[f"{label}_ndcg@10"] = float(np.mean(scores))
        out[p] = row
    return out


if __name__ == "__main__":
    main()
