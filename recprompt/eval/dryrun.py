"""Dry-run: render a spec over real cases and report what a run would cost, calling no model."""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from recprompt.compile.program import Program
from recprompt.compile.render import Rendered
from recprompt.data import Dataset, Protocol
from recprompt.eval.cases import Case, build_cases
from recprompt.eval.tokens import token_counter

__all__ = ["DryRun", "count_stages", "dry_run", "stage_summaries"]

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
    calls: int = 0
    prompt_tokens: list[int] = field(default_factory=list)
    max_completion_tokens: int = 0
    constraint: str = ""
    decode: str = ""
    first: Rendered | None = None
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per stage of a multi-stage spec: calls (distinct keys), prompt tokens, first prompt."""

    def summary(self) -> dict[str, Any]:
        tokens = self.prompt_tokens or [0]
        seconds = sum(tokens) / LOCAL_PROMPT_TOK_PER_S
        if self.decode == "generate":
            seconds += self.calls * self.max_completion_tokens / LOCAL_GEN_TOK_PER_S
        return {
            "spec": self.spec,
            "variant": self.variant,
            "cases": self.cases,
            "model_calls": self.calls,
            "prompt_tokens_total": sum(tokens),
            "prompt_tokens_mean": round(statistics.fmean(tokens), 1),
            "prompt_tokens_median": statistics.median(tokens),
            "prompt_tokens_max": max(tokens),
            "max_completion_tokens": self.max_completion_tokens,
            "decode": self.decode,
            "constraint": self.constraint,
            "tokenizer": self.tokenizer,
            "estimated_local_seconds_upper_bound": round(seconds, 1),
            "protocol": self.protocol,
        } | ({"stages": stage_summaries(self)} if self.stages else {})


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
    result = DryRun(
        spec=program.spec.name,
        variant=program.spec.variant(variant or program.variant).id,
        protocol=protocol.model_dump(mode="json"),
        tokenizer=name,
    )

    def cases() -> Iterator[tuple[Case, Rendered]]:
        for n, case in enumerate(build_cases(program.spec, dataset, protocol)):
            if limit is not None and n >= limit:
                break
            inputs = case.inputs
            if program.spec.stages:
                inputs = count_stages(result, program, inputs, count)
            rendered = program.render(variant=variant, **inputs)
            result.cases += 1
            result.calls += 1
            result.prompt_tokens.append(count(rendered.text))
            result.max_completion_tokens = max(result.max_completion_tokens, rendered.max_tokens)
            result.constraint, result.decode = rendered.constraint.describe(), rendered.decode
            if result.first is None:
                result.first = rendered
            yield case, rendered

    return result, cases()


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
            "estimated_local_seconds_upper_bound": round(seconds, 1),
        }
    out["final"] = {
        "spec": result.spec,
        "model_calls": result.calls,
        "prompt_tokens_total": sum(result.prompt_tokens),
    }
    return out
