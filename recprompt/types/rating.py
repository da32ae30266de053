"""Rating output: a number on the spec's scale, e.g. 1..5 stars in steps of 1."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any, ClassVar, Literal

from pydantic import Field, StrictFloat, field_validator, model_validator

from recprompt.constraints import Choice, Constraint
from recprompt.types.base import OutputBase, ParseFailure


class RatingOutput(OutputBase):
    """A rating. With logits, ``expected`` returns the probability-weighted mean of the scale
    values (P5/TALLRec-style scoring beats parsing for small models) and ``argmax`` the mode."""

    type: Literal["rating"] = "rating"
    scale: tuple[StrictFloat, StrictFloat] = Field((1, 5), description="Lowest and highest rating.")
    step: float = Field(1, gt=0, strict=True, description="Distance between allowed ratings.")

    scoring_modes: ClassVar[tuple[str, ...]] = ("generate", "expected", "argmax")

    @field_validator("scale")
    @classmethod
    def _scale_not_empty(cls, scale: tuple[float, float]) -> tuple[float, float]:
        low, high = scale
        # Fuzz fix: .inf/.nan passed validation and made values() loop forever at render.
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError(f"scale [{low:g}, {high:g}] must be two finite numbers")
        if high <= low:
            raise ValueError(
                f"scale [{low:g}, {high:g}] is empty: the first value must be the lower one"
            )
        return scale

    @model_validator(mode="after")
    def _decode_mode(self) -> RatingOutput:
        # Fuzz fix: a tiny or infinite step gave millions of labels (or none) at render.
        low, high = self.scale
        if not math.isfinite(self.step) or (high - low) / self.step > 1000:
            raise ValueError(
                f"step {self.step:g} gives more than 1000 ratings on [{low:g}, {high:g}]"
            )
        if self.decode not in self.scoring_modes:
            raise ValueError(f"decode must be one of {list(self.scoring_modes)} for a rating")
        return self

    def values(self) -> list[float]:
        low, high = (Decimal(str(v)) for v in self.scale)
        step = Decimal(str(self.step))
        out, value = [], low
        while value <= high:
            out.append(float(value))
            value += step
        return out

    def labels(self) -> list[str]:
        return [self.answer_text(v) for v in self.values()]

    def answer_text(self, value: Any) -> str:
        number = float(value)
        return str(int(number)) if number == int(number) else f"{number:g}"

    def constraint(self, inputs: dict[str, Any]) -> Choice:
        return Choice(tuple(self.labels()))

    def token_limit(self, inputs: dict[str, Any], constraint: Constraint | None = None) -> int:
        return self.max_tokens or 4

    def parse(self, text: str, inputs: dict[str, Any]) -> float:
        token = text.strip().split()[0] if text.strip() else ""
        try:
            value = float(token.rstrip(".,"))
        except ValueError as exc:
            raise ParseFailure(f"not a number: {text[:40]!r}") from exc
        low, high = self.scale
        if not low <= value <= high:
            raise ParseFailure(f"{value:g} is outside the scale {low:g}..{high:g}")
        return value

    def value_type(self) -> Any:
        return float
