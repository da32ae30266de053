"""The optimizer's call meter: a backend wrapper that never lets a search exceed its budget.

It memoizes answers in memory (a candidate re-scored on a longer validation prefix pays only
for new cases), counts as a call only what reaches the wrapped backend (a disk-cache hit of a
:class:`~recprompt.backends.cache.CachedBackend` is free), and raises
:class:`~recprompt.errors.BudgetError` *before* a call that would go over.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

from recprompt.backends.base import Backend, Completion, Prompt, Usage
from recprompt.backends.usage import UsageLedger, running_usage
from recprompt.constraints import Constraint
from recprompt.errors import BudgetError

__all__ = ["CallMeter"]


class CallMeter:
    """Wraps ``backend``; ``calls`` counts model calls made through it, ``budget`` caps them."""

    def __init__(self, backend: Backend, budget: int | None = None) -> None:
        self.backend = backend
        self.budget = budget
        self.name = backend.name
        self.supports_logits = backend.supports_logits
        self.calls = 0
        self.memo_hits = 0
        self.usage = Usage()
        self.prompts: list[str] = []
        """Every prompt sent (memo hits included), for audits such as 'no test user seen'."""
        self._memo: dict[str, Any] = {}
        self._ledger = UsageLedger(self.usage)
        self._lock = threading.Lock()
        self._in_flight = 0

    def _would_call(self, method: str, prompt: Any, **params: Any) -> bool:
        will = getattr(self.backend, "will_call", None)
        return True if will is None else bool(will(method, prompt, **params))

    def _spend(self, method: str, prompt: Any, **params: Any) -> Usage:
        """Reserve one call of the budget (counting calls in flight on other threads) and
        return the wrapped backend's running usage before it."""
        with self._lock:
            spent = self.budget is not None and self.calls + self._in_flight >= self.budget
            if spent and self._would_call(method, prompt, **params):
                raise BudgetError(
                    f"the optimizer's budget of {self.budget} model calls is spent",
                    hint="raise --budget; cached calls are free on a rerun",
                )
            self._in_flight += 1
        before = running_usage(self.backend)
        return Usage(**before.as_dict()) if before is not None else Usage()

    def _settle(self, before: Usage) -> Usage:
        after = running_usage(self.backend)
        if after is None:
            delta = Usage(calls=1)
        else:
            delta = Usage(**{k: getattr(after, k) - getattr(before, k) for k in before.as_dict()})
        with self._lock:
            self._in_flight -= 1
            self.calls += int(delta.calls)
        self._ledger.add(delta)
        return delta

    def thread_usage(self) -> Usage:
        """The calling thread's running usage through this meter."""
        return self._ledger.mine()

    def generate(
        self,
        prompt: Prompt,
        *,
        constraint: Constraint | None,
        max_tokens: int,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> Completion:
        params = {"max_tokens": max_tokens, "temperature": temperature, "seed": seed}
        key = json.dumps(["generate", prompt, repr(constraint), params], sort_keys=True)
        self.prompts.append(prompt if isinstance(prompt, str) else json.dumps(prompt))
        if key in self._memo:
            self.memo_hits += 1
            return Completion(self._memo[key], Usage(cache_hits=1))
        before = self._spend("generate", prompt, constraint=constraint, **params)
        try:
            completion = self.backend.generate(prompt, constraint=constraint, **params)
        finally:
            delta = self._settle(before)
        self._memo[key] = completion.text
        return Completion(completion.text, delta if delta.calls else completion.usage)

    def score(self, prompt: str, continuations: Sequence[str]) -> list[float]:
        key = json.dumps(["score", prompt, list(continuations)])
        self.prompts.append(prompt)
        if key in self._memo:
            self.memo_hits += 1
            return list(self._memo[key])
        before = self._spend("score", prompt, continuations=list(continuations))
        try:
            scores = [float(s) for s in self.backend.score(prompt, continuations)]
        finally:
            self._settle(before)
        self._memo[key] = scores
        return scores
