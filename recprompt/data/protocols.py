"""Evaluation protocols: the declared, reported recipe that turns a dataset into test cases.

Numbers from different protocols are not comparable, so every report carries the
:class:`Protocol` it was computed under (split, tie rule, candidate sampler and count, users,
seed, history length, where the order in time came from).

Leave-one-out holds out each user's *last* event by default, which needs an order in time.
On data without a time field (``Dataset.time == "none"``) file order is not time: rows
sorted by item id would make every test item the user's highest id. There the sequential
protocol is refused unless the user states that file order is time
(``file_order_is_time=True``); ``holdout="random"`` is a seeded random leave-one-out that
needs no order at all.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from recprompt.data.dataset import Dataset, TieBreak, TimeSource
from recprompt.errors import DataError

__all__ = [
    "Protocol",
    "Split",
    "for_dataset",
    "leave_one_out",
    "like_labels",
    "loo_parts",
    "random_split",
    "split_dataset",
]

Holdout = Literal["last", "random"]


class Protocol(BaseModel):
    """How test cases were made. Written verbatim into every evaluation report."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str | None = None
    split: Literal["leave_one_out", "random"] = "leave_one_out"
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    target: Literal["test", "valid"] = "test"
    tie_break: TieBreak = "index"
    sampler: Literal["uniform", "popularity"] = "uniform"
    n_negatives: int = Field(19, ge=0)
    n_users: int | None = Field(None, ge=1, description="users sampled (seeded); None = all")
    seed: int = Field(0, ge=0, description="seed of every random choice (numpy needs >= 0)")
    history_length: int | None = Field(None, ge=0, description="keep the last L items")
    like_threshold: float = Field(3.0, description="TALLRec: like = rating > threshold")
    holdout: Holdout = Field(
        "last",
        description="leave_one_out holds out each user's last event in time ('last') or a "
        "seeded random one ('random', for data without time)",
    )
    file_order_is_time: bool = Field(
        False, description="the user states that file order is time order (data without time)"
    )
    time: TimeSource | None = Field(
        None,
        description="where the order of events came from: a timestamp column, file order "
        "(stated by the format or the user), or none; filled from the dataset",
    )
    retriever: str | None = Field(
        None,
        description="Retrieve, then rerank: candidates are this retriever's top-N (bpr, "
        "itemknn, popularity; fitted on training data only) instead of sampled negatives",
    )
    shortlist: int = Field(20, description="N, the retriever's shortlist size (>= the spec's K)")

    @model_validator(mode="after")
    def _ratios_sum_to_one(self) -> Protocol:
        if abs(sum(self.ratios) - 1.0) > 1e-9 or min(self.ratios) < 0:
            raise ValueError(f"ratios must be non-negative and sum to 1, got {self.ratios}")
        return self


@dataclass(frozen=True)
class Split:
    """Three disjoint views of one dataset (side tables shared)."""

    train: Dataset
    valid: Dataset
    test: Dataset


def _check_time(ds: Dataset, holdout: Holdout, file_order_is_time: bool) -> None:
    if holdout == "last" and ds.time == "none" and not file_order_is_time:
        raise DataError(
            f"dataset {ds.name!r} has no time field (or one timestamp for every row): "
            "'leave the last out' would take file "
            "order as time, and rows sorted by item id would make every test item the "
            "user's highest id",
            hint="use a seeded random leave-one-out (--holdout random, "
            "Protocol(holdout='random')), or confirm that rows are in time order "
            "(--file-order-is-time, Protocol(file_order_is_time=True))",
        )


def loo_parts(
    ds: Dataset,
    tie_break: TieBreak = "index",
    seed: int = 0,
    holdout: Holdout = "last",
    file_order_is_time: bool = False,
) -> np.ndarray:
    """Per row: 0 train, 1 validation, 2 test (vectorised; linear in interactions).

    ``"last"``: by time, the last event is test and the second-last validation;
    ``"random"``: a seeded random event is test and another validation (each user's draw
    depends only on the seed and the user id). Users with 2 events give train + test;
    users with 1 stay in train.
    """
    _check_time(ds, holdout, file_order_is_time)
    part = np.zeros(len(ds), dtype=np.int8)
    if len(ds) == 0:
        return part
    order, bounds, users = ds.user_bounds(tie_break, seed)
    starts, ends = bounds[:-1], bounds[1:]
    counts = ends - starts
    if holdout == "last":
        test_pos, valid_pos = ends - 1, ends - 2
    else:
        test_pos = np.empty(len(users), np.int64)
        valid_pos = np.empty(len(users), np.int64)
        for k, user in enumerate(users):
            rng = np.random.default_rng([seed, zlib.crc32(user.encode("utf-8")), 2])
            pick = rng.permutation(int(counts[k]))[:2]
            test_pos[k] = starts[k] + pick[0]
            valid_pos[k] = starts[k] + (pick[1] if len(pick) > 1 else pick[0])
    two, three = counts >= 2, counts >= 3
    part[order[valid_pos[three]]] = 1
    part[order[test_pos[two]]] = 2
    return part


def leave_one_out(
    ds: Dataset,
    tie_break: TieBreak = "index",
    seed: int = 0,
    holdout: Holdout = "last",
    file_order_is_time: bool = False,
) -> Split:
    """Per user: one held-out event = test, another = validation, the rest = train.

    ``holdout="last"`` (the default) holds out the last events by time; equal timestamps are
    ordered by ``tie_break`` ("index" = file order), never by item id. It is refused on data
    without time unless ``file_order_is_time``. ``holdout="random"`` holds out seeded random
    events. Users with 2 interactions give train + test; users with 1 stay in train only.
    """
    part = loo_parts(ds, tie_break, seed, holdout, file_order_is_time)
    return Split(
        ds.subset(part == 0, f"{ds.name}/train"),
        ds.subset(part == 1, f"{ds.name}/valid"),
        ds.subset(part == 2, f"{ds.name}/test"),
    )


def random_split(
    ds: Dataset, ratios: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0
) -> Split:
    """Seeded random split of interactions (P5's 8:1:1 for rating prediction)."""
    perm = np.random.default_rng(seed).permutation(len(ds))
    n_train = round(ratios[0] * len(ds))
    n_valid = round(ratios[1] * len(ds))
    return Split(
        ds.subset(perm[:n_train], f"{ds.name}/train"),
        ds.subset(perm[n_train : n_train + n_valid], f"{ds.name}/valid"),
        ds.subset(perm[n_train + n_valid :], f"{ds.name}/test"),
    )


def split_dataset(ds: Dataset, protocol: Protocol) -> Split:
    """Apply the protocol's split."""
    if protocol.split == "leave_one_out":
        return leave_one_out(
            ds, protocol.tie_break, protocol.seed, protocol.holdout, protocol.file_order_is_time
        )
    return random_split(ds, protocol.ratios, protocol.seed)


def for_dataset(protocol: Protocol, ds: Dataset) -> Protocol:
    """The protocol with the dataset's name and time source filled in, as reports show it:
    ``time`` is "file" when the user confirmed that file order is time."""
    time: TimeSource = ds.time
    if time == "none" and protocol.file_order_is_time:
        time = "file"
    return protocol.model_copy(update={"dataset": protocol.dataset or ds.name, "time": time})


def like_labels(ratings: np.ndarray, threshold: float = 3.0) -> np.ndarray:
    """TALLRec's binary labels: like = rating > threshold (3 on a 1-5 scale)."""
    return np.asarray(ratings, dtype=float) > threshold
