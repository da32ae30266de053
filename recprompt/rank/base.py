"""What every ranking strategy shares: the result type, the call context, and tie-breaking.

A strategy turns one candidate order into a score per candidate (higher = better), keyed
by the candidate's *item id* (its name only when it has no id): two items may share a title
(MovieLens 100K has 18 such pairs), and a name-keyed table would merge them. Scores,
never parsed orders, are the common currency, because bootstrap aggregation (Borda), fusion
with a collaborative prior and the eval report all consume scores. Ties are broken by one
seeded permutation per candidate set, never by list position: position is exactly the bias
(LLMRank) that shuffling is meant to cancel.
"""

from __future__ import annotations

import copy
import hashlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recprompt.backends.base import Backend, Usage
from recprompt.backends.usage import running_usage
from recprompt.spec.model import RankSpec
from recprompt.types import item_name

__all__ = ["Context", "OrderScores", "RankResult", "item_key", "order_by", "tiebreak_rng"]


def item_key(item: Any, name: str) -> str:
    """What identifies a candidate inside ranking: its ``item_id``, else its ``name``."""
    if isinstance(item, dict):
        ident = item.get("item_id")
        if ident is not None and ident != "":
            return str(ident)
    return name


@dataclass
class RankResult:
    """A full ranking of the candidates, best first, with what it cost.

    ``scores`` is ordered like ``ranking`` (ties keep ranking order under a stable sort);
    ``llm_scores`` and ``prior_scores`` keep the two parts of a fused score, so that the
    prior's weight can be tuned offline without calling the model again.
    """

    ranking: list[str]
    """Candidate names (the display text prompts showed, unique in the set), best first."""
    scores: dict[str, float] | None
    strategy: str
    usage: Usage
    error: str | None = None
    llm_scores: dict[str, float] | None = None
    prior_scores: dict[str, float] | None = None
    orders: list[list[str]] = field(default_factory=list)
    """The candidate orders the model saw (one per bootstrap sample)."""
    ids: list[str] = field(default_factory=list)
    """The ranking as item ids (names for candidates without an id), best first."""
    uncalibrated_scores: dict[str, float] | None = None
    """The LLM scores before the option prior was divided out (None when not calibrated)."""

    @property
    def valid(self) -> bool:
        return self.error is None


@dataclass
class OrderScores:
    """One strategy run on one candidate order: a score per item key, or why it failed."""

    scores: dict[str, float]
    error: str | None = None


def tiebreak_rng(seed: int, names: Sequence[str]) -> np.random.Generator:
    """A generator seeded by the rank seed and the candidate *set* (not its order).

    The same user and candidates always get the same tie-break, whatever order they came in.
    """
    digest = hashlib.sha256("\x1f".join(sorted(names)).encode("utf-8")).digest()
    return np.random.default_rng([seed & 0xFFFFFFFF, int.from_bytes(digest[:8], "little")])


def order_by(scores: dict[str, float], tiebreak: Sequence[str]) -> list[str]:
    """Names by descending score; equal scores follow ``tiebreak`` (a seeded permutation).

    NaN scores sort last (a failed score is never a win).
    """
    position = {name: i for i, name in enumerate(tiebreak)}

    def key(name: str) -> tuple[float, int]:
        value = scores[name]
        return (math.inf if value != value else -value, position.get(name, len(position)))

    return sorted(scores, key=key)


@dataclass
class Context:
    """Everything a strategy needs for one user: program, inputs, backend, names, seed."""

    program: Any
    inputs: dict[str, Any]
    rank: RankSpec
    backend: Backend
    key: str
    started: float = field(default_factory=time.perf_counter)
    _before: Usage | None = None

    def __post_init__(self) -> None:
        self._before = copy.copy(running_usage(self.backend))
        self.calls = 0

    def name(self, item: Any) -> str:
        """The text that names ``item`` in prompts and parsed answers."""
        return item_name(item, self.key)

    def id(self, item: Any) -> str:
        """The key of ``item`` in every score table (see :func:`item_key`)."""
        return item_key(item, self.name(item))

    def usage(self) -> Usage:
        """What this ranking cost: the backend's usage delta, or our own call count."""
        after = running_usage(self.backend)
        if self._before is None or after is None:
            usage = Usage(calls=self.calls)
        else:
            usage = Usage(
                **{
                    k: getattr(after, k) - getattr(self._before, k)
                    for k in Usage.__dataclass_fields__
                }
            )
        usage.seconds = time.perf_counter() - self.started
        return usage

    def score(self, prompt: str, options: Sequence[str]) -> list[float]:
        """Log-likelihood of each option after ``prompt`` (one backend call)."""
        self.calls += 1
        return list(self.backend.score(prompt, list(options)))

    def choice(self, inputs: dict[str, Any]) -> dict[str, float]:
        """Log-probability of each option of a choice output, normalised over the options.

        Scored from logits when the backend has them; otherwise the program generates under
        its constraint and the chosen option gets log-probability 0, the others -inf.
        """
        rendered = self.program.render(**inputs)
        options = list(rendered.constraint.options)
        if self.backend.supports_logits:
            logps = np.asarray(self.score(rendered.prompt, options), dtype=np.float64)
            option_prior = getattr(self.program, "option_prior", None)
            if option_prior is not None:  # calibrated choice (pointwise Yes/No, pairwise A/B)
                logps = np.asarray(option_prior.adjust(options, logps.tolist()))
            top = float(logps.max())
            logps = logps - (top + math.log(float(np.exp(logps - top).sum())))
            return dict(zip(options, logps.tolist(), strict=True))
        self.calls += 1
        chosen = self.program(**inputs).value()
        return {o: 0.0 if o == chosen else -math.inf for o in options}
