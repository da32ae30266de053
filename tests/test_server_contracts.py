"""Contract tests for vLLM, SGLang, Ollama and OpenAI: the request bodies recprompt sends.

These servers cannot run on this machine. Each test sends recprompt's real requests over a real
socket to :class:`contract_server.ContractServer`, which answers in the kind's documented shape
and records every body; the test checks the body against the parameters that server documents
(the page is cited in each docstring). They are contract tests, not live tests.
"""

from __future__ import annotations

import json
import math

import pytest
from contract_server import ContractServer, chat_logprobs, completion_logprobs, openai_body

from recprompt.backends.http_scoring import option_logprobs
from recprompt.backends.litellm_backend import LiteLLMBackend
from recprompt.backends.server_kinds import ServerInfo, parse_kind, server_constraint
from recprompt.constraints import Choice, ItemList, JsonObject
from recprompt.errors import BackendError

YES_NO = Choice(("Yes", "No"))
STARS = Choice(("1", "2", "3", "4", "5"))
ITEMS = ItemList(("Heat", "Fargo", "Babe", "Big"), 2)
SCHEMA = JsonObject.from_schema(
    {
        "type": "object",
        "properties": {"genre": {"enum": ["drama", "comedy"]}},
        "required": ["genre"],
    }
)

VLLM_DOC = "https://docs.vllm.ai/en/latest/features/structured_outputs/"
SGLANG_DOC = "https://docs.sglang.io/advanced_features/structured_outputs.html"
OLLAMA_DOC = "https://ollama.com/blog/structured-outputs"


def served(contract: ContractServer, model: str = "openai/m", **kw) -> LiteLLMBackend:
    return LiteLLMBackend(model, api_base=contract.url, timeout=10, backoff=0.01, **kw)


# -- detection --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "version"),
    [("vllm", "0.12.0"), ("vllm", "0.11.2"), ("sglang", None), ("ollama", None)],
)
def test_contract_kind_is_detected_from_what_the_server_says(kind, version):
    """vLLM: ``owned_by: vllm`` in /v1/models and ``GET /version``; Ollama: /api/version."""
    with ContractServer(kind, version=version) as server:
        info = served(server).info
    assert info.kind == kind
    if kind == "vllm":
        assert info.version == version and info.source == "/version"


def test_unknown_server_kind_is_a_clear_error():
    with pytest.raises(BackendError, match="unknown server kind 'vlm'") as caught:
        parse_kind("vlm")
    assert "vllm" in caught.value.hint


# -- vLLM -------------------------------------------------------------------------------------


def test_vllm_contract_structured_outputs_choice_json_and_grammar():
    """vLLM >= 0.12: ``structured_outputs`` with ``choice`` / ``json`` / ``grammar`` as extra
    parameters of the Completions and Chat APIs (guided_* fields were removed in v0.12.0).
    Doc: https://docs.vllm.ai/en/latest/features/structured_outputs/"""
    answers = iter(["Yes", '{"genre": "drama"}', "['Heat', 'Babe']"])
    with ContractServer("vllm", lambda r, n: next(answers)) as server:
        backend = served(server)
        assert backend.generate("Q? ", constraint=YES_NO, max_tokens=2).text == "Yes"
        backend.generate("Q? ", constraint=SCHEMA, max_tokens=20)
        backend.generate("Top 2: ", constraint=ITEMS, max_tokens=20)
    choice, obj, items = (r.body for r in server.posts)
    assert choice["structured_outputs"] == {"choice": ["Yes", "No"]}
    assert obj["structured_outputs"] == {"json": SCHEMA.schema}
    assert items["structured_outputs"]["grammar"].startswith("root ::= ")
    assert not any(k.startswith("guided_") for b in (choice, obj, items) for k in b)
    assert all(r.path == "/v1/completions" for r in server.posts)


def test_vllm_contract_before_0_12_uses_guided_fields():
    """vLLM < 0.12 documents ``guided_choice`` / ``guided_json`` / ``guided_grammar``.
    Doc: https://docs.vllm.ai/en/v0.9.1/features/structured_outputs.html"""
    with ContractServer("vllm", version="0.11.2") as server:
        served(server).generate("Q? ", constraint=YES_NO, max_tokens=2)
    assert server.posts[0].body["guided_choice"] == ["Yes", "No"]
    assert "structured_outputs" not in server.posts[0].body


def test_vllm_contract_repeated_items_are_repaired_under_a_narrowing_grammar():
    """vLLM's grammar enforces the format but not distinct items; the repair re-asks with a
    ``structured_outputs.grammar`` that keeps the distinct prefix and forbids its items."""
    answers = iter(["['Fargo', 'Fargo']", "'Babe']"])
    with ContractServer("vllm", lambda r, n: next(answers)) as server:
        out = served(server).generate("Top 2: ", constraint=ITEMS, max_tokens=20)
    assert out.text == "['Fargo', 'Babe']"
    assert (out.usage.invalid_before_repair, out.usage.invalid_after_repair) == (1, 0)
    second = server.posts[1].body
    assert second["prompt"].endswith("['Fargo', ")
    assert "'Fargo'" not in second["structured_outputs"]["grammar"]


def test_vllm_contract_scoring_requests():
    """Completions API: ``logprobs: k`` returns ``top_logprobs``; ``echo: true`` with
    ``logprobs`` returns the prompt tokens' log-probabilities (vLLM's CompletionRequest has
    ``echo`` and ``logprobs``). Doc: https://docs.vllm.ai/en/v0.15.0/api/vllm/entrypoints/openai/completion/protocol/"""
    top = {"5": -0.5, " 4": -1.5, "4": -2.0, "3": -3.0}

    def answer(request, n):
        if request.body.get("echo"):
            prompts = request.body["prompt"]
            prompts = [prompts] if isinstance(prompts, str) else prompts
            choices = []
            for i, text in enumerate(prompts):
                cut = text.index("|") + 1 if "|" in text else len("Rating: ")
                offsets = [0, cut, cut + 2]
                choice = {"index": i, "text": text, "finish_reason": "length",
                          "logprobs": {"tokens": ["a", "b", "c"], "text_offset": offsets,
                                       "token_logprobs": [None, -1.0 - i, -0.5]}}  # fmt: skip
                choices.append(choice)
            return {"id": "e", "object": "text_completion", "model": "m", "choices": choices,
                    "usage": {"prompt_tokens": 9, "completion_tokens": 1}}  # fmt: skip
        return openai_body(request.path, "5", completion_logprobs(top))

    with ContractServer("vllm", answer) as server:
        backend = served(server)
        stars = backend.score("Rating: ", ["1", "3", "4", "5"])
        titles = backend.score("Pick|", ["Heat (1995)", "Fargo (1996)"])
    healed, first, rescore, echo = (r.body for r in server.posts)
    # options are read first with the prompt's trailing space moved into them (" 4"); not
    # all are single tokens that way, so they are read again after the prompt as written
    assert (healed["prompt"], healed["logprobs"]) == ("Rating:", 20)
    assert (first["logprobs"], first["max_tokens"], first["prompt"]) == (20, 1, "Rating: ")
    assert "structured_outputs" not in first  # a constraint would change the distribution
    assert echo["echo"] is True and echo["logprobs"] == 1
    assert echo["prompt"] == ["Pick|Heat (1995)", "Pick|Fargo (1996)"]
    assert stars[1:] == [-3.0, -2.0, -0.5]  # the exact token, not ' 4'
    # "1" was outside the top-k: vLLM scores it exactly from an echoed prompt instead
    assert rescore["prompt"] == "Rating: 1" and rescore["echo"] is True
    assert stars[0] == -1.0 and backend.usage.truncated_scores == 0
    assert titles == [-1.5, -2.5]


# -- SGLang -----------------------------------------------------------------------------------


def test_sglang_contract_regex_ebnf_and_json_schema():
    """SGLang: one of ``json_schema``, ``regex`` or ``ebnf`` per request (extra_body), and
    OpenAI's ``response_format`` json_schema in chat.
    Doc: https://docs.sglang.io/advanced_features/structured_outputs.html"""
    answers = iter(["No", "['Big', 'Heat']", '{"genre": "comedy"}', '{"genre": "drama"}'])
    with ContractServer("sglang", lambda r, n: next(answers)) as server:
        backend = served(server)
        assert backend.server == "sglang"
        backend.generate("Q? ", constraint=YES_NO, max_tokens=2)
        backend.generate("Top: ", constraint=ITEMS, max_tokens=20)
        backend.generate("JSON: ", constraint=SCHEMA, max_tokens=20)
        served(server, mode="chat").generate("JSON", constraint=SCHEMA, max_tokens=20)
    choice, items, obj, chat = (r.body for r in server.posts)
    assert choice["regex"] == "(Yes|No)" and "ebnf" not in choice
    assert items["ebnf"].startswith("root ::= ")
    assert json.loads(obj["json_schema"]) == SCHEMA.schema
    assert chat["response_format"]["type"] == "json_schema"
    assert chat["response_format"]["json_schema"]["schema"] == SCHEMA.schema
    assert server.posts[3].path == "/v1/chat/completions"


# -- Ollama -----------------------------------------------------------------------------------


def test_ollama_contract_native_format_takes_the_json_schema():
    """Ollama's own API takes the JSON schema in ``format`` (/api/generate, /api/chat); the
    answer is JSON, read back as the constraint's text. Doc: https://ollama.com/blog/structured-outputs"""
    answers = iter(['"Yes"', '["Fargo", "Heat"]'])

    def answer(request, n):  # litellm may also ask /api/show about the model
        return next(answers) if request.path == "/api/generate" else {}

    with ContractServer("ollama", answer) as server:
        backend = LiteLLMBackend("ollama/llama3.2", api_base=server.root, timeout=10)
        assert backend.server == "ollama"
        yes = backend.generate("Q? ", constraint=YES_NO, max_tokens=5)
        pair = backend.generate("Top: ", constraint=ITEMS, max_tokens=30)
    assert (yes.text, pair.text) == ("Yes", "['Fargo', 'Heat']")
    first, second = (r for r in server.posts if r.path == "/api/generate")
    assert first.body["format"] == {"type": "string", "enum": ["Yes", "No"]}
    assert second.body["format"]["items"] == {"type": "string", "enum": list(ITEMS.items)}
    assert second.body["format"]["minItems"] == second.body["format"]["maxItems"] == 2


def test_ollama_contract_openai_route_uses_response_format():
    """Ollama's OpenAI-compatible /v1 takes ``response_format`` (mapped to ``format``) and
    returns ``logprobs``/``top_logprobs``. Doc: https://docs.ollama.com/api/openai-compatibility"""
    with ContractServer("ollama", lambda r, n: '"No"') as server:
        backend = served(server, mode="chat")
        assert backend.generate("Q?", constraint=YES_NO, max_tokens=5).text == "No"
    body = server.posts[0].body
    assert body["response_format"]["json_schema"]["schema"]["enum"] == ["Yes", "No"]


# -- OpenAI -----------------------------------------------------------------------------------


def test_openai_contract_strict_json_schema_wraps_the_answer():
    """OpenAI Structured Outputs: ``response_format: {type: json_schema, json_schema: {name,
    schema, strict}}``; a strict schema's root must be an object with every property required
    and ``additionalProperties: false``. Doc: https://platform.openai.com/docs/guides/structured-outputs"""
    answers = iter(
        ['{"answer": "Yes"}', '{"answer": ["Babe", "Babe"]}', '{"answer": ["Babe", "Big"]}']
    )
    with ContractServer("openai", lambda r, n: next(answers)) as server:
        backend = served(server, mode="chat", server="openai", api_key="sk-test")
        assert backend.generate("Q?", constraint=YES_NO, max_tokens=9).text == "Yes"
        items = backend.generate("Top?", constraint=ITEMS, max_tokens=30)
    assert items.text == "['Babe', 'Big']" and items.usage.invalid_before_repair == 1
    fmt = server.posts[0].body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    schema = fmt["json_schema"]["schema"]
    assert schema["required"] == ["answer"] and schema["additionalProperties"] is False
    listed = server.posts[1].body["response_format"]["json_schema"]["schema"]["properties"]
    assert "uniqueItems" not in listed["answer"]  # not in OpenAI's supported subset
    assert server.posts[0].headers["authorization"] == "Bearer sk-test"


def test_openai_contract_chat_top_logprobs():
    """Chat Completions: ``logprobs: true`` with ``top_logprobs`` (0-20) returns the
    alternatives per position. Doc: https://platform.openai.com/docs/api-reference/chat/create"""
    tops = {"A": -0.2, "B": -1.9, "C": -4.0}
    with ContractServer("openai", lambda r, n: openai_body(r.path, "A", chat_logprobs(tops))) as s:
        backend = served(s, mode="chat", server="openai", api_key="k")
        scores = backend.score([{"role": "user", "content": "Pick:"}], ["A", "B", "C", "D"])
    body = s.posts[0].body
    assert (body["logprobs"], body["top_logprobs"], body["max_tokens"]) == (True, 20, 1)
    assert scores == [-0.2, -1.9, -4.0, -4.0] and backend.usage.truncated_scores == 1


def test_openai_cannot_score_candidate_texts_before_any_call():
    with ContractServer("openai") as server:
        backend = served(server, mode="chat", server="openai", api_key="k")
        with pytest.raises(BackendError, match="cannot score candidate texts"):
            backend.score("Pick:", ["Heat (1995)", "Fargo (1996)"])
    assert server.posts == []


# -- pure pieces ------------------------------------------------------------------------------


def test_constraint_table_has_no_server_specific_leaks():
    generic = server_constraint(ServerInfo("generic"), YES_NO, chat=False)
    assert generic.params == {} and generic.enforced == "none"
    completion_openai = server_constraint(ServerInfo("openai"), YES_NO, chat=False)
    assert completion_openai.params == {}  # the legacy completions endpoint has no schema


def test_option_logprobs_merges_whitespace_variants_and_flags_truncation():
    alternatives = {" Yes": -1.0, "Yes": -1.2, " No": -2.0, "\nNo": -2.5, "x": -4.0}
    scored = option_logprobs(alternatives, ["Yes", "No", "Maybe"])
    assert scored.logprobs[0] == -1.2  # the exact text, as the local backend scores it
    assert scored.logprobs[1] == pytest.approx(math.log(math.exp(-2.0) + math.exp(-2.5)))
    assert scored.truncated == ["Maybe"] and scored.logprobs[2] == -4.0
