"""Check and normalise the inputs of one call against the spec's declarations.

Item-like inputs accept what users have at hand (titles, ids, or dicts) and become dicts with
``item_id`` and ``title`` so every template sees one shape.
"""

from __future__ import annotations

from numbers import Number
from typing import Any

from recprompt.errors import InputError
from recprompt.spec.model import InputSpec, Spec

__all__ = ["Item", "ItemSeq", "make_item", "normalize_inputs"]

ITEM_TYPES = ("items", "history", "candidates")
TEXTUAL = (str, Number)


class Item(dict):
    """An item record that prints as its title, so ``{{ liked | join(', ') }}`` reads well.

    Build one with :func:`make_item` so that it holds every field templates may read.
    """

    def __str__(self) -> str:
        title = self.get("title")
        return str(title if title not in (None, "") else self.get("item_id"))


class ItemSeq(list):
    """A list whose entries are all normalised :class:`Item` records.

    Lists built by recprompt (dataset cases, normalised inputs) carry this type, so checking
    them again costs nothing when a dataset is rendered case after case.
    """


def _item(value: Any, name: str) -> dict[str, Any]:
    if type(value) is Item:  # already normalised (cases built from datasets are)
        return value
    if isinstance(value, dict):
        item = Item(value)
        # Fuzz fix: {'title': None} (or empty id and title) passed and became a candidate
        # literally named 'None'; an item needs a non-empty item_id or title.
        if all(item.get(k) is None or item.get(k) == "" for k in ("item_id", "title")):
            raise InputError(
                f"input {name!r}: an item needs 'item_id' or 'title', got keys {sorted(item)}"
            )
        for key in ("item_id", "title"):  # a dict or list here would be printed as its repr
            field = item.get(key)
            if field is not None and (isinstance(field, bool) or not isinstance(field, TEXTUAL)):
                raise InputError(
                    f"input {name!r}: an item's {key!r} must be a string or number, "
                    f"got {type(field).__name__}"
                )
        item.setdefault("item_id", item.get("title"))
        item.setdefault("title", None)
        for field in ("rating", "timestamp"):
            value = item.get(field)
            if value is None or (isinstance(value, float) and value != value):  # missing or nan
                item[field] = None
        return item
    if isinstance(value, str) and not value:
        raise InputError(f"input {name!r}: an item needs a non-empty id or title, got ''")
    if isinstance(value, str | int):
        return Item(item_id=str(value), title=str(value))
    raise InputError(f"input {name!r}: items must be titles, ids or dicts, got {type(value)}")


def make_item(item_id: str, title: str | None = None, **fields: Any) -> Item:
    """A normalised item: ``item_id``, ``title``, ``rating`` and ``timestamp`` always present."""
    item = Item(item_id=item_id, title=title, rating=None, timestamp=None)
    item.update(fields)
    item.label = str(title) if title not in (None, "") else str(item_id)
    return item


def _coerce(name: str, declared: InputSpec, value: Any) -> Any:
    kind = declared.type
    if value is None:
        return None
    if kind in ITEM_TYPES:
        if type(value) is ItemSeq and (
            not declared.max_length or len(value) <= declared.max_length
        ):
            return value
        if type(value) is not list and (
            isinstance(value, str | bytes) or not hasattr(value, "__iter__")
        ):
            raise InputError(
                f"input {name!r} is declared as {kind}: pass a list, got {type(value).__name__}",
                hint="e.g. [{'item_id': '50', 'title': 'Star Wars (1977)'}] or a list of titles",
            )
        items = ItemSeq(v if type(v) is Item else _item(v, name) for v in value)
        if declared.max_length and len(items) > declared.max_length:
            items = ItemSeq(items[-declared.max_length :])
        return items
    if isinstance(value, list | dict) or (isinstance(value, bool) and kind in ("int", "float")):
        raise InputError(f"input {name!r} must be {kind}, got {value!r}")  # else its repr
    try:
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            word = str(value).lower()  # anything else was silently False
            if word not in ("1", "true", "yes", "0", "false", "no"):
                raise ValueError(word)
            return word in ("1", "true", "yes")
    except (TypeError, ValueError):
        raise InputError(f"input {name!r} must be {kind}, got {value!r}") from None
    return str(value) if kind == "str" else value


def normalize_inputs(spec: Spec, given: dict[str, Any], *, strict: bool = True) -> dict[str, Any]:
    """Return every declared input with a value (None for omitted optional ones).

    ``strict`` refuses undeclared names, which are usually typos.
    """
    declared_inputs = spec.inputs
    if strict and not given.keys() <= declared_inputs.keys():
        unknown = sorted(set(given) - set(declared_inputs))
        raise InputError(
            f"{spec.name}: unknown input(s) {unknown}",
            hint=f"declared inputs: {', '.join(spec.inputs) or 'none'}",
        )
    values: dict[str, Any] = {}
    for name, declared in declared_inputs.items():
        value = given.get(name)
        if value is not None:
            kind = type(value)
            if (kind is str and declared.type == "str") or (
                kind is ItemSeq
                and declared.type in ITEM_TYPES
                and (not declared.max_length or len(value) <= declared.max_length)
            ):
                values[name] = value  # already in shape: the common case when rendering data
            else:
                values[name] = _coerce(name, declared, value)
        elif declared.default is not None:
            values[name] = _coerce(name, declared, declared.default)
        elif declared.optional:
            values[name] = None
        else:
            raise InputError(
                f"{spec.name}: missing required input {name!r}",
                hint=f"pass {name}=... (type {declared.type}) or mark it optional in the spec",
            )
    return values
