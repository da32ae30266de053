"""Single-prompt and per-candidate strategies: pointwise, likelihood, letters, listwise.

Each takes one candidate order and returns a score per candidate, keyed by item id (higher =
better); names only appear in prompts and in parsed answers, which are mapped back to ids:

* ``pointwise`` (TALLRec-style): one Yes/No prompt per candidate, scored by the log-odds of
  the positive option. The candidate is written into ``candidate_input``; everything before
  it is shared by all N prompts, so the prefix is evaluated once and each prompt only pays
  for its own suffix (the local backend reuses the longest cached token prefix).
* ``likelihood``: one prompt listing the candidates; each candidate's name is scored as the
  continuation, averaged per token, because summed log-probabilities punish long titles.
* ``letters`` (LlamaRec): candidates labelled A, B, ...; one forward pass, and the letter
  distribution at the answer position ranks every candidate at once.
* ``listwise`` (LLMRank): constrained generation of a top-K list of distinct candidates;
  listed items score N - position, unlisted ones tie at 0 and are ordered by the seeded
  tie-break (never by their input position, which would reward position bias).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from recprompt.environment import innermost_backend
from recprompt.errors import InputError
from recprompt.rank.base import Context, OrderScores
from recprompt.spec.template import LETTERS

__all__ = ["STRATEGIES", "letters", "likelihood", "listwise", "pointwise"]

_SENTINEL = "\u27e6recprompt-candidate\u27e7"


def _with_candidates(ctx: Context, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {**ctx.inputs, ctx.rank.candidates_from: items}


def _candidate_input(ctx: Context) -> str:
    declared = ctx.program.spec.inputs
    name = ctx.rank.candidate_input or next(
        (n for n in ("item_title", "target_title", "item") if n in declared), None
    )
    if name is None or name not in declared:
        raise InputError(
            f"{ctx.program.spec.name}: pointwise ranking needs an input for the candidate",
            hint="set rank.candidate_input to a declared str input, e.g. item_title",
        )
    return name


def _warm_prefix(ctx: Context, field: str) -> None:
    """Evaluate the text before the candidate once, so every candidate pays only its suffix.

    Also makes the numerics uniform: every candidate is then decoded after the same cached
    prefix (batch shapes change llama.cpp's log-probabilities by up to 0.2 nats).
    """
    if not ctx.backend.supports_logits:
        return
    probe = ctx.program.render(**{**ctx.inputs, field: _SENTINEL})
    if not isinstance(probe.prompt, str):
        return
    prefix = probe.prompt[: max(probe.prompt.find(_SENTINEL), 0)].rstrip()
    if len(prefix) >= 32:
        ctx.score(prefix, ["\n"])


def pointwise(ctx: Context, items: list[dict[str, Any]]) -> OrderScores:
    """Log-odds of the positive option (e.g. Yes) for each candidate, one prompt each."""
    field = _candidate_input(ctx)
    output = ctx.program.spec.output
    options = tuple(getattr(output, "options", ()))
    if len(options) < 2:
        raise InputError(
            f"{ctx.program.spec.name}: pointwise ranking needs a choice output (Yes/No)",
            hint="use output: {type: choice, options: [Yes, No], positive: Yes, decode: score}",
        )
    positive = getattr(output, "positive", None) or options[0]
    _warm_prefix(ctx, field)
    scores: dict[str, float] = {}
    for item in items:
        inputs = {**ctx.inputs, field: ctx.name(item)}
        if "item_id" in ctx.program.spec.inputs and isinstance(item, dict):
            inputs["item_id"] = str(item.get("item_id"))  # never the label's id
        logps = ctx.choice(inputs)
        yes = logps[positive]
        rest = [v for o, v in logps.items() if o != positive]
        top = max(rest)
        other = top + math.log(sum(math.exp(v - top) for v in rest)) if top > -math.inf else top
        scores[ctx.id(item)] = yes - other if other > -math.inf else math.inf
    return OrderScores(scores)


def likelihood(ctx: Context, items: list[dict[str, Any]]) -> OrderScores:
    """Per-token log-likelihood of each candidate's name as the answer (one prompt)."""
    rendered = ctx.program.render(**_with_candidates(ctx, items))
    names = [ctx.name(i) for i in items]
    if not ctx.backend.supports_logits or not isinstance(rendered.prompt, str):
        raise InputError(
            "likelihood ranking needs a backend with logits and a completion prompt",
            hint="use the local backend, or the listwise strategy",
        )
    logps = ctx.score(rendered.prompt, names)
    tokenize = getattr(ctx.backend, "tokenize", None) or getattr(
        innermost_backend(ctx.backend), "tokenize", None
    )
    lengths = [len(tokenize(n, bos=False)) if tokenize else 1 for n in names]
    ids = [ctx.id(i) for i in items]
    return OrderScores({i: lp / max(k, 1) for i, lp, k in zip(ids, logps, lengths, strict=True)})


def letters(ctx: Context, items: list[dict[str, Any]]) -> OrderScores:
    """LlamaRec: the letter distribution after one forward pass ranks all candidates."""
    if len(items) > len(LETTERS):
        raise InputError(f"letters ranking labels at most {len(LETTERS)} candidates")
    rendered = ctx.program.render(**_with_candidates(ctx, items))
    labels = list(LETTERS[: len(items)])
    if not ctx.backend.supports_logits:
        raise InputError(
            "letters ranking needs a backend with logits",
            hint="use the local backend, or the listwise strategy",
        )
    logps = ctx.score(rendered.prompt, labels)
    return OrderScores({ctx.id(i): lp for i, lp in zip(items, logps, strict=True)})


def listwise(ctx: Context, items: list[dict[str, Any]]) -> OrderScores:
    """Constrained top-K list; N - position for listed items, 0 (tied) for the rest."""
    ids = {ctx.name(i): ctx.id(i) for i in items}  # names are unique: rank() sees to it
    scores = dict.fromkeys(ids.values(), 0.0)
    ctx.calls += 1
    prediction = ctx.program(**_with_candidates(ctx, items))
    if prediction.error:
        return OrderScores(scores, error=prediction.error)
    listed = list(prediction.value() or [])
    stray = [n for n in listed if n not in ids]
    if stray or len(set(listed)) != len(listed):
        return OrderScores(scores, error=f"list repeats or leaves the candidates: {listed!r}")
    for position, name in enumerate(listed):
        scores[ids[name]] = float(len(items) - position)
    return OrderScores(scores)


STRATEGIES: dict[str, Callable[[Context, list[dict[str, Any]]], OrderScores]] = {
    "pointwise": pointwise,
    "likelihood": likelihood,
    "letters": letters,
    "listwise": listwise,
}
