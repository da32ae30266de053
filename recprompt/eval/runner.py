"""The resumable evaluation runner.

Cases are built from the protocol, each finished case is persisted before the next one
starts (see :mod:`recprompt.eval.store`), and a rerun with the same ``--out`` continues where
the last one stopped. A folder holding a different run (other spec, protocol or model) is
refused rather than mixed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
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
from recprompt.backends.accounting import MeteredBackend, UsageMeter
from recprompt.backends.base import Usage
from recprompt.compile.program import Program
from recprompt.data import Dataset, Protocol, split_dataset
from recprompt.errors import BudgetError, RecpromptError
from recprompt.eval.cases import Case, build_cases
from recprompt.eval.prompts import PromptLog
from recprompt.eval.store import ResultStore

__all__ = ["Limits", "RunConfig", "run_cases", "run_id"]


@dataclass(frozen=True)
class Limits:
    """Bounds a run may not exceed; reaching one stops cleanly (results so far are kept)."""

    max_calls: int | None = None
    max_tokens: int | None = None
    max_seconds: float | None = None
    spent: Usage = field(default_factory=Usage)
    """Usage already charged to these limits before the test cases (calibration and fusion
    tuning on validation users): one budget covers every call of a run."""
    since: float | None = None
    """When the run's clock started (``time.monotonic()``), if before the test cases."""

    def charged(self, spent: Usage, since: float) -> Limits:
        """These limits with ``spent`` (made since ``since``) already counted against them."""
        return Limits(self.max_calls, self.max_tokens, self.max_seconds, spent, since)

    def check(self, usage: Usage, started: float) -> None:
        usage = replace(usage)
        usage.add(self.spent)
        started = started if self.since is None else self.since
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


RUN_FORMAT = 2
"""Version of ``run.json``; a folder written under another version is not resumed."""


@dataclass(frozen=True)
class RunConfig:
    """What identifies a run; a results folder belongs to exactly one.

    Besides the settings, it holds content fingerprints (see :mod:`recprompt.eval.identity`):
    of the data actually loaded, of the cases built from it, of the demonstration pool and of
    the model, so that a folder is resumed only by the very same run.
    """

    spec: str
    spec_hash: str
    variant: str
    demos: int
    model: str
    protocol: dict[str, Any]
    temperature: float
    seed: int | None
    data: dict[str, Any] = field(default_factory=dict)
    cases: dict[str, Any] = field(default_factory=dict)
    demo_pool: str = ""
    model_identity: dict[str, Any] = field(default_factory=dict)
    format: int = RUN_FORMAT

    def as_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dict(self.__dict__), default=str))


_MISSING = object()


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str) if value is not _MISSING else "(absent)"
    return text if len(text) <= 40 else text[:37] + "..."


def _differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """``key: old -> new`` for every differing entry, one level into nested settings."""
    found = []
    for key in sorted(set(old) | set(new)):
        was, now = old.get(key, _MISSING), new.get(key, _MISSING)
        if was == now:
            continue
        if isinstance(was, dict) and isinstance(now, dict) and not prefix:
            found += _differences(was, now, f"{key}.")
        else:
            found.append(f"{prefix}{key}: {_short(was)} -> {_short(now)}")
    return found


def _refuse(out: Path, why: str, *, resumable: bool = True) -> RecpromptError:
    hint = f"to start fresh, pass a new --out folder or delete this one (rm -r {out})"
    if resumable:
        hint += "; to continue the earlier run, rerun it with the settings in its run.json"
    return RecpromptError(f"{out} {why}", hint=hint)


def run_id(config: RunConfig | dict[str, Any]) -> str:
    """SHA-256 of a run's settings and fingerprints, as run.json records them (the config,
    or run.json's contents): stamped on every result and on prepared.json, so that results
    are reused only by their own run."""
    settings = config.as_dict() if isinstance(config, RunConfig) else config
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_folder(out: Path, config: RunConfig) -> None:
    """Write ``run.json`` for a new run; refuse a folder that holds another run's results.

    Refused: a ``run.json`` that differs in any setting or fingerprint (the message lists
    each difference), an unreadable ``run.json``, and results with no ``run.json`` at all
    (nothing says whose they are). Nothing in the folder is changed when refusing.
    """
    out.mkdir(parents=True, exist_ok=True)
    path = out / "run.json"
    new = config.as_dict()
    if path.exists():
        try:
            existing = json.loads(path.read_text(encoding="utf-8"))
        except RecursionError:
            raise _refuse(
                out, "has a run.json that cannot be read (nested too deeply)", resumable=False
            ) from None
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise _refuse(
                out, f"has a run.json that cannot be read ({exc})", resumable=False
            ) from None
        if not isinstance(existing, dict):
            raise _refuse(out, "has a run.json that is not a JSON object", resumable=False)
        changed = _differences(existing, new)
        if changed:
            raise _refuse(
                out, f"holds results of a different run (differs in: {'; '.join(changed)})"
            )
        return
    from recprompt.eval.evaluate import OUTPUT_FILES

    # run.json is written first, so these are another run's or the user's own files
    found = [n for n in OUTPUT_FILES if (out / n).is_file() and (out / n).stat().st_size > 0]
    if found:
        raise _refuse(
            out,
            f"holds {', '.join(found)} but no run.json: nothing says which run made them",
            resumable=False,
        )
    write_text_atomic(path, json.dumps(new, indent=2, sort_keys=True))


def rank_record(program: Program, case: Case) -> dict[str, Any]:
    """Rank the case's candidates with the spec's ``rank:`` strategy."""
    from recprompt.rank import rank

    result = rank(program, case.inputs, case.meta["candidate_items"], user=case.meta["user_id"])
    return {
        "id": case.id,
        "label": case.label,
        "value": result.ranking,
        "ranking_ids": result.ids,
        "raw": None,
        "scores": result.scores,
        "error": result.error,
        "decode": result.strategy,
        "usage": result.usage.as_dict(),
        "meta": case.meta,
        "llm_scores": result.llm_scores,
        "prior_scores": result.prior_scores,
        "uncalibrated_scores": result.uncalibrated_scores,
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


@contextlib.contextmanager
def metered(program: Program, limits: Limits) -> Iterator[UsageMeter]:
    """Route the program's model calls through a meter enforcing ``limits`` before each call."""
    meter = UsageMeter(
        max_calls=limits.max_calls,
        max_tokens=limits.max_tokens,
        max_seconds=limits.max_seconds,
        spent=limits.spent,
        started=limits.since,
    )
    original = program.resolve_backend()
    program.backend = MeteredBackend(original, meter)
    try:
        yield meter
    finally:
        program.backend = original


def run_cases(
    program: Program,
    cases: list[Case],
    store: ResultStore,
    *,
    limits: Limits = Limits(),
    progress: bool = True,
    concurrency: int = 1,
) -> Usage:
    """Run every case not yet in ``store``; returns the usage of this invocation.

    ``limits`` hold per model call (see :func:`metered`): a pairwise case stops at the call
    that reaches ``max_calls``; the unfinished case is not stored and reruns on resume.
    ``concurrency > 1`` keeps that many cases in flight (see :mod:`recprompt.eval.executor`).
    """
    if concurrency != 1:
        return _run_concurrent(program, cases, store, limits, progress, concurrency)
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
    log = PromptLog.install(program)  # the report shows each case's exact prompts
    try:
        with (
            metered(program, limits),
            Progress(*columns, disable=not progress, transient=False) as bar,
        ):
            task = bar.add_task(program.spec.name, total=len(cases), completed=len(store), rate="")
            for n, case in enumerate(todo, 1):
                log.take()
                if program.spec.rank is not None:
                    record = rank_record(program, case)
                else:
                    record = record_of(case, program(**case.inputs))
                record.update(log.take())
                for key in ("calls", "prompt_tokens", "completion_tokens", "cache_hits"):
                    setattr(usage, key, getattr(usage, key) + int(record["usage"].get(key, 0)))
                store.append(record)
                rate = n / max(time.monotonic() - started, 1e-9)
                bar.update(task, advance=1, rate=f"{rate:.2f} cases/s")
    finally:  # the metered wrapper is gone by now, so the log is outermost again
        log.remove(program)
    usage.seconds = time.monotonic() - started
    return usage


def _run_concurrent(
    program: Program,
    cases: list[Case],
    store: ResultStore,
    limits: Limits,
    progress: bool,
    concurrency: int,
) -> Usage:
    """Cases in flight at once, with the same per-call limits and per-case prompts."""
    from recprompt.backends.throttle import attach_throttle
    from recprompt.eval.executor import case_record, run_concurrent

    attach_throttle(program.resolve_backend(), concurrency)  # on the real backend, not a wrapper
    log = PromptLog.install(program)

    def work(program: Program, case: Case) -> dict[str, Any]:
        log.take()  # this thread's prompts start empty
        record = case_record(program, case)
        record.update(log.take())
        return record

    try:
        with metered(program, limits):
            return run_concurrent(
                program,
                cases,
                store,
                limits=limits,
                progress=progress,
                concurrency=concurrency,
                work=work,
            )
    finally:
        log.remove(program)


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
