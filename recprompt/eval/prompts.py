"""Keep the exact prompts each case sent to the model, for the report's per-case view.

A pass-through backend sits in front of the program's backend while a run lasts and notes
every prompt given to ``generate`` or ``score``, as the model received it (after rendering,
demos, candidate lettering and shuffling). Only the first few distinct prompts of a case are
kept, with the total count: a pairwise ranking may send hundreds, and the report needs to show
what the model saw, not to replay the run. Records written before prompts were kept simply
lack the two fields; readers treat them as "not recorded".
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

__all__ = ["KEPT_PROMPTS", "PromptLog", "prompt_text"]

KEPT_PROMPTS = 4
"""How many distinct prompts of one case are stored (the count of all is stored too)."""


def prompt_text(prompt: Any) -> str:
    """A completion prompt as is; chat messages joined with their roles."""
    if isinstance(prompt, str):
        return prompt
    return "\n\n".join(f"[{m.get('role', '?')}]\n{m.get('content', '')}" for m in prompt)


class PromptLog:
    """A backend wrapper that records prompts; everything else goes to the wrapped backend.

    Prompts are noted per thread, so that concurrent cases never mix their prompts."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._local = threading.local()  # cases in flight at once each keep their own prompts

    @property
    def _prompts(self) -> list[str]:
        if not hasattr(self._local, "prompts"):
            self._local.prompts = []
        return self._local.prompts

    @property
    def _count(self) -> int:
        return getattr(self._local, "count", 0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _note(self, prompt: Any) -> None:
        self._local.count = self._count + 1
        text = prompt_text(prompt)
        if len(self._prompts) < KEPT_PROMPTS and text not in self._prompts:
            self._prompts.append(text)

    def generate(self, prompt: Any, **params: Any) -> Any:
        self._note(prompt)
        return self.inner.generate(prompt, **params)

    def score(self, prompt: str, continuations: Sequence[str]) -> list[float]:
        self._note(prompt)
        return self.inner.score(prompt, continuations)

    def take(self) -> dict[str, Any]:
        """The prompts noted since the last call, as fields of a result record."""
        fields = {"prompts": self._prompts, "prompt_count": self._count}
        self._local.prompts, self._local.count = [], 0
        return fields

    @classmethod
    def install(cls, program: Any) -> PromptLog:
        """Put a log in front of ``program``'s backend (undo with :meth:`remove`)."""
        log = cls(program.resolve_backend())
        program.backend = log
        return log

    def remove(self, program: Any) -> None:
        if program.backend is self:
            program.backend = self.inner
