"""The resumable evaluation runner.

Cases are built from the protocol, each finished case is persisted before the next one
starts (see :mod:`recprompt.eval.store`), and a rerun with the same ``--out`` continues where
the last one stopped. A folder holding a different run (other spec, protocol or model) is
refused rather than mixed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from recprompt._files import write_text_atomic
from recprompt.backends.base import Usage
from recprompt.compile.program import Program
from recprompt.data import Dataset, Protocol, split_dataset
from recprompt.errors import BudgetError, RecpromptError
from recprompt.eval.cases import Case, build_cases
from recprompt.eval.store import ResultStore

__all__ = ["Limits", "RunConfig", "run_cases"]


@dataclass(frozen=True)
class Limits:
    """Bounds a run may not exceed; reaching one stops cleanly (results so far are kept)."""

    max_calls: int | None = None
    max_tokens: int | None = None
    max_seconds: float | None = None

    def check(self, usage: Usage, started: float) -> None:
        if self.max_calls is not None and usage.calls >= self.max_calls:
            raise BudgetError(
                f"reached the limit of {self.max_calls} model calls",
                hint="rerun with the same --out to continue, or raise --max-calls",
            )
        tokens = usage.prompt_tokens + usage.completion_tokens
        if self.max_tokens is not None and tokens >= self.max_tokens:
            raise BudgetError(
                f"reached the limit of {self.max_tokens} tokens",
                hint="rerun with the same --out to continue, or raise --max-tokens",
            )
        if self.max_seconds is not None and time.monotonic() - started >= self.max_seconds:
            raise BudgetError(
                f"reached the time limit of {self.max_seconds:g} s",
                hint="rerun with the same --out to continue, or raise --max-seconds",
            )


@dataclass(frozen=True)
class RunConfig:
    """What identifies a run; a results folder belongs to exactly one."""

    spec: str
    spec_hash: str
    variant: str
    demos: int
    model: str
    protocol: dict[str, Any]
    temperature: float
    seed: int | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def check_folder(out: Path, config: RunConfig) -> None:
    """Write ``run.json`` for a new run; refuse a folder that holds another run."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "run.json"
    if path.exists():
        try:
            existing = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            existing = None
        if existing is not None and existing != json.loads(json.dumps(config.as_dict())):
            changed = sorted(k for k in config.as_dict() if existing.get(k) != config.as_dict()[k])
            raise RecpromptError(
                f"{out} holds results of a different run (differs in: {', '.join(changed)})",
                hint="pass a new --out folder, or delete this one to start over",
            )
        if existing is not None:
            return
    write_text_atomic(path, json.dumps(config.as_dict(), indent=2, sort_keys=True))


def rank_record(program: Program, case: Case) -> dict[str, Any]:
    """Rank the case's candidates with the spec's ``rank:`` strategy."""
    from recprompt.rank import rank

    result = rank(program, case.inputs, case.meta["candidate_items"], user=case.meta["user_id"])
    return {
        "id": case.id,
        "label": case.label,
        "value": result.ranking,
        "raw": None,
        "scores": result.scores,
        "error": result.error,
        "decode": result.strategy,
        "usage": result.usage.as_dict(),
        "meta": case.meta,
        "llm_scores": result.llm_scores,
        "prior_scores": result.prior_scores,
    }


def record_of(case: Case, prediction: Any) -> dict[str, Any]:
    return {
        "id": case.id,
        "label": case.label,
        "value": prediction.value(),
        "raw": prediction.raw,
        "scores": prediction.scores,
        "error": prediction.error,
        "decode": prediction.decode,
        "usage": prediction.usage,
        "meta": case.meta,
    }


def run_cases(
    program: Program,
    cases: list[Case],
    store: ResultStore,
    *,
    limits: Limits = Limits(),
    progress: bool = True,
) -> Usage:
    """Run every case not yet in ``store``; returns the usage of this invocation."""
    todo = [c for c in cases if c.id not in store]
    usage = Usage()
    started = time.monotonic()
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task(program.spec.name, total=len(cases), completed=len(store), rate="")
        for n, case in enumerate(todo, 1):
            limits.check(usage, started)
            if program.spec.rank is not None:
                record = rank_record(program, case)
            else:
                record = record_of(case, program(**case.inputs))
            for key in ("calls", "prompt_tokens", "completion_tokens", "cache_hits"):
                setattr(usage, key, getattr(usage, key) + int(record["usage"].get(key, 0)))
            store.append(record)
            rate = n / max(time.monotonic() - started, 1e-9)
            bar.update(task, advance=1, rate=f"{rate:.2f} cases/s")
    usage.seconds = time.monotonic() - started
    return usage


def make_cases(program: Program, dataset: Dataset, protocol: Protocol) -> list[Case]:
    return list(build_cases(program.spec, dataset, protocol))


def train_split(dataset: Dataset, protocol: Protocol) -> Dataset:
    """What baselines may learn from: everything the program's prompts may show, i.e. the
    training split, plus the validation split when the target is the test split."""
    split = split_dataset(dataset, protocol)
    if protocol.target == "valid":
        return split.train
    train, valid = split.train, split.valid
    return Dataset(
        f"{dataset.name}/train+valid",
        np.concatenate([train.user, valid.user]),
        np.concatenate([train.item, valid.item]),
        np.concatenate([train.rating, valid.rating]),
        np.concatenate([train.timestamp, valid.timestamp]),
        items=dataset.items,
        users=dataset.users,
        texts=dataset.texts,  # review text baselines learn from the training reviews
    )
