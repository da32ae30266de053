"""Free text (explanations, review summaries, profiles) and JSON objects."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field, field_validator

from recprompt.constraints import Constraint, FreeText, JsonObject
from recprompt.types.base import OutputBase, ParseFailure

__all__ = ["ObjectOutput", "TextOutput"]


class TextOutput(OutputBase):
    """Text bounded in tokens; generation stops at ``stop``.

    Text cannot fail to parse: whatever came back within the bound is the answer (an empty
    one included, which scores as empty and is counted in reports' ``empty_rate``).
    """

    type: Literal["text"] = "text"
    stop: tuple[str, ...] = Field(("\n\n",), description="Strings that end the text.")

    def constraint(self, inputs: dict[str, Any]) -> FreeText:
        return FreeText(self.stop)

    def token_limit(self, inputs: dict[str, Any], constraint: Constraint | None = None) -> int:
        return self.max_tokens or 64

    def parse(self, text: str, inputs: dict[str, Any]) -> str:
        return text.strip()

    def value_type(self) -> Any:
        return str


class ObjectOutput(OutputBase):
    """A JSON object matching ``schema`` (a JSON Schema)."""

    type: Literal["object"] = "object"
    schema_: dict[str, Any] = Field(alias="schema", description="JSON Schema of the object.")

    @field_validator("schema_")
    @classmethod
    def _is_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        import jsonschema

        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise ValueError(f"not a valid JSON Schema: {exc.message}") from exc
        return schema

    def constraint(self, inputs: dict[str, Any]) -> JsonObject:
        return JsonObject.from_schema(self.schema_)

    def token_limit(self, inputs: dict[str, Any], constraint: Constraint | None = None) -> int:
        return self.max_tokens or 256

    def parse(self, text: str, inputs: dict[str, Any]) -> dict[str, Any]:
        error = self.constraint(inputs).validate(text)
        if error:
            raise ParseFailure(error)
        return json.loads(text)

    def answer_text(self, value: Any) -> str:
        return json.dumps(value)

    def value_type(self) -> Any:
        return dict[str, Any]
