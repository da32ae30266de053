"""Many cases in flight at once, each result stored exactly once.

Why threads: a case spends its time waiting on a server (or inside llama.cpp, which releases
the GIL), so a bounded thread pool overlaps the waits with no change to the program code.
At most ``concurrency`` cases run at a time; a case's result is appended to the
:class:`~recprompt.eval.store.ResultStore` as soon as it finishes, in whatever order answers
arrive. The store is keyed by case id, appends are locked and fsync'ed, and the report reads
records in case order, so the report equals a serial run's whatever the arrival order. A run
killed with calls in flight loses only the unfinished cases, which a rerun redoes.

Every case computes from its own inputs and the program's fixed seed, never from what ran
before, which is what makes the arrival order irrelevant.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from recprompt.backends.base import Usage
from recprompt.errors import InputError

__all__ = ["bounded_map", "case_record", "check_concurrency", "progress_bar", "run_concurrent"]

T = TypeVar("T")
R = TypeVar("R")


def check_concurrency(concurrency: Any, *, flag: str = "--concurrency") -> int:
    """The number of calls in flight, validated: a positive integer."""
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise InputError(
            f"{flag} must be a positive integer (calls in flight), got {concurrency!r}",
            hint=f"pass {flag} 1 for one call at a time, or e.g. 16 against a server",
        )
    return concurrency


def bounded_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    concurrency: int,
    *,
    keep_going: Callable[[], bool] = lambda: True,
) -> Iterator[tuple[int, T, R | BaseException]]:
    """Apply ``fn`` with at most ``concurrency`` calls running; yield ``(index, item, result)``
    in completion order, an exception as the result when ``fn`` raised.

    ``keep_going`` is asked before each new submission; once it says no (a budget reached, an
    error seen), nothing new starts and the calls already running finish and are yielded.
    With ``concurrency == 1`` everything runs in the calling thread, in order.
    """
    check_concurrency(concurrency, flag="concurrency")
    source = iter(enumerate(items))
    if concurrency == 1:
        for index, item in source:
            if not keep_going():
                return
            try:
                yield index, item, fn(item)
            except Exception as exc:
                yield index, item, exc
        return
    running: dict[Future[R], tuple[int, T]] = {}
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="recprompt") as pool:
        exhausted = False
        while True:
            while not exhausted and len(running) < concurrency and keep_going():
                nxt = next(source, None)
                if nxt is None:
                    exhausted = True
                    break
                running[pool.submit(fn, nxt[1])] = nxt
            if not running:
                return
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                index, item = running.pop(future)
                error = future.exception()
                yield index, item, (error if error is not None else future.result())


class _Rates:
    """Calls/s, tokens/s and cases done, for the progress bar; updated from finished cases."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.calls = 0
        self.tokens = 0

    def add(self, usage: dict[str, Any]) -> str:
        self.calls += int(usage.get("calls", 0))
        self.tokens += int(usage.get("prompt_tokens", 0)) + int(usage.get("completion_tokens", 0))
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return f"{self.calls / elapsed:.1f} calls/s · {self.tokens / elapsed:,.0f} tok/s"


def progress_bar(enabled: bool) -> Progress:
    """The runner's bar: cases done, calls/s, tokens/s, elapsed and ETA."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
    )


def case_record(program: Any, case: Any) -> dict[str, Any]:
    """The stored record of one case: a ranking for ``rank:`` specs, else one prediction."""
    from recprompt.eval.runner import rank_record, record_of

    if program.spec.rank is not None:
        return rank_record(program, case)
    return record_of(case, program(**case.inputs))


def run_concurrent(
    program: Any,
    cases: list[Any],
    store: Any,
    *,
    limits: Any,
    concurrency: int,
    progress: bool = True,
    work: Callable[[Any, Any], dict[str, Any]] = case_record,
) -> Usage:
    """Run every case not yet in ``store`` with at most ``concurrency`` in flight.

    Limits are checked before each case starts, against the usage of finished cases (so a run
    may overshoot a call budget by the calls already in flight). On an error or a reached
    limit nothing new starts, the running cases finish and are stored, then the first error
    is raised: a rerun continues from there.
    """
    from recprompt.backends.throttle import attach_throttle

    check_concurrency(concurrency)
    attach_throttle(getattr(program, "backend", None), concurrency)
    todo = [c for c in cases if c.id not in store]
    usage = Usage()
    started = time.monotonic()
    failure: list[BaseException] = []
    lock = threading.Lock()

    def keep_going() -> bool:
        if failure:
            return False
        try:
            with lock:
                limits.check(usage, started)
        except Exception as exc:
            failure.append(exc)
            return False
        return True

    rates = _Rates()
    with progress_bar(progress) as bar:
        task = bar.add_task(program.spec.name, total=len(cases), completed=len(store), rate="")
        for _, _case, result in bounded_map(
            lambda case: work(program, case), todo, concurrency, keep_going=keep_going
        ):
            if isinstance(result, BaseException):
                failure.append(result)
                continue
            with lock:
                for key in ("calls", "prompt_tokens", "completion_tokens", "cache_hits"):
                    setattr(usage, key, getattr(usage, key) + int(result["usage"].get(key, 0)))
            store.append(result)
            bar.update(task, advance=1, rate=rates.add(result["usage"]))
    usage.seconds = time.monotonic() - started
    if failure:
        raise failure[0]
    return usage
