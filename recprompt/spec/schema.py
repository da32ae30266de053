"""JSON Schema of the spec format, for editors (yaml-language-server) and validators."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args

from recprompt.spec.model import InputType, Spec

__all__ = ["SCHEMA_FILE", "spec_json_schema", "write_schema"]

SCHEMA_FILE = "recprompt-spec.schema.json"


def spec_json_schema() -> dict[str, Any]:
    schema = Spec.model_json_schema(by_alias=True)
    # An input may be declared by its type name alone (``user_id: str``).
    inputs = schema["properties"]["inputs"]
    inputs["additionalProperties"] = {
        "anyOf": [
            {"$ref": "#/$defs/InputSpec"},
            {"enum": list(get_args(InputType))},
        ]
    }
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://recprompt.dev/schemas/recprompt-spec.schema.json"
    schema["title"] = "recprompt task spec"
    return schema


def schema_text() -> str:
    return json.dumps(spec_json_schema(), indent=2, sort_keys=True) + "\n"


def write_schema(folder: str | Path) -> Path:
    from recprompt._files import write_text_atomic

    Path(folder).mkdir(parents=True, exist_ok=True)
    return write_text_atomic(Path(folder) / SCHEMA_FILE, schema_text())
