"""Scores over HTTP: option distributions from ``top_logprobs``, continuations from ``echo``.

Two ways a server can score, and what each serves:

* **top_logprobs** (every OpenAI-compatible server that returns logprobs): one generated
  token, with the ``k`` most likely alternatives at that position. An option's log-probability
  is read from the alternative whose text is exactly the option, as the local backend scores
  it (failing that, from its whitespace variants added together). This serves single-token
  labels: rating digits, Yes/No, candidate letters. On vLLM, which scores echoed prompts
  cheaply, an option not found exactly is scored as a continuation instead, so nothing is
  approximated; elsewhere an option outside the top ``k`` is *truncated*: it gets the
  smallest log-probability shown (an upper bound on its true value) and is counted in
  ``Usage.truncated_scores``, which reports print.
* **continuation** (``echo`` with ``logprobs``: vLLM, llama.cpp's server): the server returns
  the log-probability of every prompt token, so ``prompt + candidate`` scores the candidate's
  tokens exactly, as the local backend does. This serves candidate likelihood.

Both are log-probabilities over the whole vocabulary, like :meth:`LocalBackend.score`; callers
normalise over the options. No constraint is sent with a scoring request: a grammar would
change the distribution being read.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from recprompt.errors import BackendError

__all__ = [
    "OptionScores",
    "continuation_body",
    "is_label",
    "option_logprobs",
    "parse_continuation",
    "parse_top_logprobs",
    "read_sse",
    "top_logprobs_body",
]

_LABEL = re.compile(r"^\S{1,12}$")


def is_label(option: str) -> bool:
    """True for a short single-word option (a digit, letter, Yes/No) that top_logprobs serves."""
    return bool(_LABEL.match(option.strip()))


@dataclass
class OptionScores:
    """Log-probability per option, and which options fell outside the returned top ``k``."""

    logprobs: list[float]
    truncated: list[str]
    variants: list[str] = field(default_factory=list)
    """Options read from whitespace variants (e.g. `` A`` for ``A``), not their exact text."""


def top_logprobs_body(prompt: Any, *, chat: bool, k: int) -> dict[str, Any]:
    """The request body for one token with its ``k`` most likely alternatives.

    OpenAI's completions endpoint takes ``logprobs: k``; its chat endpoint takes
    ``logprobs: true`` with ``top_logprobs: k``.
    """
    body: dict[str, Any] = {"max_tokens": 1, "temperature": 0.0}
    if chat:
        body.update(messages=prompt, logprobs=True, top_logprobs=k)
    else:
        body.update(prompt=prompt, logprobs=k)
    return body


def parse_top_logprobs(response: dict[str, Any], *, chat: bool) -> dict[str, float]:
    """The alternatives at the first generated position: token text -> log-probability."""
    try:
        choice = response["choices"][0]
        logprobs = choice.get("logprobs") or {}
        if chat:
            first = (logprobs.get("content") or [])[0]
            alternatives = {t["token"]: float(t["logprob"]) for t in first["top_logprobs"]}
            alternatives.setdefault(first["token"], float(first["logprob"]))
            return alternatives
        tops = logprobs.get("top_logprobs") or []
        alternatives = {str(t): float(v) for t, v in (tops[0] or {}).items()}
        tokens, values = logprobs.get("tokens") or [], logprobs.get("token_logprobs") or []
        if tokens and values and values[0] is not None:
            alternatives.setdefault(tokens[0], float(values[0]))
        return alternatives
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise BackendError(
            f"the server's answer has no top_logprobs at the first position ({exc!r})",
            hint="the server may not return logprobs; use --server-kind generic and a "
            "'generate' decode, or a server that returns logprobs",
        ) from None


def _logsumexp(values: Iterable[float]) -> float:
    values = list(values)
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def option_logprobs(alternatives: dict[str, float], options: Sequence[str]) -> OptionScores:
    """Each option's log-probability among the alternatives: the exact text, else its
    whitespace variants added together.

    An option absent from the alternatives gets the smallest value shown and is listed in
    ``truncated``: its true value is at most that.
    """
    if not alternatives:
        raise BackendError("the server returned no alternatives to read options from")
    floor = min(alternatives.values())
    grouped: dict[str, list[float]] = {}
    for token, value in alternatives.items():
        key = token.strip()
        if key:
            grouped.setdefault(key, []).append(value)
    out, truncated, variants = [], [], []
    for option in options:
        values = grouped.get(option.strip())
        if option in alternatives:  # the exact text, as the local backend scores it
            out.append(alternatives[option])
        elif values:  # only whitespace variants (" A" after a prompt without the space)
            out.append(_logsumexp(values))
            variants.append(option)
        else:
            out.append(floor)
            truncated.append(option)
    return OptionScores(out, truncated, variants)


def continuation_body(prompts: list[str]) -> dict[str, Any]:
    """Echo the prompts with every token's log-probability, generating one token."""
    return {
        "prompt": prompts if len(prompts) > 1 else prompts[0],
        "echo": True,
        "logprobs": 1,
        "max_tokens": 1,
        "temperature": 0.0,
    }


def parse_continuation(choice: dict[str, Any], prompt: str, continuation: str) -> float:
    """Sum of log-probabilities of the tokens that spell ``continuation`` after ``prompt``.

    Tokens are located by their character offsets in the echoed text: a token counts when it
    starts inside the continuation (a token that straddles the boundary starts in the prompt
    and is left out, which is why prompts end with the space before the answer).
    """
    try:
        logprobs = choice["logprobs"]
        offsets = logprobs["text_offset"]
        values = logprobs["token_logprobs"]
    except (KeyError, TypeError) as exc:
        raise BackendError(
            f"the server's echo answer has no prompt log-probabilities ({exc!r})",
            hint="this server cannot score a given continuation; use a strategy read from "
            "top_logprobs (letters, pointwise) or the local backend",
        ) from None
    start, end = len(prompt), len(prompt) + len(continuation)
    total, seen = 0.0, 0
    for offset, value in zip(offsets, values, strict=False):
        if start <= offset < end and value is not None:
            total += float(value)
            seen += 1
    if continuation and not seen:
        raise BackendError(
            f"the echoed log-probabilities do not cover the continuation {continuation[:40]!r}",
            hint="the server must support echo with logprobs on /v1/completions",
        )
    return total


def read_sse(lines: Iterable[str]) -> dict[str, Any]:
    """Merge a streamed completion (server-sent events) into one non-streamed answer.

    llama.cpp's Python server computes log-probabilities of a non-streamed answer over its
    whole context (seconds per request); streamed, over the generated token only.
    """
    merged: dict[str, Any] | None = None
    for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            break
        chunk = json.loads(data)
        if merged is None:
            merged = chunk
        choices = chunk.get("choices") or []
        if choices and choices[0].get("logprobs") and merged is not chunk:
            merged["choices"][0].setdefault("logprobs", choices[0]["logprobs"])
            if not merged["choices"][0]["logprobs"]:
                merged["choices"][0]["logprobs"] = choices[0]["logprobs"]
    if merged is None:
        raise BackendError("the server's stream held no completion")
    return merged
