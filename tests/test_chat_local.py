"""Chat-mode specs on the local model: messages go through a chat template, and constraints
and scores apply to the assistant turn.

The default Gemma 3 270M GGUF is a base model with no template of its own, so these tests
give one explicitly: a Jinja template string (as a GGUF carries) or a llama.cpp format name.
"""

from __future__ import annotations

import pytest

from recprompt.constraints import Choice

pytestmark = pytest.mark.model

TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<start_of_turn>"
    "{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n{{ m['content'] }}<end_of_turn>\n"
    "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
MESSAGES = [
    {"role": "user", "content": "Is Toy Story (1995) a film for children? Answer Yes or No."},
]


@pytest.fixture(scope="module")
def templated():
    from recprompt.backends import LocalBackend

    return LocalBackend(n_threads=1, chat_template=TEMPLATE)


def test_messages_go_through_the_chat_template(templated):
    tokens = templated.prompt_tokens(MESSAGES)
    text = templated.llm.detokenize(tokens, special=True).decode()
    assert text.startswith("<bos><start_of_turn>user\nIs Toy Story")
    assert text.endswith("<end_of_turn>\n<start_of_turn>model\n")
    assert tokens.count(templated.llm.token_bos()) == 1  # the template's, not a second one
    plain = templated.tokenize("\n\n".join(m["content"] for m in MESSAGES))
    assert tokens != plain


def test_constraint_and_scores_apply_to_the_assistant_turn(templated):
    yes_no = Choice(("Yes", "No"))
    out = templated.generate(MESSAGES, constraint=yes_no, max_tokens=2)
    assert out.text in yes_no.options
    chat = templated.score(MESSAGES, ["Yes", "No"])
    flat = templated.score("\n\n".join(m["content"] for m in MESSAGES) + " ", ["Yes", "No"])
    assert chat != flat  # scored after the template's assistant opening, not the joined text


def test_a_chat_spec_renders_demos_as_turns_and_scores_locally(templated):
    import recprompt

    spec_text = """
name: chat.like
task: binary
mode: chat
system: "You answer Yes or No."
inputs: {title: str}
template: "Will a child like {{ title }}?"
output: {name: likes, type: choice, options: ["Yes", "No"], decode: score}
demos: {k: 1, examples: [{title: "Babe (1995)", likes: "Yes"}]}
"""
    from recprompt.spec.loader import parse_spec

    program = recprompt.Program(parse_spec(spec_text), backend=templated)
    rendered = program.render(title="Heat (1995)")
    assert [m["role"] for m in rendered.prompt] == ["system", "user", "assistant", "user"]
    prediction = program(title="Heat (1995)")
    assert prediction.decode == "score" and set(prediction.scores) == {"Yes", "No"}


def test_an_unknown_chat_format_is_a_clear_error():
    from recprompt.backends import LocalBackend
    from recprompt.errors import BackendError

    backend = LocalBackend(n_threads=1, chat_format="no-such-format")
    with pytest.raises(BackendError, match=r"unknown llama\.cpp chat format"):
        backend.prompt_tokens(MESSAGES)
