"""``recprompt optimize``: search, save the tuned program, and report it against zero-shot.

The report puts zero-shot (the spec's default variant, no demonstrations) and the tuned
program side by side on the validation users the search used *and* on test users it never
saw, with the calls each part spent, next to the program as ``.md`` and ``.json``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from recprompt._files import check_output_path, write_text_atomic
from recprompt.backends.base import Backend
from recprompt.data import Dataset
from recprompt.environment import numeric_environment
from recprompt.errors import InputError
from recprompt.eval.scoring import summarize
from recprompt.eval.significance import paired_name, paired_table
from recprompt.optimize.budget import CallMeter
from recprompt.optimize.saved import save_program
from recprompt.optimize.search import (
    TOLERANCE,
    Config,
    SearchResult,
    _Context,
    _default_history,
    partition_users,
    search,
)
from recprompt.spec import load_spec

__all__ = ["OptimizeOutcome", "check_program_path", "optimize"]


@dataclass
class OptimizeOutcome:
    """The search result, where the program went, and the report."""

    result: SearchResult
    path: Path
    report: dict[str, Any]


def _table(report: dict[str, Any]) -> str:
    metric = report["metric"]
    lines = [
        f"# recprompt optimize: {report['spec']}",
        "",
        f"- metric: **{metric}** · seed {report['seed']} · budget {report['budget']} calls · "
        f"spent {report['calls']['total']} (search {report['calls']['search']}, "
        f"report {report['calls']['report']})",
        f"- users (disjoint, seeded): {len(report['users']['demo'])} demo, "
        f"{len(report['users']['valid'])} validation, {len(report['users']['test'])} test",
        f"- protocol: {json.dumps(report['protocol'])}",
        f"- tuned: {report['tuned']['label']} (scores within {report.get('tolerance')} "
        "count as ties, won by the simpler config)",
        f"- numeric environment: {json.dumps(report.get('environment', {}))}",
        "",
        f"| program | valid {metric} | test {metric} | test 95% CI |",
        "|---|---|---|---|",
    ]
    for name in ("zero_shot", "tuned"):
        row = report["results"][name]
        ci = row["test"][metric]
        lines.append(
            f"| {name.replace('_', '-')} | {row['valid'][metric]['value']:.4f} | "
            f"{ci['value']:.4f} | [{ci.get('ci_low', float('nan')):.4f}, "
            f"{ci.get('ci_high', float('nan')):.4f}] |"
        )
    d = report.get("paired_test", {}).get(paired_name(metric))
    if d:
        lines += [
            "",
            f"Tuned minus zero-shot on the same test users ({metric}): {d['difference']:+.4f} "
            f"[{d['low']:+.4f}, {d['high']:+.4f}], p = {d['p_value']:.4f} (paired bootstrap, "
            "sign-flip test).",
        ]
    return "\n".join(lines) + "\n"


def _check_users(**counts: int) -> None:
    """Tuning needs validation users to score on, and a report needs test users: zero of
    either would tune on nothing or report nothing, and still write a program."""
    for name, count in counts.items():
        least = 0 if name == "demo_users" else 1
        if isinstance(count, bool) or not isinstance(count, int) or count < least:
            flag = "--" + name.replace("_", "-")
            raise InputError(
                f"{flag} must be at least {least}, got {count}",
                hint="the optimizer scores configurations on validation users and reports "
                "on held-out test users",
            )


def check_program_path(out: str | os.PathLike[str], flag: str = "--out") -> Path:
    """A tuned program's path must end in ``.json``: ``recprompt.load`` and every command
    read any other name as a YAML spec, so a program saved as ``tuned.yaml`` (or ``tuned``)
    could never be loaded again, and said only that it was a broken spec."""
    path = Path(out)
    if path.suffix != ".json":
        raise InputError(
            f"{flag} {path}: a tuned program is a .json file",
            hint=f"pass e.g. {flag} {path.with_suffix('.json') if path.suffix else f'{path}.json'}",
        )
    return path


def check_arguments(
    budget: int, demo_users: int, valid_users: int, test_users: int, report: bool, concurrency: int
) -> None:
    """The numbers :func:`optimize` takes; the CLI checks them before it loads a model."""
    from recprompt.eval.executor import check_concurrency

    check_concurrency(concurrency)
    _check_users(demo_users=demo_users, valid_users=valid_users)
    if report:  # only the report needs held-out users
        _check_users(test_users=test_users)
    # from Python, 30.5 was spent as 30 and nan passed this check (and was then reported
    # as a budget too small for one config)
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise InputError(f"--budget must be a whole number of model calls >= 1, got {budget!r}")


def optimize(
    spec_path: str | os.PathLike[str],
    dataset: Dataset,
    backend: Backend,
    *,
    budget: int,
    out: str | os.PathLike[str],
    seed: int = 0,
    demo_users: int = 30,
    valid_users: int = 20,
    test_users: int = 20,
    configs: list[Config] | None = None,
    report: bool = True,
    max_prompt_tokens: int | None = 3500,
    counter: Callable[[str], int] | None = None,
    announce: Callable[[str], None] = print,
    tolerance: float = TOLERANCE,
    concurrency: int = 1,
) -> OptimizeOutcome:
    """Tune the spec at ``spec_path`` on ``dataset`` within ``budget`` calls; save to ``out``.

    ``concurrency`` scores that many validation cases at once (threads; same result)."""
    from recprompt.library import resolve_spec_path

    check_arguments(budget, demo_users, valid_users, test_users, report, concurrency)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"seed must be a whole number >= 0, got {seed!r}")

    path = resolve_spec_path(spec_path)
    out = Path(out)
    base = out.with_suffix("")
    # the CLI checks this too, before a model loads; a Python caller's out=SPEC overwrote it
    check_output_path(
        out,
        flag="out",
        inputs=[path],
        siblings=[Path(f"{base}.report.json"), Path(f"{base}.report.md")] if report else [],
        make_parents=True,
        check_name=lambda given: check_program_path(given, flag="out"),
    )
    spec = load_spec(path)
    if spec.rank is not None:
        from recprompt.optimize.ranking import check_rank_spec

        check_rank_spec(spec)
    split = partition_users(dataset, seed, demo_users, valid_users, test_users if report else 0)
    meter = CallMeter(backend, budget)
    report_calls = 2 * (valid_users + test_users) if report else 0
    result = search(
        spec,
        dataset,
        meter,
        budget=budget,
        seed=seed,
        split=split,
        configs=configs,
        report_calls=report_calls,
        max_prompt_tokens=max_prompt_tokens,
        counter=counter,
        announce=announce,
        tolerance=tolerance,
        concurrency=concurrency,
    )
    search_calls = meter.calls
    environment = numeric_environment(backend)
    settings = {
        "seed": seed,
        "budget": budget,
        "metric": spec.metric,
        "users": asdict(split),
        "calls_search": search_calls,
        "tolerance": tolerance,
        "trials": result.trials,
    }
    program_path = save_program(
        result.program,
        out,
        spec=spec,
        spec_path=spec_path,
        config=asdict(result.best),
        settings=settings,
        environment=environment,
    )
    summary: dict[str, Any] = {}
    if report:
        summary = _report(spec, dataset, meter, result, seed, budget, search_calls, concurrency)
        summary["program"] = str(program_path)
        summary["environment"] = environment
        summary["tolerance"] = tolerance
        base = program_path.with_suffix("")
        text = json.dumps(summary, indent=2, sort_keys=True, default=str)
        write_text_atomic(f"{base}.report.json", text)
        write_text_atomic(f"{base}.report.md", _table(summary))
    return OptimizeOutcome(result, program_path, summary)


def _report(
    spec: Any,
    dataset: Dataset,
    meter: CallMeter,
    result: SearchResult,
    seed: int,
    budget: int,
    search_calls: int,
    concurrency: int = 1,
) -> dict[str, Any]:
    ctx = _Context(spec, dataset, result.split, meter, seed, None, None)
    ctx.concurrency = concurrency
    ctx.tune_fusion = False  # test users get the weight chosen on validation, fixed
    zero = Config(spec.variant().id, 0, "none", _default_history(spec))
    metric = ctx.metric
    results: dict[str, Any] = {}
    tested: dict[str, Any] = {}
    for name, config, program in (
        ("zero_shot", zero, None),
        ("tuned", result.best, result.program),
    ):
        row: dict[str, Any] = {"config": asdict(config), "label": config.label()}
        for part, users in (("valid", result.split.valid), ("test", result.split.test)):
            target = "valid" if part == "valid" else "test"
            cases = ctx.cases(target, users, config.history_length)
            _, values = ctx.score(config, cases, program)
            row[part] = summarize(values, seed)
            row[part]["cases"] = len(cases)
        results[name] = row
        tested[name] = ([c.id for c in cases], values)  # the last part: the test users
    (zero_ids, zero_values), (tuned_ids, tuned_values) = tested["zero_shot"], tested["tuned"]
    paired = (
        paired_table(tuned_values, {"zero_shot": zero_values}, seed=seed)
        if zero_ids == tuned_ids  # the same test cases in the same order
        else {}
    )
    return {
        "spec": spec.name,
        "metric": metric,
        "seed": seed,
        "budget": budget,
        "protocol": ctx.protocol.model_dump(mode="json")
        | {"split_users": "disjoint demo/valid/test users (seeded), one case per user"},
        "users": asdict(result.split),
        "calls": {
            "search": search_calls,
            "report": meter.calls - search_calls,
            "total": meter.calls,
            "memo_hits": meter.memo_hits,
        },
        "plan": result.plan.describe(),
        "tuned": {"config": asdict(result.best), "label": result.best.label()},
        "results": results,
        "paired_test": paired.get("zero_shot", {}),
        "trials": result.trials,
    }
