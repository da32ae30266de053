"""Retrieve, then rerank: candidates from a retriever's top-N over the whole catalogue.

LlamaRec and LLMRank put the LLM where it can help: reranking a strong retriever's shortlist
instead of 1 positive + sampled negatives. Here the retriever (BPR-MF, item-kNN or
popularity) is fitted on the training data only (train for a validation target, train +
validation for a test target: what the prompts may show), scores every catalogue item the
user has not interacted with in that data, and its top-N become the candidates, shuffled
with the protocol's seed (the retriever's order would hand the model the answer's position).

A user whose held-out item the retriever missed still counts: the positive is not among the
candidates, ``positive_index`` is -1, and every ranking of that user is a miss, as in the
papers. ``retriever_rank`` keeps where the retriever itself put the positive (None when it
is beyond N) so reports can give the retriever's recall@N and NDCG@10 alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from recprompt.data.dataset import Dataset
from recprompt.errors import InputError

__all__ = ["RETRIEVERS", "check_retriever", "check_shortlist", "fit_retriever", "shortlist"]

RETRIEVERS = ("bpr", "itemknn", "popularity")


def check_retriever(name: str) -> str:
    """``name`` if it is a retriever recprompt has; an InputError naming the choices if not."""
    if name not in RETRIEVERS:
        raise InputError(
            f"unknown retriever {name!r}",
            hint=f"choose one of {', '.join(RETRIEVERS)} (fitted on training data only)",
        )
    return name


def check_shortlist(n: int, k: int, where: str = "the spec") -> None:
    """Refuse a shortlist shorter than the K the program must rank: no top-K of N < K."""
    if n < k:
        raise InputError(
            f"the retriever's shortlist has {n} candidates but {where} ranks the top {k}",
            hint=f"raise the shortlist size to at least {k}, or lower the spec's top_k",
        )


def fit_retriever(name: str, train: Dataset, seed: int = 0) -> Any:
    """The named baseline fitted on ``train`` (the caller passes training data only)."""
    from recprompt.baselines import make_baseline

    return make_baseline(check_retriever(name), seed=seed).fit(train)


def shortlist(
    model: Any,
    user: str,
    pool: Sequence[str],
    excluded: set[str],
    n: int,
    name: Callable[[str], str] | None = None,
) -> list[str]:
    """The model's top ``n`` of ``pool`` minus ``excluded``, best first; ties by pool order
    (the pool is sorted, so ties resolve the same way on every run).

    With ``name`` (item id -> the name a prompt shows), an item whose name repeats a
    better-ranked one is skipped: the model could not tell the two apart (MovieLens 100K has
    distinct items with one title).
    """
    items = [i for i in pool if i not in excluded]
    scores = np.asarray(model.score(str(user), items), dtype=np.float64)
    scores = np.where(np.isnan(scores), -np.inf, scores)
    out: list[str] = []
    shown: set[str] = set()
    for i in np.argsort(-scores, kind="stable"):
        label = name(items[i]) if name is not None else items[i]
        if label in shown:
            continue
        shown.add(label)
        out.append(items[i])
        if len(out) == n:
            break
    return out


def _concat(a: Dataset, b: Dataset, ds: Dataset) -> Dataset:
    return Dataset(
        f"{ds.name}/train+valid",
        np.concatenate([a.user, b.user]),
        np.concatenate([a.item, b.item]),
        np.concatenate([a.rating, b.rating]),
        np.concatenate([a.timestamp, b.timestamp]),
        items=ds.items,
        users=ds.users,
    )


_FITTED: dict[tuple[Any, ...], Any] = {}


def retrieval_examples(ds: Dataset, protocol: Any) -> list[Any]:
    """Leave-one-out ranking cases whose candidates are the retriever's shuffled top-N."""
    from recprompt.data.protocols import loo_parts, split_dataset
    from recprompt.data.sampling import (
        RankingExample,
        _history_rows,
        _last,
        sample_users,
        user_rng,
    )

    name = check_retriever(str(protocol.retriever))
    check_shortlist(protocol.shortlist, 1, "ranking")
    split = split_dataset(ds, protocol)
    target = split.test if protocol.target == "test" else split.valid
    train = _concat(split.train, split.valid, ds) if protocol.target == "test" else split.train
    key = (
        *(id(ds), len(ds), protocol.target, protocol.tie_break, name, protocol.seed),
        *(protocol.holdout, protocol.file_order_is_time),  # they decide what 'train' holds
    )
    if key not in _FITTED:
        _FITTED.clear()  # one fitted retriever at a time: they hold factor matrices
        # the dataset is kept with its model: while the entry lives, no other dataset can
        # be given its id() (freed objects' ids are reused) and find this model
        _FITTED[key] = (ds, fit_retriever(name, train, protocol.seed))
    model = _FITTED[key][1]
    trained = train.seen_items()
    pool = ds.item_ids()
    rows_by_user = ds.history_rows(protocol.tie_break, protocol.seed)
    # which split each row fell in: under --holdout random the held-out row is anywhere in
    # time, so the history is the other shown rows, never "all but the last one or two"
    part = loo_parts(
        ds, protocol.tie_break, protocol.seed, protocol.holdout, protocol.file_order_is_time
    )
    items = np.asarray(ds.item)
    target_items = dict(zip(target.user.tolist(), target.item.tolist(), strict=True))
    out: list[RankingExample] = []
    for user in sample_users(list(target_items), protocol.n_users, protocol.seed):
        positive = str(target_items[user])
        rows = _history_rows(np.asarray(rows_by_user[user]), part, protocol.target)
        rows = rows[items[rows].astype(str) != positive]  # never the positive in the history
        rows = _last(rows, protocol.history_length)
        history = tuple(ds.interaction(int(r)) for r in rows)
        top = shortlist(
            model,
            user,
            pool,
            trained.get(user, set()),
            protocol.shortlist,
            lambda i: ds.item_title(i) or i,
        )
        found = top.index(positive) + 1 if positive in top else None
        order = user_rng(protocol.seed, user).permutation(len(top))
        cands = tuple(str(top[i]) for i in order)
        index = cands.index(positive) if found is not None else -1
        out.append(RankingExample(user, history, cands, positive, index, found))
    return out
