"""Evaluation cases for text outputs (review summaries, explanations) from review data.

Protocol: the spec's split (leave-one-out by default, as for ranking), one case per held-out
review. Users are sampled (seeded) among those whose held-out review *has* a reference (a
non-empty summary, or an explanation sentence, see :mod:`recprompt.eval.text_targets`), so
``--users N`` gives N cases; how many users had none is reported. Inputs a text spec may
declare, besides ``user_id``/``item_id``/``history``/``candidates``:

    review            the held-out review's text (summary task only), first REVIEW_WORDS words
    review_headline   its summary line (explanation task only: P5's 3-2 and 3-5)
    user_name         the reviewer's name (P5's user_desc)
    star_rating       the user's rating of the item
    feature           the explanation's feature word (P5's 3-7, 3-9..3-12)
    item_title        the item's title; Amazon 5-core files have none, so the item id
    user_examples     the user's last EXAMPLES training reviews: title, review, summary,
                      explanation, rating (ChatGPT-rec's few-shot injection)

The reference itself is never an input: a summary spec cannot read ``review_headline`` and
an explanation spec cannot read ``review``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from recprompt.compile.inputs import ItemSeq, make_item
from recprompt.data import Dataset, Protocol, sample_candidates, sample_users, split_dataset
from recprompt.errors import DataError
from recprompt.eval.text_targets import EXTRACTION, explanation_of, feature_vocabulary, words
from recprompt.spec.model import Spec

__all__ = ["TEXT_FILLABLE", "build_text_cases", "text_target", "text_texts"]

REVIEW_WORDS = 120
EXAMPLES = 3
TEXT_FILLABLE = (
    "review",
    "review_headline",
    "user_name",
    "star_rating",
    "feature",
    "user_examples",
)
_LEAKS = {"summary": ("review_headline",), "explanation": ("review",)}


def text_target(spec: Spec) -> str:
    """Which reference a text spec is scored against: 'summary' or 'explanation'."""
    if spec.task == "review_summary":
        return "summary"
    if spec.task == "explanation":
        return "explanation"
    raise DataError(
        f"{spec.name}: a {spec.task!r} text output has no reference text in review data",
        hint="text evaluation scores review summaries (task: review_summary) and "
        "explanations (task: explanation); evaluate a profile or enrichment through the "
        "pipeline that uses it (e.g. palr.ranking, llmrec.ranking)",
    )


def _clip(text: str | None, n: int = REVIEW_WORDS) -> str:
    parts = (text or "").split()
    return " ".join(parts[:n]) + (" ..." if len(parts) > n else "")


def _require_texts(spec: Spec, ds: Dataset, field: str) -> None:
    if not any(t.get(field) for t in ds.texts.values()):
        raise DataError(
            f"{spec.name} needs review texts: its reference is each review's {field!r} "
            f"field, and dataset {ds.name!r} has no reviews (only ratings)",
            hint="use review data such as --data amazon-2018-all-beauty-5core "
            "(Amazon review JSON with reviewText and summary)",
        )


def _reference(kind: str, text: dict[str, Any], vocab: Any) -> tuple[str, str | None] | None:
    if kind == "summary":
        summary = (text.get("summary") or "").strip()
        return (summary, None) if summary and text.get("reviewText") else None
    found = explanation_of(text.get("reviewText") or "", vocab)
    return None if found is None else (found.sentence, found.feature)


def text_texts(case_inputs: dict[str, Any]) -> list[str]:
    """The free texts a case shows the model (to detect outputs that copy their input)."""
    out = [v for v in case_inputs.values() if isinstance(v, str) and len(v.split()) > 1]
    for example in case_inputs.get("user_examples") or []:
        out += [str(example.get(k)) for k in ("review", "summary", "explanation") if example.get(k)]
    return out


def build_text_cases(spec: Spec, ds: Dataset, protocol: Protocol) -> Iterator[Any]:
    """One case per sampled user's held-out review that has a reference."""
    from recprompt.eval.cases import Case  # cases.py dispatches here

    kind = text_target(spec)
    _require_texts(spec, ds, "summary" if kind == "summary" else "reviewText")
    leaked = [n for n in _LEAKS[kind] if n in spec.inputs and spec.inputs[n].required]
    if leaked:
        raise DataError(
            f"{spec.name}: input(s) {leaked} would show the {kind} reference to the model",
            hint="make them optional (they are left empty) or drop them",
        )
    split = split_dataset(ds, protocol)
    target = split.test if protocol.target == "test" else split.valid
    train = split.train
    vocab = feature_vocabulary(
        (u, ds.texts.get((u, i), {}).get("reviewText") or "")
        for u, i in zip(train.user.tolist(), train.item.tolist(), strict=True)
    )
    in_train = {
        " ".join((ds.texts.get((u, i), {}).get("reviewText") or "").split())
        for u, i in zip(train.user.tolist(), train.item.tolist(), strict=True)
    }
    found: dict[str, list[tuple[int, str, str | None]]] = {}
    missing = 0
    for row, (u, i) in enumerate(zip(target.user.tolist(), target.item.tolist(), strict=True)):
        ref = _reference(kind, ds.texts.get((u, i), {}), vocab)
        if ref is None:
            missing += 1
            continue
        found.setdefault(u, []).append((row, *ref))
    ds.stats["text_cases_without_target"] = missing
    histories = train.histories(protocol.tie_break, protocol.seed)
    seen = ds.seen_items()
    pool = np.array(ds.item_ids(), dtype=object)
    for user in sample_users(list(found), protocol.n_users, protocol.seed):
        for row, reference, feature in found[user]:
            item = str(target.item[row])
            rating = float(target.rating[row])
            text = ds.texts.get((user, item), {})
            events = histories.get(user, [])
            if protocol.history_length is not None:
                events = events[len(events) - protocol.history_length :]
            values = _inputs(spec, ds, user, item, rating, text, events, kind, feature, vocab)
            if "candidates" in spec.inputs:
                cands, _ = sample_candidates(
                    user, item, seen[user], pool, protocol.n_negatives, seed=protocol.seed
                )
                values["candidates"] = ItemSeq(make_item(c, ds.item_title(c) or c) for c in cands)
            yield Case(
                id=f"{user}:{item}",
                inputs=values,
                label=reference,
                meta={
                    "user_id": user,
                    "item_id": item,
                    "rating": rating,
                    "target": kind,
                    "feature": feature,
                    "input_texts": text_texts(values),
                    # the same review posted on another item (product variants) is common
                    # in Amazon 5-core files: reported, since it helps retrieval baselines
                    "review_in_train": " ".join((text.get("reviewText") or "").split()) in in_train,
                },
            )


def _inputs(
    spec: Spec,
    ds: Dataset,
    user: str,
    item: str,
    rating: float,
    text: dict[str, Any],
    events: list[Any],
    kind: str,
    feature: str | None,
    vocab: Any,
) -> dict[str, Any]:
    declared = spec.inputs
    values: dict[str, Any] = {}

    def put(name: str, value: Any) -> None:
        if name in declared and value not in (None, ""):
            values[name] = value

    put("user_id", user)
    put("item_id", item)
    title = ds.item_title(item)
    put(
        "item_title",
        title or (item if declared.get("item_title") and declared["item_title"].required else None),
    )
    put("target_title", title or item)
    put("user_name", text.get("reviewerName"))
    put("star_rating", round(rating) if rating == rating else None)
    if kind == "summary":
        put("review", _clip(text.get("reviewText")))
    else:
        put("review_headline", text.get("summary"))
        put("feature", feature)
    if "history" in declared:
        values["history"] = ItemSeq(
            make_item(
                e.item_id,
                e.title or ds.item_title(e.item_id) or e.item_id,
                rating=None if e.rating != e.rating else e.rating,
                timestamp=e.timestamp,
            )
            for e in events
        )
    if "user_examples" in declared:
        examples = []
        for e in events[::-1]:
            past = ds.texts.get((user, e.item_id), {})
            explanation = explanation_of(past.get("reviewText") or "", vocab)
            if kind == "explanation" and explanation is None:
                continue
            examples.append(
                make_item(
                    e.item_id,
                    ds.item_title(e.item_id) or e.item_id,
                    rating=None if e.rating != e.rating else int(e.rating),
                    review=_clip(past.get("reviewText"), 60),
                    summary=past.get("summary") or "",
                    explanation=explanation.sentence if explanation else "",
                )
            )
            if len(examples) == EXAMPLES:
                break
        if examples:
            values["user_examples"] = ItemSeq(examples[::-1])
    return values


def extraction_note(kind: str) -> dict[str, Any]:
    """What the report says about where references come from."""
    return {"target": kind, "reference": EXTRACTION[kind]} | (
        {"feature": EXTRACTION["feature"]} if kind == "explanation" else {}
    )


def word_count(text: str | None) -> int:
    return len(words(text or ""))
