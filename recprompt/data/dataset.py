"""The one in-memory form every loader produces.

Interactions are kept as parallel numpy columns in *file order*: the row index is the
tie-breaking key for equal timestamps ("index" rule), so loaders must never sort rows.
Item and user ids are strings everywhere, because formats disagree on whether ids are
numbers (MovieLens) or opaque tokens (Amazon ASINs) and mixing the two silently breaks joins.

Items are keyed by id; what prompts show is :meth:`Dataset.display_title`, which is unique
over the dataset: MovieLens 100K has 18 pairs of distinct items with one title, and a
prompt (or a parser, or a scorer) that sees two equal names cannot tell them apart.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = ["Dataset", "Interaction", "TieBreak", "TimeSource", "disambiguate", "plural"]

TieBreak = Literal["index", "random"]
TimeSource = Literal["timestamp", "file", "none"]
"""Where a dataset's order in time comes from: a timestamp column; file order, stated by
the format (P5 sequences are chronological); or nothing (file order may be anything)."""

_YEAR = re.compile(r"(\d{4})\s*$")


def plural(noun: str) -> str:
    """English plural of a simple noun (movie -> movies, category -> categories)."""
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if len(noun) > 1 and noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


VERBS: dict[str, tuple[str, str]] = {
    "movie": ("watch", "watched"),
    "film": ("watch", "watched"),
    "show": ("watch", "watched"),
    "video": ("watch", "watched"),
    "product": ("buy", "bought"),
    "book": ("read", "read"),
    "article": ("read", "read"),
    "song": ("listen to", "listened to"),
    "track": ("listen to", "listened to"),
    "album": ("listen to", "listened to"),
    "game": ("play", "played"),
}
"""What a user does with an item, by noun: (present, past participle). Anything else is
picked ("The items I picked"), which reads right for any noun."""


def _year(meta: Mapping[str, Any] | None) -> str | None:
    if not meta:
        return None
    for key in ("year", "release_date", "date"):
        value = meta.get(key)
        if value not in (None, ""):
            found = _YEAR.search(str(value))
            if found:
                return found.group(1)
    return None


def disambiguate(
    titles: Mapping[str, str | None], meta: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, str]:
    """A display text per item id that no other item shares.

    An item shows its title (its id when it has none). Items whose text is equal get the
    year appended when the years differ and the text lacks them, otherwise the id:
    ``"Chasing Amy (1997) [id 268]"``. A final pass appends ids until every text is unique
    (a suffixed text could equal another item's title).
    """
    meta = meta or {}
    base = {i: (t if isinstance(t, str) and t.strip() else str(i)) for i, t in titles.items()}
    groups: dict[str, list[str]] = {}
    for item_id in sorted(base):
        groups.setdefault(base[item_id], []).append(item_id)
    out: dict[str, str] = {}
    for text, ids in groups.items():
        if len(ids) == 1:
            out[ids[0]] = text
            continue
        years = [_year(meta.get(i)) for i in ids]
        distinct = all(years) and len(set(years)) == len(ids)
        for item_id, year in zip(ids, years, strict=True):
            if distinct and year not in text:
                out[item_id] = f"{text} ({year})"
            else:
                out[item_id] = f"{text} [id {item_id}]"
    while True:
        counts = Counter(out.values())
        clashes = [i for i, text in out.items() if counts[text] > 1]
        if not clashes:
            return out
        for item_id in clashes:
            out[item_id] = f"{out[item_id]} [id {item_id}]"


def _stable_order(users: np.ndarray, stamps: np.ndarray) -> np.ndarray:
    """Rows by (user, timestamp), file order among ties: one stable sort of a combined
    key when it fits in 64 bits, else a lexsort (also stable)."""
    if len(users) == 0:
        return np.zeros(0, np.int64)
    low, high = int(stamps.min()), int(stamps.max())
    span = high - low + 1
    if span * (int(users.max()) + 1) < 2**62:
        key = users * span + (stamps - low)
        return np.argsort(key, kind="stable")
    return np.lexsort((stamps, users))


def _sub_codes(
    codes: np.ndarray, uniques: list[str], rows: np.ndarray
) -> tuple[np.ndarray, list[str]]:
    """The codes of a row subset, renumbered over the values still present."""
    sub = codes[rows]
    mask = np.bincount(sub, minlength=len(uniques)) > 0  # linear: no sort
    renumber = np.cumsum(mask) - 1
    return renumber[sub].astype(np.int64), [uniques[k] for k in np.flatnonzero(mask).tolist()]


def _factorize(values: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Integer codes of an object column and its distinct values; codes follow the sorted
    order of the values, so sorting by code sorts by value (a hash pass, then a small sort)."""
    index: dict[Any, int] = {}
    codes = np.fromiter(
        (index.setdefault(v, len(index)) for v in values.tolist()), np.int64, len(values)
    )
    uniques = list(index)
    order = sorted(range(len(uniques)), key=uniques.__getitem__)
    remap = np.empty(len(uniques), np.int64)
    remap[order] = np.arange(len(uniques), dtype=np.int64)
    return remap[codes] if len(codes) else codes, [str(uniques[k]) for k in order]


@dataclass(frozen=True, slots=True)
class Interaction:
    """One (user, item) event as prompts see it: the item, its rating and time, its title."""

    item_id: str
    rating: float = float("nan")
    timestamp: int = 0
    title: str | None = None


@dataclass
class Dataset:
    """Interactions (numpy columns, file order) plus item and user side information.

    ``texts`` maps (user, item) to review fields such as ``reviewText`` and ``summary``.
    ``stats`` records what the loader did (rows read, duplicates removed, warnings...), so
    that reports can say it. ``item_noun`` is what prompts call an item ("movie",
    "product"); ``time`` says where the order of events comes from (see :data:`TimeSource`).
    """

    name: str
    user: np.ndarray
    item: np.ndarray
    rating: np.ndarray
    timestamp: np.ndarray
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    texts: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    item_noun: str = "item"
    time: TimeSource = "timestamp"
    item_verb_forms: tuple[str, str] | None = None
    """(present, past) that prompts use for the user's action; None: by noun (:data:`VERBS`)."""
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.user = np.asarray(self.user, dtype=object)
        self.item = np.asarray(self.item, dtype=object)
        self.rating = np.asarray(self.rating, dtype=np.float64)
        self.timestamp = np.asarray(self.timestamp, dtype=np.int64)
        n = len(self.user)
        if not (len(self.item) == len(self.rating) == len(self.timestamp) == n):
            raise ValueError("Dataset columns must have equal lengths")

    @classmethod
    def from_records(
        cls,
        name: str,
        user_ids: Sequence[str],
        item_ids: Sequence[str],
        ratings: Sequence[float] | None = None,
        timestamps: Sequence[int] | None = None,
        **side: Any,
    ) -> Dataset:
        """Build from Python lists; absent ratings become nan and absent timestamps 0."""
        n = len(user_ids)
        rating = np.full(n, np.nan) if ratings is None else np.asarray(ratings, dtype=float)
        ts = np.zeros(n, np.int64) if timestamps is None else np.asarray(timestamps, np.int64)
        # ids are strings everywhere (see the module docstring), whatever the caller passed
        users = np.asarray([u if type(u) is str else str(u) for u in user_ids], object)
        items = np.asarray([i if type(i) is str else str(i) for i in item_ids], object)
        return cls(name, users, items, rating, ts, **side)

    def __len__(self) -> int:
        return len(self.user)

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, interactions={len(self)}, users={self.n_users}, "
            f"items={self.n_items})"
        )

    @property
    def n_users(self) -> int:
        return len(self.user_ids())

    @property
    def n_items(self) -> int:
        return len(self.item_ids())

    @property
    def has_ratings(self) -> bool:
        return bool(len(self)) and not bool(np.isnan(self.rating).all())

    @property
    def item_nouns(self) -> str:
        """Plural of :attr:`item_noun`, for prompts that list items."""
        return plural(self.item_noun)

    @property
    def item_verbs(self) -> tuple[str, str]:
        """What prompts say a user does with an item, (present, past): a product is bought,
        a movie watched. A dataset YAML's ``item_verbs`` overrides the noun's default."""
        if self.item_verb_forms is not None:
            return self.item_verb_forms
        return VERBS.get(self.item_noun.strip().lower(), ("pick", "picked"))

    def user_codes(self) -> tuple[np.ndarray, list[str]]:
        """Per-row user codes (sorted-id order) and the sorted distinct user ids (cached)."""
        if "users" not in self._cache:
            self._cache["users"] = _factorize(self.user)
        return self._cache["users"]

    def item_codes(self) -> tuple[np.ndarray, list[str]]:
        """Per-row item codes into :meth:`item_ids` and the sorted distinct item ids."""
        if "items" not in self._cache:
            self._cache["items"] = _factorize(self.item)
        return self._cache["items"]

    def user_ids(self) -> list[str]:
        """Distinct users with at least one interaction, sorted (a stable, order-free key)."""
        return list(self.user_codes()[1])

    def item_ids(self) -> list[str]:
        """Distinct items with at least one interaction, sorted."""
        return list(self.item_codes()[1])

    def item_title(self, item_id: str) -> str | None:
        """The item's raw title if the dataset has one (Amazon 5-core files have none).

        Prompts show :meth:`display_title` instead, which never repeats.
        """
        meta = self.items.get(item_id)
        return None if meta is None else meta.get("title")

    def display_titles(self) -> dict[str, str]:
        """Unique display text of every known item (see :func:`disambiguate`); cached and
        shared with subsets, so train and test name an item the same way."""
        if "display" not in self._cache:
            ids = dict.fromkeys(self.items) | dict.fromkeys(self.item_codes()[1])
            titles = {str(i): self.item_title(i) for i in ids}
            self._cache["display"] = disambiguate(titles, self.items)
        return self._cache["display"]

    def display_title(self, item_id: str) -> str:
        """What a prompt shows for ``item_id``: its title, told apart from equal ones."""
        shown = self.display_titles().get(str(item_id))
        return shown if shown is not None else str(item_id)

    def popularity(self) -> dict[str, int]:
        """Interaction count per item in this dataset (compute it on train to avoid leakage)."""
        codes, ids = self.item_codes()
        counts = np.bincount(codes, minlength=len(ids))
        return dict(zip(ids, counts.tolist(), strict=True))

    def subset(self, rows: np.ndarray | Sequence[int], name: str | None = None) -> Dataset:
        """Rows selected by index or boolean mask, in file order; side tables are shared."""
        idx = np.asarray(rows)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)  # already in file order
        elif len(idx) > 1 and not bool((idx[1:] >= idx[:-1]).all()):
            idx = np.sort(idx)
        cache: dict[str, Any] = {"display": self.display_titles()}
        for column in ("users", "items"):
            if column in self._cache:  # derive the codes rather than hash every id again
                cache[column] = _sub_codes(*self._cache[column], idx)
        return Dataset(
            name or self.name,
            self.user[idx],
            self.item[idx],
            self.rating[idx],
            self.timestamp[idx],
            items=self.items,
            users=self.users,
            texts=self.texts,
            stats=dict(self.stats),
            item_noun=self.item_noun,
            time=self.time,
            item_verb_forms=self.item_verb_forms,
            _cache=cache,
        )

    def drop_repeats(self) -> tuple[Dataset, int]:
        """Keep one row per (user, item): the *last* in time order (ties: file order).

        A repeated pair counted twice inflates popularity, and when a user's last event
        repeats an earlier item the held-out positive also sits in the history (a leak).
        Returns the deduplicated dataset (``self`` when nothing repeats) and the count.
        """
        if len(self) == 0:
            return self, 0
        users, _ = self.user_codes()
        items, item_ids = self.item_codes()
        pair = users * max(len(item_ids), 1) + items
        ordered = np.sort(pair)
        if not (ordered[1:] == ordered[:-1]).any():
            return self, 0
        position = np.empty(len(self), np.int64)
        position[self.order("index")] = np.arange(len(self), dtype=np.int64)
        by_pair = np.lexsort((position, pair))
        last = np.r_[pair[by_pair][1:] != pair[by_pair][:-1], True]
        keep = np.sort(by_pair[last])
        out = self.subset(keep)
        out.stats = dict(self.stats)
        return out, len(self) - len(keep)

    def order(self, tie_break: TieBreak = "index", seed: int = 0) -> np.ndarray:
        """Row indices sorted by (user, timestamp, tie key); never by item id.

        "index" breaks equal timestamps by file order (the declared default); "random"
        by a seeded permutation, for checking that a result does not hinge on the order.
        """
        key = ("order", tie_break, seed if tie_break == "random" else 0)
        if key in self._cache:
            return self._cache[key]
        users = self.user_codes()[0]
        if tie_break == "index":  # a stable sort keeps file order among equal keys
            order = _stable_order(users, self.timestamp)
        elif tie_break == "random":
            tie = np.random.default_rng(seed).permutation(len(self))
            order = np.lexsort((tie, self.timestamp, users))
        else:
            raise ValueError(f"unknown tie_break {tie_break!r}; use 'index' or 'random'")
        order.flags.writeable = False  # cached and shared: nobody may sort it in place
        self._cache[key] = order
        return order

    def user_bounds(
        self, tie_break: TieBreak = "index", seed: int = 0
    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """The time order of rows, the start of each user's block in it (plus the end), and
        the users of the blocks: the vectorised form of :meth:`history_rows`."""
        order = self.order(tie_break, seed)
        codes, ids = self.user_codes()
        sorted_codes = codes[order]
        if len(order) == 0:
            return order, np.zeros(1, np.int64), []
        starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
        return order, np.r_[starts, len(order)], [ids[c] for c in sorted_codes[starts].tolist()]

    def history_rows(self, tie_break: TieBreak = "index", seed: int = 0) -> dict[str, np.ndarray]:
        """Row indices of each user's interactions in time order."""
        order, bounds, users = self.user_bounds(tie_break, seed)
        return {u: order[s:e] for u, (s, e) in zip(users, itertools.pairwise(bounds), strict=True)}

    def interaction(self, row: int) -> Interaction:
        """One event; its title is the display title (unique over the dataset)."""
        item = self.item[row]
        title = self.display_title(item)
        return Interaction(item, float(self.rating[row]), int(self.timestamp[row]), title)

    def interactions(self, rows: np.ndarray | Sequence[int]) -> list[Interaction]:
        """The events of ``rows`` (as :meth:`interaction`), converted column-wise."""
        idx = np.asarray(rows, dtype=np.int64)
        shown = self.display_titles()
        return [
            Interaction(i, r, t, shown.get(i, i))
            for i, r, t in zip(
                self.item[idx].tolist(),
                self.rating[idx].tolist(),
                self.timestamp[idx].tolist(),
                strict=True,
            )
        ]

    def histories(
        self, tie_break: TieBreak = "index", seed: int = 0
    ) -> dict[str, list[Interaction]]:
        """Each user's interactions sorted by timestamp, ties broken by ``tie_break``."""
        return {
            u: [self.interaction(int(r)) for r in rows]
            for u, rows in self.history_rows(tie_break, seed).items()
        }

    def seen_items(self) -> Mapping[str, set[str]]:
        """Every item each user interacted with (for excluding negatives and seen checks)."""
        seen: dict[str, set[str]] = {}
        for u, i in zip(self.user.tolist(), self.item.tolist(), strict=True):
            seen.setdefault(u, set()).add(i)
        return seen

    def warn(self, message: str) -> None:
        """Record a warning about the data; reports and the CLI show ``stats["warnings"]``."""
        warnings = self.stats.setdefault("warnings", [])
        if message not in warnings:
            warnings.append(message)
