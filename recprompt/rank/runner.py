"""``rank(program, inputs, candidates)``: the spec's ``rank:`` section, run for one user.

Steps: resolve the strategy (``auto`` follows the output type), make B distinct candidate
orders, score each order with the strategy, aggregate by Borda when B > 1, fuse with the
collaborative prior when one is attached, and order by score with a seeded tie-break.
Failures are kept: a failed order is reported in ``error`` and left out of the aggregate;
if every order fails, the ranking is the seeded tie-break order and ``error`` says so.
"""

from __future__ import annotations

from typing import Any

from recprompt.errors import InputError
from recprompt.rank.aggregate import bootstrap_orders, borda
from recprompt.rank.base import Context, OrderScores, RankResult, order_by, tiebreak_rng
from recprompt.rank.fusion import Prior, fuse
from recprompt.rank.pairwise import pairwise
from recprompt.rank.strategies import STRATEGIES
from recprompt.spec.model import RankSpec, Spec
from recprompt.spec.template import LETTERS
from recprompt.types import ChoiceOutput, ItemListOutput, ItemOutput

__all__ = ["rank", "resolve_strategy"]


def resolve_strategy(spec: Spec) -> str:
    """The strategy a spec asks for; ``auto`` follows its output type and inputs."""
    settings = spec.rank or RankSpec()
    if settings.strategy != "auto":
        return settings.strategy
    output = spec.output
    if isinstance(output, ItemListOutput):
        return "listwise"
    if isinstance(output, ItemOutput):
        return "likelihood"
    if isinstance(output, ChoiceOutput):
        if len(output.options) > 2 and all(o in LETTERS for o in output.options):
            return "letters"
        if all(name in spec.inputs for name in settings.pair_inputs):
            return "pairwise"
        return "pointwise"
    raise InputError(
        f"{spec.name}: cannot rank with a {output.type} output",
        hint="set rank.strategy, or use an item_list, item or choice output",
    )


def _prior(program: Any, settings: RankSpec, given: Prior | None) -> Prior | None:
    prior = given if given is not None else getattr(program, "rank_prior", None)
    if prior is None and settings.prior != "none" and settings.prior_weight > 0:
        raise InputError(
            f"{program.spec.name}: rank.prior is {settings.prior!r} but no fitted prior is "
            "attached",
            hint="recprompt.rank.attach_prior(program, make_baseline(...).fit(train))",
        )
    return prior


def rank(
    program: Any,
    inputs: dict[str, Any],
    candidates: list[Any],
    *,
    user: str | None = None,
    prior: Prior | None = None,
) -> RankResult:
    """Rank all ``candidates`` ({item_id, title} dicts or names) for the user in ``inputs``.

    ``user`` (default ``inputs["user_id"]``) is needed only by a collaborative prior.
    """
    spec: Spec = program.spec
    settings = spec.rank or RankSpec()
    strategy = resolve_strategy(spec)
    if not candidates:
        raise InputError(f"{spec.name}: no candidates to rank")
    if spec.stages:  # earlier stages (a profile, enriched candidates) run first, once per key
        inputs = program.fill_stages(inputs)
        candidates = program.stage_runner_for().fill_items(settings.candidates_from, candidates)
    fitted = _prior(program, settings, prior)
    user = user if user is not None else inputs.get("user_id")
    if fitted is not None and user is None:
        raise InputError("a collaborative prior needs the user id", hint="pass rank(..., user=...)")
    ctx = Context(
        program,
        dict(inputs),
        settings,
        program.resolve_backend(),
        getattr(spec.output, "key", "title"),
    )
    names = [ctx.name(c) for c in candidates]
    if len(set(names)) != len(names):
        raise InputError(f"{spec.name}: candidate names repeat: rank needs distinct names")
    tiebreak = [str(n) for n in tiebreak_rng(settings.seed, names).permutation(names)]
    orders = bootstrap_orders(candidates, settings.bootstrap, settings.seed, names)
    run = pairwise if strategy == "pairwise" else STRATEGIES[strategy]
    runs: list[OrderScores] = [run(ctx, order) for order in orders]
    good = [r.scores for r in runs if r.error is None]
    failed = [r.error for r in runs if r.error is not None]
    error = f"{len(failed)} of {len(runs)} orders failed: {failed[0]}" if failed else None
    if not good:
        llm = dict.fromkeys(names, 0.0)
    elif len(runs) == 1:
        llm = {n: good[0][n] for n in names}
    else:
        aggregated = borda(good)
        llm = {n: aggregated[n] for n in names}
    final, prior_scores = llm, None
    if fitted is not None:
        prior_scores = fitted.scores(str(user), candidates, names)
        weight = fitted.weight if fitted.weight is not None else settings.prior_weight
        final = fuse(llm, prior_scores, weight, fitted.method)
    ranking = order_by(final, tiebreak)
    return RankResult(
        ranking=ranking,
        scores={n: final[n] for n in ranking},
        strategy=strategy if settings.bootstrap == 1 else f"{strategy}+borda{settings.bootstrap}",
        usage=ctx.usage(),
        error=error,
        llm_scores=llm,
        prior_scores=prior_scores,
        orders=[[ctx.name(c) for c in order] for order in orders],
    )
