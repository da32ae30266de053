"""``load_dataset``: one entry point from a path or a name to a :class:`Dataset`.

A path's format is detected from the files present; a ``.yaml`` file is a dataset YAML
(:mod:`recprompt.data.descriptor`: any CSV with a column mapping); a bare name is looked up
under ``root``, then ``$RECPROMPT_DATA``. Data is never bundled (MovieLens terms forbid it).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from recprompt.data._io import require
from recprompt.data.amazon import load_amazon
from recprompt.data.dataset import Dataset
from recprompt.data.descriptor import load_descriptor
from recprompt.data.movielens import load_ml1m, load_ml100k, load_ml_latest
from recprompt.data.p5 import load_p5
from recprompt.data.recbole import load_recbole
from recprompt.errors import DataError, Location

__all__ = ["detect_format", "load_dataset"]

ENV_VAR = "RECPROMPT_DATA"

# marker file in a directory -> loader; checked in this order
_MARKERS: tuple[tuple[str, Callable[[Path], Dataset]], ...] = (
    ("u.data", load_ml100k),
    ("ratings.dat", load_ml1m),
    ("ratings.csv", load_ml_latest),
    ("sequential_data.txt", load_p5),
)
_JSON_SUFFIXES = (".json", ".json.gz", ".jsonl", ".jsonl.gz")


def _is_json(p: Path) -> bool:
    return p.name.endswith(_JSON_SUFFIXES) and p.name != "datamaps.json"


def _amazon_in(directory: Path) -> Callable[[Path], Dataset] | None:
    files = [p for p in sorted(directory.iterdir()) if p.is_file() and _is_json(p)]
    reviews = [p for p in files if not p.name.startswith("meta_")]
    metas = [p for p in files if p.name.startswith("meta_")]
    if len(reviews) != 1:
        return None
    meta = metas[0] if len(metas) == 1 else None
    return lambda _d: load_amazon(reviews[0], meta=meta, name=directory.name)


def detect_format(path: Path) -> Callable[[Path], Dataset] | None:
    """The loader for ``path`` (a file or a directory), or None if nothing matches."""
    if path.is_file():
        if path.suffix in (".yaml", ".yml"):
            return load_descriptor
        for marker, loader in _MARKERS:
            if path.name == marker:
                return lambda _p, loader=loader: loader(path.parent)
        if path.suffix == ".inter":
            return load_recbole
        if _is_json(path):
            return load_amazon
        return None
    if path.is_dir():
        for marker, loader in _MARKERS:
            if (path / marker).is_file():
                return loader
        if any(path.glob("*.inter")):
            return load_recbole
        return _amazon_in(path)
    return None


def load_dataset(name_or_path: str | Path, *, root: str | Path | None = None) -> Dataset:
    """Load from a path, or a name (``"ml-100k"``) under ``root`` or ``$RECPROMPT_DATA``."""
    candidate = Path(name_or_path).expanduser()
    looked: list[Path] = []
    if candidate.exists():
        paths = [candidate]
    else:
        bases = [Path(root)] if root is not None else []
        if os.environ.get(ENV_VAR):
            bases.append(Path(os.environ[ENV_VAR]))
        paths = [b.expanduser() / str(name_or_path) for b in bases]
        looked = paths
    for path in paths:
        if not path.exists():
            continue
        if not path.is_dir():
            require(path)  # a pipe or a device is named as such, not "unknown format"
        loader = detect_format(path)
        if loader is None:
            raise DataError(
                "cannot tell the dataset format from the files present",
                location=Location(str(path)),
                hint="expected u.data, ratings.dat, ratings.csv, sequential_data.txt, *.inter or "
                "Amazon *.json[.gz]; for any other CSV write a dataset YAML naming its columns "
                "and pass --data FILE.yaml (README: 'Bring your own dataset')",
            )
        dataset = loader(path)
        if not len(dataset):  # else every command would go on to report zero cases
            raise DataError(
                "the dataset has no rows",
                location=Location(str(path)),
                hint="check that the file holds interactions below its header",
            )
        return dataset
    where = ", ".join(str(p) for p in looked) or "nowhere (no root given and $RECPROMPT_DATA unset)"
    hint = f"set ${ENV_VAR} to the folder holding {name_or_path!s} or pass --data PATH"
    if str(name_or_path) == "ml-100k":
        hint += "; recprompt.data.download_movielens_100k() fetches the official archive"
    raise DataError(f"dataset {str(name_or_path)!r} not found; looked in {where}", hint=hint)
