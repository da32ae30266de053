"""``rank(program, inputs, candidates)``: the spec's ``rank:`` section, run for one user.

Steps: resolve the strategy (``auto`` follows the output type), make B distinct candidate
orders, score each order with the strategy, aggregate by Borda when B > 1, fuse with the
collaborative prior when one is attached, and order by score with a seeded tie-break.
Failures are kept: a failed order is reported in ``error`` and left out of the aggregate;
if every order fails, the ranking is the seeded tie-break order and ``error`` says so.

Candidates are keyed by item id throughout. Candidates with distinct ids but equal names
(two films with one title) are told apart before anything is rendered: their names get the
id appended (``"Chasing Amy (1997) [id 268]"``), so prompts, parsed lists and scores never
confuse them. Candidates whose ids repeat are refused.
"""

from __future__ import annotations

from typing import Any

from recprompt.backends.capabilities import check_scoring
from recprompt.compile.inputs import Item, make_item
from recprompt.errors import InputError
from recprompt.rank.aggregate import bootstrap_orders, borda
from recprompt.rank.base import (
    Context,
    OrderScores,
    RankResult,
    item_key,
    order_by,
    tiebreak_rng,
)
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


def _told_apart(candidates: list[Any], names: list[str], keys: list[str], key: str) -> list[Any]:
    """Candidates whose equal names get ``[id X]`` appended (only those that repeat)."""
    from recprompt.data.dataset import disambiguate

    shown = disambiguate(dict(zip(keys, names, strict=True)))
    out: list[Any] = []
    for item, name, ident in zip(candidates, names, keys, strict=True):
        new = shown[ident]
        if new == name:
            out.append(item)
        elif isinstance(item, Item) and key == "title":
            fields = {k: v for k, v in item.items() if k not in ("item_id", "title")}
            out.append(make_item(item["item_id"], new, **fields))
        else:
            out.append({**item, key: new})
    return out


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
    check_scoring(spec, ctx.backend)  # before any call: no silent fallback to generation
    names = [ctx.name(c) for c in candidates]
    keys = [item_key(c, n) for c, n in zip(candidates, names, strict=True)]
    if len(set(keys)) != len(keys):
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        raise InputError(
            f"{spec.name}: candidates repeat ({', '.join(map(repr, repeated[:3]))}): "
            "rank needs distinct items",
            hint="give each candidate its own item_id",
        )
    if len(set(names)) != len(names):  # distinct items, one name: tell them apart
        candidates = _told_apart(list(candidates), names, keys, ctx.key)
        names = [ctx.name(c) for c in candidates]
    name_of = dict(zip(keys, names, strict=True))
    # seeded by the names, as before ids were keys, so earlier results reproduce
    perm = tiebreak_rng(settings.seed, names).permutation(len(keys))
    tiebreak = [keys[int(i)] for i in perm]
    orders = bootstrap_orders(candidates, settings.bootstrap, settings.seed, names)
    run = pairwise if strategy == "pairwise" else STRATEGIES[strategy]
    runs: list[OrderScores] = [run(ctx, order) for order in orders]
    option_prior = getattr(program, "option_prior", None)
    raw_runs = runs
    if option_prior is not None and strategy == "letters":
        runs = [
            _calibrated(ctx, r, order, option_prior) for r, order in zip(runs, orders, strict=True)
        ]
    good = [r.scores for r in runs if r.error is None]
    failed = [r.error for r in runs if r.error is not None]
    error = f"{len(failed)} of {len(runs)} orders failed: {failed[0]}" if failed else None
    if not good:
        llm = dict.fromkeys(keys, 0.0)
    elif len(runs) == 1:
        llm = {k: good[0][k] for k in keys}
    else:
        aggregated = borda(good)
        llm = {k: aggregated[k] for k in keys}
    uncalibrated = None
    if raw_runs is not runs:
        raw_good = [r.scores for r in raw_runs if r.error is None]
        if raw_good:
            raw = raw_good[0] if len(raw_good) == 1 else borda(raw_good)
            uncalibrated = {k: raw[k] for k in keys}
    final, prior_scores = llm, None
    if fitted is not None:
        prior_scores = fitted.scores(str(user), candidates, keys)
        weight = fitted.weight if fitted.weight is not None else settings.prior_weight
        final = fuse(llm, prior_scores, weight, fitted.method)
    ranked = order_by(final, tiebreak)

    def by_name(table: dict[str, float] | None) -> dict[str, float] | None:
        return None if table is None else {name_of[k]: v for k, v in table.items()}

    return RankResult(
        ranking=[name_of[k] for k in ranked],
        scores={name_of[k]: final[k] for k in ranked},
        strategy=strategy if settings.bootstrap == 1 else f"{strategy}+borda{settings.bootstrap}",
        usage=ctx.usage(),
        error=error,
        llm_scores=by_name(llm),
        prior_scores=by_name(prior_scores),
        orders=[[ctx.name(c) for c in order] for order in orders],
        ids=ranked,
        uncalibrated_scores=uncalibrated,
    )


def _calibrated(ctx: Context, run: OrderScores, order: list[Any], prior: Any) -> OrderScores:
    """Letter scores of one order with the option prior divided out (letter = position)."""
    if run.error is not None:
        return run
    keys = [ctx.id(c) for c in order]
    labels = list(LETTERS[: len(keys)])
    adjusted = prior.adjust(labels, [run.scores[k] for k in keys])
    return OrderScores(dict(zip(keys, adjusted, strict=True)))
