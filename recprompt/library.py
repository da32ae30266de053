"""The built-in prompt library: specs shipped in ``templates/``, found by name or path.

A spec is addressed by its ``name:`` (``p5.rating``), by its path inside ``templates/``
(``p5/rating``), or by any file path. ``$RECPROMPT_TEMPLATES`` points at another library.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import yaml

from recprompt.errors import SpecError

__all__ = ["builtin_specs", "resolve_spec_path", "templates_dir"]


def templates_dir() -> Path:
    env = os.environ.get("RECPROMPT_TEMPLATES")
    return Path(env) if env else Path(__file__).resolve().parent / "templates"


@lru_cache(maxsize=4)
def _index(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            continue
        name = data.get("name") if isinstance(data, dict) else None
        if isinstance(name, str):
            found[name] = path
        found.setdefault(path.relative_to(folder).with_suffix("").as_posix(), path)
    return found


def builtin_specs() -> dict[str, Path]:
    """Spec name → file, for every spec in the library (names and relative paths)."""
    folder = templates_dir()
    return {k: v for k, v in _index(folder).items() if "/" not in k} if folder.is_dir() else {}


def resolve_spec_path(name_or_path: str | os.PathLike[str]) -> Path:
    """A file path as given, or the library file of a built-in name."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml", ".json") or path.exists():
        return path
    index = _index(templates_dir()) if templates_dir().is_dir() else {}
    if str(name_or_path) in index:
        return index[str(name_or_path)]
    import difflib

    close = difflib.get_close_matches(str(name_or_path), list(index), n=3)
    raise SpecError(
        f"no spec file or built-in spec named {str(name_or_path)!r}",
        hint=(f"did you mean {', '.join(close)}? " if close else "")
        + "run 'recprompt list' to see the built-in specs",
    )
