"""Whole-file writes that a crash cannot tear."""

from __future__ import annotations

from pathlib import Path

__all__ = ["write_text_atomic"]


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to a sibling temp file, then rename it over ``path``.

    A run killed mid-write leaves the old file or the new one, never half of either; rename is
    atomic on POSIX within one directory.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
