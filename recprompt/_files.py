"""Whole-file writes that a crash cannot tear."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["write_text_atomic"]


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to a sibling temp file, then rename it over ``path``.

    A run killed mid-write leaves the old file or the new one, never half of either; rename is
    atomic on POSIX within one directory, and the fsync before it keeps a power loss from
    leaving the new name on empty data.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
    return path
