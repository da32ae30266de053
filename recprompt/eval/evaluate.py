"""``recprompt eval``: a program against baselines on the same cases, resumably.

Baselines see exactly the program's candidates and the protocol's training split, so their
numbers sit beside the program's in one table under one protocol.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recprompt._files import exclusive_lock
from recprompt.backends.base import Usage
from recprompt.compile.program import Program
from recprompt.data import Dataset, Protocol
from recprompt.environment import numeric_environment
from recprompt.errors import BudgetError, InputError
from recprompt.eval import signal
from recprompt.eval.cases import Case, _is_ranking, _top_k
from recprompt.eval.checks import (
    check_candidates,
    check_case_candidates,
    idle_prior,
    other_reason,
    short_shortlists,
    short_users,
    user_counts,
)
from recprompt.eval.html import write_case_files
from recprompt.eval.identity import cases_fingerprint, dataset_fingerprint, model_identity
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
    metered,
    run_cases,
    run_id,
    train_split,
)
from recprompt.eval.scoring import per_case_values, ranking_values, score_records, summarize
from recprompt.eval.significance import paired_table
from recprompt.eval.store import ResultStore
from recprompt.rank import ranking_diagnostics
from recprompt.spec import Spec
from recprompt.types import ItemListOutput, ItemOutput, RatingOutput, TextOutput

__all__ = [
    "ENGINES",
    "OUTPUT_FILES",
    "RANKING_BASELINES",
    "RATING_BASELINES",
    "check_engine",
    "check_plan",
    "evaluate",
    "spec_hash",
]

OUTPUT_FILES = (
    "run.json",
    "results.jsonl",
    "report.json",
    "report.md",
    "metrics.png",
    "position_bias.png",
    "paired.png",
    "per_case.json",
    "report.html",
    "report.png",
    "position_bias_calibration.png",
    "stages.jsonl",
    "prepared.json",
)
"""The files ``evaluate`` writes into its folder."""

RANKING_BASELINES = ("random", "popularity", "itemknn", "bpr")
RATING_BASELINES = ("global_mean", "user_mean", "item_mean")


def spec_hash(program: Program, spec: Spec | None = None) -> str:
    """Hash of the spec (``program``'s own unless given) and the attached demonstrations:
    what the prompts depend on."""
    state = {
        "spec": (spec or program.spec).model_dump(mode="json", by_alias=True),
        "demos": [(d.inputs, d.answer) for d in program.demos()],
    }
    return hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()


def _ranking_baselines(
    names: list[str], train: Dataset, cases: list[Case], seed: int
) -> dict[str, dict[str, np.ndarray]]:
    """Per-case metric values of each baseline on the program's candidates."""
    from recprompt.baselines import make_baseline
    from recprompt.baselines.simple import expected_random_values
    from recprompt.eval.scoring import RANK_KS

    out = {}
    rng = np.random.default_rng(seed)
    for name in names:
        if name == "random":  # its expected value is exact; one seeded draw is not
            sizes = [len(case.meta["candidates"]) for case in cases]
            # a positive the retriever missed is a miss for every system, random included
            found = np.array([c.meta.get("positive_index") is not None for c in cases], float)
            expected = expected_random_values(sizes, RANK_KS)
            out[name] = {metric: vector * found for metric, vector in expected.items()}
            continue
        model = make_baseline(name, seed=seed).fit(train)
        ranks = []
        for case in cases:
            candidates = case.meta["candidates"]
            scores = np.asarray(model.score(case.id, candidates), dtype=float)
            scores = scores + rng.uniform(0, 1e-9, len(scores))  # seeded random tie-break
            if case.meta["positive_index"] is None:  # the retriever missed it: a miss
                ranks.append(float("inf"))
                continue
            positive = scores[case.meta["positive_index"]]
            ranks.append(float((scores > positive).sum() + 1))
        out[name] = ranking_values(ranks)
    return out


def _rating_baselines(
    names: list[str], train: Dataset, cases: list[Case], seed: int
) -> dict[str, dict[str, np.ndarray]]:
    from recprompt.baselines import make_baseline

    out = {}
    labels = np.array([c.label for c in cases], dtype=float)
    for name in names:
        model = make_baseline(name, seed=seed).fit(train)
        preds = np.array(
            [model.predict(c.meta["user_id"], c.meta["item_id"]) for c in cases], dtype=float
        )
        out[name] = {"rmse": (preds - labels) ** 2, "mae": np.abs(preds - labels)}
    return out


ENGINES = ("local", "ray")


def check_engine(engine: str, ray_address: str | None, ray_actors: int = 2) -> None:
    """Refuse an unknown engine or Ray options without Ray, before any work."""
    if engine not in ENGINES:
        raise InputError(
            f"unknown engine {engine!r}",
            hint="use --engine local (this process, --concurrency threads) or --engine ray",
        )
    if engine != "ray" and ray_address is not None:
        raise InputError("--ray-address needs --engine ray", hint="add --engine ray")
    if isinstance(ray_actors, bool) or not isinstance(ray_actors, int) or ray_actors < 1:
        raise InputError(f"--ray-actors must be a positive integer, got {ray_actors!r}")


def check_plan(
    spec: Spec, baselines: list[str] | None, retriever: str | None, shortlist: int | None = None
) -> None:
    """Refuse, before any folder is made, baselines or a retriever that cannot fit ``spec``.

    Ranking specs take every baseline (the means rank by predicted rating); rating specs
    only those that predict a rating; retrieve-then-rerank only fits ranking specs, with a
    shortlist of at least the K they rank. (Text specs name their own baselines, checked
    where they are built.)
    """
    from recprompt.baselines import BASELINES

    ranking = _is_ranking(spec)
    if retriever is not None and not ranking:
        raise InputError(
            f"--retriever {retriever} needs a ranking spec, but {spec.name} is a "
            f"{spec.output.type} spec: it has no candidates to shortlist",
            hint="drop --retriever and --shortlist, or evaluate a ranking spec",
        )
    if retriever is not None and shortlist is not None:
        from recprompt.data.retrieval import check_shortlist

        check_shortlist(shortlist, _top_k(spec), f"spec {spec.name!r}")
    rating = isinstance(spec.output, RatingOutput)
    if not baselines or not (ranking or rating):
        return
    fits = tuple(BASELINES) if ranking else RATING_BASELINES
    wrong = ", ".join(name for name in baselines if name not in fits)
    if not wrong:
        return
    if ranking:
        raise InputError(f"unknown baseline(s): {wrong}", hint=f"choose from {', '.join(fits)}")
    raise InputError(
        f"baseline(s) {wrong} cannot predict the ratings of {spec.name}, a rating spec",
        hint=f"choose among --baselines {','.join(fits)} (or 'none')",
    )


def _preparation_calls(prepared: dict[str, Any]) -> dict[str, int]:
    """Model calls spent on validation users before the test cases (calibration, fusion
    tuning): part of what a run costs, so the Cost section counts them beside the cases'."""
    calls = {
        "calibration_calls": int(prepared.get("calibration", {}).get("calls", 0)),
        "fusion_tuning_calls": int(prepared.get("fusion", {}).get("calls", 0)),
    }
    return {**calls, "calls": sum(calls.values())}


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


def _demo_pool_hash(program: Program) -> str:
    """Hash of the selector and its pool: with a selector, demos are chosen per input."""
    pool = [e.toDict() if hasattr(e, "toDict") else dict(e) for e in program.demo_pool]
    state = {"selector": type(program.selector).__name__ if program.selector else None}
    state["pool"] = pool if program.selector is not None else []
    return hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()


def _chosen_baselines(
    program: Program, chosen: list[str] | None, is_ranking: bool, baselines_only: bool
) -> list[str]:
    """The baselines of the report: the chosen ones, else the defaults of the output type."""
    output = program.spec.output
    has_baselines = is_ranking or isinstance(output, RatingOutput)
    if chosen is None:
        chosen = list(RANKING_BASELINES if is_ranking else RATING_BASELINES)
        if not has_baselines:
            chosen = []
    if baselines_only and isinstance(output, TextOutput):
        raise InputError(
            f"a baselines-only run of {program.spec.name} is not supported: a text spec's "
            "baselines are scored beside the model's outputs, in a run with a model",
            hint="drop --baselines-only / --model none (the report then gives the text "
            "baselines too), or use a ranking or rating spec",
        )
    if baselines_only and not (chosen and has_baselines):
        why = f"{output.type} outputs have no baselines" if not has_baselines else "none chosen"
        raise InputError(
            f"a baselines-only run of {program.spec.name} would report nothing: {why}",
            hint="choose --baselines, or use a ranking or rating spec"
            if has_baselines
            else "use a ranking or rating spec",
        )
    return chosen


def run_config(
    program: Program,
    dataset: Dataset,
    protocol: Protocol,
    cases: list[Case],
    *,
    backend: Any | None,
) -> RunConfig:
    """Everything that determines the results of this run, content fingerprints included."""
    return RunConfig(
        spec=program.spec.name,
        spec_hash=spec_hash(program),
        variant=program.spec.variant(program.variant).id,
        demos=len(program.demos()),
        model=backend.name if backend is not None else "none",
        protocol=protocol.model_dump(mode="json"),
        temperature=program.temperature,
        seed=program.seed,
        data={
            "name": dataset.name,
            "fingerprint": dataset_fingerprint(dataset),
            "interactions": len(dataset),
        },
        cases={"count": len(cases), "fingerprint": cases_fingerprint(cases)},
        demo_pool=_demo_pool_hash(program),
        model_identity=model_identity(backend) if backend is not None else {"name": "none"},
    )


def evaluate(
    program: Program,
    dataset: Dataset,
    protocol: Protocol,
    out: str | Path,
    *,
    baselines: list[str] | None = None,
    limits: Limits = Limits(),
    progress: bool = True,
    baselines_only: bool = False,
    on_warning: Callable[[str], None] | None = None,
    concurrency: int = 1,
    engine: str = "local",
    ray_address: str | None = None,
    ray_actors: int = 2,
) -> dict[str, Any]:
    """Run (or resume) the program over the protocol's cases and write the report.

    The folder ``out`` is locked for the whole run (a second run on it stops at once) and
    tied to this run by ``run.json`` (settings and content fingerprints): a folder holding
    another run's results, or results without a readable ``run.json``, is refused untouched.
    ``baselines_only`` makes no model call and reports the baselines on the same cases.
    Shortfalls (fewer users than requested, too few candidates for the cut-off) go to
    ``on_warning`` as soon as they are known and into the report's ``warnings``.

    ``concurrency`` keeps that many cases in flight; ``engine="ray"`` spreads the cases over
    ``ray_actors`` Ray actors (a local cluster, or the one at ``ray_address``). The report is
    the same whatever the engine and concurrency.
    """
    from recprompt.eval.executor import check_concurrency

    out = Path(out)
    check_concurrency(concurrency)
    check_engine(engine, ray_address, ray_actors)
    check_plan(program.spec, baselines, protocol.retriever, protocol.shortlist)
    execution = Execution(concurrency=concurrency)
    if engine == "ray" and not baselines_only:
        from recprompt.eval.ray_engine import connect

        execution.cluster = connect(ray_address)  # before anything is written
        execution.actors = ray_actors
    with exclusive_lock(out):
        return _evaluate(
            program,
            dataset,
            protocol,
            out,
            baselines,
            limits,
            progress,
            baselines_only,
            on_warning or (lambda _message: None),
            execution,
        )


@dataclass
class Execution:
    """Where a run's cases execute: threads in this process, or Ray actors."""

    concurrency: int = 1
    cluster: Any = None
    actors: int = 2


def _run(
    program: Program,
    cases: list[Case],
    store: ResultStore,
    limits: Limits,
    progress: bool,
    execution: Execution,
) -> Usage:
    if execution.cluster is None:
        return run_cases(
            program,
            cases,
            store,
            limits=limits,
            progress=progress,
            concurrency=execution.concurrency,
        )
    from recprompt.eval.ray_engine import run_on_ray

    return run_on_ray(
        program,
        cases,
        store,
        limits=limits,
        progress=progress,
        actors=execution.actors,
        concurrency=execution.concurrency,
    )


def _prepare(
    program: Program,
    dataset: Dataset,
    protocol: Protocol,
    cases: list[Case],
    validation: dict[str, list[Case]],
    limits: Limits,
    out: Path,
    run: str | None = None,
) -> tuple[dict[str, Any], Limits]:
    """Calibrate and tune the fusion weight on validation users, under the run's limits.

    Their calls count against --max-calls, --max-tokens and --max-seconds like the test
    cases' (a spec with ``rank.tune_users: 50`` makes 50 or more calls before the first test
    case); the limits returned charge them to the test run. What they fixed is kept in
    ``out/prepared.json``: a resumed run restores it instead of tuning again, so every
    case of a run is ranked under one weight and option prior, and no call is repeated.
    """
    if not validation:
        return {}, limits
    path = out / signal.PREPARED
    kept = signal.load_prepared(path, program, list(validation), run)
    if kept is not None:  # a resumed run: the remaining cases use the first invocation's
        return kept, limits
    started = time.monotonic()
    try:
        with metered(program, limits) as meter:
            prepared = signal.prepare(program, dataset, protocol, cases, validation)
    except BudgetError as exc:
        raise BudgetError(
            f"{exc.message}, calibrating or tuning the fusion weight on validation users "
            "before the first test case",
            hint=exc.hint,
        ) from None
    signal.save_prepared(path, program, prepared, run)
    return prepared, limits.charged(meter.usage, started)


def _evaluate(
    program: Program,
    dataset: Dataset,
    protocol: Protocol,
    out: Path,
    baselines: list[str] | None,
    limits: Limits,
    progress: bool,
    baselines_only: bool,
    on_warning: Callable[[str], None],
    execution: Execution,
) -> dict[str, Any]:
    output = program.spec.output
    is_ranking = program.spec.rank is not None or isinstance(output, ItemListOutput | ItemOutput)
    warnings = check_candidates(program.spec, protocol, ranking=is_ranking)
    explicit = baselines is not None
    baselines = _chosen_baselines(program, baselines, is_ranking, baselines_only)
    cases = make_cases(program, dataset, protocol)
    if not cases:
        raise InputError("the protocol produced no cases", hint="check --users and the dataset")
    if not baselines_only:  # the baselines rank any number of candidates
        check_case_candidates(program.spec, protocol, cases)
    warnings += short_shortlists(protocol, cases)
    if not baselines_only:
        warnings += idle_prior(program.spec)
    users, shortfall = user_counts(
        protocol,
        cases,
        dataset.n_users,
        short=short_users(dataset, protocol),
        other=other_reason(program.spec),
    )
    warnings += shortfall
    validation: dict[str, list[Case]] = {}
    if not baselines_only:  # validation users are drawn before a call or run.json
        validation, short = signal.plan(program, dataset, protocol, cases)
        warnings += short
    for message in warnings:
        on_warning(message)
    backend = None if baselines_only else program.resolve_backend()
    config = run_config(program, dataset, protocol, cases, backend=backend)
    check_folder(out, config)
    train = train_split(dataset, protocol)
    prepared: dict[str, Any] = {}
    owner = run_id(config)  # results of any other run are refused, never reused
    store = ResultStore(out / "results.jsonl", run=owner)
    if program.spec.stages:  # stage outputs resume like cases
        from recprompt.compile.stages import attach_store

        attach_store(program, out / "stages.jsonl", run=owner)
    usage = Usage()
    if not baselines_only:
        attach_declared_prior(program, train, protocol.seed)
        prepared, limits = _prepare(
            program, dataset, protocol, cases, validation, limits, out, owner
        )
        usage = _run(program, cases, store, limits, progress, execution)
    records = [store.records[c.id] for c in cases if c.id in store]
    fallback = float(np.nanmean(train.rating)) if train.has_ratings else 0.0
    scored = (
        {"metrics": {}, "validity": {}}
        if baselines_only
        else score_records(program.spec, records, fallback=fallback, seed=protocol.seed)
    )
    values = {} if baselines_only else per_case_values(program.spec, records, fallback)
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
    if text is not None:  # text baselines come summarised (corpus BLEU is not a case mean)
        base_values: dict[str, Any] = {}
    else:
        base_values, base = base, {name: summarize(v, protocol.seed) for name, v in base.items()}
    if "random" in base and is_ranking:  # exact expectation: its interval is the value itself
        base["random"] = {
            m: {"value": s["value"], "ci_low": s["value"], "ci_high": s["value"], "exact": True}
            for m, s in base["random"].items()
        }
    stored_usage = {
        key: sum(float(r.get("usage", {}).get(key, 0.0)) for r in records)
        for key in (
            *("calls", "prompt_tokens", "completion_tokens", "cache_hits", "seconds"),
            *("invalid_before_repair", "invalid_after_repair", "truncated_scores"),
        )
    }
    report = {
        **config.as_dict(),
        "cases": len(cases),
        "users": users,
        "warnings": warnings,
        "metrics": scored["metrics"],
        "validity": scored["validity"],
        "invalid_policy": "unparseable ranking = miss; unparseable rating = training mean "
        f"({fallback:.3f})",
        "baselines": base,
        "dataset": {"name": dataset.name, **dataset.stats},
        "position": position_table(records) if is_ranking and records else [],
        "diagnostics": ranking_diagnostics(records, train.popularity(), k=10, bucket=5)
        if is_ranking and records
        else {},
        "usage": {
            "this_invocation": usage.as_dict(),
            "all_cases": stored_usage,
            "before_the_test_cases": _preparation_calls(prepared),
            "store_dropped_corrupt_lines": store.dropped,
        },
        "versions": package_versions(),
        "environment": numeric_environment(backend),
        "paired": paired_table(values, base_values, seed=protocol.seed),
    }
    report.update(signal.sections(prepared, records, protocol, cases if baselines_only else None))
    if text is not None:
        report["text"] = text
    stages = getattr(program, "stage_runner", None)
    if stages is not None:
        report["stages"] = stages.report(stored_usage)
    write_report(out, report)
    write_markdown(out, report)
    write_plots(out, report)
    write_case_files(out, report, records, values, base_values)
    signal.plot_calibration(out, report)
    return report
