"""The backend seam: what a compiled program needs from a model.

A program renders a prompt and a :class:`~recprompt.constraints.Constraint`, then asks a
backend either to *generate* under the constraint or to *score* options (when the backend
exposes logits). Everything else (caching, accounting, retries) wraps this protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from recprompt.constraints import Constraint

__all__ = ["Backend", "Completion", "Prompt", "Usage", "heal_space"]

Prompt = str | list[dict[str, str]]
"""A completion prompt (text) or chat messages ``[{"role": ..., "content": ...}]``."""


@dataclass
class Usage:
    """Counts that reports need; one instance accumulates over a run."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_hits: int = 0
    retries: int = 0
    seconds: float = 0.0
    invalid_before_repair: int = 0
    """Generated answers that failed validation when the server first returned them."""
    invalid_after_repair: int = 0
    """Answers still invalid when the bounded repairs ran out."""
    truncated_scores: int = 0
    """Options scored from ``top_logprobs`` that fell outside the server's top-k."""

    def add(self, other: Usage) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass
class Completion:
    """A backend's answer: the text, and what it cost."""

    text: str
    usage: Usage = field(default_factory=Usage)


@runtime_checkable
class Backend(Protocol):
    """What every backend implements."""

    name: str
    """Identifies the model for cache keys and reports (e.g. ``local:gemma-3-270m-q4_k_m``)."""

    supports_logits: bool
    """True when :meth:`score` works; programs then score instead of parsing text."""

    def generate(
        self,
        prompt: Prompt,
        *,
        constraint: Constraint | None,
        max_tokens: int,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> Completion:
        """Decode a completion that satisfies ``constraint`` (enforced or validated+repaired)."""
        ...

    def score(self, prompt: str, continuations: Sequence[str]) -> list[float]:
        """Log-likelihood of each continuation after ``prompt``, the prompt evaluated once.

        Raises :class:`~recprompt.errors.BackendError` when the backend has no logits.
        """
        ...


def heal_space(prompt: Prompt, continuations: list[str]) -> tuple[Prompt, list[str]]:
    """Move the spaces that end a text prompt to the front of every continuation.

    The joint text is unchanged; only the split moves to where a tokenizer splits it. Why:
    templates end with the space before the answer, but tokenizers write " A" as one token,
    so scoring "A" after "Answer: " asks for a token sequence the model never saw (on Gemma 3
    270M the letters then held ~1e-7 of the next-token mass, against 0.3-0.4 after
    "Answer:"), and an echoed " Title" token would start inside the prompt.
    """
    if not isinstance(prompt, str) or not prompt.endswith(" "):
        return prompt, continuations
    if any(not c or c[0].isspace() for c in continuations):
        return prompt, continuations
    body = prompt.rstrip(" ")
    trail = prompt[len(body) :]
    return body, [trail + c for c in continuations]
