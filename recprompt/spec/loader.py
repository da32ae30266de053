"""Load a spec from YAML, with every error placed at file:line:column.

PyYAML's composed node tree keeps the position of every key and value; pydantic's errors
carry a path into the data. Joining the two gives editor-style locations for type errors,
unknown keys (with the closest valid key suggested) and template problems.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from recprompt._files import open_regular
from recprompt.errors import Location, SpecError, TemplateError
from recprompt.spec.model import DemoSpec, InputSpec, RankSpec, Spec, Variant, semantic_issues
from recprompt.spec.template import find_issues, trial_render
from recprompt.spec.yamlsafe import MAX_SPEC_BYTES, check_size, compose_bounded
from recprompt.types import (
    ChoiceOutput,
    ItemListOutput,
    ItemOutput,
    ObjectOutput,
    RatingOutput,
    TextOutput,
)

__all__ = ["check_templates", "load_spec", "parse_spec"]

Path_ = tuple[Any, ...]
OUTPUT_TYPES: dict[str, type[BaseModel]] = {
    cls.model_fields["type"].default: cls
    for cls in (RatingOutput, ChoiceOutput, ItemOutput, ItemListOutput, TextOutput, ObjectOutput)
}


class _Positions:
    """Where each key and value of the YAML document starts (0-based marks)."""

    def __init__(self) -> None:
        self.keys: dict[Path_, yaml.Mark] = {}
        self.values: dict[Path_, yaml.Node] = {}

    def walk(self, node: yaml.Node, path: Path_ = ()) -> None:
        # Fuzz fix: iterative, and each node is visited once. Aliases share nodes, so a
        # recursive anchor (``&a [*a]``) recursed forever and nested aliases ("billion
        # laughs") made the walk exponential; the first path to a node keeps its position.
        seen: set[int] = set()
        stack: list[tuple[yaml.Node, Path_]] = [(node, path)]
        while stack:
            node, path = stack.pop()
            self.values.setdefault(path, node)
            if id(node) in seen:
                continue
            seen.add(id(node))
            if isinstance(node, yaml.MappingNode):
                for key_node, value_node in node.value:
                    key = key_node.value
                    if not isinstance(key, str):  # complex key: not a spec field anyway
                        continue
                    self.keys[(*path, key)] = key_node.start_mark
                    stack.append((value_node, (*path, key)))
            elif isinstance(node, yaml.SequenceNode):
                for index, item in enumerate(node.value):
                    stack.append((item, (*path, index)))

    def location(self, file: str, path: Path_, *, key: bool = False) -> Location:
        path = tuple(path)
        while path:
            mark = self.keys.get(path) if key else None
            if mark is None and path in self.values:
                mark = self.values[path].start_mark
            if mark is not None:
                return Location(file, mark.line + 1, mark.column + 1)
            path = path[:-1]
        return Location(file, 1, 1)


def _model_at(data: Any, path: Path_) -> type[BaseModel] | None:
    """Which spec model governs the mapping at ``path`` (for suggesting valid keys)."""
    if path == ():
        return Spec
    head = path[0]
    if head == "inputs" and len(path) == 2:
        return InputSpec
    if head == "variants" and len(path) == 2:
        return Variant
    if head == "demos" and len(path) == 1:
        return DemoSpec
    if head == "rank" and len(path) == 1:
        return RankSpec
    if head == "output" and len(path) == 1 and isinstance(data, dict):
        output = data.get("output")
        if isinstance(output, dict):
            return OUTPUT_TYPES.get(str(output.get("type")))
    return None


def _keys_of(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _data_path(loc: tuple[Any, ...]) -> Path_:
    """Drop pydantic's union tags from an error path so it indexes the YAML document."""
    if len(loc) > 1 and loc[0] == "output" and loc[1] in OUTPUT_TYPES:
        return ("output", *loc[2:])
    if len(loc) > 1 and loc[0] == "output" and isinstance(loc[1], str) and "[" in loc[1]:
        return ("output", *loc[2:])
    return tuple(loc)


_YAML_KINDS = {
    "tag:yaml.org,2002:bool": "the boolean",
    "tag:yaml.org,2002:int": "the integer",
    "tag:yaml.org,2002:float": "the number",
    "tag:yaml.org,2002:null": "null (no value),",
}


def _misread_scalar(node: yaml.Node | None, error: dict[str, Any]) -> tuple[str, str] | None:
    """Say so when YAML typed an unquoted word (Yes, No, on, 1.10, null) where text belongs."""
    if not isinstance(node, yaml.ScalarNode) or node.style is not None:
        return None
    kind = _YAML_KINDS.get(node.tag)
    wants_text = "string" in error["type"] or error["type"] == "literal_error"
    if kind is None or not wants_text or isinstance(error.get("input"), str):
        return None
    field = ".".join(str(p) for p in _data_path(error["loc"]))
    value = error.get("input")
    return (
        f"{field}: YAML read the unquoted {node.value!r} as {kind} {value!r}, not as text",
        f"quote it ('{node.value}'); YAML reads unquoted yes/no/on/off/true/false as "
        "booleans and digits as numbers",
    )


def _spec_errors(exc: ValidationError, data: Any, where: _Positions, file: str) -> SpecError:
    problems: list[tuple[Location, str, str | None]] = []
    for error in exc.errors():
        path = _data_path(error["loc"])
        if error["type"] == "extra_forbidden":
            parent, key = path[:-1], str(path[-1])
            model = _model_at(data, parent)
            valid = _keys_of(model) if model else []
            close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
            hint = f"did you mean {close[0]!r}?" if close else None
            if valid:
                hint = (hint + " " if hint else "") + f"valid keys: {', '.join(valid)}"
            problems.append((where.location(file, path, key=True), f"unknown key {key!r}", hint))
            continue
        message = error["msg"].removeprefix("Value error, ")
        field = ".".join(str(p) for p in path) or "spec"
        hint = None
        misread = _misread_scalar(where.values.get(path), error)
        if misread:
            message, hint = misread
        elif error["type"] == "missing":
            hint = f"add '{path[-1]}:' here"
        elif error["type"] == "union_tag_invalid" or "discriminator" in error["type"]:
            hint = f"output type must be one of: {', '.join(OUTPUT_TYPES)}"
        elif error["type"] == "literal_error":
            hint = "use one of the values listed"
        elif error["type"] == "string_pattern_mismatch":
            hint = "use letters, digits, '_', '.' and '-' only, e.g. 'zero-shot' or '1-1'"
        elif error["type"] in ("greater_than_equal", "less_than_equal", "int_type"):
            hint = "see 'recprompt schema' or the field's description for the allowed values"
        problems.append((where.location(file, path), f"{field}: {message}", hint))
    first_location, first_message, first_hint = problems[0]
    message = first_message
    if len(problems) > 1:
        rest = "\n".join(f"  {loc}: {msg}" for loc, msg, _ in problems[1:])
        message += f"\n  ({len(problems) - 1} more)\n{rest}"
    return SpecError(message, location=first_location, hint=first_hint)


def _template_location(
    where: _Positions, file: str, path: Path_, line: int, column: int, lines: list[str]
) -> Location:
    node = where.values.get(path)
    if node is None:
        return Location(file, line, column)
    mark = node.start_mark
    if isinstance(node, yaml.ScalarNode) and node.style in ("|", ">"):
        file_line = mark.line + 1 + line
        text = lines[file_line - 1] if file_line - 1 < len(lines) else ""
        indent = len(text) - len(text.lstrip(" "))
        return Location(file, file_line, indent + column)
    quote = 1 if isinstance(node, yaml.ScalarNode) and node.style in ("'", '"') else 0
    if line == 1:
        return Location(file, mark.line + 1, mark.column + quote + column)
    return Location(file, mark.line + line, column)


def check_templates(
    spec: Spec, file: str, where: _Positions | None = None, source_text: str = ""
) -> None:
    """Raise TemplateError for the first problem in any template of ``spec``."""
    where = where or _Positions()
    lines = source_text.splitlines()
    declared = list(spec.inputs)
    targets: list[tuple[Path_, str, list[str]]] = []
    if spec.template:
        targets.append((("template",), spec.template, declared))
    if spec.system:
        targets.append((("system",), spec.system, declared))
    for index, variant in enumerate(spec.variants):
        targets.append((("variants", index, "template"), variant.template, declared))
        if variant.system:
            targets.append((("variants", index, "system"), variant.system, declared))
    if spec.demos.format:
        targets.append((("demos", "format"), spec.demos.format, [*declared, "prompt", "answer"]))
    sizes = {
        name: (d.type, min(d.count or d.max_length or 5, 100)) for name, d in spec.inputs.items()
    }
    sizes |= {"prompt": ("str", 1), "answer": ("str", 1)}
    for path, source, names in targets:
        issues = find_issues(source, names)
        if not issues:
            trial = trial_render(source, {n: sizes[n] for n in names if n in sizes})
            issues = [trial] if trial else []
        if issues:
            issue = issues[0]
            location = _template_location(where, file, path, issue.line, issue.column, lines)
            raise TemplateError(issue.message, location=location, hint=issue.hint)


def parse_spec(text: str, file: str = "<spec>") -> Spec:
    """Parse and validate a spec from YAML text; ``file`` names it in errors."""
    if not isinstance(text, str):  # bytes or a dict raised AttributeError on .encode
        raise SpecError(
            f"parse_spec takes the spec's YAML text, got {type(text).__name__}",
            location=Location(file),
            hint="decode bytes first (data.decode('utf-8')); recprompt.load(PATH) reads a file",
        )
    try:
        node, data = compose_bounded(text, file)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        location = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file)
        raise SpecError(
            f"YAML syntax error: {exc.problem or exc.context}",
            location=location,
            hint="check indentation and quoting; a template with ':' or '{' needs a block '|'",
        ) from None
    except yaml.reader.ReaderError as exc:
        # Fuzz fix: a bad character (e.g. NUL) is placed at its line and column too.
        before = text[: exc.position] if isinstance(exc.position, int) else ""
        line, column = before.count("\n") + 1, len(before) - before.rfind("\n")
        raise SpecError(f"YAML error: {exc}", location=Location(file, line, column)) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"YAML error: {exc}", location=Location(file, 1, 1)) from None
    except RecursionError:
        # Fuzz fix: PyYAML composes recursively; thousands of nested '[' or '{' overflowed.
        raise SpecError(
            "YAML nesting is too deep", location=Location(file, 1, 1), hint="flatten the spec"
        ) from None
    if not isinstance(data, dict) or node is None:
        raise SpecError(
            "a spec must be a YAML mapping (name:, task:, inputs:, template:, output:)",
            location=Location(file, 1, 1),
            hint="see the built-in specs (recprompt list) for complete examples",
        )
    where = _Positions()
    where.walk(node)
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        raise _spec_errors(exc, data, where, file) from None
    for path, message, hint in semantic_issues(spec):
        raise SpecError(message, location=where.location(file, path), hint=hint)
    check_templates(spec, file, where, text)
    spec._origin = file
    return spec


def load_spec(path: str | Path) -> Spec:
    """Load and validate one spec file."""
    if not isinstance(path, str | os.PathLike) or str(path) == "":
        got = "an empty path" if path == "" else type(path).__name__
        raise SpecError(
            f"load_spec takes a spec file's path, got {got}",
            hint="e.g. recprompt.load_spec('my.yaml'); recprompt.load('p5.rating') also "
            "takes built-in names",
        )
    path = Path(path)
    try:
        if path.is_file():
            check_size(path.stat().st_size, str(path))
        with open_regular(path) as handle:  # not a FIFO (it blocks); one byte past the cap
            raw = handle.read(MAX_SPEC_BYTES + 1)
        check_size(len(raw), str(path))
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise SpecError(
            f"spec file not found: {path}",
            hint="pass a path to a .yaml spec or a built-in name (see 'recprompt list')",
        ) from None
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"spec is not UTF-8 text ({exc.reason} at byte {exc.start})",
            location=Location(str(path)),
            hint="save the spec as UTF-8",
        ) from None
    except OSError as exc:
        # a folder, a file without read permission, a device: one clear error, never a trace
        raise SpecError(
            f"cannot read spec: {exc.strerror or exc}",
            location=Location(str(path)),
            hint="pass a readable .yaml file (check the path and its permissions)",
        ) from None
    return parse_spec(text, str(path))
