"""Seeded user sampling, candidate sets and the example records that prompts consume.

Every random draw for a user comes from ``default_rng([seed, crc32(user_id)])``, so a
user's candidates do not depend on which other users are evaluated or in which order.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from recprompt.data.dataset import Dataset, Interaction
from recprompt.data.protocols import Protocol, split_dataset
from recprompt.errors import DataError

__all__ = [
    "RankingExample",
    "RatingExample",
    "ranking_examples",
    "rating_examples",
    "sample_candidates",
    "sample_users",
    "truncate_history",
    "user_rng",
]


@dataclass(frozen=True)
class RankingExample:
    """One ranking case: the positive sits at ``candidates[positive_index]``."""

    user_id: str
    history: tuple[Interaction, ...]
    candidates: tuple[str, ...]
    positive: str
    positive_index: int
    retriever_rank: int | None = None
    """Retrieve-then-rerank only: the positive's 1-based rank by the retriever (None: > N)."""


@dataclass(frozen=True)
class RatingExample:
    """One rating case; ``rating`` is the label, ``history`` the user's training events."""

    user_id: str
    item_id: str
    rating: float
    history: tuple[Interaction, ...]


def user_rng(seed: int, user_id: str) -> np.random.Generator:
    """The generator for one user's draws, independent of processing order."""
    return np.random.default_rng([seed, zlib.crc32(str(user_id).encode("utf-8"))])


def sample_users(user_ids: Sequence[str], n: int | None, seed: int = 0) -> list[str]:
    """``n`` users drawn without replacement (all if n is None), returned in sorted order."""
    ids = sorted(user_ids)
    if n is None or n >= len(ids):
        return ids
    pick = np.random.default_rng(seed).choice(len(ids), size=n, replace=False)
    return sorted(ids[i] for i in pick)


def truncate_history(history: Sequence[Interaction], length: int | None) -> tuple[Interaction, ...]:
    """The last ``length`` interactions (all if None)."""
    if length is None:
        return tuple(history)
    return tuple(history[-length:]) if length > 0 else ()


def sample_candidates(
    user_id: str,
    positive: str,
    seen: set[str],
    pool: np.ndarray,
    n_negatives: int,
    *,
    seed: int = 0,
    sampler: Literal["uniform", "popularity"] = "uniform",
    weights: np.ndarray | None = None,
) -> tuple[tuple[str, ...], int]:
    """1 positive + ``n_negatives`` items the user never interacted with, shuffled.

    ``pool`` is the item universe (sorted, so draws are reproducible); ``weights`` are
    per-pool-item popularity counts for ``sampler="popularity"``. Returns the candidates and
    the positive's position.
    """
    rng = user_rng(seed, user_id)
    excluded = np.fromiter((i in seen or i == positive for i in pool.tolist()), bool, len(pool))
    allowed = ~excluded
    choices = pool[allowed]
    if len(choices) < n_negatives:
        raise DataError(
            f"user {user_id} has only {len(choices)} unseen items, {n_negatives} negatives asked",
            hint="lower n_negatives",
        )
    p = None
    if sampler == "popularity":
        if weights is None:
            raise ValueError("sampler='popularity' needs weights")
        w = np.asarray(weights, dtype=float)[allowed]
        if np.count_nonzero(w) < n_negatives:
            w = w + 1.0  # too few popular unseen items: fall back to add-one smoothing
        p = w / w.sum()
    negatives = rng.choice(choices, size=n_negatives, replace=False, p=p).tolist()
    cands = np.array([positive, *negatives], dtype=object)
    order = rng.permutation(len(cands))
    shuffled = tuple(str(c) for c in cands[order])
    return shuffled, int(np.flatnonzero(order == 0)[0])


def ranking_examples(ds: Dataset, protocol: Protocol) -> list[RankingExample]:
    """Leave-one-out ranking cases for the protocol's target split and users.

    History = the user's interactions before the target, in time order, truncated to the
    last ``history_length``. Negatives exclude every item the user ever interacted with
    (in any split); popularity weights come from the training split only.
    """
    if protocol.split != "leave_one_out":
        raise DataError("ranking examples need split='leave_one_out'")
    if protocol.retriever is not None:
        from recprompt.data.retrieval import retrieval_examples

        return retrieval_examples(ds, protocol)
    split = split_dataset(ds, protocol)
    target = split.test if protocol.target == "test" else split.valid
    rows_by_user = ds.history_rows(protocol.tie_break, protocol.seed)
    target_items = dict(zip(target.user.tolist(), target.item.tolist(), strict=True))
    seen = ds.seen_items()
    pool = np.array(ds.item_ids(), dtype=object)
    pop = split.train.popularity()
    weights = np.array([pop.get(i, 0) for i in pool.tolist()], dtype=float)
    back = 1 if protocol.target == "test" else 2
    out: list[RankingExample] = []
    for user in sample_users(list(target_items), protocol.n_users, protocol.seed):
        rows = rows_by_user[user][:-back]
        if protocol.history_length is not None:
            rows = (
                rows[len(rows) - protocol.history_length :] if protocol.history_length else rows[:0]
            )
        history = [ds.interaction(int(r)) for r in rows]
        positive = str(target_items[user])
        cands, pos = sample_candidates(
            user,
            positive,
            seen[user],
            pool,
            protocol.n_negatives,
            seed=protocol.seed,
            sampler=protocol.sampler,
            weights=weights,
        )
        out.append(RankingExample(user, tuple(history), cands, positive, pos))
    return out


def rating_examples(ds: Dataset, protocol: Protocol) -> list[RatingExample]:
    """Rating cases from the protocol's target split; history = the user's training events."""
    split = split_dataset(ds, protocol)
    target = split.test if protocol.target == "test" else split.valid
    histories: Mapping[str, list[Interaction]] = split.train.histories(
        protocol.tie_break, protocol.seed
    )
    chosen = set(sample_users(target.user_ids(), protocol.n_users, protocol.seed))
    out = []
    for u, i, r in zip(target.user.tolist(), target.item.tolist(), target.rating, strict=True):
        if u in chosen:
            hist = truncate_history(histories.get(u, []), protocol.history_length)
            out.append(RatingExample(u, i, float(r), hist))
    return out
