"""Which server is behind a URL, and the strongest constraint each kind accepts.

Servers differ in how they take a constraint, so one output type becomes a different request:

=========  ===============================  ================================  =====================
kind       choice / rating / one item       K items from candidates           JSON object
=========  ===============================  ================================  =====================
llama_cpp  GBNF ``grammar``                 GBNF ``grammar`` (narrowing)      ``json_object`` +
                                                                              schema (chat) / GBNF
vllm       ``structured_outputs.choice``    ``structured_outputs.grammar``    ``structured_outputs
           (``guided_choice`` < 0.12)       (``guided_grammar`` < 0.12)       .json``
sglang     ``regex``                        ``ebnf`` (narrowing)              ``json_schema``
ollama     ``format`` (JSON schema; the     ``format`` (array schema)         ``format``
           answer comes back as JSON)
openai     ``response_format`` json_schema  ``response_format`` json_schema   ``response_format``
           (strict, wrapped in an object)   (array, strict)                   json_schema
generic    none: validate and re-ask        none                              none
=========  ===============================  ================================  =====================

No server enforces distinct list items (``uniqueItems`` is ignored by XGrammar, llguidance,
llama.cpp and OpenAI alike). Where the server takes a grammar, a repeated item is repaired by
re-asking under a *narrowing* grammar that keeps the distinct prefix and forbids its items
(:func:`recprompt.backends.grammar.itemlist_gbnf`); elsewhere by the validation re-ask. A
repair sees the answer and the constraint, never a label.

A kind is detected where the server says what it is (``owned_by`` in ``/v1/models``, then
``/version`` for vLLM, ``/api/version`` for Ollama, ``/props`` for llama-server,
``/get_server_info`` for SGLang), each probe bounded by a short timeout; otherwise the user
says it with ``server_kind=`` / ``--server-kind``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from recprompt.backends.grammar import gbnf_for
from recprompt.constraints import Choice, Constraint, FreeText, ItemList, JsonObject
from recprompt.errors import BackendError

__all__ = [
    "KINDS",
    "ServerConstraint",
    "ServerInfo",
    "detect",
    "kind_from_model",
    "parse_kind",
    "server_constraint",
]

KINDS = ("auto", "llama_cpp", "vllm", "sglang", "ollama", "openai", "generic")
"""Accepted values of ``--server-kind``."""

_OWNERS = {
    "me": "llama_cpp",  # llama-cpp-python's server
    "llamacpp": "llama_cpp",  # llama.cpp's llama-server
    "vllm": "vllm",
    "sglang": "sglang",
    "library": "ollama",  # Ollama's /v1/models
    "ollama": "ollama",
    "openai": "openai",
    "system": "openai",
    "openai-internal": "openai",
}
_PROBE_TIMEOUT = 2.0


@dataclass(frozen=True)
class ServerInfo:
    """A server kind and, where the server reports it, its version (e.g. ``0.12.1``)."""

    kind: str
    version: str | None = None
    source: str = "declared"
    """How the kind was learned: ``declared``, ``model``, or the probed path."""

    @property
    def top_logprobs_limit(self) -> int:
        """Alternatives per position asked for: OpenAI and vLLM (default ``max_logprobs``)
        allow 20; llama.cpp's server has no cap and sorts the whole vocabulary either way, so
        1000 (the 270M base model puts candidate letters a few hundred places down)."""
        return {"llama_cpp": 1000}.get(self.kind, 20)

    @property
    def scores_continuations(self) -> bool:
        """True when the server returns the log-probabilities of a given text (echo)."""
        return self.kind in ("llama_cpp", "vllm")

    @property
    def returns_top_logprobs(self) -> bool:
        return self.kind in ("llama_cpp", "vllm", "sglang", "ollama", "openai")

    def vllm_at_least(self, major: int, minor: int) -> bool:
        """True for vLLM at or after ``major.minor`` (an unknown version counts as recent)."""
        if self.version is None:
            return True
        parts = re.findall(r"\d+", self.version)[:2]
        if len(parts) < 2:
            return True
        return (int(parts[0]), int(parts[1])) >= (major, minor)


def parse_kind(value: str) -> str:
    """``value`` if it names a kind, else a :class:`BackendError` listing the kinds."""
    if value not in KINDS:
        raise BackendError(
            f"unknown server kind {value!r}",
            hint=f"use one of: {', '.join(KINDS)} ('auto' asks the server)",
        )
    return value


def kind_from_model(model: str, api_base: str | None) -> str | None:
    """The kind a litellm model string implies on its own, or None to ask the server."""
    provider = model.split("/", 1)[0] if "/" in model else ""
    if provider in ("ollama", "ollama_chat"):
        return "ollama"
    if api_base is None:
        # a hosted provider: OpenAI itself, or another litellm provider
        return "openai" if provider in ("openai", "") else "generic"
    if "api.openai.com" in api_base:
        return "openai"
    return None


def detect(api_base: str, headers: dict[str, str], timeout: float = _PROBE_TIMEOUT) -> ServerInfo:
    """Ask the server what it is, each probe bounded by ``timeout`` seconds.

    Returns kind ``generic`` when no probe answers in a known way (an unreachable server then
    fails on its first real call, with the transport's own error).
    """
    import httpx

    root = re.sub(r"/v1/?$", "", api_base.rstrip("/"))

    def get(url: str) -> Any:
        try:
            answer = httpx.get(url, headers=headers, timeout=timeout)
            return answer.json() if answer.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None

    models = get(f"{api_base.rstrip('/')}/models")
    owners = set()
    if isinstance(models, dict):
        owners = {str(m.get("owned_by", "")) for m in models.get("data", []) if isinstance(m, dict)}
    kind = next((_OWNERS[o] for o in sorted(owners) if o in _OWNERS), None)
    if kind in (None, "vllm"):
        version = get(f"{root}/version")
        if isinstance(version, dict) and "version" in version and kind == "vllm":
            return ServerInfo("vllm", str(version["version"]), "/version")
        if kind == "vllm":
            return ServerInfo("vllm", None, "/v1/models")
    if kind is None:
        version = get(f"{root}/api/version")
        if isinstance(version, dict) and "version" in version:
            return ServerInfo("ollama", str(version["version"]), "/api/version")
        props = get(f"{root}/props")
        if isinstance(props, dict) and ("default_generation_settings" in props):
            return ServerInfo("llama_cpp", None, "/props")
        info = get(f"{root}/get_server_info")
        if isinstance(info, dict) and ("tp_size" in info or "model_path" in info):
            return ServerInfo("sglang", info.get("version"), "/get_server_info")
        return ServerInfo("generic", None, "probes")
    return ServerInfo(kind, None, "/v1/models")


# -- constraints ------------------------------------------------------------------------------


@dataclass
class ServerConstraint:
    """What to add to a request so the server enforces a constraint, and how to read back.

    ``params`` are keyword arguments for litellm (``extra_body``, ``response_format``,
    ``format``). ``unwrap`` turns the server's text into the text the constraint validates
    (JSON-schema servers answer a choice as ``"Yes"`` or ``{"answer": "Yes"}``).
    ``grammar`` rebuilds ``params`` for a narrowing GBNF grammar (item-list repairs), or is
    None where the server takes no grammar. ``enforced`` names the mechanism for reports.
    """

    params: dict[str, Any] = field(default_factory=dict)
    enforced: str = "none"
    unwrap: Callable[[str], str] | None = None
    grammar: Callable[[str], dict[str, Any]] | None = None

    def read(self, text: str) -> str:
        return self.unwrap(text) if self.unwrap else text


def _json_value_text(constraint: Constraint, key: str | None) -> Callable[[str], str]:
    """Reads a JSON answer (optionally wrapped in ``{key: ...}``) back as the constraint's text."""

    def unwrap(text: str) -> str:
        try:
            value = json.loads(text)
            if key is not None:
                value = value[key]
        except (ValueError, KeyError, TypeError):
            return text  # left as is: validation then reports what is wrong, and repairs
        if isinstance(constraint, ItemList) and isinstance(value, list):
            body = constraint.separator().join(constraint.quote(str(v)) for v in value)
            return body if constraint.format == "lines" else f"[{body}]"
        return value if isinstance(value, str) else json.dumps(value)

    return unwrap


def _answer_schema(constraint: Constraint) -> dict[str, Any] | None:
    """The JSON schema of one answer (uniqueItems dropped: no server enforces it)."""
    schema = constraint.json_schema()
    if schema is None:
        return None
    return {k: v for k, v in schema.items() if k != "uniqueItems"}


def _openai_format(constraint: Constraint) -> ServerConstraint:
    """OpenAI structured outputs: the root must be an object, so an answer is wrapped."""
    if isinstance(constraint, JsonObject):
        schema = constraint.schema
        body = {"name": "answer", "schema": schema, "strict": False}
        return ServerConstraint(
            {"response_format": {"type": "json_schema", "json_schema": body}}, "json_schema"
        )
    inner = _answer_schema(constraint)
    if inner is None:
        return ServerConstraint()
    wrapped = {
        "type": "object",
        "properties": {"answer": inner},
        "required": ["answer"],
        "additionalProperties": False,
    }
    body = {"name": "answer", "schema": wrapped, "strict": True}
    return ServerConstraint(
        {"response_format": {"type": "json_schema", "json_schema": body}},
        "json_schema(strict)",
        _json_value_text(constraint, "answer"),
    )


def server_constraint(
    info: ServerInfo, constraint: Constraint | None, *, chat: bool, native_ollama: bool = False
) -> ServerConstraint:
    """The strongest constraint ``info.kind`` accepts for ``constraint`` on this endpoint.

    ``chat`` selects ``/v1/chat/completions`` (else ``/v1/completions``); ``native_ollama``
    is True when litellm talks to Ollama's own API (``ollama/`` or ``ollama_chat/`` models),
    which takes ``format``, instead of its OpenAI-compatible ``/v1``.
    """
    if constraint is None or isinstance(constraint, FreeText):
        return ServerConstraint()
    kind = info.kind
    gbnf = gbnf_for(constraint)
    if kind == "llama_cpp":
        if gbnf is not None:
            return ServerConstraint({"extra_body": {"grammar": gbnf}}, "grammar", None, _llama)
        if isinstance(constraint, JsonObject):
            if chat:
                fmt = {"type": "json_object", "schema": constraint.schema}
                return ServerConstraint({"response_format": fmt}, "json_object+schema")
            grammar = _json_schema_gbnf(constraint.schema)
            if grammar is not None:  # /v1/completions takes a grammar, not a response_format
                return ServerConstraint({"extra_body": {"grammar": grammar}}, "grammar")
        return ServerConstraint()
    if kind == "vllm":
        new = info.vllm_at_least(0, 12)

        def vllm(name: str, value: Any) -> dict[str, Any]:
            if new:
                return {"extra_body": {"structured_outputs": {name: value}}}
            return {"extra_body": {f"guided_{name}": value}}

        def grammar(text: str) -> dict[str, Any]:
            return vllm("grammar", text)

        if isinstance(constraint, Choice):
            enforced = "structured_outputs.choice" if new else "guided_choice"
            return ServerConstraint(vllm("choice", list(constraint.options)), enforced)
        if isinstance(constraint, ItemList) and gbnf is not None:
            enforced = "structured_outputs.grammar" if new else "guided_grammar"
            return ServerConstraint(vllm("grammar", gbnf), enforced, None, grammar)
        if isinstance(constraint, JsonObject):
            enforced = "structured_outputs.json" if new else "guided_json"
            return ServerConstraint(vllm("json", constraint.schema), enforced)
        return ServerConstraint()
    if kind == "sglang":
        if isinstance(constraint, Choice):
            return ServerConstraint({"extra_body": {"regex": constraint.regex()}}, "regex")
        if isinstance(constraint, ItemList) and gbnf is not None:
            return ServerConstraint({"extra_body": {"ebnf": gbnf}}, "ebnf", None, _sglang)
        if isinstance(constraint, JsonObject):
            if chat:
                body = {"name": "answer", "schema": constraint.schema}
                fmt = {"type": "json_schema", "json_schema": body}
                return ServerConstraint({"response_format": fmt}, "json_schema")
            schema = json.dumps(constraint.schema)
            return ServerConstraint({"extra_body": {"json_schema": schema}}, "json_schema")
        return ServerConstraint()
    if kind == "ollama":
        schema = _answer_schema(constraint)
        if schema is None:
            return ServerConstraint()
        unwrap = None if isinstance(constraint, JsonObject) else _json_value_text(constraint, None)
        if native_ollama:
            return ServerConstraint({"format": schema}, "format", unwrap)
        body = {"name": "answer", "schema": schema}
        fmt = {"type": "json_schema", "json_schema": body}
        return ServerConstraint({"response_format": fmt}, "json_schema", unwrap)
    if kind == "openai":
        return _openai_format(constraint) if chat else ServerConstraint()
    return ServerConstraint()


def _llama(grammar: str) -> dict[str, Any]:
    return {"extra_body": {"grammar": grammar}}


def _sglang(grammar: str) -> dict[str, Any]:
    return {"extra_body": {"ebnf": grammar}}


def _json_schema_gbnf(schema: dict) -> str | None:
    """llama-cpp-python's JSON-schema→GBNF converter, when it is installed on this side."""
    try:
        from llama_cpp.llama_grammar import json_schema_to_gbnf
    except ImportError:
        return None
    return json_schema_to_gbnf(json.dumps(schema))
