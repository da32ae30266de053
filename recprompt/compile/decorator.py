"""``@recprompt.task``: build a program from a Python function.

The signature declares the inputs (annotations give types, defaults make inputs optional),
the docstring (or ``template=``) is the Jinja template, and the return annotation (or
``output=``) is the output type. The result is the same :class:`Program` a YAML spec gives,
and errors point at the function's file and line.
"""

from __future__ import annotations

import inspect
import sys
import typing
from collections.abc import Callable
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ValidationError

from recprompt.compile.program import Program
from recprompt.errors import Location, SpecError
from recprompt.spec.loader import check_templates
from recprompt.spec.model import Spec, semantic_issues

__all__ = ["Candidates", "History", "Items", "task"]


class History(list):
    """Annotation for an interaction history input (item dicts with title, rating, time)."""


class Candidates(list):
    """Annotation for a candidate list input."""


class Items(list):
    """Annotation for a plain list of items."""


_SCALARS = {str: "str", int: "int", float: "float", bool: "bool"}
_LISTS = {History: "history", Candidates: "candidates", Items: "items"}


def _input_type(name: str, annotation: Any, where: Location) -> str:
    if annotation is inspect.Parameter.empty:
        return "str"
    optional = get_origin(annotation) in (typing.Union, type(int | None)) and type(
        None
    ) in get_args(annotation)
    if optional:
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    try:
        hash(annotation)
    except TypeError:  # Fuzz fix: ``x: [int]`` raised "unhashable type" below
        annotation = repr(annotation)
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    if annotation in _LISTS:
        return _LISTS[annotation]
    if get_origin(annotation) is list or annotation is list:
        return "items"
    raise SpecError(
        f"parameter {name!r} has an unsupported annotation {annotation!r}",
        location=where,
        hint="use str, int, float, bool, list[str], or recprompt.History / Candidates / Items",
    )


def _output_from_annotation(annotation: Any, where: Location) -> dict[str, Any]:
    if get_origin(annotation) is Literal:
        return {"type": "choice", "options": [str(a) for a in get_args(annotation)]}
    if annotation is str:
        return {"type": "text"}
    if annotation is float or annotation is int:
        return {"type": "rating"}
    if get_origin(annotation) is list:
        return {"type": "item_list"}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {"type": "object", "schema": annotation.model_json_schema()}
    raise SpecError(
        f"cannot infer an output type from the return annotation {annotation!r}",
        location=where,
        hint="annotate Literal['Yes', 'No'], float (rating), list[str] (item list), str, "
        "a pydantic model, or pass output={...}",
    )


def task(
    *,
    task: str = "other",
    output: dict[str, Any] | BaseModel | None = None,
    template: str | None = None,
    name: str | None = None,
    **spec_fields: Any,
) -> Callable[[Callable[..., Any]], Program]:
    """Turn a function into a program. Extra keywords are spec fields (demos, metric, ...)."""

    def build(function: Callable[..., Any]) -> Program:
        if not (inspect.isfunction(function) or inspect.ismethod(function)):
            # a partial, a callable object or a number raised AttributeError on __name__
            # (and a partial's docstring, functools' own, would have become the template)
            raise SpecError(
                f"@recprompt.task decorates a function, got {type(function).__name__}",
                location=Location("<function>"),
                hint="write a 'def' whose signature declares the inputs and whose docstring "
                "(or template=...) is the prompt",
            )
        try:
            file = inspect.getsourcefile(function) or "<function>"
            line = inspect.getsourcelines(function)[1]
        except (OSError, TypeError):
            file, line = "<function>", None
        where = Location(file, line, 1)
        # Annotations may be strings naming classes local to the caller (PEP 563).
        caller = sys._getframe(1).f_locals
        try:
            hints = typing.get_type_hints(function, localns=caller, include_extras=True)
        except (NameError, TypeError, SyntaxError) as exc:
            # Fuzz fix: non-type annotations (``x: 3``) and malformed string annotations
            # raised TypeError/SyntaxError out of the decorator; only NameError was caught.
            raise SpecError(
                f"{function.__name__}: cannot resolve an annotation: {exc}",
                location=where,
                hint="define the annotation's class where the function can see it",
            ) from None
        inputs: dict[str, Any] = {}
        for pname, param in inspect.signature(function).parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                # *args became one required str input named 'args'
                star = "*" if param.kind is param.VAR_POSITIONAL else "**"
                raise SpecError(
                    f"{function.__name__}: {star}{pname} cannot declare inputs",
                    location=where,
                    hint="name each input as its own parameter, e.g. def f(user_id: str, "
                    "history: recprompt.History)",
                )
            declared: dict[str, Any] = {
                "type": _input_type(pname, hints.get(pname, param.annotation), where)
            }
            if param.default is not inspect.Parameter.empty:
                if param.default is None:
                    declared["optional"] = True
                else:
                    declared["default"] = param.default
            inputs[pname] = declared
        body = template or inspect.getdoc(function)
        if not body:
            raise SpecError(
                f"{function.__name__} has no template",
                location=where,
                hint="write the Jinja template as the docstring or pass template=...",
            )
        if output is None:
            out = _output_from_annotation(hints.get("return", inspect.Parameter.empty), where)
        elif isinstance(output, BaseModel):
            out = output.model_dump(by_alias=True)
        elif isinstance(output, dict):
            out = dict(output)
        else:
            # Fuzz fix: output="rating" or output=3 raised ValueError/TypeError from dict().
            raise SpecError(
                f"{function.__name__}: output must be a dict or an output model, "
                f"got {type(output).__name__}",
                location=where,
                hint="e.g. output={'type': 'rating', 'scale': [1, 5]}",
            )
        data = {
            "name": name or function.__name__,
            "task": task,
            "inputs": inputs,
            "template": body,
            "output": out,
            **spec_fields,
        }
        try:
            spec = Spec.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            path = ".".join(str(p) for p in first["loc"]) or "spec"
            raise SpecError(
                f"{function.__name__}: {path}: {first['msg'].removeprefix('Value error, ')}",
                location=where,
                hint="fix the decorator arguments or annotations",
            ) from None
        for _, message, hint in semantic_issues(spec):
            raise SpecError(message, location=where, hint=hint)
        check_templates(spec, file)
        spec._origin = f"{file}:{line}" if line else file
        return Program(spec)

    return build
