"""Seeded user sampling, candidate sets and the example records that prompts consume.

Every random draw for a user comes from ``default_rng([seed, crc32(user_id)])``, so a
user's candidates do not depend on which other users are evaluated or in which order.

Cases are produced lazily (``iter_ranking_examples``): the split and the per-item tables are
computed once, in time linear in the interactions, and a user's candidates are drawn only
when that user's case is asked for, so ``dry-run --limit 3`` samples three users, not all.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from recprompt.data.dataset import Dataset, Interaction
from recprompt.data.protocols import Protocol, loo_parts, split_dataset
from recprompt.errors import DataError

__all__ = [
    "RankingExample",
    "RatingExample",
    "iter_ranking_examples",
    "iter_rating_examples",
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


def _draw(
    user_id: str,
    positive: str,
    allowed: np.ndarray,
    pool: np.ndarray,
    n_negatives: int,
    seed: int,
    sampler: Literal["uniform", "popularity"],
    weights: np.ndarray | None,
) -> tuple[tuple[str, ...], int]:
    """The draw shared by both entry points; ``allowed`` masks ``pool``."""
    rng = user_rng(seed, user_id)
    choices = np.flatnonzero(allowed)  # indices: the same draws as over the items themselves
    if len(choices) < n_negatives:
        raise DataError(
            f"user {user_id} has only {len(choices)} unseen items, {n_negatives} negatives asked",
            hint=f"pass --negatives {len(choices)} or fewer (Protocol(n_negatives=...) in "
            "Python); the default is the spec's candidates count minus one",
        )
    p = None
    if sampler == "popularity":
        if weights is None:
            raise ValueError("sampler='popularity' needs weights")
        w = np.asarray(weights, dtype=float)[allowed]
        if np.count_nonzero(w) < n_negatives:
            w = w + 1.0  # too few popular unseen items: fall back to add-one smoothing
        p = w / w.sum()
    negatives = pool[rng.choice(choices, size=n_negatives, replace=False, p=p)].tolist()
    cands = [positive, *negatives]
    order = rng.permutation(len(cands)).tolist()
    return tuple(str(cands[k]) for k in order), order.index(0)


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
    allowed = np.fromiter((i not in seen and i != positive for i in pool.tolist()), bool, len(pool))
    return _draw(user_id, positive, allowed, pool, n_negatives, seed, sampler, weights)


def _last(rows: np.ndarray, length: int | None) -> np.ndarray:
    """The last ``length`` rows (all if None or if there are fewer)."""
    if length is None:
        return rows
    return rows[max(len(rows) - length, 0) :] if length > 0 else rows[:0]


def _history_rows(rows: np.ndarray, part: np.ndarray, target: str) -> np.ndarray:
    """The user's rows (time order) that a prompt may show: training rows, plus the
    validation row when the target is the test row (it happened before)."""
    keep = part[rows] == 0
    if target == "test":
        keep |= part[rows] == 1
    return rows[keep]


def iter_ranking_examples(ds: Dataset, protocol: Protocol) -> Iterator[RankingExample]:
    """Leave-one-out ranking cases for the protocol's target split and users, one at a time.

    History = the user's other events that precede the target (all other training events
    under a random holdout), in time order, truncated to the last ``history_length``; an
    event of the positive item itself is never in it. Negatives exclude every item the
    user ever interacted with (in any split); popularity weights come from the training
    split only.
    """
    if protocol.split != "leave_one_out":
        raise DataError("ranking examples need split='leave_one_out'")
    if protocol.retriever is not None:
        from recprompt.data.retrieval import retrieval_examples

        yield from retrieval_examples(ds, protocol)
        return
    part = loo_parts(
        ds, protocol.tie_break, protocol.seed, protocol.holdout, protocol.file_order_is_time
    )
    wanted = 2 if protocol.target == "test" else 1
    order, bounds, users = ds.user_bounds(protocol.tie_break, protocol.seed)
    item_codes, item_ids = ds.item_codes()
    pool = np.array(item_ids, dtype=object)
    weights = np.bincount(item_codes[part == 0], minlength=len(pool)).astype(float)
    block = {u: k for k, u in enumerate(users)}
    target_rows = np.flatnonzero(part == wanted)
    target_of = {str(ds.user[r]): int(r) for r in target_rows.tolist()}
    for user in sample_users(list(target_of), protocol.n_users, protocol.seed):
        k = block[user]
        rows = order[bounds[k] : bounds[k + 1]]
        target = target_of[user]
        positive_code = item_codes[target]
        rows = _history_rows(rows, part, protocol.target)
        rows = rows[item_codes[rows] != positive_code]  # never the positive in the history
        rows = _last(rows, protocol.history_length)
        history = tuple(ds.interactions(rows))
        allowed = np.ones(len(pool), bool)
        allowed[item_codes[order[bounds[k] : bounds[k + 1]]]] = False
        positive = str(ds.item[target])
        cands, pos = _draw(
            user,
            positive,
            allowed,
            pool,
            protocol.n_negatives,
            protocol.seed,
            protocol.sampler,
            weights,
        )
        yield RankingExample(user, history, cands, positive, pos)


def ranking_examples(ds: Dataset, protocol: Protocol) -> list[RankingExample]:
    """Every case of :func:`iter_ranking_examples`, as a list."""
    return list(iter_ranking_examples(ds, protocol))


def iter_rating_examples(ds: Dataset, protocol: Protocol) -> Iterator[RatingExample]:
    """Rating cases from the protocol's target split, one at a time; history = the user's
    training events (never an event of the target item)."""
    split = split_dataset(ds, protocol)
    target = split.test if protocol.target == "test" else split.valid
    rows_by_user = split.train.history_rows(protocol.tie_break, protocol.seed)
    chosen = set(sample_users(target.user_ids(), protocol.n_users, protocol.seed))
    train = split.train
    for u, i, r in zip(target.user.tolist(), target.item.tolist(), target.rating, strict=True):
        if u in chosen:
            rows = rows_by_user.get(u, np.zeros(0, np.int64))
            rows = _last(rows[train.item[rows] != i], protocol.history_length)
            hist = tuple(train.interactions(rows))
            yield RatingExample(u, i, float(r), hist)


def rating_examples(ds: Dataset, protocol: Protocol) -> list[RatingExample]:
    """Every case of :func:`iter_rating_examples`, as a list."""
    return list(iter_rating_examples(ds, protocol))
