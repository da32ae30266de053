"""Dry-run: render a spec over real cases and report what a run would cost, calling no model.

Calls are counted per case from the spec's ranking strategy as a range (see
:mod:`recprompt.eval.calls`): a pairwise heap sort over 20 candidates costs dozens of calls per
case, not one. Seconds are an *estimate* for the local model from throughput measured on a
2-core machine; they are neither a bound nor a measurement of this machine.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from recprompt.compile.program import Program
from recprompt.compile.render import Rendered
from recprompt.data import Dataset, Protocol
from recprompt.errors import InputError
from recprompt.eval.calls import calls_per_case
from recprompt.eval.cases import Case, build_cases
from recprompt.eval.checks import (
    check_candidates,
    idle_prior,
    other_reason,
    short_users,
    users_without_a_case,
)
from recprompt.eval.tokens import token_counter
from recprompt.types import ItemListOutput, ItemOutput

__all__ = ["DryRun", "count_stages", "count_validation", "dry_run", "stage_summaries"]

# Throughput of the default local model on 2 CPU cores (see DESIGN field notes): used only to
# print an estimate, labelled as such.
LOCAL_PROMPT_TOK_PER_S = 600.0
LOCAL_GEN_TOK_PER_S = 65.0


@dataclass
class DryRun:
    """What a run of a spec over a dataset would do."""

    spec: str
    variant: str
    protocol: dict[str, Any]
    tokenizer: str
    cases: int = 0
    calls_low: int = 0
    calls_high: int = 0
    calls_typical: int = 0
    calls_how: str = ""
    prompt_tokens: list[int] = field(default_factory=list)
    max_completion_tokens: int = 0
    constraint: str = ""
    decode: str = ""
    first: Rendered | None = None
    users: set[str] = field(default_factory=set)
    checks: list[str] = field(default_factory=list)
    """Warnings known before rendering (see :mod:`recprompt.eval.checks`)."""
    dataset_users: int = 0
    short_users: int | None = None
    """Users of the dataset with too few interactions for leave-one-out."""
    other_reason: str = ""
    """Why other users may have no case (see :func:`recprompt.eval.checks.other_reason`)."""

    def warnings(self, limit: int | None = None) -> list[str]:
        """The checks' warnings, and a user shortfall that ``--limit`` does not explain."""
        found = list(self.checks)
        if not self.cases and limit != 0:  # eval would stop with 'no cases': say so here
            found.append(
                "the protocol produced no cases: no user has enough events to hold one out; "
                "check the dataset and the protocol flags"
            )
        requested = self.protocol.get("n_users")
        limited = limit is not None and self.cases >= limit
        if requested is not None and len(self.users) < requested and not limited:
            found.append(
                f"--users {requested} requested, but the dataset has only {len(self.users)} "
                "eligible user(s) under this protocol"
            )
        dropped = users_without_a_case(
            self.protocol,
            self.dataset_users,
            len(self.users),
            short=self.short_users,
            other=self.other_reason,
        )
        if dropped and not limited:
            found.append(dropped)
        return found

    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per stage of a multi-stage spec: calls (distinct keys), prompt tokens, first prompt."""
    before_cases: dict[str, int] = field(default_factory=dict)
    """Calls eval makes on validation users before the test cases (see
    :func:`count_validation`); included in the totals."""

    def summary(self) -> dict[str, Any]:
        tokens = self.prompt_tokens or [0]
        per_call = statistics.fmean(tokens)
        seconds = self.calls_typical * per_call / LOCAL_PROMPT_TOK_PER_S
        if self.decode == "generate":
            seconds += self.calls_typical * self.max_completion_tokens / LOCAL_GEN_TOK_PER_S
        summary = {
            "spec": self.spec,
            "variant": self.variant,
            "cases": self.cases,
            "users": len(self.users),
            "users_requested": self.protocol.get("n_users"),
            "model_calls": f"{self.calls_low}..{self.calls_high}"
            if self.calls_high != self.calls_low
            else self.calls_low,
            "model_calls_min": self.calls_low,
            "model_calls_max": self.calls_high,
            "model_calls_typical_local": self.calls_typical,
            "calls_per_case": self.calls_how,
            "prompt_tokens_total": sum(tokens),
            "prompt_tokens_mean": round(statistics.fmean(tokens), 1),
            "prompt_tokens_median": statistics.median(tokens),
            "prompt_tokens_max": max(tokens),
            "max_completion_tokens": self.max_completion_tokens,
            "decode": self.decode,
            "constraint": self.constraint,
            "tokenizer": self.tokenizer,
            "estimated_local_seconds": round(seconds, 1),
            "estimate_note": "an estimate, not a bound: the typical local calls at measured 2-core "
            f"throughput ({LOCAL_PROMPT_TOK_PER_S:g} prompt, {LOCAL_GEN_TOK_PER_S:g} generated "
            "tokens/s); machines differ, cache hits and shared prefixes cost less",
            "protocol": self.protocol,
        }
        if self.before_cases:  # calls on validation users, included in the totals above
            summary["model_calls_before_the_test_cases"] = self.before_cases
        if self.stages:
            summary["stages"] = stage_summaries(self)
        return summary


def _variant_id(program: Program, variant: str | None) -> str:
    """The id of the variant to render; an unknown id is an InputError listing the known."""
    try:
        return program.spec.variant(program.variant if variant is None else variant).id
    except KeyError:
        known = ", ".join(v.id for v in program.spec.all_variants())
        raise InputError(
            f"{program.spec.name} has no variant {variant!r}", hint=f"variants: {known}"
        ) from None


def dry_run(
    program: Program,
    dataset: Dataset,
    protocol: Protocol,
    *,
    limit: int | None = None,
    variant: str | None = None,
) -> tuple[DryRun, Iterator[tuple[Case, Rendered]]]:
    """Render every case; returns the running totals and an iterator of (case, rendered)."""
    name, count = token_counter()
    spec = program.spec
    ranking = spec.rank is not None or isinstance(spec.output, ItemListOutput | ItemOutput)
    checks = check_candidates(spec, protocol, ranking=ranking) + idle_prior(spec)
    result = DryRun(
        spec=program.spec.name,
        variant=_variant_id(program, variant),
        protocol=protocol.model_dump(mode="json"),
        tokenizer=name,
        checks=checks,
        dataset_users=dataset.n_users,
        short_users=short_users(dataset, protocol),
        other_reason=other_reason(spec),
    )

    def cases() -> Iterator[tuple[Case, Rendered]]:
        for n, case in enumerate(build_cases(program.spec, dataset, protocol)):
            if limit is not None and n >= limit:
                break
            inputs = case.inputs
            if program.spec.stages:
                inputs = count_stages(result, program, inputs, count)
            rendered = program.render(variant=variant, **inputs)
            calls = calls_per_case(program.spec, len(case.meta.get("candidates", ())))
            result.cases += 1
            result.users.add(str(case.meta.get("user_id", case.id)))
            result.calls_low += calls.low
            result.calls_high += calls.high
            result.calls_typical += calls.typical
            result.calls_how = calls.how
            result.prompt_tokens.append(count(rendered.text))
            result.max_completion_tokens = max(result.max_completion_tokens, rendered.max_tokens)
            result.constraint, result.decode = rendered.constraint.describe(), rendered.decode
            if result.first is None:
                result.first = rendered
            yield case, rendered

    return result, cases()


def count_validation(result: DryRun, program: Program, dataset: Dataset, protocol: Protocol):
    """Add the calls eval makes before the test cases: calibration and ``rank.tune_users``.

    Eval draws validation users outside the test users (:func:`recprompt.eval.signal.plan`)
    and ranks or calibrates on them; a dry-run that left them out under-counted
    rank.letters.rerank by its 50 tuning calls. A protocol that leaves no validation user,
    or fewer than asked, is a warning here (eval stops, or tunes on fewer).
    """
    from recprompt.eval import signal

    settings = getattr(program.spec, "calibration", None)
    rank = program.spec.rank
    if (settings is None or settings.method == "none") and not (rank and rank.tune_users):
        return
    _, count = token_counter()
    try:
        drawn, warnings = signal.plan(
            program, dataset, protocol, list(build_cases(program.spec, dataset, protocol))
        )
    except InputError as exc:
        result.checks.append(f"eval would stop: {exc.message} ({exc.hint})")
        return
    result.checks.extend(warnings)
    for key, cases in drawn.items():
        calls = 0
        for case in cases:
            n = len(case.meta.get("candidates", ()))
            if key == "fusion":
                per = calls_per_case(program.spec, n)
                result.calls_low += per.low
                result.calls_high += per.high
                result.calls_typical += per.typical
                calls += per.typical
                many = per.typical
            else:
                many = _calibration_calls(settings, n)
                result.calls_low += many
                result.calls_high += many
                result.calls_typical += many
                calls += many
            text = program.render(variant=result.variant, **case.inputs).text
            result.prompt_tokens.extend([count(text)] * many)
        label = "fusion_tuning" if key == "fusion" else "calibration"
        result.before_cases[label] = calls


def _calibration_calls(settings: Any, n: int) -> int:
    """Calls calibration makes on one validation case of ``n`` candidates (PriDe: one per
    cyclic shift, as :func:`recprompt.rank.calibration.pride_prior` makes them)."""
    if settings.method != "pride" or n == 0:
        return 1
    count = n if settings.permutations is None else max(1, min(settings.permutations, n))
    return len({round(s * n / count) % n for s in range(count)})


def count_stages(
    result: DryRun, program: Program, inputs: dict[str, Any], count: Any
) -> dict[str, Any]:
    """Render the stages a case needs; a stage key already rendered costs no new call."""
    from recprompt.compile.stages import dry_stages

    filled, renders = dry_stages(program, inputs)
    for stage, key, rendered in renders:
        row = result.stages.setdefault(
            stage.name,
            {"spec": stage.spec.name, "per": stage.decl.per, "keys": set(), "tokens": []},
        )
        row.setdefault("first", rendered)
        row["max_completion_tokens"] = rendered.max_tokens
        if key not in row["keys"]:
            row["keys"].add(key)
            row["tokens"].append(count(rendered.text))
    return filled


def stage_summaries(result: DryRun) -> dict[str, dict[str, Any]]:
    """Calls and tokens per stage, then the final stage (the spec itself)."""
    out = {}
    for name, row in result.stages.items():
        tokens = row["tokens"] or [0]
        seconds = sum(tokens) / LOCAL_PROMPT_TOK_PER_S
        seconds += len(row["tokens"]) * row["max_completion_tokens"] / LOCAL_GEN_TOK_PER_S
        out[name] = {
            "spec": row["spec"],
            "per": row["per"],
            "model_calls": len(row["keys"]),
            "prompt_tokens_total": sum(tokens),
            "prompt_tokens_mean": round(statistics.fmean(tokens), 1),
            "max_completion_tokens": row["max_completion_tokens"],
            "estimated_local_seconds": round(seconds, 1),
        }
    out["final"] = {
        "spec": result.spec,
        "model_calls": result.calls_low
        if result.calls_low == result.calls_high
        else f"{result.calls_low}..{result.calls_high}",
        "prompt_tokens_total": sum(result.prompt_tokens),
    }
    return out
