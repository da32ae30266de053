"""What every output type provides to the compiler.

An output type is declared in a spec (``output: {type: rating, scale: [1, 5]}``) and turns into
four things: the decoding constraint for the current inputs, the token limit, a parser from
text to a typed value, and the text of a demonstration's answer. Keeping the four together
means a new output type is one module.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from recprompt.constraints import Constraint

__all__ = ["DecodeMode", "OutputBase", "ParseFailure"]

DecodeMode = Literal["generate", "expected", "argmax", "score"]


class ParseFailure(ValueError):
    """Text that does not parse into the output type; counted as an error rate, never dropped."""


class OutputBase(BaseModel):
    """Fields shared by every output type."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("answer", description="Name of the output field in predictions.")
    decode: DecodeMode = Field(
        "generate",
        description="generate text under the constraint, or score options from logits "
        "(expected value, argmax, or per-option probabilities) where the backend has logits.",
    )
    max_tokens: int | None = Field(
        None,
        ge=1,
        strict=True,
        description="Override of the token limit derived from the output type.",
    )

    scoring_modes: ClassVar[tuple[str, ...]] = ("generate",)

    def constraint(self, inputs: dict[str, Any]) -> Constraint:
        raise NotImplementedError

    def token_limit(self, inputs: dict[str, Any], constraint: Constraint | None = None) -> int:
        raise NotImplementedError

    def parse(self, text: str, inputs: dict[str, Any]) -> Any:
        raise NotImplementedError

    def answer_text(self, value: Any) -> str:
        """How a demonstration's label is written after its prompt."""
        return str(value)

    def value_type(self) -> Any:
        """The Python type of the parsed value (the prediction field's annotation)."""
        return Any
