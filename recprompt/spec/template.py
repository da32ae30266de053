"""Jinja2 templates of specs, rendered in a sandbox.

Templates run in an immutable sandbox with undefined names as errors: item titles and user
text are data written by anyone, and a template must never reach Python internals. Checks
that can be done before any run (syntax, undeclared names, ``_private`` attribute access) are
done at validation with the position inside the spec file.
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.runtime import Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment

from recprompt.spec import limits
from recprompt.types.items import item_name

__all__ = [
    "TemplateIssue",
    "compile_template",
    "environment",
    "find_issues",
    "trial_render",
]

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _titles(items: Iterable[Any], key: str = "title") -> list[str]:
    return [item_name(i, key) for i in items or []]


def _pylist(items: Iterable[Any], key: str = "title") -> str:
    return "[" + ", ".join(repr(n) for n in _titles(items, key)) + "]"


def _numbered(items: Iterable[Any], key: str = "title") -> str:
    return "\n".join(f"{n}. {name}" for n, name in enumerate(_titles(items, key), 1))


def _lettered(items: Iterable[Any], key: str = "title") -> str:
    names = _titles(items, key)
    if len(names) > len(LETTERS):
        raise ValueError(
            f"'lettered' labels at most {len(LETTERS)} items (A-Z), got {len(names)}; "
            "use 'numbered' or fewer candidates"
        )
    return "\n".join(f"{LETTERS[n]}. {name}" for n, name in enumerate(names))


def _letter(index: int) -> str:
    if not 0 <= int(index) < len(LETTERS):
        raise ValueError(f"'letter' maps 0-{len(LETTERS) - 1} to A-Z, got {index}")
    return LETTERS[int(index)]


FILTERS = {
    "name": item_name,
    "titles": _titles,
    "pylist": _pylist,
    "numbered": _numbered,
    "lettered": _lettered,
    "letter": _letter,
}
GLOBALS: dict[str, Any] = {"LETTERS": LETTERS}


MAX_POWER = 64
MAX_REPEAT = 100_000


class _Template(jinja2.Template):
    """A template whose render is metered: steps, deadline and output size are bounded."""

    def render(self, *args: Any, **kwargs: Any) -> str:
        def run() -> str:
            context = self.new_context(dict(*args, **kwargs))
            try:
                return limits.bounded_text(self.root_render_func(context))
            except Exception:
                return self.environment.handle_exception()

        return limits.metered(run)


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with resources bounded (see :mod:`recprompt.spec.limits`):
    ``**``, ``*``, ``+`` and ``%`` check the size of their result before computing it,
    growing string methods and filters likewise, and loops and calls are metered steps."""

    intercepted_binops = frozenset(["**", "*", "+", "%"])
    template_class = _Template
    bounded_iter = staticmethod(limits.bounded_iter)
    bounded_concat = staticmethod(limits.bounded_concat)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        limits.check_binop(operator, left, right)
        if operator == "**":
            if isinstance(right, int) and abs(right) > MAX_POWER:
                raise limits.TemplateResourceError(
                    f"exponent {right} is above the limit of {MAX_POWER}"
                )
            return left**right
        if operator == "+":
            return left + right
        if operator == "%":
            return left % right
        if isinstance(left, int) and isinstance(right, str | list | tuple):
            left, right = right, left
        repeats = isinstance(left, str | list | tuple) and isinstance(right, int)
        if repeats and len(left) * right > MAX_REPEAT:
            raise limits.TemplateResourceError(
                f"repetition above the limit of {MAX_REPEAT} elements"
            )
        return left * right

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        limits.step(8 if isinstance(__obj, Macro) else 1)
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str) and isinstance(__obj, types.BuiltinMethodType):
            args = limits.check_str_call(owner, __obj.__name__, args)
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Any:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        text = value.__self__
        is_map = value.__name__ == "format_map"

        def checked(*args: Any, **kwargs: Any) -> str:
            mapping = args[0] if is_map and len(args) == 1 and isinstance(args[0], dict) else {}
            limits.check_str_format(text, () if is_map else args, mapping or kwargs)
            return wrapped(*args, **kwargs)

        return checked

    def compile(self, source: Any, name: Any = None, filename: Any = None, **kw: Any) -> Any:
        """Compile with loops and ``~`` routed through the bounded helpers."""
        if isinstance(source, str):
            source = self.parse(source, name, filename)
        return super().compile(limits.bound_tree(source), name, filename, **kw)


@lru_cache(maxsize=1)
def environment() -> ImmutableSandboxedEnvironment:
    """The one sandboxed environment every spec template is compiled in."""
    env = _Sandbox(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(limits.bounded_filters())
    env.filters.update(FILTERS)
    env.globals.update(GLOBALS)
    env.globals["lipsum"] = limits.bounded_lipsum
    return env


@lru_cache(maxsize=4096)
def compile_template(source: str) -> jinja2.Template:
    """Compile once per distinct source; rendering a dataset re-uses the compiled template."""
    return environment().from_string(source)


class TemplateIssue(ValueError):
    """A problem found in a template, with a 1-based position inside the template text."""

    def __init__(self, message: str, line: int, column: int, hint: str) -> None:
        super().__init__(message)
        self.message, self.line, self.column, self.hint = message, line, column, hint


def _position(source: str, needle: str, default_line: int = 1) -> tuple[int, int]:
    match = re.search(r"\b" + re.escape(needle) + r"\b", source)
    if not match:
        return default_line, 1
    before = source[: match.start()]
    return before.count("\n") + 1, match.start() - (before.rfind("\n") + 1) + 1


def find_issues(source: str, declared: Iterable[str]) -> list[TemplateIssue]:
    """Syntax errors, undeclared names and access to private attributes, before any run."""
    try:
        return _find_issues(source, declared)
    except jinja2.TemplateSyntaxError as exc:
        # Fuzz fix: meta.find_undeclared_variables compiles the template, so an unknown
        # filter or test ('{{ x | nofilter }}') raised TemplateAssertionError out of loading.
        return [
            TemplateIssue(
                f"template error: {exc.message}",
                exc.lineno or 1,
                1,
                f"filters available: {', '.join(sorted(environment().filters))}",
            )
        ]
    except RecursionError:
        # Fuzz fix: Jinja parses and walks recursively; deeply nested expressions such as
        # '((((...1...))))' raised RecursionError out of spec loading.
        return [
            TemplateIssue(
                "template nesting is too deep",
                1,
                1,
                "simplify the template's nested expressions",
            )
        ]


def _find_issues(source: str, declared: Iterable[str]) -> list[TemplateIssue]:
    env = environment()
    try:
        tree = env.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        return [
            TemplateIssue(
                f"template syntax error: {exc.message}",
                exc.lineno or 1,
                1,
                "fix the Jinja2 syntax (see https://jinja.palletsprojects.com/templates/)",
            )
        ]
    issues: list[TemplateIssue] = []
    known = set(declared) | set(env.globals)
    for name in sorted(meta.find_undeclared_variables(tree) - known):
        line, column = _position(source, name)
        issues.append(
            TemplateIssue(
                f"template uses {name!r}, which the spec does not declare",
                line,
                column,
                f"declare it under 'inputs:' (e.g. '{name}: str') or fix the name; "
                f"declared: {', '.join(sorted(declared)) or 'none'}",
            )
        )
    loads = {nodes.Include: "include", nodes.Import: "import", nodes.FromImport: "from"}
    loads[nodes.Extends] = "extends"
    for node in tree.find_all(tuple(loads)):  # passed here, then failed on every render
        word = loads[type(node)]
        line, column = _position(source, word, node.lineno)
        issues.append(
            TemplateIssue(
                f"template uses {word!r}, but a spec's templates cannot load other files",
                line,
                column,
                "keep each template self-contained: write the text in place, or as another "
                "variant; a {% macro %} defined in the template itself works",
            )
        )
    private: list[TemplateIssue] = []
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        attr = node.attr if isinstance(node, nodes.Getattr) else None
        if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            attr = node.arg.value if isinstance(node.arg.value, str) else None
        if attr and attr.startswith("_"):
            line, column = _position(source, attr, node.lineno)
            private.append(
                TemplateIssue(
                    f"template reaches the private attribute {attr!r}, which the sandbox refuses",
                    line,
                    column,
                    "templates may read input values and their public fields only",
                )
            )
    return issues + sorted(private, key=lambda issue: (issue.line, issue.column))


def _sample_value(kind: str, size: int) -> Any:
    if kind in ("history", "items", "candidates"):
        return [
            {"item_id": f"i{n}", "title": f"Item {n}", "rating": 4, "timestamp": n}
            for n in range(size)
        ]
    return {"int": 1, "float": 1.0, "bool": True}.get(kind, "x")


def trial_render(source: str, inputs: dict[str, tuple[str, int]]) -> TemplateIssue | None:
    """Render once on small made-up inputs (``name -> (type, list size)``) to catch a
    template that asks for too much output, memory or time whatever its inputs are.

    Only resource bounds are reported: other failures depend on real inputs (a field the
    made-up items lack) and are checked when rendering real cases.
    """
    values = {name: _sample_value(kind, size) for name, (kind, size) in inputs.items()}
    try:
        compile_template(source).render(**values)
    except limits.TemplateResourceError as exc:
        line = 1
        tb = exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == "<template>":
                line = tb.tb_lineno
            tb = tb.tb_next
        return TemplateIssue(
            f"template asks for too much: {exc}",
            line,
            1,
            "prompts are bounded in size and rendering time; remove the huge width, "
            "repetition or nested loop",
        )
    except Exception:
        return None
    return None
