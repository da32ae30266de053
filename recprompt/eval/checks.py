"""Checks of a protocol against a spec and the cases it produced, before any model call.

A run that cannot mean anything fails here with the reason; a run that means less than the
user asked for (fewer users than requested, candidate lists no longer than the cut-off) goes
ahead with a warning that the report repeats, so a shortfall is never silent.
"""

from __future__ import annotations

import re
from typing import Any

from recprompt.data import Protocol
from recprompt.errors import InputError
from recprompt.eval.cases import Case
from recprompt.spec.model import Spec
from recprompt.types import ItemListOutput

__all__ = ["check_candidates", "user_counts"]


def check_candidates(spec: Spec, protocol: Protocol, *, ranking: bool) -> list[str]:
    """Refuse a top-K list longer than the candidate list; warn when the cut-off covers all."""
    if not ranking:
        return []
    candidates = protocol.n_negatives + 1
    output = spec.output
    listwise = spec.rank is None or spec.rank.strategy in ("auto", "listwise")
    if isinstance(output, ItemListOutput) and listwise and output.k > candidates:
        raise InputError(
            f"{spec.name} asks for a top-{output.k} list, but each case has only {candidates} "
            f"candidate(s) (1 positive + {protocol.n_negatives} negatives)",
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


def user_counts(protocol: Protocol, cases: list[Case]) -> tuple[dict[str, Any], list[str]]:
    """Users requested by the protocol against users that the cases actually cover."""
    covered = len({str(c.meta.get("user_id", c.id)) for c in cases})
    counts = {"requested": protocol.n_users, "evaluated": covered}
    if protocol.n_users is not None and covered < protocol.n_users:
        return counts, [
            f"--users {protocol.n_users} requested, but the dataset has only {covered} eligible "
            f"user(s) under this protocol: the report covers {covered}"
        ]
    return counts, []
