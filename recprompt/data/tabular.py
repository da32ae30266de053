"""Any delimited file with a header, given which columns hold user, item, rating, time.

Item text comes from a ``title`` column of the same file or from a separate item table
(``items=``). Without a time column the data has no time (``Dataset.time == "none"``)
unless ``file_order_is_time`` says that rows are in time order.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from recprompt.data._finish import finish
from recprompt.data._io import fail, open_text, parse_int, parse_rating, require
from recprompt.data.dataset import Dataset

__all__ = ["load_csv", "load_item_table"]

_ENCODING_HINT = "is the encoding right? a dataset YAML sets it, e.g. encoding: latin-1"


def _reader(
    path: Path, delimiter: str, encoding: str, columns: tuple[str | None, ...]
) -> tuple[IO[str], csv.DictReader, list[str]]:
    """An open file, its DictReader and header; a DataError names a missing column.

    A UTF-8 byte order mark (Excel writes one) is dropped: kept, it would glue itself to
    the first column's name and that column would be reported missing."""
    if len(delimiter) != 1:
        fail(path, None, f"the delimiter must be one character, got {delimiter!r}")
    try:
        codec = codecs.lookup(encoding).name
    except LookupError:
        fail(path, None, f"unknown encoding {encoding!r}", "e.g. utf-8, latin-1, cp1252")
    # ratings.csv.gz was read as text: "cannot decode as utf-8", with a hint at the encoding
    try:
        fh = open_text(path, "utf-8-sig" if codec == "utf-8" else encoding)
    except OSError as exc:
        fail(path, None, f"cannot read file: {exc}")
    reader = csv.DictReader(fh, delimiter=delimiter)
    try:
        fields = reader.fieldnames or []
    except UnicodeDecodeError as exc:  # decoded a block at a time: the byte may lie further on
        fh.close()
        fail(path, None, f"cannot decode as {encoding}: {exc.reason}", _ENCODING_HINT)
    except csv.Error as exc:
        fh.close()
        fail(path, 1, f"cannot read the header: {exc}")
    except (OSError, EOFError) as exc:  # a .gz that is not gzip, or cut short
        fh.close()
        fail(path, None, f"cannot read file: {exc}")
    if not fields:  # else "no column 'user' in header; columns are: " with nothing after
        fh.close()
        fail(path, None, "the file is empty", "a CSV starts with a header naming its columns")
    for col in columns:
        if col is not None and col not in fields:
            fh.close()
            fail(
                path,
                1,
                f"no column {col!r} in header",
                f"columns are: {', '.join(fields)} (delimiter {delimiter!r})",
            )
    return fh, reader, fields


def _rows(
    path: Path, fh: IO[str], reader: csv.DictReader, fields: list[str]
) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) pairs; ragged rows and undecodable bytes are DataErrors."""
    with fh:
        try:
            for row in reader:
                if None in row or None in row.values():
                    fail(
                        path,
                        reader.line_num,
                        f"row has a different number of fields than the header ({len(fields)})",
                    )
                yield reader.line_num, row
        except UnicodeDecodeError as exc:
            fail(path, None, f"cannot decode: {exc.reason}", _ENCODING_HINT)
        except csv.Error as exc:
            fail(path, reader.line_num, f"malformed CSV: {exc}")
        except (OSError, EOFError) as exc:
            fail(path, None, f"cannot read file: {exc}")


def load_item_table(
    path: str | Path,
    *,
    item: str,
    title: str,
    delimiter: str = ",",
    encoding: str = "utf-8",
) -> dict[str, dict[str, Any]]:
    """``{item_id: {"title": ...}}`` from a delimited item file (e.g. ``movies.csv``)."""
    path = require(Path(path))
    fh, reader, fields = _reader(path, delimiter, encoding, (item, title))
    return {row[item]: {"title": row[title]} for _, row in _rows(path, fh, reader, fields)}


def load_csv(
    path: str | Path,
    *,
    user: str,
    item: str,
    rating: str | None = None,
    timestamp: str | None = None,
    title: str | None = None,
    delimiter: str = ",",
    encoding: str = "utf-8",
    name: str | None = None,
    items: dict[str, dict[str, Any]] | None = None,
    item_noun: str = "item",
    file_order_is_time: bool = False,
) -> Dataset:
    """Columns are named by header; ``title`` (optional) fills the item table, ``items``
    (optional, e.g. from :func:`load_item_table`) gives item text from another file."""
    path = require(Path(path))
    role_of: dict[str, str] = {}  # user = item made every user a one-item user
    for role, column in (
        ("user", user),
        ("item", item),
        ("rating", rating),
        ("timestamp", timestamp),
    ):
        if column is None:
            continue
        if column in role_of:
            fail(
                path,
                None,
                f"column {column!r} is named as both {role_of[column]} and {role}",
                "each of user, item, rating and timestamp needs its own column",
            )
        role_of[column] = role
    fh, reader, fields = _reader(path, delimiter, encoding, (user, item, rating, timestamp, title))
    users, item_col, ratings, stamps = [], [], [], []
    table: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (items or {}).items()}
    for n, row in _rows(path, fh, reader, fields):
        for what, column in (("user", user), ("item", item)):
            if not row[column].strip():  # else one user (or item) named '' gathers them all
                fail(path, n, f"empty {what} id (column {column!r})", "fill or remove the row")
        users.append(row[user])
        item_col.append(row[item])
        ratings.append(parse_rating(row[rating], path, n) if rating else float("nan"))
        stamps.append(parse_int(row[timestamp], path, n, "timestamp") if timestamp else 0)
        if title:
            table.setdefault(row[item], {}).setdefault("title", row[title])
    ds = Dataset.from_records(name or path.stem, users, item_col, ratings, stamps, items=table)
    time = "timestamp" if timestamp else ("file" if file_order_is_time else "none")
    return finish(ds, rows_read=len(ds), item_noun=item_noun, time=time, format="csv")
