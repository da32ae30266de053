"""Line reading shared by the loaders: every parse failure becomes a DataError at file:line."""

from __future__ import annotations

import gzip
import math
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, NoReturn

from recprompt._files import special_kind
from recprompt.errors import DataError, Location

__all__ = [
    "fail",
    "numbered_lines",
    "open_text",
    "parse_float",
    "parse_int",
    "parse_rating",
    "require",
]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def fail(path: Path | str, line: int | None, message: str, hint: str | None = None) -> NoReturn:
    raise DataError(message, location=Location(str(path), line), hint=hint)


def require(path: Path) -> Path:
    """The path itself, or a DataError saying which file a format needs."""
    kind = special_kind(path)
    if kind is not None:  # a pipe would be read as empty or block; say what it is instead
        fail(
            path,
            None,
            f"{path.name} is {kind}, not a regular file",
            "datasets are read from regular files: save the data to a file and point to that",
        )
    if not path.is_file():
        fail(path, None, f"required file {path.name} is missing", "check the dataset directory")
    return path


def open_text(path: Path, encoding: str = "utf-8") -> IO[str]:
    """``path`` opened as text, gunzipped when it ends in .gz (any format's files may be);
    line ends are left as they are (``newline=""``), for the csv module and line numbers."""
    opener: Any = gzip.open if path.suffix == ".gz" else open
    return opener(path, "rt", encoding=encoding, newline="")


def numbered_lines(path: Path, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """(1-based line number, line without newline), skipping blank lines; reads .gz too."""
    try:
        with open_text(path, encoding) as fh:
            for n, raw in enumerate(fh, 1):
                line = raw.rstrip("\r\n")
                if line.strip():
                    yield n, line
    except UnicodeDecodeError as exc:
        fail(
            path, None, f"cannot decode as {encoding}: {exc.reason}", "is the file encoding right?"
        )
    except (OSError, EOFError) as exc:
        fail(path, None, f"cannot read file: {exc}")


def parse_int(value: str, path: Path, line: int, what: str) -> int:
    """An integer that fits in 64 bits (numpy stores timestamps as int64)."""
    text = value.strip()
    try:
        number = int(float(text)) if "." in text or "e" in text.lower() else int(text)
    except ValueError:
        fail(path, line, f"{what} {value!r} is not a number")
    except OverflowError:  # int(float("1e400")) and int(float("inf"))
        fail(path, line, f"{what} {value!r} is not a finite number")
    if not INT64_MIN <= number <= INT64_MAX:
        fail(
            path,
            line,
            f"{what} {value!r} does not fit in 64 bits",
            "timestamps are Unix seconds (or any integer below 2**63)",
        )
    return number


def parse_float(value: str, path: Path, line: int, what: str) -> float:
    try:
        return float(value)
    except ValueError:
        fail(path, line, f"{what} {value!r} is not a number")


def parse_rating(value: str, path: Path, line: int, what: str = "rating") -> float:
    """A finite rating: ``nan`` or ``inf`` would become a label and poison RMSE."""
    number = parse_float(value, path, line, what)
    if not math.isfinite(number):
        fail(
            path,
            line,
            f"{what} {value!r} is not a finite number",
            "fix or remove the row; a missing rating is a missing column, not 'nan'",
        )
    return number
