"""From a dataset under a protocol to the inputs of a spec: the evaluation cases.

Specs name their inputs; recprompt fills the names it knows from data (below) and refuses a
spec that needs anything else, before any model call:

    user_id, item_id                     the user and the target item
    item_title, target_title             the target item's title
    history                              the user's earlier interactions (title, rating, time)
    candidates                           1 positive + N sampled negatives, shuffled with a seed
    liked, disliked                      history split by the protocol's like threshold (TALLRec)
    example_history, example_target      the user's own earlier interaction as an in-context
                                         example (LLMRank)
    item_kind, item_noun, item_nouns     what the dataset calls an item ("movie" on MovieLens,
                                         "product" on Amazon, else "item"; --item-noun sets it);
                                         item_kind is plural when the spec's default is
    item_verb, item_verb_past            what a user does with one (watch/watched for movies,
                                         buy/bought for products, else by noun or pick/picked;
                                         a dataset YAML's item_verbs sets them)

Text outputs (review summaries, explanations) get their cases from review data, see
:mod:`recprompt.eval.text_cases`; inputs filled by a spec's ``stages:`` are computed at run
time (:mod:`recprompt.compile.stages`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from recprompt.compile.inputs import Item, ItemSeq, make_item
from recprompt.data import (
    Dataset,
    Interaction,
    Protocol,
    data_warnings,
    for_dataset,
    iter_ranking_examples,
    iter_rating_examples,
    require_ratings,
)
from recprompt.errors import DataError
from recprompt.spec.model import Spec
from recprompt.types import (
    ChoiceOutput,
    ItemListOutput,
    ItemOutput,
    RatingOutput,
    TextOutput,
    item_name,
)

__all__ = ["Case", "build_cases", "default_protocol", "spec_data_warnings"]

FILLABLE = (
    "user_id",
    "item_id",
    "item_title",
    "target_title",
    "history",
    "candidates",
    "liked",
    "disliked",
    "example_history",
    "example_target",
    "item_kind",
    "item_noun",
    "item_nouns",
    "item_verb",
    "item_verb_past",
)


@dataclass
class Case:
    """One evaluation case: the spec's inputs, the label, and what metrics need besides."""

    id: str
    inputs: dict[str, Any]
    label: Any
    meta: dict[str, Any] = field(default_factory=dict)


def _item(ds: Dataset, item_id: str) -> Item:
    return make_item(item_id, ds.display_title(item_id))


def _event(ds: Dataset, event: Interaction) -> Item:
    rating = None if event.rating != event.rating else event.rating  # nan → None
    if rating is not None and float(rating).is_integer():
        rating = int(rating)
    title = event.title or ds.display_title(event.item_id)
    return make_item(event.item_id, title, rating=rating, timestamp=event.timestamp)


def _is_ranking(spec: Spec) -> bool:
    return spec.rank is not None or isinstance(spec.output, ItemListOutput | ItemOutput)


def default_protocol(
    spec: Spec, dataset: str | Dataset | None = None, **overrides: Any
) -> Protocol:
    """The protocol a spec implies: candidate count from its inputs, history from max_length.

    Given the :class:`Dataset` itself (not only its name), the protocol also records where
    the data's order in time comes from (``time``), so that reports say it.
    """
    ds = dataset if isinstance(dataset, Dataset) else None
    settings: dict[str, Any] = {"dataset": ds.name if ds is not None else dataset}
    if isinstance(spec.output, RatingOutput) and spec.rank is None:
        settings["split"] = "random"  # P5's rating protocol: a seeded 8:1:1 split
    candidates = spec.inputs.get("candidates")
    if candidates is not None and candidates.count:
        settings["n_negatives"] = candidates.count - 1
    history = spec.inputs.get("history")
    if history is not None and history.max_length:
        settings["history_length"] = history.max_length
    settings.update({k: v for k, v in overrides.items() if v is not None})
    protocol = Protocol(**settings)
    return for_dataset(protocol, ds) if ds is not None else protocol


def spec_data_warnings(spec: Spec, ds: Dataset) -> list[str]:
    """What the data says before any call: loader warnings, ratings off the spec's scale."""
    output = spec.output
    if isinstance(output, RatingOutput) and spec.rank is None:
        return data_warnings(ds, tuple(output.scale), output.step)
    return data_warnings(ds)


def _nouns(spec: Spec, ds: Dataset) -> dict[str, str]:
    values: dict[str, str] = {}
    if "item_noun" in spec.inputs:
        values["item_noun"] = ds.item_noun
    if "item_nouns" in spec.inputs:
        values["item_nouns"] = ds.item_nouns
    present, past = ds.item_verbs
    if "item_verb" in spec.inputs:
        values["item_verb"] = present
    if "item_verb_past" in spec.inputs:
        values["item_verb_past"] = past
    declared = spec.inputs.get("item_kind")
    if declared is not None:
        plural_default = str(declared.default or "").endswith("s")  # "movies" vs "movie"
        values["item_kind"] = ds.item_nouns if plural_default else ds.item_noun
    return values


def _top_k(spec: Spec) -> int:
    """The K a ranking spec must order: its item list's k, else rank.top_k."""
    if isinstance(spec.output, ItemListOutput):
        return spec.output.k
    return spec.rank.top_k if spec.rank is not None else 1


def _check_fillable(spec: Spec) -> None:
    fillable = set(FILLABLE) | {s.into for s in spec.stages if s.per != "item"}
    if isinstance(spec.output, TextOutput):
        from recprompt.eval.text_cases import TEXT_FILLABLE

        fillable |= set(TEXT_FILLABLE)
    missing = [
        name for name, declared in spec.inputs.items() if name not in fillable and declared.required
    ]
    if missing:
        raise DataError(
            f"{spec.name}: cannot fill required input(s) {missing} from a dataset",
            hint=f"datasets fill: {', '.join(FILLABLE)}; give the others defaults in the spec",
        )


def _common(spec: Spec, ds: Dataset, user: str, history: list[dict[str, Any]], like: float):
    values: dict[str, Any] = _nouns(spec, ds)
    if "user_id" in spec.inputs:
        values["user_id"] = user
    if "history" in spec.inputs:
        values["history"] = history
    if "liked" in spec.inputs:
        values["liked"] = ItemSeq(
            h for h in history if h["rating"] is not None and h["rating"] > like
        )
    if "disliked" in spec.inputs:
        values["disliked"] = [h for h in history if h["rating"] is not None and h["rating"] <= like]
    if "example_history" in spec.inputs and history:
        values["example_history"] = ItemSeq(history[:-1])
        values["example_target"] = history[-1]["title"]
    return values


def build_cases(spec: Spec, ds: Dataset, protocol: Protocol) -> Iterator[Case]:
    """The cases of ``spec`` on ``ds``: ranking outputs get candidate sets, ratings and
    choices get the protocol's target interactions."""
    _check_fillable(spec)
    if isinstance(spec.output, TextOutput):
        from recprompt.eval.text_cases import build_text_cases

        yield from build_text_cases(spec, ds, protocol)
        return
    like = protocol.like_threshold
    if _is_ranking(spec):
        key = getattr(spec.output, "key", "title")
        if protocol.retriever is not None:
            from recprompt.data.retrieval import check_retriever, check_shortlist

            check_retriever(protocol.retriever)
            check_shortlist(protocol.shortlist, _top_k(spec), f"spec {spec.name!r}")
        for ex in iter_ranking_examples(ds, protocol):
            history = ItemSeq(_event(ds, e) for e in ex.history)
            values = _common(spec, ds, ex.user_id, history, like)
            candidates = ItemSeq(_item(ds, c) for c in ex.candidates)
            if "candidates" in spec.inputs:
                values["candidates"] = candidates
            positive = _item(ds, ex.positive)  # the label: never put into the inputs
            yield Case(
                id=ex.user_id,
                inputs=values,
                label=item_name(positive, key),
                meta={
                    "user_id": ex.user_id,
                    "positive": ex.positive,
                    "positive_index": ex.positive_index if ex.positive_index >= 0 else None,
                    "retriever_rank": ex.retriever_rank,
                    "candidates": list(ex.candidates),
                    "candidate_items": candidates,
                    "candidate_names": [item_name(c, key) for c in candidates],
                    "history_names": [item_name(h, key) for h in history],
                },
            )
        return
    if not isinstance(spec.output, RatingOutput | ChoiceOutput):
        raise DataError(
            f"{spec.name}: {spec.output.type} outputs need reference texts, which this "
            "dataset protocol does not provide",
            hint="use a rating, choice or ranking spec with MovieLens",
        )
    require_ratings(ds, f"{spec.name} ({spec.output.type} labels come from ratings)")
    for ex in iter_rating_examples(ds, protocol):
        history = ItemSeq(_event(ds, e) for e in ex.history)
        values = _common(spec, ds, ex.user_id, history, like)
        if "item_id" in spec.inputs:
            values["item_id"] = ex.item_id
        for name in ("item_title", "target_title"):
            if name in spec.inputs:
                values[name] = ds.display_title(ex.item_id)
        label: Any = ex.rating
        if isinstance(spec.output, ChoiceOutput):
            positive = spec.output.positive or spec.output.options[0]
            negative = next(o for o in spec.output.options if o != positive)
            label = positive if ex.rating > like else negative
        yield Case(
            id=f"{ex.user_id}:{ex.item_id}",
            inputs=values,
            label=label,
            meta={"rating": ex.rating, "item_id": ex.item_id, "user_id": ex.user_id},
        )
