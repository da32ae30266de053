"""Checks of a protocol against a spec and the cases it produced, before any model call.

A run that cannot mean anything fails here with the reason; a run that means less than the
user asked for (fewer users than requested, candidate lists no longer than the cut-off) goes
ahead with a warning that the report repeats, so a shortfall is never silent.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from recprompt.data import Protocol
from recprompt.errors import InputError
from recprompt.eval.cases import Case
from recprompt.spec.model import Spec
from recprompt.types import ItemListOutput, TextOutput

__all__ = [
    "check_candidates",
    "check_case_candidates",
    "idle_prior",
    "other_reason",
    "short_shortlists",
    "short_users",
    "user_counts",
    "users_without_a_case",
]


def check_candidates(spec: Spec, protocol: Protocol, *, ranking: bool) -> list[str]:
    """Refuse a top-K list longer than the candidate list; warn when the cut-off covers all."""
    if not ranking:
        return []
    output = spec.output
    if protocol.retriever is not None:
        candidates, made = protocol.shortlist, f"the --shortlist of {protocol.retriever}"
        fewer = "pass --shortlist {n} or fewer"
    else:
        candidates = protocol.n_negatives + 1
        made = f"1 positive + {protocol.n_negatives} negatives"
        fewer = "pass --negatives {m} or fewer"
    letters = _letters(spec)
    if letters is not None and candidates > len(letters):
        raise InputError(
            f"{spec.name} labels each candidate with a letter ({letters[0]} to {letters[-1]}: "
            f"{len(letters)}), but each case has {candidates} candidates ({made}): its answer "
            "cannot name the others",
            hint=fewer.format(n=len(letters), m=len(letters) - 1)
            + (", or list more letters in the spec's output options" if len(letters) < 26 else ""),
        )
    listwise = spec.rank is None or spec.rank.strategy in ("auto", "listwise")
    if isinstance(output, ItemListOutput) and listwise and output.k > candidates:
        raise InputError(
            f"{spec.name} asks for a top-{output.k} list, but each case has only {candidates} "
            f"candidate(s) ({made})",
            hint=f"pass --negatives {output.k - 1} or more, or use a spec with a smaller k",
        )
    warnings = []
    found = re.search(r"@(\d+)", spec.metric or "")
    cutoff = int(found.group(1)) if found else 10
    if candidates <= cutoff:
        warnings.append(
            f"each case has only {candidates} candidate(s): hit rate and NDCG at {cutoff} "
            "cannot tell systems apart"
        )
    return warnings


def short_shortlists(protocol: Protocol, cases: list[Case]) -> list[str]:
    """Warn when a retriever's shortlist holds fewer than --shortlist items for some users.

    Only the items a user has not seen are shortlisted, so a --shortlist larger than that
    (5000 on a 1,682-item catalogue) ranked fewer candidates than the report's "top N" said.
    """
    if protocol.retriever is None:
        return []
    sizes = [len(c.meta.get("candidates", ())) for c in cases]
    short = [n for n in sizes if n < protocol.shortlist]
    if not short:
        return []
    return [
        f"--shortlist {protocol.shortlist} asks for {protocol.shortlist} candidates, but "
        f"{len(short)} of {len(sizes)} case(s) have fewer ({min(short)} to {max(short)}): "
        f"the {protocol.retriever} shortlist holds only the items a user has not seen"
    ]


def idle_prior(spec: Spec) -> list[str]:
    """``prior: bpr`` with weight 0 and no ``tune_users`` fits the prior and ranks by the
    model alone; optimize tunes such a spec's weight, so it is a warning here, not an error."""
    rank = spec.rank
    if rank is None or rank.prior == "none" or rank.tune_users or rank.prior_weight > 0:
        return []
    return [
        f"rank.prior is {rank.prior}, but prior_weight is 0 and tune_users is not set: the "
        "prior is fitted and takes no part in the ranking (the model's scores alone rank the "
        "candidates); set prior_weight above 0, or tune_users to tune it on validation users"
    ]


def check_case_candidates(spec: Spec, protocol: Protocol, cases: list[Case]) -> None:
    """Refuse, before any call, a case with fewer candidates than a top-K list needs.

    A retriever's shortlist can be shorter than --shortlist: only items the user has not
    seen are shortlisted, and a small catalogue runs out. The prompt would then ask for K
    distinct items out of fewer, and the run would stop at that case, after the others.
    """
    output = spec.output
    listwise = spec.rank is None or spec.rank.strategy in ("auto", "listwise")
    if not (isinstance(output, ItemListOutput) and listwise):
        return
    short = [c for c in cases if len(c.meta.get("candidates", ())) < output.k]
    if not short:
        return
    fewest = min(len(c.meta.get("candidates", ())) for c in short)
    first = short[0]
    user = first.meta.get("user_id", first.id)
    why = (
        f"the {protocol.retriever} shortlist holds only the items a user has not seen"
        if protocol.retriever is not None
        else "too few items are left to draw negatives from"
    )
    raise InputError(
        f"{spec.name} asks for a top-{output.k} list, but {len(short)} case(s) have fewer "
        f"candidates (user {user}: {len(first.meta.get('candidates', ()))}; {why})",
        hint=f"use a spec with k at most {fewest}, or a dataset with more items per user",
    )


def _letters(spec: Spec) -> str | None:
    """The letters a letters-ranking spec can label candidates with (its letter options,
    at most A to Z); None for other strategies."""
    from recprompt.rank.runner import resolve_strategy
    from recprompt.spec.template import LETTERS

    if spec.rank is None or resolve_strategy(spec) != "letters":
        return None
    options = list(getattr(spec.output, "options", None) or ())
    if options and all(len(o) == 1 and o in LETTERS for o in options):
        return "".join(options)
    return LETTERS


def user_counts(
    protocol: Protocol,
    cases: list[Case],
    dataset_users: int | None = None,
    *,
    short: int | None = None,
    other: str = "",
) -> tuple[dict[str, Any], list[str]]:
    """Users requested by the protocol against users that the cases actually cover.

    When every user is asked for, users of the dataset without a case are counted and
    named in a warning (:func:`users_without_a_case`; ``short`` and ``other`` as there).
    """
    covered = len({str(c.meta.get("user_id", c.id)) for c in cases})
    counts = {"requested": protocol.n_users, "evaluated": covered}
    if protocol.n_users is not None and covered < protocol.n_users:
        return counts, [
            f"--users {protocol.n_users} requested, but the dataset has only {covered} eligible "
            f"user(s) under this protocol: the report covers {covered}"
        ]
    dump = protocol.model_dump()
    dropped = users_without_a_case(dump, dataset_users or 0, covered, short=short, other=other)
    if dropped:
        counts["without_a_case"] = (dataset_users or 0) - covered
        return counts, [dropped]
    return counts, []


def needed_interactions(protocol: dict[str, Any]) -> int:
    """Interactions a user needs for a case under leave-one-out: 2 for a test item (one held
    out, one to learn from), 3 for a validation item."""
    return 2 if protocol.get("target", "test") == "test" else 3


def short_users(dataset: Any, protocol: Protocol | dict[str, Any]) -> int:
    """Users of ``dataset`` with fewer interactions than leave-one-out needs."""
    dump = protocol if isinstance(protocol, dict) else protocol.model_dump()
    if len(dataset.user) == 0:
        return 0
    _, counts = np.unique(np.asarray(dataset.user), return_counts=True)
    return int((counts < needed_interactions(dump)).sum())


def other_reason(spec: Spec) -> str:
    """Why users with enough interactions may still have no case (text specs: their
    held-out review has no reference to score against)."""
    if isinstance(spec.output, TextOutput):
        what = "summary" if spec.task == "review_summary" else "explanation sentence"
        return f"whose held-out review has no {what} to score against"
    return ""


def users_without_a_case(
    protocol: dict[str, Any],
    dataset_users: int,
    covered: int,
    *,
    short: int | None = None,
    other: str = "",
) -> str:
    """The warning for users of the dataset that a run over *every* user leaves out.

    Under leave-one-out a user needs 2 interactions for a test item and 3 for a validation
    item; a user who silently drops out changes what "every user" means. ``short`` is how
    many users have too few interactions (default: every user left out); the others are
    left out for ``other`` (text specs: no reference in their held-out review). Empty when
    nobody drops out, when a sample of users was asked for, or under a ratio split (whose
    test part holds only some users by design).
    """
    missing = dataset_users - covered
    if protocol.get("n_users") is not None or protocol.get("split") != "leave_one_out":
        return ""
    if missing <= 0:
        return ""
    target = protocol.get("target", "test")
    needed = needed_interactions(protocol)
    short = missing if short is None else min(short, missing)
    few = (
        f"{short} have fewer than {needed} interactions, so leave-one-out holds out no "
        f"{target} item for them"
    )
    if short == missing:
        return (
            f"{missing} of the dataset's {dataset_users} users have fewer than {needed} "
            f"interactions, so leave-one-out holds out no {target} item for them: the run "
            f"covers {covered}"
        )
    rest = f"{missing - short} {other or 'for other reasons'}"
    parts = f"{few}; {rest}" if short else rest
    return (
        f"{missing} of the dataset's {dataset_users} users have no case ({parts}): the run "
        f"covers {covered}"
    )
