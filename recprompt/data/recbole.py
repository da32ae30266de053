"""RecBole atomic files: ``<name>.inter`` plus optional ``<name>.item`` / ``<name>.user``.

Headers declare ``field:type`` (``token``, ``token_seq``, ``float``, ``float_seq``);
``token_seq`` values are space-separated lists. The rules (also in the README, "Bring your
own dataset"):

* ``.inter`` fields named ``user_id``, ``item_id``, ``rating`` and ``timestamp`` fill the
  columns (other names: ``user_field=``, ``item_field=``, ... or a dataset YAML);
* no ``timestamp`` field means no time (``Dataset.time == "none"``);
* in ``.item``, the item's text (its title) is ``title_field`` when given, else the first
  field whose name contains "title" (``title``, ``movie_title``...), else the first other
  ``token_seq`` text field (``name:token_seq``), with a warning saying so. A ``token_seq``
  title is joined back into one string: ``title:token_seq`` ``Plain Item 108`` is the title
  "Plain Item 108", never a list of words;
* ``class``, ``genre``, ``categories`` become the item's genres.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recprompt.data._finish import finish
from recprompt.data._io import fail, numbered_lines, parse_float, parse_int, parse_rating
from recprompt.data.dataset import Dataset

_GENRES = ("class", "genre", "genres", "categories", "category")

__all__ = ["load_recbole"]


def _table(path: Path) -> tuple[list[tuple[str, str]], list[tuple[int, list[str]]]]:
    lines = numbered_lines(path)
    first = next(lines, None)
    if first is None:
        fail(path, None, "file is empty; expected a 'field:type' header")
    header: list[tuple[str, str]] = []
    for col in first[1].split("\t"):
        name, _, kind = col.partition(":")
        if not kind:
            fail(path, first[0], f"header column {col!r} is not 'field:type'")
        header.append((name, kind))
    rows = []
    for n, line in lines:
        parts = line.split("\t")
        if len(parts) != len(header):
            fail(path, n, f"expected {len(header)} tab-separated fields, found {len(parts)}")
        rows.append((n, parts))
    return header, rows


def _value(kind: str, raw: str, path: Path, n: int, name: str) -> Any:
    if kind == "token_seq":
        return raw.split()
    if kind == "float":
        return parse_float(raw, path, n, name) if raw else None
    if kind == "float_seq":
        return [parse_float(v, path, n, name) for v in raw.split()]
    return raw


def _title_field(
    header: list[tuple[str, str]], path: Path, key: str, given: str | None
) -> tuple[str | None, str | None]:
    """The field that holds the item's text, and a warning when it was guessed."""
    names = [name for name, _ in header]
    if given is not None:
        if given not in names:
            fail(path, 1, f"title field {given!r} is not in the header", f"fields: {names}")
        return given, None
    titled = [name for name in names if "title" in name.lower()]
    if titled:
        return titled[0], None
    texts = [n for n, kind in header if kind == "token_seq" and n != key and n not in _GENRES]
    if texts:
        return texts[0], (
            f"{path.name}: no field named '*title*'; item text is taken from "
            f"'{texts[0]}:token_seq' (set title_field in a dataset YAML to choose)"
        )
    return None, None


def _side(
    path: Path, key: str, title_field: str | None = None, *, titles: bool = False
) -> tuple[dict[str, dict[str, Any]], str | None]:
    header, rows = _table(path)
    names = [h[0] for h in header]
    if key not in names:
        fail(path, 1, f"header has no {key!r} field", f"found fields: {', '.join(names)}")
    title, warning = _title_field(header, path, key, title_field) if titles else (None, None)
    out: dict[str, dict[str, Any]] = {}
    for n, parts in rows:
        rec = {
            name: _value(kind, raw, path, n, name)
            for (name, kind), raw in zip(header, parts, strict=True)
        }
        ident = str(rec.pop(key))
        if title is not None:
            value = rec[title]
            rec["title"] = " ".join(value) if isinstance(value, list) else value
        for field in _GENRES:
            if field in rec and "genres" not in rec:
                rec["genres"] = rec[field]
        out[ident] = rec
    return out, warning


def load_recbole(
    path: str | Path,
    *,
    user_field: str = "user_id",
    item_field: str = "item_id",
    rating_field: str = "rating",
    time_field: str = "timestamp",
    title_field: str | None = None,
    item_noun: str = "item",
    file_order_is_time: bool = False,
) -> Dataset:
    """``path`` is the ``.inter`` file or the directory holding exactly one.

    ``file_order_is_time`` states that rows are in time order when there is no time field
    (``Dataset.time`` is then "file").
    """
    path = Path(path)
    if path.is_dir():
        inters = sorted(path.glob("*.inter"))
        if len(inters) != 1:
            fail(path, None, f"expected one .inter file, found {len(inters)}")
        path = inters[0]
    header, rows = _table(path)
    names = [h[0] for h in header]
    for needed in (user_field, item_field):
        if needed not in names:
            fail(
                path,
                1,
                f"header has no {needed!r} field",
                f"found fields: {', '.join(names)}; name the columns in a dataset YAML "
                "(see README, 'Bring your own dataset')",
            )
    iu, ii = names.index(user_field), names.index(item_field)
    ir = names.index(rating_field) if rating_field in names else None
    it = names.index(time_field) if time_field in names else None
    users, items, ratings, stamps = [], [], [], []
    for n, parts in rows:
        users.append(parts[iu])
        items.append(parts[ii])
        ratings.append(parse_rating(parts[ir], path, n) if ir is not None else float("nan"))
        stamps.append(parse_int(parts[it], path, n, "timestamp") if it is not None else 0)
    stem = path.with_suffix("")
    item_meta: dict[str, dict[str, Any]] = {}
    warning = None
    if stem.with_suffix(".item").is_file():
        item_meta, warning = _side(stem.with_suffix(".item"), item_field, title_field, titles=True)
    user_meta = (
        _side(stem.with_suffix(".user"), user_field)[0]
        if stem.with_suffix(".user").is_file()
        else {}
    )
    ds = Dataset.from_records(
        stem.name, users, items, ratings, stamps, items=item_meta, users=user_meta
    )
    time = "timestamp" if it is not None else ("file" if file_order_is_time else "none")
    ds = finish(ds, rows_read=len(ds), item_noun=item_noun, time=time, format="recbole-atomic")
    if warning:
        ds.warn(warning)
    return ds
