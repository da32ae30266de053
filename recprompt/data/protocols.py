"""Evaluation protocols: the declared, reported recipe that turns a dataset into test cases.

Numbers from different protocols are not comparable, so every report carries the
:class:`Protocol` it was computed under (split, tie rule, candidate sampler and count, users,
seed, history length).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from recprompt.data.dataset import Dataset, TieBreak

__all__ = ["Protocol", "Split", "leave_one_out", "like_labels", "random_split", "split_dataset"]


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
    seed: int = 0
    history_length: int | None = Field(None, ge=0, description="keep the last L items")
    like_threshold: float = Field(3.0, description="TALLRec: like = rating > threshold")
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


def leave_one_out(ds: Dataset, tie_break: TieBreak = "index", seed: int = 0) -> Split:
    """Per user, by time: last = test, second-last = validation, the rest = train.

    Equal timestamps are ordered by ``tie_break`` ("index" = file order), never by item id.
    Users with 2 interactions give train + test; users with 1 stay in train only.
    """
    part = np.zeros(len(ds), dtype=np.int8)  # 0 train, 1 valid, 2 test
    for rows in ds.history_rows(tie_break, seed).values():
        if len(rows) >= 2:
            part[rows[-1]] = 2
        if len(rows) >= 3:
            part[rows[-2]] = 1
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
        return leave_one_out(ds, protocol.tie_break, protocol.seed)
    return random_split(ds, protocol.ratios, protocol.seed)


def like_labels(ratings: np.ndarray, threshold: float = 3.0) -> np.ndarray:
    """TALLRec's binary labels: like = rating > threshold (3 on a 1-5 scale)."""
    return np.asarray(ratings, dtype=float) > threshold
