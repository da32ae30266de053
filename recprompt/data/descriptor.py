"""A dataset YAML: bring any CSV (or RecBole, MovieLens, Amazon, P5 folder) with a mapping.

``recprompt eval SPEC --data books.yaml`` reads a small file that says where the data is
and which columns mean what (paths are relative to the YAML file)::

    format: csv                 # csv (default), recbole, movielens, amazon, p5
    path: ratings.csv
    delimiter: ","
    columns: {user: reader, item: book, rating: stars, timestamp: time, title: name}
    items: {path: books.csv, item: book, title: name}   # optional item table
    item_noun: book             # what prompts call an item (default "item")
    item_verbs: [read, read]    # what a user does with one: present, past (default by noun:
                                # movie watch/watched, product buy/bought, book read/read,
                                # else pick/picked)
    file_order_is_time: false   # true only if rows are in time order and there is no time

Only ``path`` and, for CSV, ``columns.user`` and ``columns.item`` are required. Unknown
keys are refused (a typo would otherwise be ignored silently).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from recprompt.data.dataset import Dataset
from recprompt.errors import DataError, Location

__all__ = ["DatasetFile", "load_descriptor"]

MAX_BYTES = 1_000_000


class Columns(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: str | None = None
    item: str | None = None
    rating: str | None = None
    timestamp: str | None = None
    title: str | None = None


class ItemTable(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str
    item: str
    title: str
    delimiter: str = ","
    encoding: str = "utf-8"


class DatasetFile(BaseModel):
    """The dataset YAML's fields (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["csv", "recbole", "movielens", "amazon", "p5"] = "csv"
    path: str
    name: str | None = None
    delimiter: str = ","
    encoding: str = "utf-8"
    columns: Columns = Columns()
    items: ItemTable | None = None
    item_noun: str | None = None
    item_verbs: tuple[str, str] | None = None
    file_order_is_time: bool = False

    @field_validator("item_noun")
    @classmethod
    def _noun(cls, noun: str | None) -> str | None:
        # '' was ignored, '   ' made prompts say 'The    s I picked' and ' book ' 'these  book s'
        if noun is not None and (not noun.strip() or len(noun.strip().splitlines()) > 1):
            raise ValueError("item_noun must be a word on one line, e.g. book")
        return None if noun is None else noun.strip()

    @field_validator("item_verbs")
    @classmethod
    def _words(cls, verbs: tuple[str, str] | None) -> tuple[str, str] | None:
        if verbs is not None and any(not v.strip() or len(v.splitlines()) > 1 for v in verbs):
            raise ValueError("item_verbs must be two words, present and past, e.g. [read, read]")
        return verbs


_ANY = {"format", "path", "name", "item_noun", "item_verbs"}
USED_BY = {
    "recbole": _ANY | {"columns", "file_order_is_time"},
    "movielens": _ANY,
    "amazon": _ANY,
    "p5": _ANY,
}
"""The fields each format reads beyond CSV, which reads them all."""


def _read(path: Path) -> DatasetFile:
    where = Location(str(path))
    try:
        if path.stat().st_size > MAX_BYTES:
            raise DataError(f"dataset YAML is over {MAX_BYTES} bytes", location=where)
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read dataset YAML: {exc}", location=where) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise DataError(
            f"invalid YAML: {getattr(exc, 'problem', exc)}", location=Location(str(path), line)
        ) from None
    if not isinstance(raw, dict):
        raise DataError(
            "a dataset YAML is a mapping with at least 'path'",
            location=where,
            hint="see README, 'Bring your own dataset'",
        )
    try:
        return DatasetFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()
        )
        raise DataError(
            f"invalid dataset YAML: {problems}",
            location=where,
            hint="see README, 'Bring your own dataset'",
        ) from None


def load_descriptor(path: str | Path) -> Dataset:
    """Load the dataset a dataset YAML describes."""
    from recprompt.data.amazon import load_amazon
    from recprompt.data.movielens import load_ml100k
    from recprompt.data.p5 import load_p5
    from recprompt.data.recbole import load_recbole
    from recprompt.data.registry import detect_format
    from recprompt.data.tabular import load_csv, load_item_table

    path = Path(path)
    spec = _read(path)
    unused = sorted(spec.model_fields_set - USED_BY.get(spec.format, set(DatasetFile.model_fields)))
    if unused:  # accepted and ignored, they would change nothing
        raise DataError(
            f"{unused[0]!r} is not used by format {spec.format}",
            location=Location(str(path)),
            hint=f"remove it; format {spec.format} reads "
            + ", ".join(sorted(USED_BY[spec.format])),
        )
    data = (path.parent / spec.path).expanduser()
    if not data.exists():
        raise DataError(f"data path {spec.path!r} not found", location=Location(str(path)))
    cols = spec.columns
    if spec.format == "csv":
        if cols.user is None or cols.item is None:
            raise DataError(
                "a CSV dataset needs columns.user and columns.item",
                location=Location(str(path)),
                hint="e.g. columns: {user: userId, item: movieId, rating: rating}",
            )
        items = None
        if spec.items is not None:
            table = spec.items
            items = load_item_table(
                path.parent / table.path,
                item=table.item,
                title=table.title,
                delimiter=table.delimiter,
                encoding=table.encoding,
            )
        ds = load_csv(
            data,
            user=cols.user,
            item=cols.item,
            rating=cols.rating,
            timestamp=cols.timestamp,
            title=cols.title,
            delimiter=spec.delimiter,
            encoding=spec.encoding,
            name=spec.name or path.stem,
            items=items,
            item_noun=spec.item_noun or "item",
            file_order_is_time=spec.file_order_is_time,
        )
    elif spec.format == "recbole":
        mapping = {
            "user_field": cols.user,
            "item_field": cols.item,
            "rating_field": cols.rating,
            "time_field": cols.timestamp,
            "title_field": cols.title,
        }
        ds = load_recbole(
            data,
            **{k: v for k, v in mapping.items() if v is not None},
            item_noun=spec.item_noun or "item",
            file_order_is_time=spec.file_order_is_time,
        )
    else:
        loader = {"movielens": detect_format(data), "amazon": load_amazon, "p5": load_p5}[
            spec.format
        ]
        if loader is None or (spec.format == "movielens" and data.is_file()):
            loader = load_ml100k
        ds = loader(data)
        if spec.item_noun:
            ds.item_noun = spec.item_noun
    if spec.name:
        ds.name = spec.name
    if spec.item_verbs:
        ds.item_verb_forms = (spec.item_verbs[0].strip(), spec.item_verbs[1].strip())
    return ds
