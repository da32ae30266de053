"""What a hosted model costs, from litellm's bundled price table, and a budget that stops a run.

litellm ships its price table (``model_prices_and_context_window_backup.json``) inside the
package; with ``LITELLM_LOCAL_MODEL_COST_MAP=True`` it reads that copy and never the network.
Prices are US dollars per token, input and output separately.

:class:`CostGuard` wraps a backend and refuses a call whose worst case (the prompt's tokens plus
``max_tokens`` of output, at the model's prices) would take the run's spending past
``max_cost``: the run stops *before* exceeding the budget, with a :class:`BudgetError`.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from recprompt.backends.base import Completion, Prompt, Usage
from recprompt.constraints import Constraint
from recprompt.errors import BudgetError, InputError

__all__ = ["CostGuard", "Price", "estimate", "price_of"]


@dataclass(frozen=True)
class Price:
    """US dollars per prompt token and per completion token, and the table's key."""

    model: str
    prompt: float
    completion: float

    def cost(self, prompt_tokens: float, completion_tokens: float) -> float:
        return prompt_tokens * self.prompt + completion_tokens * self.completion


def price_of(model: str) -> Price | None:
    """The model's price from litellm's bundled table, or None if it has none (self-hosted)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    table: dict[str, Any] = litellm.model_cost
    for key in (model, model.split("/", 1)[-1]):
        entry = table.get(key)
        if isinstance(entry, dict) and "input_cost_per_token" in entry:
            return Price(
                key,
                float(entry.get("input_cost_per_token") or 0.0),
                float(entry.get("output_cost_per_token") or 0.0),
            )
    return None


def estimate(
    model: str, calls: int, prompt_tokens: int, max_completion_tokens: int
) -> dict[str, Any]:
    """A dry-run's cost lines: an upper bound (every call writes ``max_completion_tokens``)."""
    price = price_of(model)
    if price is None:
        return {"cost_model": model, "cost_usd_upper_bound": None, "cost_note": "no price"}
    bound = price.cost(prompt_tokens, calls * max_completion_tokens)
    return {
        "cost_model": price.model,
        "cost_usd_per_1m_prompt_tokens": round(price.prompt * 1e6, 4),
        "cost_usd_per_1m_completion_tokens": round(price.completion * 1e6, 4),
        "cost_usd_upper_bound": round(bound, 6),
    }


def _chars(prompt: Prompt) -> int:
    return len(prompt) if isinstance(prompt, str) else sum(len(m["content"]) for m in prompt)


class CostGuard:
    """Any backend, with each call refused when its worst-case cost would pass ``max_cost``.

    A prompt's tokens are estimated before the call at 3 characters per token (generous, so
    the bound holds for most tokenizers); after the call the server's own token counts are
    charged. Thread-safe.
    """

    def __init__(self, backend: Any, model: str, max_cost: float) -> None:
        if not math.isfinite(max_cost) or max_cost <= 0:
            raise InputError(f"--max-cost must be a positive number of dollars, got {max_cost}")
        price = price_of(model)
        if price is None:
            raise InputError(
                f"--max-cost: litellm's price table has no price for {model!r}",
                hint="a self-hosted server costs nothing per token: drop --max-cost, or bound "
                "the run with --max-calls / --max-tokens",
            )
        self.backend = backend
        self.price = price
        self.max_cost = max_cost
        self.spent = 0.0
        self.name = backend.name
        self.supports_logits = backend.supports_logits
        self._lock = threading.Lock()

    def _reserve(self, method: str, prompt: Prompt, limit: int, **params: Any) -> None:
        will_call = getattr(self.backend, "will_call", None)
        if will_call is not None and not will_call(method, prompt, **params):
            return  # answered from the cache: free
        worst = self.price.cost(_chars(prompt) / 3 + 8, limit)
        with self._lock:
            if self.spent + worst > self.max_cost:
                raise BudgetError(
                    f"the next call could cost up to ${worst:.6f}; ${self.spent:.6f} of "
                    f"--max-cost ${self.max_cost:g} is spent",
                    hint="raise --max-cost, or resume later: finished cases are kept and "
                    "cached calls are free",
                )

    def _charge(self, usage: Usage) -> None:
        with self._lock:
            self.spent += self.price.cost(usage.prompt_tokens, usage.completion_tokens)

    def generate(
        self,
        prompt: Prompt,
        *,
        constraint: Constraint | None,
        max_tokens: int,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> Completion:
        self._reserve(
            "generate",
            prompt,
            max_tokens,
            constraint=constraint,
            max_tokens=max_tokens,
            temperature=temperature,
            seed=seed,
        )
        completion = self.backend.generate(
            prompt, constraint=constraint, max_tokens=max_tokens, temperature=temperature, seed=seed
        )
        self._charge(completion.usage)
        return completion

    def score(self, prompt: Prompt, continuations: Sequence[str]) -> list[float]:
        self._reserve("score", prompt, 1, continuations=continuations)
        held = getattr(self.backend, "usage", None)
        before = Usage(**held.as_dict()) if isinstance(held, Usage) else None
        scores = self.backend.score(prompt, continuations)
        after = getattr(self.backend, "usage", None)
        if before is not None and isinstance(after, Usage):
            self._charge(
                Usage(
                    prompt_tokens=after.prompt_tokens - before.prompt_tokens,
                    completion_tokens=after.completion_tokens - before.completion_tokens,
                )
            )
        return scores

    @property
    def usage(self) -> Any:
        return getattr(self.backend, "usage", None)
