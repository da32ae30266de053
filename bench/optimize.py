"""Metric reached against model calls spent: recprompt's optimizer vs DSPy's random search.

Task: ``p5.rating`` (RMSE, decode expected) on MovieLens 100K with the default local model
(Gemma 3 270M Q4_K_M). Users with 3+ interactions are split, seeded (seed 0), into disjoint
demo / validation / test users (the spec's default protocol: P5's seeded 8:1:1 random
split; one target interaction per user). Both optimizers draw demonstrations from the
demo users, score candidates on the validation users' validation interaction, and under
the same call budget; the chosen program is then
measured on the test users' test interaction (calls for that are not part of the budget).

* recprompt: successive halving over variant × k × selector × history length
  (:func:`recprompt.optimize.search`).
* DSPy: ``dspy.BootstrapFewShotWithRandomSearch`` on the same program and data, with as many
  candidate programs as the budget pays for (each costs one validation pass plus its
  bootstrap calls); its metric is 1 − |error|/4.

Writes bench/results/optimize.json. Usage: ``python bench/optimize.py [budget ...]``.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import dspy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recprompt.backends import get_backend
from recprompt.compile.program import Program
from recprompt.data import load_dataset
from recprompt.errors import BudgetError
from recprompt.optimize import CallMeter, Config, partition_users, search
from recprompt.optimize.search import _Context
from recprompt.spec import load_spec

from _common import write_result

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "recprompt" / "templates" / "p5" / "rating.yaml"
SEED, DEMO, VALID, TEST = 0, 30, 20, 40
MAX_LABELED, MAX_BOOT = 4, 2


def test_rmse(ctx: _Context, config: Config, program: Program | None) -> float:
    cases = ctx.cases("test", ctx.split.test, config.history_length)
    return -ctx.score(config, cases, program)[0]


def run_recprompt(ctx_args: dict[str, Any], budget: int) -> dict[str, Any]:
    backend = CallMeter(ctx_args["backend"], budget)
    started = time.monotonic()
    result = search(
        ctx_args["spec"],
        ctx_args["ds"],
        backend,
        budget=budget,
        seed=SEED,
        split=ctx_args["split"],
        max_prompt_tokens=3500,
        announce=print,
    )
    spent, seconds = backend.calls, time.monotonic() - started
    valid = -max(t["objective"] for t in result.trials if t["cases"] == VALID)
    meter = CallMeter(ctx_args["backend"])  # test calls are outside the budget
    result.program.backend = meter
    ctx = _Context(ctx_args["spec"], ctx_args["ds"], result.split, meter, SEED, 3500, None)
    return {
        "method": "recprompt successive halving",
        "budget": budget,
        "calls": spent,
        "seconds": round(seconds, 1),
        "chosen": result.best.label(),
        "valid_rmse": valid,
        "test_rmse": test_rmse(ctx, result.best, result.program),
    }


def run_dspy(ctx_args: dict[str, Any], budget: int) -> dict[str, Any]:
    spec, ds, split = ctx_args["spec"], ctx_args["ds"], ctx_args["split"]
    meter = CallMeter(ctx_args["backend"], budget)
    ctx = _Context(spec, ds, split, meter, SEED, None, None)
    hl = spec.inputs["history"].max_length
    output = spec.output.name
    as_examples = [
        dspy.Example(**c.inputs, **{output: c.label}).with_inputs(*c.inputs)
        for c in ctx.cases("valid", split.demo, hl)
    ]
    valset = [
        dspy.Example(**c.inputs, **{output: c.label}).with_inputs(*c.inputs)
        for c in ctx.cases("valid", split.valid, hl)
    ]

    def metric(example: dspy.Example, prediction: Any, trace: Any = None) -> float:
        value = getattr(prediction, output, None)
        if value is None:
            return 0.0
        return 1.0 - abs(float(value) - float(getattr(example, output))) / 4.0

    # seeds -3 (zero-shot), -2 (labelled), -1 and each random candidate: one validation
    # pass each, plus up to MAX_BOOT successful bootstrap calls (usually a few more)
    per_candidate = len(valset) + 2 * MAX_BOOT
    n_random = max(0, budget // per_candidate - 3)
    student = Program(spec, backend=meter)
    optimizer = dspy.BootstrapFewShotWithRandomSearch(
        metric=metric,
        max_labeled_demos=MAX_LABELED,
        max_bootstrapped_demos=MAX_BOOT,
        num_candidate_programs=n_random,
        num_threads=1,
        max_errors=1,
    )
    started = time.monotonic()
    try:
        tuned = optimizer.compile(student, trainset=as_examples, valset=valset)
        stopped = None
    except Exception as exc:
        if not isinstance(exc, BudgetError) and meter.calls < budget:
            raise
        tuned, stopped = student, str(exc).splitlines()[0]
    spent, seconds = meter.calls, time.monotonic() - started
    config = Config(spec.variant().id, len(tuned.predict.demos), "fixed", hl)
    valid_values = ctx.score(config, ctx.cases("valid", split.valid, hl), tuned)[0]
    test_ctx = _Context(spec, ds, split, CallMeter(ctx_args["backend"]), SEED, None, None)
    tuned.backend = test_ctx.meter
    return {
        "method": "dspy.BootstrapFewShotWithRandomSearch",
        "budget": budget,
        "calls": spent,
        "seconds": round(seconds, 1),
        "chosen": f"{spec.variant().id} · {len(tuned.predict.demos)} demos "
        f"({sum(1 for d in tuned.predict.demos if d.get('augmented'))} bootstrapped) · "
        f"{n_random} random candidates",
        "valid_rmse": -valid_values,
        "test_rmse": test_rmse(test_ctx, config, tuned),
        "stopped_by_budget": stopped,
    }


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) and math.isfinite(value) else value


def main(budgets: list[int]) -> None:
    data = Path(os.environ.get("RECPROMPT_DATA", ROOT.parent / "shared" / "data")) / "ml-100k"
    ds = load_dataset(str(data))
    spec = load_spec(SPEC)
    backend = get_backend("local")  # no disk cache: each method pays for its own calls
    split = partition_users(ds, SEED, DEMO, VALID, TEST)
    ctx_args = {"spec": spec, "ds": ds, "split": split, "backend": backend}
    hl_default = spec.inputs["history"].max_length
    zero = Config(spec.variant().id, 0, "none", hl_default)
    zctx = _Context(spec, ds, split, CallMeter(backend), SEED, None, None)
    rows = [
        {
            "method": "zero-shot (spec default)",
            "budget": 0,
            "calls": 0,
            "chosen": zero.label(),
            "valid_rmse": -zctx.score(zero, zctx.cases("valid", split.valid, zero.history_length))[
                0
            ],
            "test_rmse": test_rmse(zctx, zero, None),
        }
    ]
    for budget in budgets:
        rows.append(run_recprompt(ctx_args, budget))
        rows.append(run_dspy(ctx_args, budget))
        print(rows[-2], rows[-1], sep="\n")
    write_result(
        "optimize",
        {
            "task": "p5.rating on ml-100k, RMSE (lower is better), decode expected",
            "model": backend.name,
            "protocol": {
                "split": "P5 random 8:1:1 (seeded), one target interaction per user",
                "users": f"disjoint seeded: {DEMO} demo, {VALID} validation, {TEST} test",
                "seed": SEED,
                "history_length_default": spec.inputs["history"].max_length,
                "budget_counts": "model calls of the search only; test calls excluded",
            },
            "rows": [{k: _round(v) for k, v in r.items()} for r in rows],
            "note": "no disk cache; each method memoizes only its own repeated prompts",
        },
    )


if __name__ == "__main__":
    main([int(b) for b in sys.argv[1:]] or [80, 160])
