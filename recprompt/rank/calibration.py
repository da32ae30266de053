"""Calibrated option scoring: take the model's label prior out of letter, choice and rating
scores.

A small model answering "which letter?" prefers some letters whatever the candidates are
(the README's main job once hit at positions 1-4 and never at 12-16): it ranks letters, not
items. Two estimates of that prior, both divided out of the option probabilities
(``log p(option) - log prior(option)``), never looking at a label:

* ``contextual`` (Zhao et al. 2021, "Calibrate Before Use"): the prompt is rendered with its
  content replaced by a content-free string ("N/A" for every candidate title, or for the
  target item of a choice or rating prompt), on a few cases; the mean option distribution
  is the prior. One call per case.
* ``pride`` (Zheng et al. 2024, "Large Language Models Are Not Robust Multiple Choice
  Selectors", PriDe): on a few cases, the candidates are scored under cyclic permutations;
  a candidate's content moves through every letter, so the mean log-probability of each
  letter over the permutations keeps the letter's prior and cancels the content. Up to N
  calls per case (``permutations`` limits it). Letters only: the options must be listed in
  the prompt to be permuted.

The fitted :class:`OptionPrior` is attached to the program (``program.option_prior``), like
the collaborative prior, because a spec cannot hold estimated numbers;
:func:`recprompt.rank.rank` and :class:`~recprompt.compile.program.Program` apply it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recprompt.errors import InputError

__all__ = [
    "OptionPrior",
    "calibrate",
    "calibration_issues",
    "contextual_prior",
    "pride_prior",
    "prior_from_logprobs",
]

CONTENT_INPUTS = ("item_title", "target_title", "item_id", "item", "item_a", "item_b")


@dataclass
class OptionPrior:
    """Log prior per option label, estimated without labels; ``calls`` is what it cost."""

    method: str
    log_prior: dict[str, float]
    calls: int = 0
    cases: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    def adjust(self, labels: Sequence[str], logps: Sequence[float]) -> list[float]:
        """``log p - log prior`` per label, renormalised over ``labels`` (log-softmax)."""
        values = np.array(
            [lp - self.log_prior.get(label, 0.0) for label, lp in zip(labels, logps, strict=True)],
            dtype=np.float64,
        )
        finite = np.isfinite(values)
        if not finite.any():
            return values.tolist()
        top = float(values[finite].max())
        values = values - (top + math.log(float(np.exp(values[finite] - top).sum())))
        return values.tolist()

    def as_dict(self) -> dict[str, Any]:
        probs = {k: math.exp(v) for k, v in self.log_prior.items()}
        return {
            "method": self.method,
            "prior": probs,
            "calls": self.calls,
            "cases": self.cases,
            **self.details,
        }


def _log_softmax(values: Sequence[float]) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    top = float(x.max())
    return x - (top + math.log(float(np.exp(x - top).sum())))


def prior_from_logprobs(labels: Sequence[str], rows: Sequence[Sequence[float]]) -> dict[str, float]:
    """Log of the mean option distribution over content-free rows (Zhao et al. average
    probabilities, not log-probabilities)."""
    probs = np.mean([np.exp(_log_softmax(r)) for r in rows], axis=0)
    return dict(zip(labels, np.log(np.maximum(probs, 1e-300)).tolist(), strict=True))


def _content_free_inputs(program: Any, inputs: Mapping[str, Any], token: str) -> dict[str, Any]:
    """The case's inputs with the item content replaced by ``token`` (history kept)."""
    from recprompt.compile.inputs import ItemSeq, make_item

    spec = program.spec
    out = dict(inputs)
    source = spec.rank.candidates_from if spec.rank is not None else "candidates"
    if source in out and isinstance(out[source], list):
        out[source] = ItemSeq(make_item(f"cf{n}", token) for n in range(len(out[source])))
    names = list(CONTENT_INPUTS)
    if spec.rank is not None and spec.rank.candidate_input:
        names.append(spec.rank.candidate_input)
    for name in names:
        if name in spec.inputs:
            out[name] = token
    return out


def _options(program: Any, inputs: Mapping[str, Any]) -> tuple[str, list[str]]:
    rendered = program.render(**inputs)
    if not isinstance(rendered.prompt, str):
        raise InputError(
            f"{program.spec.name}: calibration scores options from logits and needs a "
            "completion prompt",
            hint="set mode: completion",
        )
    options = list(getattr(rendered.constraint, "options", ()) or ())
    return rendered.prompt, options


def _letters(program: Any, inputs: Mapping[str, Any]) -> int:
    """How many letters a letters-ranking prompt of ``inputs`` shows (one per candidate)."""
    source = program.spec.rank.candidates_from
    return len(inputs[source])


def contextual_prior(
    program: Any, cases: Sequence[Mapping[str, Any]], content_free: str = "N/A"
) -> OptionPrior:
    """Zhao et al.: the mean option distribution of content-free versions of ``cases``."""
    from recprompt.rank.runner import resolve_strategy

    backend = program.resolve_backend()
    rows, labels = [], None
    letters = program.spec.rank is not None and resolve_strategy(program.spec) == "letters"
    for inputs in cases:
        free = _content_free_inputs(program, inputs, content_free)
        prompt, options = _options(program, free)
        if letters:
            options = options[: _letters(program, free)]
        if labels is not None and options != labels:
            raise InputError(
                f"{program.spec.name}: calibration cases show different option sets",
                hint="calibrate on cases with the same number of candidates",
            )
        labels = options
        rows.append(backend.score(prompt, options))
    if labels is None:
        raise InputError("calibration needs at least one case", hint="raise calibration.samples")
    return OptionPrior(
        "contextual",
        prior_from_logprobs(labels, rows),
        calls=len(rows),
        cases=len(rows),
        details={"content_free": content_free},
    )


def pride_prior(
    program: Any, cases: Sequence[Mapping[str, Any]], permutations: int | None = None
) -> OptionPrior:
    """PriDe: per case, the mean letter log-probability over cyclic shifts of the
    candidates, softmaxed; the prior is the mean of the per-case priors."""
    from recprompt.compile.inputs import ItemSeq

    spec = program.spec
    source = spec.rank.candidates_from if spec.rank is not None else "candidates"
    backend = program.resolve_backend()
    per_case, labels, calls = [], None, 0
    for inputs in cases:
        items = list(inputs[source])
        n = len(items)
        count = n if permutations is None else max(1, min(permutations, n))
        shifts = sorted({round(s * n / count) % n for s in range(count)})
        rows = []
        for shift in shifts:
            order = ItemSeq(items[shift:] + items[:shift])
            prompt, options = _options(program, {**inputs, source: order})
            options = options[:n]
            rows.append(_log_softmax(backend.score(prompt, options)))
            calls += 1
        if labels is not None and options != labels:
            raise InputError(
                f"{spec.name}: PriDe cases show different numbers of candidates",
                hint="calibrate on cases with the same number of candidates",
            )
        labels = options
        per_case.append(_log_softmax(np.mean(rows, axis=0)))
    if labels is None:
        raise InputError("calibration needs at least one case", hint="raise calibration.samples")
    probs = np.mean(np.exp(per_case), axis=0)
    return OptionPrior(
        "pride",
        dict(zip(labels, np.log(probs).tolist(), strict=True)),
        calls=calls,
        cases=len(per_case),
        details={"permutations": len(shifts)},
    )


def calibration_issues(spec: Any) -> list[tuple[tuple[str, ...], str, str]]:
    """Why ``spec.calibration`` cannot apply to this spec: (path, problem, what to do)."""
    settings = getattr(spec, "calibration", None)
    if settings is None or settings.method == "none":
        return []
    from recprompt.types import ChoiceOutput, RatingOutput

    output = spec.output
    strategy = None
    if spec.rank is not None:
        from recprompt.rank.runner import resolve_strategy

        try:
            strategy = resolve_strategy(spec)
        except InputError:
            strategy = None
    scored = spec.rank is None and (
        (isinstance(output, ChoiceOutput) and output.decode != "generate")
        or (isinstance(output, RatingOutput) and output.decode in ("expected", "argmax"))
    )
    ranked = strategy in ("letters", "pointwise", "pairwise")
    if not (scored or ranked):
        kind = f"rank strategy {strategy}" if strategy else f"a {output.type} output"
        if getattr(output, "decode", None) == "generate":
            kind += " decoded by generation"
        return [
            (
                ("calibration", "method"),
                f"calibration divides an option prior out of scored options, but {kind} has "
                "no options scored from logits (free text, lists and likelihoods have none)",
                "use it with rank strategy letters, pointwise or pairwise, a choice output with "
                "decode: score, or a rating with decode: expected; or remove 'calibration:'",
            )
        ]
    if settings.method == "pride" and strategy != "letters":
        return [
            (
                ("calibration", "method"),
                "pride permutes the options listed in the prompt, which only letters ranking does",
                "use method: contextual for choice and rating outputs",
            )
        ]
    return []


def calibrate(program: Any, cases: Sequence[Mapping[str, Any]]) -> OptionPrior | None:
    """Estimate the spec's declared calibration on ``cases`` (their inputs only; labels are
    never read) and attach it to ``program``; None when the spec asks for none."""
    settings = getattr(program.spec, "calibration", None)
    if settings is None or settings.method == "none":
        return None
    issues = calibration_issues(program.spec)
    if issues:
        path, problem, hint = issues[0]
        raise InputError(f"{program.spec.name}: {'.'.join(path)}: {problem}", hint=hint)
    chosen = list(cases)[: settings.samples]
    program.option_prior = None  # estimate on raw scores, never on calibrated ones
    if settings.method == "contextual":
        prior = contextual_prior(program, chosen, settings.content_free)
    else:
        prior = pride_prior(program, chosen, settings.permutations)
    program.option_prior = prior
    return prior
