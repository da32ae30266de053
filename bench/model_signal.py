"""Does the model's signal count? Calibrated letters, likelihood, fusion and rerank vs baselines.

Per dataset (ML-100K; Amazon 2018 All_Beauty 5-core), seed 0, leave-one-out, history = the
last ``--history`` items, default local model (Gemma 3 270M), disjoint users: ``--test``
test users ranked on their last item, ``--valid`` *other* users ranked the same way
(validation tunes the fusion weight and estimates the calibration priors; no test label is
read before the test numbers are computed). Two candidate
protocols:

* ``sampled``: 1 positive + 19 uniformly sampled negatives;
* ``shortlist``: BPR-MF's top 20 over the whole catalogue (fitted on training data only),
  shuffled; a user whose positive BPR-MF missed is a miss.

Programs: letters raw, letters calibrated (contextual: 4 content-free cases; PriDe: 4 cases
x 5 of the 20 cyclic shifts), likelihood, and each fused with BPR-MF (weight tuned on
validation users), beside random, popularity, item-kNN and BPR-MF on the same candidates.
Paired differences (bootstrap CI, sign-flip p-value) for the issue's targets. Model calls go
through the disk cache, so a rerun resumes where a killed one stopped.

    nice -n 10 python bench/model_signal.py --test 300 --valid 50 --history 10
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from recprompt.backends import get_backend
from recprompt.backends.cache import CachedBackend
from recprompt.baselines import make_baseline
from recprompt.compile.program import Program
from recprompt.data import Protocol, load_dataset
from recprompt.errors import InputError
from recprompt.eval.cases import Case, build_cases
from recprompt.metrics.paired import paired_difference
from recprompt.rank import order_by, rank, tune_weight
from recprompt.rank.base import tiebreak_rng
from recprompt.rank.calibration import contextual_prior, pride_prior
from recprompt.rank.fusion import fuse
from recprompt.rank.tune import validation_cases
from recprompt.spec import load_spec
from recprompt.spec.template import LETTERS

from _common import RESULTS

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("RECPROMPT_DATA", "/work/shared/data"))
DATASETS = {
    "ml-100k": ("ml-100k", "movies"),
    "amazon-all-beauty": ("amazon-2018-all-beauty-5core", "products"),
}
K = 10
BASELINES = ("random", "popularity", "itemknn", "bpr")


def ndcg(ranking: list[str], label: str) -> tuple[float, float]:
    position = ranking.index(label) + 1 if label in ranking else 10**9
    hit = float(position <= K)
    return (1.0 / float(np.log2(position + 1)) if hit else 0.0), hit


def ranked(scores: dict[str, float], seed: int) -> list[str]:
    names = list(scores)
    return order_by(scores, [str(n) for n in tiebreak_rng(seed, names).permutation(names)])


def per_case(score_sets: list[dict[str, float]], cases: list[Case], seed: int) -> np.ndarray:
    """(ndcg, hr) per case for one system's scores."""
    return np.array(
        [ndcg(ranked(s, seed), c.label) for s, c in zip(score_sets, cases, strict=True)]
    )


_MODELS: dict[tuple[str, str, int], Any] = {}


def fitted(name: str, train: Any, seed: int) -> Any:
    """Baselines fitted once per training set (BPR-MF takes a while on a shared machine)."""
    key = (name, train.name, len(train))
    if key not in _MODELS:
        _MODELS[key] = make_baseline(name, seed=seed).fit(train)
    return _MODELS[key]


def baseline_scores(model: Any, case: Case) -> dict[str, float]:
    values = np.asarray(model.score(case.meta["user_id"], case.meta["candidates"]), float)
    return dict(zip(case.meta["candidate_names"], values.tolist(), strict=True))


def program(name: str, backend: Any, kind: str) -> Program:
    spec = load_spec(ROOT / "recprompt" / "templates" / "rank" / f"{name}.yaml")
    inputs = dict(spec.inputs)
    inputs["item_kind"] = inputs["item_kind"].model_copy(update={"default": kind})
    return Program(spec.model_copy(update={"inputs": inputs}), backend=backend)


def run(prog: Program, cases: list[Case], label: str, deadline: float = 0.0) -> dict[str, Any]:
    """Raw LLM scores, calls and seconds per case (answers come from the disk cache on a
    rerun, so seconds are only comparable within one fresh run). Stops before a case that
    would start after ``deadline`` (epoch seconds; 0 = none): the results then cover the
    done prefix, and the report says how many users that is."""
    scores, calls, seconds, ids = [], [], [], []
    started = time.perf_counter()
    backend = prog.backend
    for n, case in enumerate(cases, 1):
        if deadline and time.time() > deadline and not isinstance(prog.backend, CacheOnly):
            print(f"  {label}: deadline after {n - 1} users; the rest only if cached", flush=True)
            prog.backend = CacheOnly(backend)
        try:
            result = rank(prog, case.inputs, case.meta["candidate_items"], user=case.id)
        except NotCached:
            continue
        except InputError as exc:  # e.g. two candidates with one title: no model answer
            print(f"  {label}: user {case.id} not ranked ({exc.message}); scored as ties")
            scores.append(dict.fromkeys(case.meta["candidate_names"], 0.0))
            calls.append(0)
            seconds.append(0.0)
            ids.append(case.id)
            continue
        ids.append(case.id)
        scores.append(result.llm_scores)
        calls.append(result.usage.calls + result.usage.cache_hits)  # what the program asks
        seconds.append(None if result.usage.cache_hits else result.usage.seconds)
        if n % 25 == 0:
            print(
                f"  {label}: {n}/{len(cases)} ({time.perf_counter() - started:.0f} s)", flush=True
            )
    prog.backend = backend
    return {"scores": scores, "calls": calls, "seconds": seconds, "ids": ids}


class NotCached(Exception):
    """A model call the disk cache cannot answer, after the deadline."""


class CacheOnly:
    """After ``--until``: answer from the disk cache only, so that the users other processes
    (``--warm``) finished still count, whatever order they were computed in."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.backend = inner, inner
        self.name, self.supports_logits = inner.name, inner.supports_logits
        self.usage = inner.usage

    def score(self, prompt: str, continuations: Any) -> list[float]:
        if self.inner.will_call("score", prompt, continuations=list(continuations)):
            raise NotCached(prompt[:40])
        return self.inner.score(prompt, continuations)


def calibrated(raw: list[dict[str, float]], cases: list[Case], prior: Any) -> list[dict]:
    out = []
    for scores, case in zip(raw, cases, strict=True):
        names = case.meta["candidate_names"]  # the order the model saw: letter = position
        labels = list(LETTERS[: len(names)])
        adjusted = prior.adjust(labels, [scores[n] for n in names])
        out.append(dict(zip(names, adjusted, strict=True)))
    return out


def row(values: np.ndarray, calls: float, seconds: float, **extra: Any) -> dict[str, Any]:
    return {
        "ndcg@10": float(values[:, 0].mean()),
        "hr@10": float(values[:, 1].mean()),
        "calls_per_user": calls,
        "seconds_per_user": seconds,
        **extra,
    }


def paired(a: np.ndarray, b: np.ndarray, seed: int) -> dict[str, Any]:
    d = paired_difference(a[:, 0], b[:, 0], seed=seed)
    return {
        "a": d.mean_a,
        "b": d.mean_b,
        "b_minus_a": d.difference,
        "ci95": [d.low, d.high],
        "p_value": d.p_value,
        "cases": d.cases,
    }


def protocol_block(
    name: str,
    ds: Any,
    protocol: Protocol,
    programs: dict[str, Program],
    args: Any,
) -> dict[str, Any]:
    """One dataset under one candidate protocol: every program and baseline, paired."""
    seed = protocol.seed
    first = next(iter(programs.values()))
    test = list(build_cases(first.spec, ds, protocol))
    valid = validation_cases(first, ds, protocol, {c.id for c in test}, args.valid)
    assert not {c.id for c in valid} & {c.id for c in test}
    planned = len(test)
    if args.warm:  # fill the disk cache from the other end of the test users, then stop
        for prog in programs.values():
            order = test[::-1] if args.warm_from is None else test[args.warm_from :]
            run(prog, order, "warm", deadline(args))
        return {}
    runs: dict[str, Any] = {}
    for label, prog in programs.items():
        print(f"{name}: {label} on {len(valid)} validation + {len(test)} test users", flush=True)
        v = run(prog, valid, f"{label}/valid")
        priors = {}
        if label.startswith("letters"):  # estimated before the test users are ranked
            for method in args.calibration.split(","):
                # the same estimation cases recprompt eval draws (validation users, seeded)
                sample = validation_cases(
                    prog, ds, protocol, {c.id for c in test}, args.calibration_cases
                )
                inputs = [c.inputs for c in sample]
                started = time.perf_counter()
                if method == "contextual":
                    prior = contextual_prior(prog, inputs)
                else:
                    prior = pride_prior(prog, inputs, args.pride_shifts)
                priors[method] = (prior, time.perf_counter() - started)
        t = run(prog, test, f"{label}/test", deadline(args))
        runs[label] = (v, t, priors)
        done = set(t["ids"])
        test = [c for c in test if c.id in done]
    keep = {c.id for c in test}
    for label in runs:  # every program on the users all of them finished
        v, t, priors = runs[label]
        pick = [n for n, i in enumerate(t["ids"]) if i in keep]
        runs[label] = (v, {k: [vals[n] for n in pick] for k, vals in t.items()}, priors)
    from recprompt.eval.runner import train_split

    train_test = train_split(ds, protocol)  # no user's last item: validation users' neither
    prior_test = prior_valid = fitted("bpr", train_test, seed)
    systems: dict[str, np.ndarray] = {}
    block: dict[str, Any] = {
        "protocol": protocol.model_dump(mode="json"),
        "test_users": len(test),
        "test_users_planned": planned,
        "test_user_ids": [c.id for c in test],
        "valid_users": len(valid),
        "disjoint_users": True,
        "programs": {},
        "baselines": {},
    }
    for b in BASELINES:
        model = fitted(b, train_test, seed)
        systems[b] = per_case([baseline_scores(model, c) for c in test], test, seed)
        block["baselines"][b] = row(systems[b], 0.0, 0.0)
    prior_test_scores = [baseline_scores(prior_test, c) for c in test]
    prior_valid_scores = [baseline_scores(prior_valid, c) for c in valid]
    for label in programs:
        v, t, priors = runs[label]
        calls = float(np.mean(t["calls"]))
        fresh = [x for x in t["seconds"] if x is not None]  # cases the model answered now
        secs = float(statistics.median(fresh)) if fresh else None
        variants: dict[str, tuple[list, list, float, dict]] = {
            label: (v["scores"], t["scores"], 0.0, {})
        }
        for method, (prior, spent) in priors.items():
            info = {"prior_calls": prior.calls, "prior_seconds": spent, **prior.as_dict()}
            variants[f"{label}+{method}"] = (
                calibrated(v["scores"], valid, prior),
                calibrated(t["scores"], test, prior),
                prior.calls / len(test),
                info,
            )
        for key, (vs, ts, extra_calls, info) in variants.items():
            systems[key] = per_case(ts, test, seed)
            block["programs"][key] = row(
                systems[key],
                calls + extra_calls,
                secs,
                valid_ndcg10=float(per_case(vs, valid, seed)[:, 0].mean()),
                **({"calibration": info} if info else {}),
            )
            tuned = tune_weight(
                [(s, p, c.label) for s, p, c in zip(vs, prior_valid_scores, valid, strict=True)],
                seed=seed,
            )
            fused = [fuse(s, p, tuned.weight) for s, p in zip(ts, prior_test_scores, strict=True)]
            systems[f"{key}+bpr"] = per_case(fused, test, seed)
            block["programs"][f"{key}+bpr"] = row(
                systems[f"{key}+bpr"],
                calls + extra_calls,
                secs,
                weight=tuned.weight,
                valid_curve={f"{w:.1f}": m for w, m in tuned.table.items()},
            )
        write_partial(args, name, block, systems, seed)
    return block


def deadline(args: Any) -> float:
    """``--until HH:MM`` (UTC, today) as epoch seconds; 0 when not given."""
    if not args.until:
        return 0.0
    import datetime as dt

    hour, minute = (int(x) for x in args.until.split(":"))
    now = dt.datetime.now(dt.UTC)
    return now.replace(hour=hour, minute=minute, second=0, microsecond=0).timestamp()


def comparisons(systems: dict[str, np.ndarray], seed: int) -> dict[str, Any]:
    """The issue's targets as paired differences on the same test cases."""
    out: dict[str, Any] = {}
    llm_only = [k for k in systems if k not in BASELINES and not k.endswith("+bpr")]
    for key in llm_only:  # above chance at all? (the calibrated letters' target)
        out[f"{key} vs random"] = paired(systems["random"], systems[key], seed)
        out[f"{key} vs popularity"] = paired(systems["popularity"], systems[key], seed)
        if f"{key}+bpr" in systems:
            out[f"{key}+bpr vs bpr"] = paired(systems["bpr"], systems[f"{key}+bpr"], seed)
    if llm_only:
        best = max(llm_only, key=lambda k: systems[k][:, 0].mean())
        out["best_llm_only"] = {
            "program": best,
            **paired(systems["popularity"], systems[best], seed),
        }
    return out


RESULT: dict[str, Any] = {}
RAN: set[str] = set()


def write_partial(
    args: Any, name: str, block: dict[str, Any], systems: dict[str, np.ndarray], seed: int
) -> None:
    block["paired"] = comparisons(systems, seed)
    dataset, proto = name.split("/")
    done = RESULT.setdefault("datasets", {}).setdefault(dataset, {}).get(proto, {})
    programs = {**done.get("programs", {}), **block["programs"]}
    for key, values in block["programs"].items():  # all answered from the disk cache: keep
        earlier = done.get("programs", {}).get(key, {})  # the seconds of the run that called
        if values["seconds_per_user"] is None and earlier.get("seconds_per_user") is not None:
            values["seconds_per_user"] = earlier["seconds_per_user"]
    merged = {**done, **block, "programs": programs}
    if done.get("_systems"):  # earlier stages' per-case values, for the paired comparisons
        systems = {**{k: np.array(v) for k, v in done["_systems"].items()}, **systems}
        merged["paired"] = comparisons(systems, seed)
    merged["_systems"] = {k: v.tolist() for k, v in systems.items()}
    RESULT["datasets"][dataset][proto] = merged
    save(dataset)


def save(dataset: str) -> None:
    """Merge this process's dataset into signal.json under a lock (one process per dataset
    may run at once) and write it atomically."""
    import fcntl

    from recprompt._files import write_text_atomic

    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / ".signal.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = RESULTS / "signal.json"
        current = json.loads(path.read_text()) if path.exists() else {}
        current.update({k: v for k, v in RESULT.items() if k != "datasets"})
        mine = RESULT["datasets"][dataset]  # protocols run here replace theirs, others stay
        current.setdefault("datasets", {}).setdefault(dataset, {}).update(
            {proto: mine[proto] for proto in RAN if proto in mine}
        )
        current["machine"] = {"python": platform.python_version(), "cpus": 2}
        write_text_atomic(path, json.dumps(current, indent=2, sort_keys=True) + "\n")


def recompute_paired(seed: int) -> None:
    """Rewrite every protocol's paired comparisons from the per-case values signal.json
    keeps (``_systems``), e.g. after a comparison was added; no model is loaded."""
    import fcntl

    from recprompt._files import write_text_atomic

    with open(RESULTS / ".signal.lock", "w") as lock:  # running benches merge into it too
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = RESULTS / "signal.json"
        result = json.loads(path.read_text())
        for protocols in result["datasets"].values():
            for block in protocols.values():
                systems = {k: np.array(v) for k, v in block["_systems"].items()}
                block["paired"] = comparisons(systems, seed)
        write_text_atomic(path, json.dumps(result, indent=2, sort_keys=True) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--test", type=int, default=300)
    parser.add_argument("--valid", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--datasets", default="ml-100k,amazon-all-beauty")
    parser.add_argument("--protocols", default="sampled,shortlist")
    parser.add_argument("--programs", default="letters,likelihood")
    parser.add_argument("--shortlist-programs", default="letters")
    parser.add_argument("--calibration", default="contextual,pride")
    parser.add_argument("--calibration-cases", type=int, default=4)
    parser.add_argument("--fresh", action="store_true", help="start signal.json over")
    parser.add_argument("--until", default="", help="UTC HH:MM: rank test users until then")
    parser.add_argument("--warm", action="store_true", help="only fill the cache, reversed")
    parser.add_argument("--warm-from", type=int, default=None, help="warm forward from user K")
    parser.add_argument("--history", type=int, default=10, help="last L history items")
    parser.add_argument("--pride-shifts", type=int, default=5, help="PriDe shifts per case")
    parser.add_argument(
        "--paired-only", action="store_true", help="recompute the paired comparisons; no model"
    )
    args = parser.parse_args()
    if args.paired_only:
        return recompute_paired(args.seed)
    backend = CachedBackend(get_backend("local"))
    previous = RESULTS / "signal.json"
    if previous.exists() and not args.fresh:  # stages run one by one: keep earlier ones
        RESULT.update(json.loads(previous.read_text()))
    RESULT.update(
        {
            "model": "local:gemma-3-270m (Q4_K_M)",
            "k": K,
            "seed": args.seed,
            "notes": [
                "validation and test users are disjoint; validation users are ranked like the "
                "test users (last item, the same prior), so no test label is read",
                "calibrated calls_per_user include the prior's calls spread over the test users",
                "calls_per_user counts the model calls a program asks for, disk-cache answers "
                "included; seconds_per_user is the median over test users the model answered "
                "(not the cache), kept from the run that called it",
            ],
        }
    )
    for dataset in args.datasets.split(","):
        folder, kind = DATASETS[dataset]
        ds = load_dataset(DATA / folder)
        for proto in args.protocols.split(","):
            extra = {"retriever": "bpr", "shortlist": 20} if proto == "shortlist" else {}
            protocol = Protocol(
                dataset=dataset,
                n_negatives=19,
                n_users=args.test,
                seed=args.seed,
                history_length=args.history,
                **extra,
            )
            names = args.programs if proto == "sampled" else args.shortlist_programs
            programs = {n: program(n, backend, kind) for n in names.split(",") if n}
            RAN.add(proto)
            if not protocol_block(f"{dataset}/{proto}", ds, protocol, programs, args):
                continue  # --warm
            block = RESULT["datasets"][dataset][proto]
            if proto == "shortlist":
                test = list(build_cases(next(iter(programs.values())).spec, ds, protocol))
                finished = set(block["test_user_ids"])  # the users the programs finished
                test = [c for c in test if c.id in finished]
                ranks = [c.meta["retriever_rank"] for c in test]
                block["retriever"] = {
                    "name": "bpr",
                    "recall@20": float(np.mean([r is not None for r in ranks])),
                    "ndcg@10": float(
                        np.mean([1 / np.log2(r + 1) if r and r <= K else 0.0 for r in ranks])
                    ),
                }
            RESULT["datasets"][dataset][proto] = block
            save(dataset)


if __name__ == "__main__":
    main()
