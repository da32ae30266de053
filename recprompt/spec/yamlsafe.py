"""Bounded YAML loading for specs: a size cap, an expansion cap, and no duplicate keys.

PyYAML shares one Python object among the aliases of an anchor, so loading "billion laughs"
(anchors nested ten deep, each referencing the previous ten times) is instant, but every
consumer that walks the data (pydantic, JSON hashing, Jinja rendering, the JSON Schema
check) sees the *expanded* tree and hangs. The composed node graph is therefore measured as
it would expand, before anything is constructed, and refused above :data:`MAX_NODES`.
Recursive anchors (``&a [*a]``) are refused too: a spec is a tree.

Duplicate keys in one mapping are refused with both positions: YAML itself lets the last one
win silently, which turns a copy-paste mistake into a different task.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from recprompt.errors import Location, SpecError

__all__ = [
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_SPEC_BYTES",
    "check_depth",
    "check_size",
    "compose_bounded",
]

MAX_SPEC_BYTES = 1_000_000
"""Largest spec file read (a built-in spec is under 10 kB; a 50 MB spec took 103 s)."""
MAX_NODES = 200_000
"""Most YAML nodes a spec may hold once every alias is expanded."""


MAX_DEPTH = 100
"""Deepest bracket nesting read (PyYAML's scanner is quadratic in flow depth: 5,000 ``[``
took 9 s before failing)."""
_DEPTH = {"[": 1, "{": 1, "]": -1, "}": -1}
_BRACKETS = re.compile(r"[\[\]{}]")


def check_depth(text: str, file: str) -> None:
    """Refuse brackets nested deeper than :data:`MAX_DEPTH` before the scanner sees them.

    A plain count (strings and block scalars included): Jinja's ``{{ }}`` and ``{% %}``
    close what they open, so a real spec stays far below the bound.
    """
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return
    depth = 0
    for match in _BRACKETS.finditer(text):
        index = match.start()
        depth = max(depth + _DEPTH[match.group()], 0)
        if depth > MAX_DEPTH:
            before = text[:index]
            line, column = before.count("\n") + 1, index - before.rfind("\n")
            raise SpecError(
                f"brackets nest deeper than {MAX_DEPTH} levels",
                location=Location(file, line, column),
                hint="flatten the spec; a task spec needs a few levels of nesting",
            )


def check_size(size: int, file: str) -> None:
    """Refuse a spec larger than :data:`MAX_SPEC_BYTES` before parsing it."""
    if size > MAX_SPEC_BYTES:
        raise SpecError(
            f"spec is {size:,} bytes, above the limit of {MAX_SPEC_BYTES:,}",
            location=Location(file),
            hint="a spec declares a task; put data (demonstrations, catalogues) in a dataset",
        )


def _mark(node: yaml.Node, file: str) -> Location:
    return Location(file, node.start_mark.line + 1, node.start_mark.column + 1)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_duplicates(node: yaml.MappingNode, file: str) -> None:
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = (key_node.tag, key_node.value)
        if key in seen:
            first = seen[key]
            raise SpecError(
                f"duplicate key {key_node.value!r} (first at line {first.start_mark.line + 1}, "
                f"column {first.start_mark.column + 1})",
                location=_mark(key_node, file),
                hint="YAML keeps only the last of repeated keys; remove or rename one",
            )
        seen[key] = key_node


def _expanded_size(root: yaml.Node, file: str) -> int:
    """Nodes of the tree with every alias expanded; iterative, each node measured once."""
    size: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            total = 1 + sum(size[id(child)] for child in _children(node))
            if total > MAX_NODES:
                raise SpecError(
                    f"YAML expands to more than {MAX_NODES:,} nodes (aliases of aliases)",
                    location=_mark(node, file),
                    hint="write the values out, or use fewer nested '*alias' references",
                )
            size[key] = total
            continue
        if key in size:
            continue
        if key in on_path:
            raise SpecError(
                "YAML alias refers to the collection that contains it (a recursive anchor)",
                location=_mark(node, file),
                hint="a spec is a tree: replace the '*alias' with the values it stands for",
            )
        on_path.add(key)
        if isinstance(node, yaml.MappingNode):
            _check_duplicates(node, file)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in on_path:
                raise SpecError(
                    "YAML alias refers to the collection that contains it (a recursive anchor)",
                    location=_mark(child, file),
                    hint="a spec is a tree: replace the '*alias' with the values it stands for",
                )
            if id(child) not in size:
                stack.append((child, False))
    return size[id(root)]


def compose_bounded(text: str, file: str) -> tuple[yaml.Node | None, Any]:
    """Compose and construct one YAML document (safe tags only) within the bounds.

    Returns the node tree (for positions) and the data. YAML errors propagate as
    ``yaml.YAMLError`` for the caller to place; bound violations raise :class:`SpecError`.
    """
    check_size(len(text.encode("utf-8", "surrogatepass")), file)
    check_depth(text, file)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        _expanded_size(node, file)
        return node, loader.construct_document(node)
    finally:
        loader.dispose()
