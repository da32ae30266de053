"""The per-case data the HTML reports embed: compact, exact, and safe inside ``<script>``.

Prompts of one run repeat most of their text (the template, item titles), so every text is
cut into segments at line breaks, list separators and candidate labels, each distinct segment
is stored once in a string table (most frequent first), and a text becomes a short string of
indices into it: each index is written in base 32, its last digit drawn from ``TERMINAL`` and
any earlier digit from ``CONTINUE``, so frequent segments cost one character. Joining the
segments gives the text back exactly (checked while encoding); the page decodes it
synchronously, with no decompression library. A 10,000-case ranking report stays a few
megabytes this way. Rows are lists in the order of ``fields``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from recprompt.eval.prompts import prompt_text

__all__ = ["Interner", "Ref", "case_payload", "hit_rule", "script_json"]

_SPLIT = re.compile(r"(\n(?:[A-Z]{1,2}|\d{1,3})[.):] |\n|; |, )")
TERMINAL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef"
CONTINUE = "ghijklmnopqrstuvwxyz0123456789-_"
PRIMARY = ("ndcg@10", "accuracy", "mae", "rmse")


class Interner:
    """A string table. ``add`` and ``text`` hand out provisional indices (``Ref`` lists);
    ``finish`` orders the table by frequency and turns every reference into its encoding."""

    def __init__(self) -> None:
        self.strings: list[str] = []
        self._index: dict[str, int] = {}
        self._count: list[int] = []
        self._final: list[int] | None = None

    def add(self, value: str) -> Ref:
        return Ref([self._one(value)])

    def _one(self, value: str) -> int:
        found = self._index.get(value)
        if found is None:
            found = self._index[value] = len(self.strings)
            self.strings.append(value)
            self._count.append(0)
        self._count[found] += 1
        return found

    def items(self, values: Sequence[Any]) -> Ref:
        return Ref([self._one(str(v)) for v in values])

    def text(self, value: str | None) -> Ref | None:
        if value is None:
            return None
        pieces = [p for p in _SPLIT.split(value) if p]
        if "".join(pieces) != value:  # pragma: no cover - re.split with a group keeps all
            raise AssertionError("segmenting lost text")
        return Ref([self._one(p) for p in pieces])

    def finish(self, value: Any) -> Any:
        """``value`` with every ``Ref`` encoded; call once, after the last ``add``. Returns
        the ordered string table under ``strings``."""
        if self._final is None:
            order = sorted(range(len(self.strings)), key=lambda i: (-self._count[i], i))
            self._final = [0] * len(order)
            for new, old in enumerate(order):
                self._final[old] = new
            self.strings = [self.strings[i] for i in order]
        return self._encode(value)

    def _encode(self, value: Any) -> Any:
        if isinstance(value, Ref):
            return "".join(_digits(self._final[i]) for i in value)  # type: ignore[index]
        if isinstance(value, dict):
            return {k: self._encode(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._encode(v) for v in value]
        return value


class Ref(list):
    """Provisional string-table indices, encoded by :meth:`Interner.finish`."""


def _digits(n: int) -> str:
    out = [TERMINAL[n % 32]]
    n //= 32
    while n:
        out.append(CONTINUE[n % 32])
        n //= 32
    return "".join(reversed(out))


def script_json(value: Any) -> str:
    """JSON for a ``<script type="application/json">`` element.

    Every ``<`` is written as ``\\u003c``: no item title can close the element (``</script>``)
    or open a comment, whatever it contains. ``JSON.parse`` reads it back unchanged.
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _round(x: Any, digits: int = 4) -> float | None:
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(value):
        return None
    return float(f"{value:.{digits}g}")


def _sortable(x: Any) -> float:
    value = _round(x)
    return -math.inf if value is None else value


def hit_rule(values: dict[str, np.ndarray]) -> tuple[str, str] | None:
    """Which per-case metric decides a hit, and the rule in words."""
    ks = sorted(
        (int(name[3:]) for name in values if name.startswith("hr@") and name[3:].isdigit()),
        reverse=True,
    )
    if ks:
        return f"hr@{ks[0]}", f"hit: the truth is in the top {ks[0]}"
    if "accuracy" in values:
        return "accuracy", "hit: the answer equals the truth"
    if "mae" in values:
        return "mae", "hit: the prediction is within 0.5 of the truth"
    return None


def _is_hit(rule: str, value: float) -> bool:
    return value < 0.5 if rule == "mae" else value >= 1.0


def _answer(value: Any, strings: Interner) -> Any:
    """Items (a list, or one string) as a ``Ref``; numbers, booleans and None as they are."""
    if isinstance(value, list):
        return strings.items(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return _round(value)
    return strings.items([value])


def _scores(
    scores: dict[str, float] | None, value: Any, strings: Interner
) -> dict[str, Any] | None:
    """Scores best first; ``names`` is None when they follow the answer's order (rankings)."""
    if not scores:
        return None
    names = list(scores)
    same = isinstance(value, list) and [str(a) for a in value] == names
    if not same:
        names = sorted(names, key=lambda n: -_sortable(scores[n]))
    return {
        "names": None if same else strings.items(names),
        "values": [_round(scores[n], 3) for n in names],
    }


def case_payload(
    records: Sequence[dict[str, Any]], values: dict[str, np.ndarray], strings: Interner
) -> dict[str, Any]:
    """Rows of the case table: one compact dict per record, in the order given.

    Texts and items are ``Ref``s into ``strings`` (encoded by :meth:`Interner.finish`);
    ``prompts`` is None when the store predates prompt keeping. ``metrics`` holds this
    case's value of every per-case metric, in the order of ``metric_names`` (squared error
    under ``rmse``).
    """
    per_case = {k: np.asarray(v, dtype=float) for k, v in values.items() if len(v) == len(records)}
    rule = hit_rule(per_case)
    names = list(per_case)
    rows = []
    for i, r in enumerate(records):
        meta = r.get("meta") or {}
        metrics = {k: _round(v[i]) for k, v in per_case.items()}
        mrr = metrics.get("mrr")
        hit = None if rule is None or metrics.get(rule[0]) is None else metrics[rule[0]]
        position = meta.get("positive_index")
        value = r.get("value")
        answer = _answer(value, strings)
        row: dict[str, Any] = {
            "id": str(r.get("id")),
            "truth": strings.add(str(r.get("label"))),
            "answer": answer,
            "raw": strings.text(r.get("raw")),
            "error": r.get("error"),
            "decode": r.get("decode"),
            "position": None if position is None else int(position) + 1,
            "rank": round(1.0 / mrr) if mrr else None,
            "hit": None if rule is None or hit is None else _is_hit(rule[0], hit),
            "metrics": [metrics[n] for n in names],
            "scores": _scores(r.get("scores"), value, strings),
            "prompts": None
            if r.get("prompts") is None
            else [strings.text(prompt_text(p)) for p in r["prompts"]],
            "prompt_count": r.get("prompt_count"),
        }
        if r.get("prior_scores") and isinstance(value, list):
            row["parts"] = {
                part: [_round((r.get(part) or {}).get(str(n)), 3) for n in value]
                for part in ("llm_scores", "prior_scores")
            }
        rows.append(row)
    return {
        "rule": rule[1] if rule else None,
        "metric_names": names,
        "primary": next((m for m in PRIMARY if m in per_case), names[0] if names else None),
        "rows": rows,
    }
