"""Tune a program's demonstrations, selector, prompt variant and history length.

Protocol (written into every report):

* Users with 3+ interactions are split, seeded, into three disjoint
  sets: **demo users** (their cases become the demonstration pool), **validation users**
  (candidates are scored on their validation interaction, ``Protocol(target="valid")``) and
  **test users** (their test interaction is used only by the final report). In leave-one-out
  every user has train/valid/test interactions, so disjoint *user* sets are what keeps test
  users unseen: the search never renders a prompt that mentions one.
* The search space is variant (never a held-out one) × k × selector × history length, plus a
  few seeded *fixed* demonstration sets (which demos and in what order: random search, as
  DSPy's ``BootstrapFewShotWithRandomSearch`` does with labelled demos).
* Successive halving: every candidate is scored on a short prefix of the validation cases,
  the better half goes on to a prefix twice as long, until one remains. The plan (how many
  calls at most) is fixed and printed before the first model call; a
  :class:`~recprompt.optimize.budget.CallMeter` makes exceeding it impossible.
* Noise tolerance: local numerics move with the thread count and the llama.cpp build, and
  validation sets are small, so scores closer than ``tolerance`` (default
  :data:`TOLERANCE`, in the objective's units: RMSE stars, NDCG, accuracy) count as a tie,
  and a tie goes to the simpler config (fewer demonstrations, a simpler selector, the
  spec's default variant, a shorter history). Each round keeps the tied-best configs in
  that order, then the rest by score.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import dspy
import numpy as np

from recprompt.backends.base import Backend
from recprompt.compile.program import Program
from recprompt.data import Dataset
from recprompt.errors import BudgetError, InputError
from recprompt.eval.cases import Case, build_cases, default_protocol
from recprompt.eval.executor import bounded_map, check_concurrency
from recprompt.eval.runner import rank_record, record_of, train_split
from recprompt.eval.scoring import per_case_values
from recprompt.optimize.budget import CallMeter
from recprompt.select import attach, embed_available, make_selector
from recprompt.spec.model import Spec, default_metric

__all__ = [
    "TOLERANCE",
    "Config",
    "Plan",
    "SearchResult",
    "UserSplit",
    "build_program",
    "objective",
    "partition_users",
    "rank_configs",
    "search",
    "search_space",
]


@dataclass(frozen=True)
class UserSplit:
    """Three disjoint, sorted user sets (seeded)."""

    demo: list[str]
    valid: list[str]
    test: list[str]


def partition_users(ds: Dataset, seed: int, n_demo: int, n_valid: int, n_test: int) -> UserSplit:
    """Disjoint demo / validation / test users among those with 3+ interactions (so each
    has a validation and a test interaction under leave-one-out)."""
    counts: dict[str, int] = {}
    for u in ds.user.tolist():
        counts[str(u)] = counts.get(str(u), 0) + 1
    eligible = sorted(u for u, n in counts.items() if n >= 3)
    need = n_demo + n_valid + n_test
    if len(eligible) < need:
        raise InputError(
            f"{len(eligible)} users have 3+ interactions; {need} asked "
            f"({n_demo} demo + {n_valid} validation + {n_test} test)",
            hint="lower --demo-users / --valid-users / --test-users",
        )
    order = [eligible[i] for i in np.random.default_rng(seed).permutation(len(eligible))]
    return UserSplit(
        sorted(order[:n_demo]),
        sorted(order[n_demo : n_demo + n_valid]),
        sorted(order[n_demo + n_valid : need]),
    )


TOLERANCE = 0.01
"""Objective differences below this are noise: the simpler config wins the tie."""
SELECTOR_ORDER = ("none", "fixed", "random", "history", "knn_users", "mmr", "knn_items")
"""Selectors from simplest to most elaborate (the tie-break order)."""


@dataclass(frozen=True)
class Config:
    """One point of the search space. ``draw`` numbers seeded fixed demonstration sets."""

    variant: str
    k: int
    selector: str
    history_length: int | None
    draw: int = 0
    calibration: str = "none"
    """Rank specs: none or contextual (see :mod:`recprompt.optimize.ranking`)."""
    prior_weight: float | None = None
    """Rank specs with a prior: the fusion weight chosen on validation (set on the best)."""

    def complexity(self, default_variant: str | None = None) -> tuple[Any, ...]:
        """Sort key, simplest first: demonstrations, selector, variant, history length."""
        selector = (
            SELECTOR_ORDER.index(self.selector)
            if self.selector in SELECTOR_ORDER
            else len(SELECTOR_ORDER)
        )
        history = self.history_length if self.history_length is not None else 0
        return (self.k, selector, self.variant != default_variant, history, self.draw)

    def label(self) -> str:
        sel = f"fixed#{self.draw}" if self.selector == "fixed" else self.selector
        demos = "zero-shot" if self.k == 0 else f"k={self.k} {sel}"
        text = f"{self.variant} · {demos} · history={self.history_length}"
        if self.calibration != "none":
            text += f" · calibration={self.calibration}"
        if self.prior_weight is not None:
            text += f" · prior weight={self.prior_weight:.2f}"
        return text


def objective(metric: str, values: dict[str, np.ndarray]) -> float:
    """Higher is better: −RMSE, −MAE, else the metric's mean."""
    if metric not in values:
        # validation refuses a metric the output type never computes; what is left is a
        # metric these cases cannot give (AUC with labels of a single class)
        raise InputError(
            f"metric {metric!r} cannot be computed on these cases (have: {', '.join(values)})",
            hint="use more validation users, or a metric listed here",
        )
    if metric == "rmse":
        return -math.sqrt(float(np.mean(values["rmse"])))
    if metric == "mae":
        return -float(np.mean(values["mae"]))
    return float(np.mean(values[metric]))


def rank_configs(
    scored: list[tuple[float, Config]], tolerance: float, default_variant: str | None = None
) -> list[Config]:
    """Configs best first, with scores within ``tolerance`` of the best counted as a tie
    that the simplest config wins (see the module's protocol)."""
    finite = [v for v, _ in scored if math.isfinite(v)]
    if not finite:
        return [c for _, c in scored]
    best = max(finite)
    tied = [c for v, c in scored if math.isfinite(v) and v >= best - tolerance]
    tied.sort(key=lambda c: c.complexity(default_variant))
    rest = [(v, c) for v, c in scored if not (math.isfinite(v) and v >= best - tolerance)]
    rest.sort(key=lambda t: -t[0] if math.isfinite(t[0]) else math.inf)
    return tied + [c for _, c in rest]


def tuned_spec(spec: Spec, config: Config) -> Spec:
    """The spec with the config's demonstration count, selector and history length."""
    demos = spec.demos.model_copy(update={"k": config.k, "selector": config.selector})
    inputs = dict(spec.inputs)
    if config.history_length and "history" in inputs:
        inputs["history"] = inputs["history"].model_copy(
            update={"max_length": config.history_length}
        )
    tuned = spec.model_copy(update={"demos": demos, "inputs": inputs})
    if config.calibration != "none" or config.prior_weight is not None:
        from recprompt.optimize.ranking import tuned_rank_spec

        tuned = tuned_rank_spec(tuned, config)
    return tuned


def search_space(
    spec: Spec,
    *,
    ks: tuple[int, ...] = (0, 1, 2, 4),
    selectors: tuple[str, ...] | None = None,
    history_lengths: tuple[int | None, ...] | None = None,
    fixed_draws: int = 2,
) -> list[Config]:
    """Every config worth trying: zero-shot once per (variant, history), selectors for k>0.

    Only the last stage of a multi-stage spec is tuned: its variant and demonstrations."""
    variants = [v.id for v in spec.all_variants() if not v.held_out]
    if selectors is None:
        selectors = ("random", "knn_users", "history", "mmr") + (
            ("knn_items",) if embed_available() else ()
        )
    if history_lengths is None:
        declared = spec.inputs.get("history")
        if declared is None:
            history_lengths = (None,)
        elif spec.stages:
            # with stages, earlier stages stay fixed: they read the history as declared, so
            # the search leaves its length alone and each stage output is made once per key
            history_lengths = (_default_history(spec),)
        else:
            full = declared.max_length or 20
            history_lengths = tuple(dict.fromkeys((full, max(1, full // 4))))
    out: list[Config] = []
    for variant in variants:
        for hl in history_lengths:
            for k in ks:
                if k == 0:
                    out.append(Config(variant, 0, "none", hl))
                    continue
                out += [Config(variant, k, s, hl) for s in selectors if s != "fixed"]
                out += [Config(variant, k, "fixed", hl, d) for d in range(fixed_draws)]
    if spec.rank is not None:
        from recprompt.optimize.ranking import expand_space

        out = expand_space(spec, out)
    return out


@dataclass
class Plan:
    """The successive-halving schedule: (configs, validation cases) per round, and its cost."""

    rounds: list[tuple[int, int]]
    search_calls: int
    report_calls: int
    reserved: int = 0
    """Calls set aside for calibration estimates (rank specs with calibrated configs)."""

    @property
    def total(self) -> int:
        return self.search_calls + self.report_calls + self.reserved

    def describe(self) -> str:
        steps = " → ".join(f"{n} configs × {c} cases" for n, c in self.rounds)
        estimates = f", calibration estimates {self.reserved}" if self.reserved else ""
        return (
            f"at most {self.total} model calls: search {self.search_calls} ({steps}), "
            f"report {self.report_calls}{estimates}"
        )


def make_plan(
    n_configs: int, n_valid: int, budget: int, report_calls: int, eta: int = 2, reserved: int = 0
) -> tuple[Plan, int]:
    """The most thorough schedule within budget: as many configs and as long a first
    validation prefix as fit. Returns the plan and how many configs it keeps.

    ``reserved``: calls set aside besides the report's (calibration estimates); an error
    names each part, so that --no-report is not suggested for calls it does not save."""

    def schedule(n: int, c0: int) -> list[tuple[int, int]]:
        rounds, c = [], c0
        while n > 1:
            rounds.append((n, min(c, n_valid)))
            n, c = max(1, math.ceil(n / eta)), c * eta
        return [*rounds, (1, n_valid)]

    def cost(rounds: list[tuple[int, int]]) -> int:
        total, prev = 0, 0
        for n, c in rounds:
            total += n * max(c - prev, 0)
            prev = c
        return total

    set_aside = report_calls + reserved
    available = budget - set_aside
    if available < 1:
        parts = [f"the report's {report_calls} calls"] if report_calls else []
        if reserved:
            parts.append(f"{reserved} calls for the calibration estimates of calibrated configs")
        raise BudgetError(
            f"--budget {budget} does not cover {' and '.join(parts)}",
            hint=f"raise --budget above {set_aside}"
            + (", or pass --no-report" if report_calls else ""),
        )
    min_cases = min(n_valid, 4)  # one case per config is noise, not a ranking of configs
    for n in range(n_configs, 0, -1):
        for c0 in range(n_valid, min_cases - 1, -1):
            rounds = schedule(n, c0)  # the survivor is scored on every validation case
            if cost(rounds) <= available:
                return Plan(rounds, cost(rounds), report_calls, reserved), n
    raise BudgetError(
        f"--budget {budget} cannot score even one config on {n_valid} validation cases",
        hint=f"raise --budget to at least {n_valid + set_aside}, or lower --valid-users",
    )


@dataclass
class SearchResult:
    """What the search found, and the evidence."""

    best: Config
    program: Program
    plan: Plan
    split: UserSplit
    trials: list[dict[str, Any]] = field(default_factory=list)
    meter: CallMeter | None = None
    seen_users: set[str] = field(default_factory=set)


class _Context:
    """Cases, pools and memoized scores shared by all configs of one search."""

    def __init__(
        self,
        spec: Spec,
        ds: Dataset,
        split: UserSplit,
        meter: CallMeter,
        seed: int,
        max_prompt_tokens: int | None,
        counter: Callable[[str], int] | None,
    ) -> None:
        self.spec, self.ds, self.split, self.meter = spec, ds, split, meter
        self.seed = seed
        self.max_prompt_tokens = max_prompt_tokens
        self.counter = counter
        self.metric = default_metric(spec)
        self._cases: dict[tuple[str, int | None, tuple[str, ...]], list[Case]] = {}
        self._records: dict[tuple[Config, str], dict[str, Any]] = {}
        self.seen_users: set[str] = set()
        self.concurrency = 1
        """Cases scored at once (threads); the records do not depend on it."""
        base = default_protocol(spec, ds.name, seed=seed)
        self.protocol = base
        train = train_split(ds, base)
        self.fallback = float(np.nanmean(train.rating)) if train.has_ratings else 0.0
        self.tune_fusion = True  # rank specs: tune the prior's weight (False in the report)
        self._programs: dict[Config, Program] = {}
        if spec.rank is not None:
            from recprompt.optimize.ranking import Priors

            self._priors = Priors(spec, ds, base, seed)

    def prior_scores(self, record: dict[str, Any]) -> dict[str, float]:
        """The spec's prior on a record's candidates, fitted on what its target may see."""
        target = "test" if _user_of(record) in set(self.split.test) else "valid"
        return self._priors.scores(record, target)

    def cases(self, target: str, users: list[str], history_length: int | None) -> list[Case]:
        key = (target, history_length, tuple(users))
        if key not in self._cases:
            protocol = self.protocol.model_copy(
                update={"target": target, "n_users": None, "history_length": history_length}
            )
            wanted = set(users)
            cases = [c for c in build_cases(self.spec, self.ds, protocol) if _user(c) in wanted]
            rng = np.random.default_rng(self.seed)
            cases.sort(key=lambda c: c.id)
            shuffled = [cases[i] for i in rng.permutation(len(cases))]
            # one case per user (the first in the seeded order): under a random split a user
            # has several target interactions; capping spreads the cases over users and
            # makes the number of calls known before any call
            taken: set[str] = set()
            self._cases[key] = []
            for case in shuffled:
                if _user(case) not in taken:
                    taken.add(_user(case))
                    self._cases[key].append(case)
        return self._cases[key]

    def pool(self, history_length: int | None) -> list[dspy.Example]:
        output = self.spec.output.name
        return [
            dspy.Example(**c.inputs, **{output: c.label}).with_inputs(*c.inputs)
            for c in self.cases("valid", self.split.demo, history_length)
        ]

    def program(self, config: Config, backend: Backend | None = None) -> Program:
        if self.spec.rank is not None:
            from recprompt.optimize.ranking import rank_program

            return rank_program(self, config, backend)
        return build_program(
            self.spec,
            config,
            self.pool(config.history_length),
            backend=backend or self.meter,
            seed=self.seed,
            max_prompt_tokens=self.max_prompt_tokens,
            counter=self.counter,
        )

    def score(
        self, config: Config, cases: list[Case], program: Program | None = None
    ) -> tuple[float, dict[str, np.ndarray]]:
        program = program or self.program(config)
        todo = [case for case in cases if (config, case.id) not in self._records]
        for case in todo:
            self.seen_users.add(_user(case))
            for demo in program.demos(case.inputs):
                user = demo.inputs.get("user_id")
                if user is not None:
                    self.seen_users.add(str(user))
        if self.spec.rank is not None:
            work = lambda case: rank_record(program, case)  # noqa: E731
        else:
            work = lambda case: record_of(case, program(**case.inputs))  # noqa: E731
        for _, case, record in bounded_map(work, todo, self.concurrency):
            if isinstance(record, BaseException):
                raise record
            self._records[(config, case.id)] = record
        records = [self._records[(config, case.id)] for case in cases]
        if self.spec.rank is not None:
            from recprompt.optimize.ranking import rank_scores

            value, values, _ = rank_scores(self, config, records, tune=self.tune_fusion)
            return value, values
        values = per_case_values(self.spec, records, self.fallback)
        return objective(self.metric, values), values


def _user(case: Case) -> str:
    return str(case.meta.get("user_id", case.id.split(":")[0]))


def _user_of(record: dict[str, Any]) -> str:
    return str(record["meta"].get("user_id", str(record["id"]).split(":")[0]))


def build_program(
    spec: Spec,
    config: Config,
    pool: list[dspy.Example],
    *,
    backend: Backend | None = None,
    seed: int = 0,
    max_prompt_tokens: int | None = None,
    counter: Callable[[str], int] | None = None,
) -> Program:
    """A program for ``config``: fixed sets become ``predict.demos``; other selectors pick
    per input from ``pool``."""
    program = Program(tuned_spec(spec, config), variant=config.variant, backend=backend)
    if config.k == 0:
        program.set_demos([])
        return program
    if config.selector == "fixed":
        rng = np.random.default_rng([seed, config.k, config.draw])
        picks = rng.choice(len(pool), size=min(config.k, len(pool)), replace=False).tolist()
        program.set_demos([pool[i] for i in picks])
        return program
    selector = make_selector(config.selector, seed=seed, max_tokens=max_prompt_tokens)
    if counter is not None and hasattr(selector, "counter"):
        selector.counter = counter
    return attach(program, selector, pool)


def search(
    spec: Spec,
    ds: Dataset,
    backend: Backend,
    *,
    budget: int,
    seed: int = 0,
    split: UserSplit,
    configs: list[Config] | None = None,
    report_calls: int = 0,
    eta: int = 2,
    max_prompt_tokens: int | None = None,
    counter: Callable[[str], int] | None = None,
    announce: Callable[[str], None] = print,
    tolerance: float = TOLERANCE,
    concurrency: int = 1,
) -> SearchResult:
    """Successive halving over ``configs`` on the validation users, within ``budget``;
    scores within ``tolerance`` are ties that the simpler config wins."""
    meter = backend if isinstance(backend, CallMeter) else CallMeter(backend, budget)
    meter.budget = budget
    ctx = _Context(spec, ds, split, meter, seed, max_prompt_tokens, counter)
    ctx.concurrency = check_concurrency(concurrency)
    if concurrency > 1:
        from recprompt.backends.throttle import attach_throttle

        attach_throttle(meter, concurrency)
    space = configs if configs is not None else search_space(spec)
    default = Config(spec.variant().id, 0, "none", _default_history(spec))
    rng = np.random.default_rng(seed)
    rest = [c for c in space if c != default]
    ordered = [default] + [rest[i] for i in rng.permutation(len(rest))]
    valid_cases = ctx.cases("valid", split.valid, default.history_length)
    reserved = 0
    if spec.rank is not None:
        from recprompt.optimize.ranking import reserve

        reserved = reserve(ordered)
    plan, n_keep = make_plan(
        len(ordered), len(valid_cases), budget, report_calls, eta, reserved=reserved
    )
    announce(f"optimize: {len(ordered)} configs in the space, {n_keep} kept; {plan.describe()}")
    alive = ordered[:n_keep]
    trials: list[dict[str, Any]] = []
    for round_no, (n, c) in enumerate(plan.rounds):
        alive = alive[:n]
        scored = []
        for config in alive:
            cases = ctx.cases("valid", split.valid, config.history_length)[:c]
            value, _ = ctx.score(config, cases)
            scored.append((value, config))
            trials.append(
                {"round": round_no, "cases": c, "config": asdict(config), "label": config.label()}
                | {"objective": value, "calls_so_far": meter.calls}
            )
        alive = rank_configs(scored, tolerance, default.variant)
    best = alive[0]
    if spec.rank is not None and spec.rank.prior != "none":
        from recprompt.optimize.ranking import best_weight

        best = best_weight(ctx, best, ctx.cases("valid", split.valid, best.history_length))
    return SearchResult(best, ctx.program(best), plan, split, trials, meter, set(ctx.seen_users))


def _default_history(spec: Spec) -> int | None:
    declared = spec.inputs.get("history")
    return None if declared is None else (declared.max_length or None)
