"""P5's preprocessed sequences: ``sequential_data.txt`` plus ``datamaps.json``.

Each line is a user id followed by that user's item ids in time order (P5 re-numbers both).
There are no ratings or timestamps; rows are kept in sequence order, so the default "index"
tie rule reproduces P5's order (the format states that file order is time:
``time="file"``). ``datamaps.json`` maps P5 ids back to raw ids (ASINs...).
"""

from __future__ import annotations

import json
from pathlib import Path

from recprompt.data._finish import finish
from recprompt.data._io import fail, numbered_lines, require
from recprompt.data.dataset import Dataset

__all__ = ["load_p5"]


def load_p5(directory: str | Path, *, name: str | None = None) -> Dataset:
    root = Path(directory)
    path = require(root / "sequential_data.txt")
    users: list[str] = []
    items: list[str] = []
    for n, line in numbered_lines(path):
        parts = line.split()
        if len(parts) < 2:
            fail(path, n, "expected a user id followed by at least one item id")
        users.extend([parts[0]] * (len(parts) - 1))
        items.extend(parts[1:])
    item_meta: dict[str, dict] = {i: {} for i in dict.fromkeys(items)}
    user_meta: dict[str, dict] = {}
    maps = root / "datamaps.json"
    if maps.is_file():
        data = _datamaps(maps)
        for p5_id, raw in data["id2item"].items():
            item_meta.setdefault(str(p5_id), {})["raw_id"] = raw
        for p5_id, raw in data["id2user"].items():
            user_meta[str(p5_id)] = {"raw_id": raw}
    ds = Dataset.from_records(name or root.name, users, items, items=item_meta, users=user_meta)
    return finish(ds, rows_read=len(ds), time="file", format="p5-sequential")


_MAPS_HINT = 'datamaps.json maps P5 ids to raw ids: {"id2item": {...}, "id2user": {...}}'


def _datamaps(path: Path) -> dict[str, dict]:
    """``id2item`` and ``id2user`` of ``datamaps.json``, each an object (empty if absent)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        fail(path, exc.lineno, f"invalid JSON: {exc.msg}", _MAPS_HINT)
    except UnicodeDecodeError as exc:
        fail(path, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})", _MAPS_HINT)
    except RecursionError:
        fail(path, None, "invalid JSON: nested too deeply", _MAPS_HINT)
    if not isinstance(data, dict):
        fail(path, None, f"a JSON {type(data).__name__}, not an object", _MAPS_HINT)
    maps = {}
    for key in ("id2item", "id2user"):
        value = data.get(key) or {}
        if not isinstance(value, dict):
            fail(path, None, f"{key!r} is a JSON {type(value).__name__}, not an object", _MAPS_HINT)
        maps[key] = value
    return maps
