"""The llama.cpp backend against the real Gemma 3 270M model (marked ``model``), plus errors."""

from __future__ import annotations

import threading

import pytest

from recprompt.backends import LocalBackend, get_backend, local
from recprompt.backends.base import heal_space
from recprompt.constraints import Choice, FreeText, ItemList, JsonObject
from recprompt.errors import BackendError, ModelNotFoundError, OutputError

ITEMS = tuple(f"item_{i}" for i in range(1, 21))
LIST_PROMPT = (
    "The user watched item_3, item_7 and item_12.\nCandidates: "
    + ", ".join(ITEMS)
    + "\nRank the candidates. Top 10:\n"
)
HISTORY = "User history: " + "; ".join(f"Movie number {i} (1990s drama)" for i in range(60))


@pytest.fixture(scope="module")
def backend() -> LocalBackend:
    return LocalBackend()


def test_missing_gguf_is_model_not_found(tmp_path):
    missing = tmp_path / "nope.gguf"
    with pytest.raises(ModelNotFoundError, match=r"nope\.gguf"):
        get_backend(str(missing))
    with pytest.raises(ModelNotFoundError, match=r"nope\.gguf"):
        LocalBackend(missing)


@pytest.mark.model
def test_a_backend_runs_on_the_threads_it_asks_for_and_loads_silently(capfd):
    """The loaded model is shared per file, but never across thread counts; loading it
    prints nothing (llama.cpp's KV-cache warnings went to every command's stderr)."""
    before = dict(local._REGISTRY)
    try:
        capfd.readouterr()
        one, three = LocalBackend(n_threads=1), LocalBackend(n_threads=3)
        assert capfd.readouterr() == ("", "")
        assert one._model.llm.context_params.n_threads == 1
        assert three._model.llm.context_params.n_threads == 3
        assert LocalBackend(n_threads=1)._model is one._model
    finally:
        for key in set(local._REGISTRY) - set(before):
            local._REGISTRY.pop(key).llm.close()


def _free(backend: LocalBackend, prompt: str, max_tokens: int) -> str:
    return backend.generate(prompt, constraint=FreeText(stop=()), max_tokens=max_tokens).text


@pytest.mark.model
@pytest.mark.parametrize(
    ("prompt", "constraint", "max_tokens"),
    [
        ("Question: Do you like the film Heat?\nAnswer:", Choice(("Yes", "No")), 4),
        ("My opinion of the movie:", Choice(tuple("12345")), 2),
        (LIST_PROMPT, ItemList(ITEMS, 10, "python_list"), 80),
        (
            "Write a short story about a cat.\n",
            JsonObject.from_schema(
                {
                    "type": "object",
                    "properties": {
                        "title": {"type": "string", "maxLength": 30},
                        "liked": {"type": "boolean"},
                    },
                    "required": ["title", "liked"],
                }
            ),
            40,
        ),
    ],
    ids=["yes-no", "rating", "item-list", "json"],
)
def test_constraint_really_constrains(backend, prompt, constraint, max_tokens):
    assert constraint.validate(_free(backend, prompt, min(max_tokens, 30))) is not None
    text = backend.generate(prompt, constraint=constraint, max_tokens=max_tokens).text
    assert constraint.validate(text) is None, text


@pytest.mark.model
@pytest.mark.parametrize("fmt", ["python_list", "json", "lines"])
def test_top10_of_20_sampled_lists_are_always_valid(backend, fmt):
    constraint = ItemList(ITEMS, 10, fmt)
    for seed in range(8):  # the full 200-call count is in bench/backend.py
        text = backend.generate(
            LIST_PROMPT, constraint=constraint, max_tokens=80, temperature=1.0, seed=seed
        ).text
        assert constraint.validate(text) is None, text


@pytest.mark.model
def test_seeded_sampling_is_reproducible(backend):
    constraint = ItemList(ITEMS, 5)
    runs = [
        backend.generate(
            LIST_PROMPT, constraint=constraint, max_tokens=40, temperature=1.0, seed=11
        ).text
        for _ in range(2)
    ]
    assert runs[0] == runs[1]


@pytest.mark.model
def test_incomplete_constrained_output_raises(backend):
    with pytest.raises(OutputError, match="max_tokens=3"):
        backend.generate(LIST_PROMPT, constraint=ItemList(ITEMS, 10), max_tokens=3)


@pytest.mark.model
def test_free_text_stops_at_stop_string(backend):
    text = backend.generate("1, 2, 3, 4,", constraint=FreeText(stop=(" 7",)), max_tokens=30).text
    assert " 7" not in text and text.startswith(" 5")


@pytest.mark.model
def test_shared_prefix_scores_equal_independent_evaluations(backend):
    prompt = HISTORY + "\nThe next movie the user will watch is:"
    titles = [" The Matrix", " Heat (1995)", " Toy Story", " A"]
    shared = backend.score(prompt, titles)
    for title, value in zip(titles, shared, strict=True):
        backend.reset()
        assert backend.score(prompt, [title])[0] == pytest.approx(value, abs=1e-3)


@pytest.mark.model
def test_a_score_does_not_depend_on_the_other_candidates_or_their_order(backend):
    prompt = HISTORY + "\nThe next movie the user will watch is:"
    # 70 continuations: more than one decode (at most 62 sequences each)
    titles = [f" Movie number {i}" for i in range(68)] + [" Toy Story", ""]
    forward = backend.score(prompt, titles)
    backward = backend.score(prompt, titles[::-1])[::-1]
    assert forward == backward and forward[-1] == 0.0
    assert backend.score(prompt, [" Toy Story"])[0] == forward[-2]
    assert backend.score(prompt, [" Movie number 3", " Movie number 7"]) == forward[3:8:4]


@pytest.mark.model
def test_a_continuation_longer_than_a_batch_is_refused_clearly(backend):
    with pytest.raises(BackendError, match=r"scoring takes at most 513"):
        backend.score("Review:", [" word" * 600])
    assert backend.score("Review:", [" word"])[0] < 0  # the backend is still usable


@pytest.mark.model
def test_single_digit_ratings_after_a_trailing_space(backend):
    prompt = "Review: a wonderful, moving film.\nRating (1 to 5): "
    assert len(backend.tokenize("5", bos=False)) == 1
    dist = backend.option_distribution(prompt, list("12345"))
    assert sum(dist.values()) == pytest.approx(1.0)
    assert max(dist, key=dist.get) in {"4", "5"}


@pytest.mark.model
def test_prompt_prefix_is_reused_from_the_kv_cache(backend):
    backend.generate(HISTORY + "\nQ1:", constraint=Choice(("A", "B")), max_tokens=2)
    backend.generate(HISTORY + "\nQ2:", constraint=Choice(("A", "B")), max_tokens=2)
    prefix = len(backend.tokenize(HISTORY + "\nQ"))
    assert backend.last_reused_tokens >= prefix - 8 > 300


@pytest.mark.model
def test_concurrent_calls_match_sequential(backend):
    prompts = [f"{HISTORY}\nQuestion {i}: pick A or B. Answer:" for i in range(4)]
    choice = Choice(("A", "B"))
    expected = [backend.generate(p, constraint=choice, max_tokens=2).text for p in prompts]
    got: dict[int, str] = {}

    def run(i: int) -> None:
        got[i] = backend.generate(prompts[i], constraint=choice, max_tokens=2).text

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [got[i] for i in range(4)] == expected


def test_heal_space_moves_a_prompts_trailing_spaces_into_every_continuation():
    assert heal_space("Answer: ", ["A", "B"]) == ("Answer:", [" A", " B"])
    assert heal_space("Answer:", ["A"]) == ("Answer:", ["A"])  # nothing to move
    assert heal_space("Answer: ", [" A", "B"]) == ("Answer: ", [" A", "B"])  # already spaced
    messages = [{"role": "user", "content": "Answer: "}]
    assert heal_space(messages, ["A"]) == (messages, ["A"])  # chat: the template decides


@pytest.mark.model
def test_letters_after_a_spaced_prompt_hold_the_mass_a_tokenizer_gives_them(backend):
    """Scoring "A" after "Answer: " as [" ", "A"] left the letters ~1e-7 of the next-token
    mass on Gemma 3 270M; with the space healed into " A" they hold a real share of it."""
    import math

    prompt = (
        "Which movie will I watch next?\nA. Heat (1995)\nB. Balto (1995)\nC. Casino (1995)\n"
        "Answer with one letter.\nAnswer: "
    )
    spaced = backend.score(prompt, ["A", "B", "C"])
    joint = backend.score(prompt.rstrip(), [" A", " B", " C"])
    assert spaced == pytest.approx(joint, abs=1e-4)
    assert sum(math.exp(v) for v in spaced) > 0.05
