"""Resource bounds of template rendering: output size, string and integer growth, steps, time.

Jinja's sandbox stops templates from reaching Python internals and caps ``range`` at 100,000,
but not from asking for resources: ``('%0' ~ 300000000 ~ 'd') % 1`` allocates 1.8 GB,
``'x'.center(10**9)`` and ``indent(10**9)`` as much, chained ``**`` builds integers of
gigabytes, and two nested ``range(100000)`` loops run for hours. Every operation that can
grow a value is checked *before* it runs (its result size is predicted from its arguments),
and every loop iteration and call is a step of a per-render meter with a step cap and a
deadline. Step and size caps are deterministic (the same template fails on every machine);
the deadline only backs them up.

A bound violation raises :class:`TemplateResourceError` (a ``SecurityError``, so rendering
reports it as the sandbox refusing, with the template's name).
"""

from __future__ import annotations

import contextvars
import re
import string
import time
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import Any

from jinja2 import filters, nodes, pass_environment, pass_eval_context
from jinja2.exceptions import SecurityError

__all__ = [
    "MAX_INT_BITS",
    "MAX_SECONDS",
    "MAX_STEPS",
    "MAX_STRING",
    "Meter",
    "TemplateResourceError",
    "bound_tree",
    "bounded_concat",
    "bounded_filters",
    "bounded_iter",
    "check_binop",
    "check_str_call",
    "check_str_format",
    "metered",
]

MAX_STRING = 1_000_000
"""Most characters one value or one rendered prompt may hold (a prompt, not a corpus)."""
MAX_INT_BITS = 10_000
"""Largest integer a template may build (about 3,000 digits)."""
MAX_STEPS = 1_000_000
"""Most loop iterations plus calls in one render (a 100-candidate prompt takes hundreds)."""
MAX_SECONDS = 2.0
"""Deadline of one render, checked every few thousand steps."""
MAX_COUNT = 100_000
"""Largest count a template may pass to batch/slice/tojson(indent)/lipsum (like ``range``)."""


class TemplateResourceError(SecurityError):
    """A template asked for more output, memory or time than a prompt can need."""


class Meter:
    """The step count and deadline of one render."""

    __slots__ = ("deadline", "steps")

    def __init__(self, seconds: float = MAX_SECONDS) -> None:
        self.steps = 0
        self.deadline = time.monotonic() + seconds

    def step(self, n: int = 1) -> None:
        self.steps += n
        if self.steps > MAX_STEPS:
            raise TemplateResourceError(
                f"template ran more than {MAX_STEPS:,} loop iterations and calls"
            )
        if not self.steps & 0xFFF and time.monotonic() > self.deadline:
            raise TemplateResourceError(f"template rendering took over {MAX_SECONDS:g} s")


_METER: contextvars.ContextVar[Meter | None] = contextvars.ContextVar(
    "template_meter", default=None
)


def step(n: int = 1) -> None:
    """Count ``n`` steps on the current render's meter (none outside a render)."""
    meter = _METER.get()
    if meter is not None:
        meter.step(n)


def metered(render: Any, seconds: float = MAX_SECONDS) -> Any:
    """Run ``render()`` with a fresh meter (renders nest: each gets its own)."""
    token = _METER.set(Meter(seconds))
    try:
        return render()
    finally:
        _METER.reset(token)


def bounded_text(chunks: Iterable[str]) -> str:
    """Join rendered chunks, stopping as soon as the output passes :data:`MAX_STRING`."""
    parts: list[str] = []
    append, size, limit = parts.append, 0, MAX_STRING
    for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise TemplateResourceError(f"rendered text is over {MAX_STRING:,} characters")
        append(chunk)
    return "".join(parts)


def _refuse_size(size: int, what: str) -> None:
    if size > MAX_STRING:
        raise TemplateResourceError(
            f"{what} would make {size:,} characters, above the limit of {MAX_STRING:,}"
        )


def _as_count(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return 0


# --- growth predicted from arguments -----------------------------------------------------

_PERCENT = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?([a-zA-Z%])")
_NUMBER = re.compile(r"\d+")


def _values(args: Any) -> list[Any]:
    if isinstance(args, dict):
        return list(args.values())
    if isinstance(args, tuple | list):
        return list(args)
    return [args]


_NUMBER_TEXT = 3_100
"""Upper bound of a number's text (integers are bounded to MAX_INT_BITS, ~3,010 digits)."""


def _widest(values: list[Any]) -> int:
    """Longest text of any value, without formatting numbers (the hot path)."""
    widest = 0
    for v in values:
        if isinstance(v, str):
            size = len(v)
        elif isinstance(v, int | float) or v is None:
            size = _NUMBER_TEXT
        else:
            size = len(str(v))
        widest = max(widest, size)
    return widest


@lru_cache(maxsize=1024)
def _percent_fields(fmt: str) -> tuple[int, int]:
    """(fields, total width and precision) of a % format; '*' widths are refused."""
    fields = _PERCENT.findall(fmt)
    if any("*" in (width, precision) for width, precision, _ in fields):
        raise TemplateResourceError("'*' widths in % formatting are not allowed in templates")
    widths = sum(int(w or 0) + int(p or 0) for w, p, kind in fields if kind != "%")
    return len(fields), widths


def check_percent(fmt: str, args: Any) -> None:
    """``fmt % args``: widths and precisions, and each field's longest possible value."""
    fields, widths = _percent_fields(fmt)
    _refuse_size(widths, "% formatting widths")
    if fields:
        _refuse_size(len(fmt) + widths + fields * _widest(_values(args)), "% formatting")


def check_str_format(fmt: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """``fmt.format(*args, **kwargs)``: widths in the format specs and the values' sizes."""
    try:
        parsed = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # str.format raises the same error itself
    widths, fields = 0, 0
    for _, name, spec, _ in parsed:
        if name is None:
            continue
        fields += 1
        if spec and "{" in spec:
            raise TemplateResourceError("nested format widths are not allowed in templates")
        widths += sum(int(n) for n in _NUMBER.findall(spec or ""))
    _refuse_size(widths, "format widths")
    values = list(args) + list(kwargs.values())
    _refuse_size(len(fmt) + widths + fields * _widest(values), "str.format")


def _join_size(separator: str, items: list[str]) -> int:
    return sum(map(len, items)) + len(separator) * max(len(items) - 1, 0)


def check_str_call(text: str, method: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Predict the size of a growing ``str`` method; returns the args to call it with
    (``join`` gets its iterable as a list, consumed once)."""
    if method in ("center", "ljust", "rjust", "zfill") and args:
        _refuse_size(_as_count(args[0]), f"str.{method}")
    elif method == "expandtabs":
        tab = _as_count(args[0]) if args else 8
        _refuse_size(len(text) + text.count("\t") * tab, "str.expandtabs")
    elif method == "replace" and len(args) >= 2:
        old, new = str(args[0]), str(args[1])
        hits = len(text) + 1 if old == "" else text.count(old)
        if len(args) > 2 and _as_count(args[2]) >= 0:
            hits = min(hits, _as_count(args[2]))
        _refuse_size(len(text) + hits * max(len(new) - len(old), 0), "str.replace")
    elif method == "join" and args:
        items = list(args[0])
        _refuse_size(_join_size(text, [i if isinstance(i, str) else "" for i in items]), "join")
        return (items, *args[1:])
    return args


def check_binop(operator: str, left: Any, right: Any) -> None:
    """``**``, ``*``, ``+`` and ``%``: integers bounded in bits, sequences in length."""
    if operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0:
            bits = max(abs(left).bit_length(), 1) * right
            if abs(left) > 1 and bits > MAX_INT_BITS:
                raise TemplateResourceError(
                    f"the power would have about {bits:,} bits, above the limit of {MAX_INT_BITS:,}"
                )
    elif operator == "*":
        both_int = isinstance(left, int) and isinstance(right, int)
        if both_int and abs(left).bit_length() + abs(right).bit_length() > MAX_INT_BITS:
            raise TemplateResourceError(
                f"the product would exceed the limit of {MAX_INT_BITS:,} bits"
            )
    elif operator == "+":
        if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
            _refuse_size(len(left) + len(right), "concatenation")
    elif operator == "%" and isinstance(left, str):
        check_percent(left, right)


def bounded_concat(*parts: Any) -> str:
    """The ``~`` operator, with its result bounded."""
    texts = [part if isinstance(part, str) else str(part) for part in parts]
    _refuse_size(sum(map(len, texts)), "'~' concatenation")
    return "".join(texts)


def bounded_iter(iterable: Any) -> Iterator[Any]:
    """Each iteration of a template's ``for`` loop is a step of the render's meter."""
    meter = _METER.get()
    if meter is None:
        yield from iterable
        return
    for value in iterable:
        meter.step()
        yield value


def bound_tree(tree: nodes.Template) -> nodes.Template:
    """Route every ``for`` loop through :func:`bounded_iter` and every ``~`` through
    :func:`bounded_concat` (both are environment attributes of the sandbox)."""
    for loop in list(tree.find_all(nodes.For)):
        loop.iter = nodes.Call(
            nodes.EnvironmentAttribute("bounded_iter"), [loop.iter], [], None, None
        ).set_lineno(loop.lineno)
    for concat in list(tree.find_all(nodes.Concat)):
        call = nodes.Call(
            nodes.EnvironmentAttribute("bounded_concat"), concat.nodes, [], None, None
        )
        call.set_lineno(concat.lineno)
        _replace(tree, concat, call)
    return tree


def _replace(tree: nodes.Node, old: nodes.Node, new: nodes.Node) -> None:
    for parent in tree.find_all(nodes.Node):
        for field in parent.fields:
            value = getattr(parent, field, None)
            if value is old:
                setattr(parent, field, new)
                return
            if isinstance(value, list) and any(v is old for v in value):
                setattr(parent, field, [new if v is old else v for v in value])
                return


# --- bounded filters and globals ----------------------------------------------------------


def _center(value: Any, width: int = 80) -> str:
    _refuse_size(_as_count(width), "center")
    return filters.do_center(value, width)


def _indent(s: str, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    text = str(s)
    pad = len(width) if isinstance(width, str) else _as_count(width)
    _refuse_size(len(text) + (text.count("\n") + 1) * pad, "indent")
    return filters.do_indent(s, width, first, blank)


def _format(value: str, *args: Any, **kwargs: Any) -> str:
    if args and kwargs:
        return filters.do_format(value, *args, **kwargs)  # raises the filter's own error
    check_percent(str(value), kwargs or args)
    return filters.do_format(value, *args, **kwargs)


@pass_eval_context
def _join(eval_ctx: Any, value: Iterable[Any], d: str = "", attribute: Any = None) -> str:
    items = list(value)
    if attribute is not None:
        items = list(map(filters.make_attrgetter(eval_ctx.environment, attribute), items))
    texts = [i if isinstance(i, str) else str(i) for i in items]
    _refuse_size(_join_size(str(d), texts), "join")
    return filters.do_join(eval_ctx, texts, d)


@pass_eval_context
def _replace_filter(eval_ctx: Any, s: str, old: str, new: str, count: int | None = None) -> str:
    check_str_call(str(s), "replace", (old, new) if count is None else (old, new, count))
    return filters.do_replace(eval_ctx, s, old, new, count)


@pass_environment
def _wordwrap(environment: Any, s: str, width: int = 79, *args: Any, **kwargs: Any) -> str:
    wrap = kwargs.get("wrapstring", args[1] if len(args) > 1 else None)
    text = str(s)
    breaks = len(text) // max(_as_count(width), 1) + text.count("\n") + 1
    _refuse_size(len(text) + breaks * len(str(wrap or "\n")), "wordwrap")
    return filters.do_wordwrap(environment, s, width, *args, **kwargs)


def _batch(value: Iterable[Any], linecount: int, fill_with: Any = None) -> Any:
    if _as_count(linecount) > MAX_COUNT:
        raise TemplateResourceError(f"batch size above {MAX_COUNT:,}")
    return filters.do_batch(value, linecount, fill_with)


@pass_eval_context
def _slice(eval_ctx: Any, value: Any, slices: int, fill_with: Any = None) -> Any:
    if _as_count(slices) > MAX_COUNT:
        raise TemplateResourceError(f"slice count above {MAX_COUNT:,}")
    return filters.do_slice(eval_ctx, value, slices, fill_with)


@pass_eval_context
def _tojson(eval_ctx: Any, value: Any, indent: int | None = None) -> Any:
    if indent is not None and _as_count(indent) > 100:
        raise TemplateResourceError("tojson indent above 100")
    return filters.do_tojson(eval_ctx, value, indent)


def bounded_filters() -> dict[str, Any]:
    """Jinja's built-in filters that can grow a value, with their growth bounded."""
    return {
        "center": _center,
        "indent": _indent,
        "format": _format,
        "join": _join,
        "replace": _replace_filter,
        "wordwrap": _wordwrap,
        "batch": _batch,
        "slice": _slice,
        "tojson": _tojson,
    }


def bounded_lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    """Jinja's ``lipsum`` global with at most 100 paragraphs of at most 1,000 words."""
    from jinja2.utils import generate_lorem_ipsum

    if _as_count(n) > 100 or _as_count(max) > 1000:
        raise TemplateResourceError("lipsum is limited to 100 paragraphs of 1,000 words")
    return generate_lorem_ipsum(n, html, min, max)
