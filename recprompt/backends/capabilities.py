"""Can this backend serve this program's scoring? Asked once, before any model call.

A spec that reads its answer from probabilities (``decode: expected | score``) or ranks with
``letters``, ``pointwise``, ``pairwise`` or ``likelihood`` needs the backend to score. The
local model scores anything; a server scores what its kind offers (``top_logprobs`` for short
labels, ``continuation`` for candidate texts; see :mod:`recprompt.backends.http_scoring`).
When a server cannot, the run stops here with a clear error instead of silently generating
text. (A custom backend that declares no ``scoring`` keeps the program's documented fallback:
without logits it generates.)
"""

from __future__ import annotations

from typing import Any

from recprompt.environment import innermost_backend
from recprompt.errors import BackendError

__all__ = ["check_scoring", "required_scoring", "scoring_of"]

_ALL = frozenset({"top_logprobs", "continuation"})


def scoring_of(backend: Any) -> frozenset[str] | None:
    """How ``backend`` (through any wrappers) can score: a subset of
    ``{"top_logprobs", "continuation"}``. A backend that declares nothing scores anything when
    it has logits, and is None (undeclared: the caller's own fallback applies) otherwise."""
    seen = backend
    for _ in range(8):
        ways = getattr(type(seen), "scoring", None)
        if ways is not None:  # declared by the class (a property for servers)
            return frozenset(seen.scoring)
        inner = getattr(seen, "backend", None)
        if inner is None:
            break
        seen = inner
    return _ALL if getattr(backend, "supports_logits", False) else None


def required_scoring(spec: Any) -> str | None:
    """What the spec's calls will ask a backend to score, or None when it only generates."""
    if spec.rank is not None:
        from recprompt.rank.runner import resolve_strategy

        strategy = resolve_strategy(spec)
        if strategy == "likelihood":
            return "continuation"
        if strategy in ("letters", "pointwise", "pairwise"):
            return "top_logprobs"
        return None
    decode = getattr(spec.output, "decode", "generate")
    if decode == "generate":
        return None
    return "top_logprobs" if spec.output.type in ("rating", "choice") else "continuation"


def check_scoring(spec: Any, backend: Any) -> None:
    """Raise :class:`BackendError` when ``backend`` cannot score what ``spec`` needs."""
    need = required_scoring(spec)
    if need is None:
        return
    ways = scoring_of(backend)
    if ways is None or need in ways:  # undeclared custom backends keep their own fallback
        return
    kind = getattr(innermost_backend(backend), "server", None)
    what = "a rank strategy" if spec.rank is not None else f"decode: {spec.output.decode}"
    raise BackendError(
        f"{spec.name} needs {need} scoring ({what}), which {backend.name}"
        + (f" (server kind {kind!r})" if kind else "")
        + " does not offer",
        hint="letters, pointwise, pairwise and expected/score decodes need a server that "
        "returns top_logprobs (llama.cpp, vLLM, SGLang, Ollama /v1, OpenAI); likelihood needs "
        "echo log-probabilities (vLLM, llama.cpp, completion mode). Declare the server with "
        "--server-kind if detection got it wrong, use the local backend, or a listwise / "
        "decode: generate spec",
    )
