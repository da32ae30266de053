"""Run accounting: one thread-safe :class:`UsageMeter` per run, with optional hard limits.

Runs may hit paid APIs, and one ranking case can make hundreds of calls (pairwise heap sort),
so the limits a user declares (calls, tokens, wall-clock seconds) are checked before every
model call, not between cases. The evaluation runner wraps the program's backend in a
:class:`MeteredBackend` for the run; it sits outermost, over a
:class:`~recprompt.backends.cache.CachedBackend`, so that cache hits are served even when the
budget is spent and never count as calls. The meter is thread-safe, so concurrent callers
share one budget.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import replace

from recprompt.backends.base import Backend, Completion, Prompt, Usage
from recprompt.constraints import Constraint
from recprompt.errors import BudgetError

__all__ = ["MeteredBackend", "UsageMeter"]


class UsageMeter:
    """Accumulates :class:`Usage` across threads and enforces the run's limits.

    ``max_seconds`` bounds wall-clock time since the meter was created (a run's budget), not
    the sum of model seconds, which overlapping threads would overcount.
    """

    def __init__(
        self,
        *,
        max_calls: int | None = None,
        max_tokens: int | None = None,
        max_seconds: float | None = None,
        spent: Usage | None = None,
        started: float | None = None,
    ) -> None:
        """``spent`` and ``started``: usage and clock of the run so far, when this meter
        continues a run whose earlier calls count against the same limits."""
        self.max_calls = max_calls
        self.max_tokens = max_tokens
        self.max_seconds = max_seconds
        self._usage = replace(spent) if spent is not None else Usage()
        self._lock = threading.Lock()
        self._started = time.monotonic() if started is None else started

    @property
    def usage(self) -> Usage:
        """A snapshot copy; safe to read while other threads keep adding."""
        with self._lock:
            return replace(self._usage)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def add(self, usage: Usage) -> None:
        """Count ``usage``; raises :class:`BudgetError` if a limit is now exceeded."""
        with self._lock:
            self._usage.add(usage)
            snapshot = replace(self._usage)
        self._check(snapshot, exceeded_only=True)

    def check(self) -> None:
        """Raise :class:`BudgetError` if a limit is already reached (call before a model call)."""
        self._check(self.usage, exceeded_only=False)

    def _check(self, usage: Usage, *, exceeded_only: bool) -> None:
        tokens = usage.prompt_tokens + usage.completion_tokens
        over = (lambda v, lim: v > lim) if exceeded_only else (lambda v, lim: v >= lim)
        hint = "raise the limit, or resume the run: cached calls are free"
        if self.max_calls is not None and over(usage.calls, self.max_calls):
            raise BudgetError(
                f"run reached max_calls={self.max_calls} ({usage.calls} model calls made)",
                hint=hint,
            )
        if self.max_tokens is not None and over(tokens, self.max_tokens):
            raise BudgetError(
                f"run reached max_tokens={self.max_tokens} ({tokens} tokens: "
                f"{usage.prompt_tokens} prompt + {usage.completion_tokens} completion)",
                hint=hint,
            )
        if self.max_seconds is not None and over(self.elapsed, self.max_seconds):
            raise BudgetError(
                f"run reached max_seconds={self.max_seconds:g} ({self.elapsed:.1f} s elapsed)",
                hint=hint,
            )


class MeteredBackend:
    """Any backend, with every call checked against and counted into a :class:`UsageMeter`."""

    def __init__(self, backend: Backend, meter: UsageMeter) -> None:
        self.backend = backend
        self.meter = meter
        self.name = backend.name
        self.supports_logits = backend.supports_logits

    def __getattr__(self, name: str) -> object:
        """Everything else (``usage``, ``tokenize``, ``last_usage``, ...) is the wrapped one's,
        so callers that measure usage deltas on the backend see the real counts."""
        if name == "backend":
            raise AttributeError(name)
        return getattr(self.backend, name)

    def _check(self, method: str, prompt: Prompt, **params: object) -> None:
        will_call = getattr(self.backend, "will_call", None)
        if will_call is None or will_call(method, prompt, **params):
            self.meter.check()

    def generate(
        self,
        prompt: Prompt,
        *,
        constraint: Constraint | None,
        max_tokens: int,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> Completion:
        self._check(
            "generate",
            prompt,
            constraint=constraint,
            max_tokens=max_tokens,
            temperature=temperature,
            seed=seed,
        )
        completion = self.backend.generate(
            prompt, constraint=constraint, max_tokens=max_tokens, temperature=temperature, seed=seed
        )
        self.meter.add(completion.usage)
        return completion

    def score(self, prompt: str, continuations: Sequence[str]) -> list[float]:
        self._check("score", prompt, continuations=continuations)
        start = time.monotonic()
        inner = getattr(self.backend, "usage", None)
        before = replace(inner) if isinstance(inner, Usage) else None
        scores = self.backend.score(prompt, continuations)
        last = getattr(self.backend, "last_usage", None)
        usage = last() if callable(last) else None
        after = getattr(self.backend, "usage", None)
        if usage is None and before is not None and isinstance(after, Usage):
            usage = Usage(
                **{k: getattr(after, k) - getattr(before, k) for k in Usage.__dataclass_fields__}
            )
        self.meter.add(usage or Usage(calls=1, seconds=time.monotonic() - start))
        return scores
