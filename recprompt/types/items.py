"""Item outputs: one candidate, or a top-K list of distinct candidates.

Items are named by a key of the candidate records (``title`` by default, since models know
titles rather than ids); the constraint is built per call from the candidates given.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from recprompt.constraints import Choice, Constraint, ItemList, ListFormat
from recprompt.errors import InputError
from recprompt.types.base import OutputBase, ParseFailure

__all__ = ["ItemListOutput", "ItemOutput", "item_name"]


def item_name(item: Any, key: str = "title") -> str:
    """The text that names ``item``: its ``key`` field, falling back to ``item_id``."""
    label = getattr(item, "label", None) if key == "title" else None
    if label is not None:  # items made by recprompt carry their name (a hot path)
        return label
    if isinstance(item, dict):
        value = item.get(key)
        if value is None or value == "":
            value = item.get("item_id")
        return value if type(value) is str else str(value)
    return str(item)


class _FromCandidates(OutputBase):
    source: str = Field(
        "candidates", alias="from", description="The input that holds the candidate items."
    )
    key: str = Field("title", description="Candidate field that names an item in the output.")

    def names(self, inputs: dict[str, Any]) -> list[str]:
        items = inputs.get(self.source) or []
        if self.key == "title":
            try:  # items normalised by recprompt carry their name: skip the general lookup
                return [item.label for item in items]
            except AttributeError:
                pass
        return [item_name(item, self.key) for item in items]


class ItemOutput(_FromCandidates):
    """Exactly one candidate. ``score`` ranks every candidate by its likelihood."""

    type: Literal["item"] = "item"
    scoring_modes: ClassVar[tuple[str, ...]] = ("generate", "score")

    def constraint(self, inputs: dict[str, Any]) -> Choice:
        return Choice(tuple(self.names(inputs)))

    def token_limit(self, inputs: dict[str, Any], constraint: Constraint | None = None) -> int:
        return self.max_tokens or 48

    def parse(self, text: str, inputs: dict[str, Any]) -> str:
        answer = text.strip().strip("'\"")
        if answer not in self.names(inputs):
            raise ParseFailure(f"{answer[:60]!r} is not a candidate")
        return answer

    def value_type(self) -> Any:
        return str


class ItemListOutput(_FromCandidates):
    """Exactly ``k`` distinct candidates, written as a Python list literal by default
    (the format indicator of Liu et al. 2023)."""

    type: Literal["item_list"] = "item_list"
    k: int = Field(10, ge=1, strict=True, description="How many items to return.")
    format: ListFormat = Field("python_list", description="python_list, json, or lines.")
    distinct: Literal[True] = Field(True, description="Items never repeat (always true).")

    @model_validator(mode="after")
    def _generate_only(self) -> ItemListOutput:
        if self.decode != "generate":
            raise ValueError("an item_list is generated; use a rank strategy to score candidates")
        return self

    def constraint(self, inputs: dict[str, Any]) -> ItemList:
        names = tuple(self.names(inputs))
        if len(names) < self.k:  # no answer could satisfy it: refused before any call
            raise InputError(
                f"the output asks for {self.k} distinct candidates, but {len(names)} were given",
                hint=f"pass at least {self.k} distinct candidates, or lower the output's k",
            )
        return ItemList(names, self.k, self.format)

    def token_limit(self, inputs: dict[str, Any], constraint: Constraint | None = None) -> int:
        """Room for K of the longest names (about 2 characters per token, plus quoting)."""
        if self.max_tokens:
            return self.max_tokens
        names = constraint.items if isinstance(constraint, ItemList) else self.names(inputs)
        longest = max(map(len, names), default=40)
        return 8 + self.k * (longest // 2 + 6)

    def parse(self, text: str, inputs: dict[str, Any]) -> list[str]:
        constraint = self.constraint(inputs)
        try:
            values = constraint.parse(text)
        except (ValueError, SyntaxError) as exc:
            raise ParseFailure(f"not a {self.format}: {exc}") from exc
        return values

    def answer_text(self, value: Any) -> str:
        """A demonstration's answer as the list format writes it. A single label (a
        leave-one-out positive is one title) is a list of one, never its characters."""
        items = [value] if isinstance(value, str | int | float) else list(value)
        items = [i if isinstance(i, str) else str(i) for i in items]
        probe = ItemList(tuple(items), max(len(items), 1), self.format)
        body = probe.separator().join(probe.quote(i) for i in items)
        return body if self.format == "lines" else f"[{body}]"

    def value_type(self) -> Any:
        return list[str]
