"""What ``recprompt optimize`` adds for specs with a ``rank:`` section.

The search space gains calibration (none, or contextual: a few content-free calls per
config, estimated on demo users' cases, never on validation or test users) on top of
variant, demonstrations and history length. The fusion weight with the spec's prior costs no
call: each config's LLM scores are stored, the prior (fitted on the training split) scores
the same candidates, and the weight maximising the metric on the validation cases scored so
far is part of the config's objective. The report then applies the chosen weight, fixed, to
test users, with the prior refitted on train + validation.

Only strategies with one model call per case are searched (letters, likelihood, listwise):
the budget plan counts one call per case. PriDe is left out of the search: it costs N calls
per estimation case, which a call budget spends better on validation cases.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from recprompt.errors import InputError
from recprompt.eval.scoring import ranking_values
from recprompt.metrics import rank_of
from recprompt.rank.base import order_by, tiebreak_rng
from recprompt.rank.fusion import fuse, tune_weight

__all__ = [
    "CALIBRATION_SAMPLES",
    "Priors",
    "best_weight",
    "check_rank_spec",
    "expand_space",
    "rank_pool",
    "rank_program",
    "rank_scores",
    "reserve",
    "scoring_spec",
    "tuned_rank_spec",
]

ONE_CALL = ("letters", "likelihood", "listwise")
CALIBRATION_SAMPLES = 4


def check_rank_spec(spec: Any) -> None:
    """Refuse rank strategies whose cost per case the budget plan cannot count."""
    from recprompt.rank.runner import resolve_strategy

    strategy = resolve_strategy(spec)
    if strategy not in ONE_CALL or spec.rank.bootstrap != 1:
        raise InputError(
            f"{spec.name}: optimize budgets one model call per case; rank strategy "
            f"{strategy!r} with bootstrap={spec.rank.bootstrap} costs more",
            hint=f"tune a {', '.join(ONE_CALL)} spec with bootstrap: 1",
        )


def _calibrations(spec: Any) -> tuple[str, ...]:
    from recprompt.rank.calibration import calibration_issues

    probe = spec.model_copy(update={"calibration": _calibration_spec("contextual")})
    return ("none", "contextual") if not calibration_issues(probe) else ("none",)


def _calibration_spec(method: str) -> Any:
    from recprompt.spec.model import CalibrationSpec

    return CalibrationSpec(method=method, samples=CALIBRATION_SAMPLES)


def expand_space(spec: Any, configs: Sequence[Any]) -> list[Any]:
    """Every config once per calibration the spec's strategy admits (none first)."""
    if spec.rank is None:
        return list(configs)
    return [replace(c, calibration=m) for m in _calibrations(spec) for c in configs]


def reserve(configs: Sequence[Any]) -> int:
    """Calls set aside for calibration estimates: one estimate per calibrated config."""
    return CALIBRATION_SAMPLES * sum(1 for c in configs if c.calibration != "none")


def scoring_spec(spec: Any, config: Any) -> Any:
    """The spec the LLM scores run with: calibration as configured, no fusion (the search
    fuses offline, so the weight can be chosen without calls)."""
    rank = spec.rank.model_copy(update={"prior": "none", "prior_weight": 0.0, "tune_users": None})
    calibration = _calibration_spec(config.calibration) if config.calibration != "none" else None
    return spec.model_copy(update={"rank": rank, "calibration": calibration})


def rank_scores(
    ctx: Any, config: Any, records: Sequence[dict[str, Any]], *, tune: bool
) -> tuple[float, dict[str, np.ndarray], float | None]:
    """Objective, per-case values and weight of one config's ranking records.

    Without a prior this is the LLM ranking itself. With one, the weight is tuned on these
    records when ``tune`` (the search, on validation cases), else the config's weight (or
    the spec's) is applied as given (the report, on test cases).
    """
    spec = ctx.spec
    if spec.rank.prior == "none":
        values = ranking_values([rank_of(r["value"], r["label"]) for r in records])
        return float(np.mean(values[_key(ctx.metric)])), values, None
    triples = [
        (r["llm_scores"], ctx.prior_scores(r), r["label"]) for r in records if r.get("llm_scores")
    ]
    if tune:
        weight = tune_weight(triples, seed=spec.rank.seed).weight
    else:
        weight = config.prior_weight if config.prior_weight is not None else spec.rank.prior_weight
    ranks = []
    for llm, prior, label in triples:
        fused = fuse(llm, prior, weight)
        names = list(llm)
        tiebreak = [str(n) for n in tiebreak_rng(spec.rank.seed, names).permutation(names)]
        ranks.append(rank_of(order_by(fused, tiebreak), label))
    ranks += [float("inf")] * (len(records) - len(triples))  # failed cases stay misses
    values = ranking_values(ranks)
    return float(np.mean(values[_key(ctx.metric)])), values, weight


def _key(metric: str) -> str:
    return metric if metric.startswith(("ndcg@", "hr@", "mrr")) else "ndcg@10"


class Priors:
    """The spec's collaborative prior, fitted per target on what that target may learn from."""

    def __init__(self, spec: Any, ds: Any, protocol: Any, seed: int) -> None:
        self.spec, self.ds, self.protocol, self.seed = spec, ds, protocol, seed
        self._fitted: dict[str, Any] = {}

    def model(self, target: str) -> Any:
        from recprompt.baselines import make_baseline
        from recprompt.data import split_dataset
        from recprompt.eval.runner import train_split

        if target not in self._fitted:
            protocol = self.protocol.model_copy(update={"target": target})
            train = (
                split_dataset(self.ds, protocol).train
                if target == "valid"
                else train_split(self.ds, protocol)
            )
            self._fitted[target] = make_baseline(self.spec.rank.prior, seed=self.seed).fit(train)
        return self._fitted[target]

    def scores(self, record: dict[str, Any], target: str) -> dict[str, float]:
        meta = record["meta"]
        values = self.model(target).score(meta["user_id"], meta["candidates"])
        return dict(zip(meta["candidate_names"], np.asarray(values, float).tolist(), strict=True))


def tuned_rank_spec(spec: Any, config: Any) -> Any:
    """The saved program's spec: the chosen calibration and fusion weight written in."""
    update: dict[str, Any] = {}
    if config.calibration != "none":
        update["calibration"] = _calibration_spec(config.calibration)
    if config.prior_weight is not None and spec.rank is not None:
        update["rank"] = spec.rank.model_copy(update={"prior_weight": config.prior_weight})
    return spec.model_copy(update=update) if update else spec


def rank_program(ctx: Any, config: Any, backend: Any = None) -> Any:
    """The scoring program of a config, its calibration estimated once on demo users' cases."""
    from recprompt.optimize.search import build_program
    from recprompt.rank.calibration import calibrate

    key = replace(config, prior_weight=None)
    if backend is None and key in ctx._programs:
        return ctx._programs[key]
    program = build_program(
        scoring_spec(ctx.spec, config),
        replace(config, calibration="none", prior_weight=None),
        rank_pool(ctx, config.history_length),
        backend=backend or ctx.meter,
        seed=ctx.seed,
        max_prompt_tokens=ctx.max_prompt_tokens,
        counter=ctx.counter,
    )
    if config.calibration != "none":
        demo = ctx.cases("valid", ctx.split.demo, config.history_length)[:CALIBRATION_SAMPLES]
        calibrate(program, [c.inputs for c in demo])
    if backend is None:
        ctx._programs[key] = program
    return program


def best_weight(ctx: Any, config: Any, cases: Sequence[Any]) -> Any:
    """``config`` with the fusion weight tuned on all its validation cases (already scored:
    the survivor of successive halving has seen every validation case)."""
    records = [ctx._records[(config, c.id)] for c in cases if (config, c.id) in ctx._records]
    _, _, weight = rank_scores(ctx, config, records, tune=True)
    return replace(config, prior_weight=weight)


def rank_pool(ctx: Any, history_length: int | None) -> list[Any]:
    """Demo users' cases as demonstrations; a letters demo answers with the positive's
    letter (a user whose positive is not among the candidates shows no answer: left out)."""
    import dspy

    from recprompt.rank.runner import resolve_strategy
    from recprompt.spec.template import LETTERS

    output = ctx.spec.output.name
    letters = resolve_strategy(ctx.spec) == "letters"
    pool = []
    for case in ctx.cases("valid", ctx.split.demo, history_length):
        label = case.label
        if letters:
            if case.meta.get("positive_index") is None:
                continue
            label = LETTERS[case.meta["positive_index"]]
        pool.append(dspy.Example(**case.inputs, **{output: label}).with_inputs(*case.inputs))
    return pool
