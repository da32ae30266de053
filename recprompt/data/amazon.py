"""Amazon review JSON lines (2014 and 2018 releases), plain or gzip.

The 2018 5-core files repeat records: All_Beauty_5 has 5,269 lines of which 1,108 repeat an
earlier (reviewerID, asin, unixReviewTime); 81 of those differ from the first copy only in
``style``/``vote``/edited text. Counting them twice inflates popularity and leaks the test
item into the history, so by default a record whose (user, item, time) was already seen is
dropped (``dedupe="key"``); ``"exact"`` drops only byte-identical lines; both counts are in
``stats``. Then, as for every format, one row per (user, item) is kept: the last in time
(``repeated_pairs_removed``); ``duplicates_removed`` counts every row dropped.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any, Literal

from recprompt.data._finish import finish
from recprompt.data._io import fail, numbered_lines, parse_int, parse_rating
from recprompt.data.dataset import Dataset

__all__ = ["load_amazon"]

_TEXT_FIELDS = ("reviewText", "summary", "style", "vote", "verified", "helpful", "reviewerName")
_REQUIRED = ("reviewerID", "asin")


def _record(line: str, path: Path, n: int, required: tuple[str, ...] = _REQUIRED) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except RecursionError:
        fail(path, n, "JSON nested too deeply", "expected one flat review object per line")
    except json.JSONDecodeError as exc:
        try:  # the raw 2014 dumps are Python literals, not JSON
            obj = ast.literal_eval(line)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            fail(path, n, f"not a JSON object: {exc.msg}", "expected one review object per line")
    if not isinstance(obj, dict):
        fail(path, n, "not a JSON object", "expected one review object per line")
    for key in required:
        if key not in obj:
            fail(path, n, f"review has no {key!r} field", "is this an Amazon review file?")
        if obj[key] is None or not str(obj[key]).strip():  # else a user or item 'None' or ''
            fail(path, n, f"field {key!r} is empty", "fill or remove the review")
    for key in (*required, "unixReviewTime", "overall"):
        value = obj.get(key)
        if value is not None and not isinstance(value, str | int | float):
            fail(path, n, f"field {key!r} is a {type(value).__name__}, expected a plain value")
    return obj


def _meta(path: Path) -> dict[str, dict[str, Any]]:
    items: dict[str, dict[str, Any]] = {}
    for n, line in numbered_lines(path):
        obj = _record(line, path, n, required=("asin",))
        asin = str(obj["asin"])
        desc = obj.get("description")
        items[asin] = {
            "title": obj.get("title"),
            "description": " ".join(desc) if isinstance(desc, list) else desc,
            "categories": obj.get("category") or obj.get("categories"),
            "brand": obj.get("brand"),
        }
    return items


def load_amazon(
    path: str | Path,
    *,
    meta: str | Path | None = None,
    dedupe: Literal["key", "exact", "none"] = "key",
    name: str | None = None,
) -> Dataset:
    """Load reviews; ``texts[(user, item)]`` holds review text, summary, style, vote...

    When a user reviewed an item more than once, the latest review's fields are kept
    (``_timestamp`` says which).
    """
    path = Path(path)
    users: list[str] = []
    items: list[str] = []
    ratings: list[float] = []
    stamps: list[int] = []
    texts: dict[tuple[str, str], dict[str, Any]] = {}
    seen_lines: set[str] = set()
    seen_keys: set[tuple[str, str, int]] = set()
    exact = key_dups = read = timed = 0
    for n, line in numbered_lines(path):
        read += 1
        is_exact = line in seen_lines
        seen_lines.add(line)
        exact += is_exact
        obj = _record(line, path, n)
        user, item = str(obj["reviewerID"]), str(obj["asin"])
        timed += "unixReviewTime" in obj
        ts = parse_int(str(obj.get("unixReviewTime", 0)), path, n, "unixReviewTime")
        key = (user, item, ts)
        is_key = key in seen_keys
        seen_keys.add(key)
        key_dups += is_key
        if (dedupe == "exact" and is_exact) or (dedupe == "key" and is_key):
            continue
        users.append(user)
        items.append(item)
        rating = obj.get("overall")
        ratings.append(
            float("nan") if rating is None else parse_rating(str(rating), path, n, "overall")
        )
        stamps.append(ts)
        previous = texts.get((user, item))
        if previous is None or ts >= previous["_timestamp"]:
            texts[(user, item)] = {k: obj[k] for k in _TEXT_FIELDS if k in obj} | {"_timestamp": ts}
    item_meta = {i: {} for i in dict.fromkeys(items)}
    if meta is not None:
        item_meta.update(_meta(Path(meta)))
    base = path.name.removesuffix(".gz").removesuffix(".json")
    ds = Dataset.from_records(
        name or base, users, items, ratings, stamps, items=item_meta, texts=texts
    )
    return finish(
        ds,
        rows_read=read,
        item_noun="product",
        time="timestamp" if timed else "none",
        format="amazon-json",
        dedupe=dedupe,
        exact_duplicates=exact,
        key_duplicates=key_dups,
    )
