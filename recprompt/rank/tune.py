"""Fusion tuned where it runs: the prior's weight chosen on validation users, never test ones.

``recprompt eval`` with ``rank.tune_users: M`` (and a ``rank.prior``) calls
:func:`tune_prior_weight` before the test run: M users *not* among the test users are
ranked exactly as the test users will be (their last interaction, the history before it,
the same candidates protocol, the prior fitted on the same training data, which holds no
user's last interaction), and the weight is fixed on the program's prior. The test users
are excluded by id before any model call, so their labels cannot move the weight.

Why the held-apart users' *last* item and not their second-to-last: tuned on second-to-last
items with a prior fitted without them, the weight did not carry over to the test users
(bench/model_signal.py, Amazon All_Beauty's shortlist: validation gained from the LLM, the
test users lost 0.03-0.07 NDCG@10 against BPR-MF alone). Other users under the test
protocol are the closest sample of it that reads no test label.

:func:`validation_cases` is shared with calibration, which is estimated on the same kind of
held-apart cases.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recprompt.data import Dataset, Protocol
from recprompt.errors import InputError
from recprompt.rank.fusion import TUNING_RULE, Prior, TuneResult, tune_weight

__all__ = ["WeightTuning", "tune_prior_weight", "validation_cases"]


def validation_cases(
    program: Any,
    dataset: Dataset,
    protocol: Protocol,
    exclude: Collection[str],
    n: int,
    *,
    asked_by: str = "tuning",
) -> list[Any]:
    """``n`` seeded users outside ``exclude``, each as a case of ``protocol`` (their last
    interaction under a test protocol); fewer when fewer are left.

    ``asked_by`` names the setting that wants them (``rank.tune_users``): an error for a
    run that leaves no user outside ``exclude`` says which setting cannot be met.
    """
    from recprompt.eval.cases import build_cases

    everyone = protocol.model_copy(update={"n_users": None})
    every = list(build_cases(program.spec, dataset, everyone))
    excluded = set(exclude)
    cases = [c for c in every if c.id not in excluded]
    if not cases:
        largest = len(every) - 1
        raise InputError(
            f"{program.spec.name}: {asked_by} needs validation users outside the test users, "
            f"but the run's {len(excluded)} test user(s) are every user with a case",
            hint=f"pass --users {largest} or fewer, so that users remain to tune on, or remove "
            f"{asked_by} from the spec"
            if largest >= 1
            else f"use a dataset with more users, or remove {asked_by} from the spec",
        )
    rng = np.random.default_rng([protocol.seed, 104729])
    pick = sorted(rng.choice(len(cases), size=min(n, len(cases)), replace=False).tolist())
    return [cases[i] for i in pick]


@dataclass
class WeightTuning:
    """The tuned weight, its validation curve, and who it was tuned on."""

    result: TuneResult
    users: list[str]
    calls: int = 0
    seconds: float = 0.0
    llm_alone: float = 0.0
    prior_alone: float = 0.0
    curve: dict[float, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "weight": self.result.weight,
            "valid_ndcg@10": self.result.metric,
            "curve": {f"{w:.2f}": v for w, v in self.result.table.items()},
            "valid_users": len(self.users),
            "calls": self.calls,
            "seconds": self.seconds,
            "best_weight": self.result.best,
            "method": TUNING_RULE,
        }


def tune_prior_weight(
    program: Any,
    dataset: Dataset,
    protocol: Protocol,
    test_users: Collection[str],
    n_users: int,
    *,
    grid: Sequence[float] | None = None,
    cases: Sequence[Any] | None = None,
) -> WeightTuning:
    """Rank ``n_users`` validation users (disjoint from ``test_users``) and tune the weight.

    The program's option prior, if any, is applied as in the test run; the collaborative
    prior is fitted on what the test run's prior learns from (no user's held-out item).
    ``cases``: the validation cases, when already drawn by :func:`validation_cases`.
    """
    from recprompt.baselines import make_baseline
    from recprompt.eval.runner import train_split
    from recprompt.rank.runner import rank

    settings = program.spec.rank
    if settings is None or settings.prior == "none":
        raise InputError(
            f"{program.spec.name}: rank.tune_users tunes the prior's weight, but rank.prior "
            "is none",
            hint="set rank.prior: bpr (or popularity), or remove rank.tune_users",
        )
    if cases is None:
        cases = validation_cases(
            program, dataset, protocol, test_users, n_users, asked_by="rank.tune_users"
        )
    overlap = {c.id for c in cases} & set(test_users)
    if overlap:  # the guarantee, checked rather than assumed
        raise AssertionError(f"validation users overlap the test users: {sorted(overlap)[:5]}")
    train = train_split(dataset, protocol)
    prior = Prior(make_baseline(settings.prior, seed=protocol.seed).fit(train), weight=0.0)
    triples, calls, seconds = [], 0, 0.0
    for case in cases:
        result = rank(program, case.inputs, case.meta["candidate_items"], user=case.id, prior=prior)
        calls += result.usage.calls
        seconds += result.usage.seconds
        triples.append((result.llm_scores or {}, result.prior_scores or {}, case.label))
    kwargs = {"grid": grid} if grid is not None else {}
    tuned = tune_weight(triples, seed=settings.seed, **kwargs)
    return WeightTuning(tuned, [c.id for c in cases], calls=calls, seconds=seconds)
