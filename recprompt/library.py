"""The built-in prompt library: specs shipped in ``templates/``, found by name or path.

A spec is addressed by its ``name:`` (``p5.rating``), by its path inside a library folder
(``p5/rating``), or by any file path. ``$RECPROMPT_TEMPLATES`` names more library folders
(separated by ``os.pathsep``), searched before the package's own: a user's spec may take a
built-in's name, and every built-in stays findable. A library file that cannot be read or
parsed is skipped with a warning naming it, never breaking the lookup of the others.
"""

from __future__ import annotations

import os
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from recprompt._files import open_regular
from recprompt.errors import SpecError
from recprompt.spec.yamlsafe import MAX_SPEC_BYTES

__all__ = ["builtin_specs", "library_dirs", "resolve_spec_path", "templates_dir"]


def templates_dir() -> Path:
    """The package's own library of built-in specs."""
    return Path(__file__).resolve().parent / "templates"


def library_dirs() -> tuple[Path, ...]:
    """Library folders in search order: ``$RECPROMPT_TEMPLATES``, then the built-ins."""
    extra = os.environ.get("RECPROMPT_TEMPLATES", "")
    folders = [Path(p) for p in extra.split(os.pathsep) if p]
    return (*folders, templates_dir())


def _spec_name(path: Path) -> str | bool | None:
    """The ``name:`` of a library file (None if it has none); False, with a warning, when
    the file cannot be read or parsed."""
    try:
        if path.stat().st_size > MAX_SPEC_BYTES:
            raise ValueError(f"larger than {MAX_SPEC_BYTES:,} bytes")
        with open_regular(path) as handle:  # a named pipe in a library would block a lookup
            data = yaml.safe_load(handle.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError, RecursionError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        warnings.warn(f"spec library: skipping {path}: {reason}", stacklevel=3)
        return False
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) else None


@lru_cache(maxsize=8)
def _index(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.rglob("*.yaml")):
        name = _spec_name(path)
        if name is False:
            continue
        if isinstance(name, str):
            found.setdefault(name, path)
        found.setdefault(path.relative_to(folder).with_suffix("").as_posix(), path)
    return found


def _library() -> dict[str, Path]:
    merged: dict[str, Path] = {}
    for folder in library_dirs():
        for key, path in _index(folder).items():
            merged.setdefault(key, path)
    return merged


def builtin_specs() -> dict[str, Path]:
    """Spec name → file, for every spec in the library (names and relative paths)."""
    return {k: v for k, v in _library().items() if "/" not in k}


def spec_path_given(name_or_path: Any) -> Path:
    """``name_or_path`` as a path: a non-empty str or path (load(None) raised os.fspath's
    TypeError, and load('') read the current folder as a spec)."""
    if isinstance(name_or_path, str | os.PathLike) and str(name_or_path) != "":
        return Path(name_or_path)
    got = "an empty name" if name_or_path == "" else type(name_or_path).__name__
    raise SpecError(
        f"a spec is named by a built-in name or a path, got {got}",
        hint="e.g. recprompt.load('p5.rating') or recprompt.load('my.yaml'); "
        "recprompt.parse_spec(TEXT) parses YAML text",
    )


def resolve_spec_path(name_or_path: str | os.PathLike[str]) -> Path:
    """A file path as given, or the library file of a built-in name."""
    path = spec_path_given(name_or_path)
    if path.suffix in (".yaml", ".yml", ".json") or path.exists():
        return path
    index = _library()
    if str(name_or_path) in index:
        return index[str(name_or_path)]
    import difflib

    close = difflib.get_close_matches(str(name_or_path), list(index), n=3)
    raise SpecError(
        f"no spec file or built-in spec named {str(name_or_path)!r}",
        hint=(f"did you mean {', '.join(close)}? " if close else "")
        + "run 'recprompt list' to see the built-in specs",
    )
