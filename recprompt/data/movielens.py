"""MovieLens loaders: 100K (``u.data``), 1M (``ratings.dat``) and ml-latest (``ratings.csv``).

The files are read as distributed (latin-1 where GroupLens used it) and never re-sorted:
row order is the tie-breaking key for equal timestamps.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from recprompt.data._finish import finish
from recprompt.data._io import fail, numbered_lines, parse_int, parse_rating, require
from recprompt.data.dataset import Dataset

__all__ = ["ML100K_GENRES", "load_ml1m", "load_ml100k", "load_ml_latest"]

#: Genre flag order of ``u.item`` when ``u.genre`` is absent (it is in the official zip).
ML100K_GENRES = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
]


_BLOCK = 1 << 25  # bytes parsed at a time by the vectorised reader (bounds its memory)


def _fields(lines: np.ndarray, sep: bytes) -> list[np.ndarray] | None:
    """Four byte columns (numbers stripped; ids are stripped by :func:`_id_codes` only when
    they are not plain digits), or None unless every line has exactly four fields."""
    out = []
    rest = lines
    for _ in range(3):
        head, found, rest = np.strings.partition(rest, sep)
        if not (found == sep).all():
            return None
        out.append(head)
    if (np.strings.find(rest, sep) >= 0).any():
        return None
    out[2] = np.strings.strip(out[2])
    out.append(np.strings.strip(rest))
    return out


def _digits(column: np.ndarray) -> np.ndarray | None:
    """int64 values of a byte column of plain decimal digits (Horner's rule over the byte
    matrix, far faster than parsing each string), or None if any entry is not digits."""
    width = column.dtype.itemsize
    if width == 0 or width > 18 or not bool(np.strings.isdigit(column).all()):
        return None
    matrix = np.ascontiguousarray(column).view(np.uint8).reshape(len(column), width)
    value = np.zeros(len(column), np.int64)
    for j in range(width):
        byte = matrix[:, j]
        present = byte != 0  # shorter strings are padded with NUL bytes
        value = np.where(present, value * 10 + (byte.astype(np.int64) - 48), value)
    return value


def _number(column: np.ndarray, dtype: type) -> np.ndarray:
    """Numbers of a byte column: the digit fast path, else numpy's parser."""
    ints = _digits(column)
    return ints.astype(dtype) if ints is not None else column.astype(dtype)


def _id_codes(column: np.ndarray, encoding: str) -> tuple[np.ndarray, tuple] | None:
    """Ids as an object array of str, and ``(codes, sorted ids)`` with codes in str order.

    Plain decimal ids (MovieLens') go through int64 and a lookup table, linear in the rows;
    other ids through a sort of the byte strings. None if an id is empty or undecodable.
    """
    digits = column.dtype.itemsize <= 18 and bool(np.strings.isdigit(column).all())
    if (
        digits
        and not (np.strings.startswith(column, b"0") & (np.strings.str_len(column) > 1)).any()
    ):
        ints = column.astype(np.int64)
        top = int(ints.max())
        if top <= 8 * len(ints) + 1_000_000:
            present = np.zeros(top + 1, bool)
            present[ints] = True
            values, inverse = np.flatnonzero(present), (np.cumsum(present) - 1)[ints]
        else:
            values, inverse = np.unique(ints, return_inverse=True)
        names = [str(v) for v in values.tolist()]
    else:
        values, inverse = np.unique(np.strings.strip(column), return_inverse=True)
        names = [v.decode(encoding) for v in values.tolist()]
        if any(not n or n != n.strip() for n in names):
            return None
    order = sorted(range(len(names)), key=names.__getitem__)  # str order, as Dataset keeps
    remap = np.empty(len(names), np.int64)
    remap[order] = np.arange(len(names), dtype=np.int64)
    codes = remap[inverse]
    ordered = [names[k] for k in order]
    return np.asarray(ordered, dtype=object)[codes], (codes, ordered)


def _fast_ratings(path: Path, sep: str, encoding: str, header: bool) -> tuple | None:
    """Parse user/item/rating/time columns with numpy string operations, block by block.

    Returns ``(users, items, ratings, stamps, user_codes, item_codes)`` with ids as object
    arrays of str and codes as ``(codes, sorted ids)``, or None when anything is unusual
    (a malformed line, a non-finite rating, an id that does not decode): the line-by-line
    reader then parses the file and says where the problem is.
    """
    columns: list[list[np.ndarray]] = [[], [], [], []]
    sep_b = sep.encode(encoding)
    try:
        with path.open("rb") as fh:
            if header:
                fh.readline()
            tail = b""
            while True:
                block = fh.read(_BLOCK)
                last = not block
                block = tail + block
                if not last:
                    cut = block.rfind(b"\n")
                    if cut < 0:
                        tail = block
                        continue
                    block, tail = block[:cut], block[cut + 1 :]
                lines = np.array(block.split(b"\n"))
                lines = lines[np.strings.str_len(lines) > 0]  # blank-but-spaces: slow path
                if len(lines):
                    fields = _fields(lines, sep_b)
                    if fields is None:
                        return None
                    for column, values in zip(columns, fields, strict=True):
                        column.append(values)
                if last:
                    break
        if not columns[0]:
            return None
        rating = np.concatenate([_number(c, np.float64) for c in columns[2]])
        stamp = np.concatenate([_number(c, np.int64) for c in columns[3]])
        if not np.isfinite(rating).all():
            return None
        ids = []
        for column in columns[:2]:
            coded = _id_codes(np.concatenate(column), encoding)
            if coded is None:
                return None
            ids.append(coded)
    except (ValueError, OverflowError, UnicodeDecodeError, OSError):
        return None
    (users, user_codes), (items, item_codes) = ids
    return users, items, rating, stamp, user_codes, item_codes


def _ratings(path: Path, sep: str, encoding: str, header: bool = False) -> tuple[list, ...]:
    """user, item, rating, timestamp columns, read line by line; ids are interned (10M rows
    hold a few thousand distinct ids) and numbers converted in bulk, with a second pass
    only to say where a bad value is."""
    users: list[str] = []
    items: list[str] = []
    ratings: list[str] = []
    stamps: list[str] = []
    ids: dict[str, str] = {}
    for n, line in numbered_lines(path, encoding):
        if header and n == 1:
            continue
        parts = line.split(sep)
        if len(parts) < 4:
            fail(path, n, f"expected 4 fields separated by {sep!r}, found {len(parts)}")
        user, item, rating = parts[0].strip(), parts[1].strip(), parts[2]
        users.append(ids.setdefault(user, user))
        items.append(ids.setdefault(item, item))
        ratings.append(ids.setdefault(rating, rating))
        stamps.append(parts[3])
    try:
        rating_col = np.array(ratings, dtype=np.float64)
        stamp_col = np.array(stamps, dtype=np.int64)
        ok = bool(np.isfinite(rating_col).all())
    except (ValueError, OverflowError):
        ok = False
    if not ok:  # say which line, and accept what the per-value parsers accept ("12.0")
        rating_col = np.empty(len(ratings), np.float64)
        stamp_col = np.empty(len(stamps), np.int64)
        k = 0
        for n, line in numbered_lines(path, encoding):
            if header and n == 1:
                continue
            parts = line.split(sep)
            rating_col[k] = parse_rating(parts[2], path, n)
            stamp_col[k] = parse_int(parts[3], path, n, "timestamp")
            k += 1
    return users, items, rating_col, stamp_col


def _interactions(
    name: str, path: Path, sep: str, encoding: str, header: bool = False, **side: Any
) -> Dataset:
    """The rating file as a Dataset: the vectorised reader, or the line reader on trouble."""
    fast = _fast_ratings(path, sep, encoding, header)
    if fast is None:
        return Dataset.from_records(name, *_ratings(path, sep, encoding, header), **side)
    users, items, rating, stamp, user_codes, item_codes = fast
    cache = {"users": user_codes, "items": item_codes}
    return Dataset(name, users, items, rating, stamp, **side, _cache=cache)


def load_ml100k(directory: str | Path) -> Dataset:
    """MovieLens 100K: ``u.data`` (tab-separated), ``u.item`` (latin-1, ``|``), ``u.user``."""
    root = Path(directory)
    data_path = require(root / "u.data")
    genres = list(ML100K_GENRES)
    if (root / "u.genre").is_file():
        genres = [line.split("|")[0] for _, line in numbered_lines(root / "u.genre", "latin-1")]
    items: dict[str, dict] = {}
    if (root / "u.item").is_file():
        path = root / "u.item"
        for n, line in numbered_lines(path, "latin-1"):
            f = line.split("|")
            if len(f) != 5 + len(genres):
                fail(path, n, f"expected {5 + len(genres)} '|'-separated fields, found {len(f)}")
            flags = f[5:]
            items[f[0]] = {
                "title": f[1],
                "release_date": f[2] or None,
                "url": f[4] or None,
                "genres": [g for g, flag in zip(genres, flags, strict=True) if flag == "1"],
            }
    users: dict[str, dict] = {}
    if (root / "u.user").is_file():
        path = root / "u.user"
        for n, line in numbered_lines(path, "latin-1"):
            f = line.split("|")
            if len(f) != 5:
                fail(path, n, f"expected 5 '|'-separated fields, found {len(f)}")
            users[f[0]] = {
                "age": parse_int(f[1], path, n, "age"),
                "gender": f[2],
                "occupation": f[3],
                "zip_code": f[4],
            }
    ds = _interactions("ml-100k", data_path, "\t", "ascii", items=items, users=users)
    return finish(ds, rows_read=len(ds), item_noun="movie", format="movielens-100k")


def load_ml1m(directory: str | Path) -> Dataset:
    """MovieLens 1M: ``ratings.dat``, ``movies.dat``, ``users.dat`` (``::``, latin-1)."""
    root = Path(directory)
    data_path = require(root / "ratings.dat")
    items: dict[str, dict] = {}
    if (root / "movies.dat").is_file():
        path = root / "movies.dat"
        for n, line in numbered_lines(path, "latin-1"):
            f = line.split("::")
            if len(f) != 3:
                fail(path, n, f"expected 3 '::'-separated fields, found {len(f)}")
            items[f[0]] = {"title": f[1], "genres": [g for g in f[2].split("|") if g]}
    users: dict[str, dict] = {}
    if (root / "users.dat").is_file():
        path = root / "users.dat"
        for n, line in numbered_lines(path, "latin-1"):
            f = line.split("::")
            if len(f) != 5:
                fail(path, n, f"expected 5 '::'-separated fields, found {len(f)}")
            users[f[0]] = {"gender": f[1], "age": int(f[2]), "occupation": f[3], "zip_code": f[4]}
    ds = _interactions("ml-1m", data_path, "::", "latin-1", items=items, users=users)
    return finish(ds, rows_read=len(ds), item_noun="movie", format="movielens-1m")


def load_ml_latest(directory: str | Path) -> Dataset:
    """ml-latest / ml-latest-small / ml-20m style: ``ratings.csv`` and ``movies.csv`` (UTF-8)."""
    root = Path(directory)
    data_path = require(root / "ratings.csv")
    items: dict[str, dict] = {}
    path = root / "movies.csv"
    if path.is_file():
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            next(reader, None)
            for row in reader:
                if len(row) != 3:
                    fail(path, reader.line_num, f"expected 3 CSV fields, found {len(row)}")
                genres = [g for g in row[2].split("|") if g and g != "(no genres listed)"]
                items[row[0]] = {"title": row[1], "genres": genres}
    name = root.name or "ml-latest"
    ds = _interactions(name, data_path, ",", "utf-8", header=True, items=items)
    return finish(ds, rows_read=len(ds), item_noun="movie", format="movielens-latest")
