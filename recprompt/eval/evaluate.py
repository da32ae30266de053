"""``recprompt eval``: a program against baselines on the same cases, resumably.

Baselines see exactly the program's candidates and the protocol's training split, so their
numbers sit beside the program's in one table under one protocol.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from recprompt.compile.program import Program
from recprompt.data import Dataset, Protocol
from recprompt.errors import InputError
from recprompt.eval.cases import Case
from recprompt.eval.report import (
    package_versions,
    position_table,
    write_markdown,
    write_plots,
    write_report,
)
from recprompt.eval.runner import (
    Limits,
    RunConfig,
    check_folder,
    make_cases,
    run_cases,
    train_split,
)
from recprompt.eval.scoring import ranking_values, score_records, summarize
from recprompt.eval.store import ResultStore
from recprompt.rank import ranking_diagnostics
from recprompt.types import ItemListOutput, ItemOutput, RatingOutput, TextOutput

__all__ = ["RANKING_BASELINES", "RATING_BASELINES", "evaluate", "spec_hash"]

RANKING_BASELINES = ("random", "popularity", "itemknn", "bpr")
RATING_BASELINES = ("global_mean", "user_mean", "item_mean")


def spec_hash(program: Program) -> str:
    """Hash of the spec and the attached demonstrations: what the prompts depend on."""
    state = {
        "spec": program.spec.model_dump(mode="json", by_alias=True),
        "demos": [(d.inputs, d.answer) for d in program.demos()],
    }
    return hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()


def _ranking_baselines(
    names: list[str], train: Dataset, cases: list[Case], seed: int
) -> dict[str, dict[str, Any]]:
    from recprompt.baselines import make_baseline

    out = {}
    rng = np.random.default_rng(seed)
    for name in names:
        model = make_baseline(name, seed=seed).fit(train)
        ranks = []
        for case in cases:
            candidates = case.meta["candidates"]
            scores = np.asarray(model.score(case.id, candidates), dtype=float)
            scores = scores + rng.uniform(0, 1e-9, len(scores))  # seeded random tie-break
            positive = scores[case.meta["positive_index"]]
            ranks.append(float((scores > positive).sum() + 1))
        out[name] = summarize(ranking_values(ranks), seed)
    return out


def _rating_baselines(
    names: list[str], train: Dataset, cases: list[Case], seed: int
) -> dict[str, dict[str, Any]]:
    from recprompt.baselines import make_baseline

    out = {}
    labels = np.array([c.label for c in cases], dtype=float)
    for name in names:
        model = make_baseline(name, seed=seed).fit(train)
        preds = np.array(
            [model.predict(c.meta["user_id"], c.meta["item_id"]) for c in cases], dtype=float
        )
        out[name] = summarize({"rmse": (preds - labels) ** 2, "mae": np.abs(preds - labels)}, seed)
    return out


def attach_declared_prior(program: Program, train: Dataset, seed: int) -> None:
    """Fit the collaborative prior a spec's ``rank:`` declares, on training data only."""
    declared = program.spec.rank
    if declared is None or declared.prior == "none":
        return
    if getattr(program, "rank_prior", None) is not None:
        return
    from recprompt.baselines import make_baseline
    from recprompt.rank import attach_prior

    attach_prior(program, make_baseline(declared.prior, seed=seed).fit(train))


def evaluate(
    program: Program,
    dataset: Dataset,
    protocol: Protocol,
    out: str | Path,
    *,
    baselines: list[str] | None = None,
    limits: Limits = Limits(),
    progress: bool = True,
) -> dict[str, Any]:
    """Run (or resume) the program over the protocol's cases and write the report."""
    out = Path(out)
    backend = program.resolve_backend()
    config = RunConfig(
        spec=program.spec.name,
        spec_hash=spec_hash(program),
        variant=program.spec.variant(program.variant).id,
        demos=len(program.demos()),
        model=backend.name,
        protocol=protocol.model_dump(mode="json"),
        temperature=program.temperature,
        seed=program.seed,
    )
    check_folder(out, config)
    cases = make_cases(program, dataset, protocol)
    if not cases:
        raise InputError("the protocol produced no cases", hint="check --users and the dataset")
    train = train_split(dataset, protocol)
    attach_declared_prior(program, train, protocol.seed)
    store = ResultStore(out / "results.jsonl")
    if program.spec.stages:  # stage outputs resume like cases
        from recprompt.compile.stages import attach_store

        attach_store(program, out / "stages.jsonl")
    usage = run_cases(program, cases, store, limits=limits, progress=progress)
    records = [store.records[c.id] for c in cases]
    fallback = float(np.nanmean(train.rating)) if train.has_ratings else 0.0
    scored = score_records(program.spec, records, fallback=fallback, seed=protocol.seed)
    output = program.spec.output
    is_ranking = program.spec.rank is not None or isinstance(output, ItemListOutput | ItemOutput)
    explicit = baselines is not None
    if baselines is None:
        baselines = list(RANKING_BASELINES if is_ranking else RATING_BASELINES)
        if not is_ranking and not isinstance(output, RatingOutput):
            baselines = []
    text = None
    if is_ranking:
        base = _ranking_baselines(baselines, train, cases, protocol.seed)
    elif isinstance(output, RatingOutput):
        base = _rating_baselines(baselines, train, cases, protocol.seed)
    elif isinstance(output, TextOutput):
        from recprompt.eval.text_eval import text_section

        chosen = None if baselines == [] and not explicit else baselines
        text = text_section(program.spec, records, cases, train, protocol.seed, chosen)
        scored["metrics"] = text["systems"]["program"]["metrics"]
        base = {k: v["metrics"] for k, v in text["systems"].items() if k != "program"}
    else:
        base = {}
    stored_usage = {
        key: sum(float(r.get("usage", {}).get(key, 0.0)) for r in records)
        for key in ("calls", "prompt_tokens", "completion_tokens", "cache_hits", "seconds")
    }
    report = {
        **config.as_dict(),
        "cases": len(cases),
        "metrics": scored["metrics"],
        "validity": scored["validity"],
        "invalid_policy": "unparseable ranking = miss; unparseable rating = training mean "
        f"({fallback:.3f})",
        "baselines": base,
        "dataset": {"name": dataset.name, **dataset.stats},
        "position": position_table(records) if is_ranking else [],
        "diagnostics": ranking_diagnostics(records, train.popularity(), k=10, bucket=5)
        if is_ranking
        else {},
        "usage": {
            "this_invocation": usage.as_dict(),
            "all_cases": stored_usage,
            "store_dropped_corrupt_lines": store.dropped,
        },
        "versions": package_versions(),
    }
    if text is not None:
        report["text"] = text
    stages = getattr(program, "stage_runner", None)
    if stages is not None:
        report["stages"] = stages.report(stored_usage)
    write_report(out, report)
    write_markdown(out, report)
    write_plots(out, report)
    return report
