"""Batched local scoring: several cases' prompts in one llama.cpp decode, same scores."""

from __future__ import annotations

import threading
import time

import pytest

from recprompt.backends.local import BATCH_TOLERANCE

pytestmark = pytest.mark.model

PROMPTS = [
    ("Which star rating will user 12 give 'Heat (1995)'? (1-5)\nRating: ", list("12345")),
    (
        "The user watched Toy Story, Fargo and Heat. Candidates: A. Casino B. Babe C. Antz\n"
        "The best candidate is letter ",
        list("ABC"),
    ),
    ("Will the user like Fargo (1996)? Answer: ", ["Yes", "No"]),
    (
        "User 7 liked Star Wars (1977), The Empire Strikes Back (1980) and Alien (1979). "
        "Which movie will they watch next? Answer: ",
        ["Return of the Jedi (1983)", "Babe (1995)", "Casablanca (1942)"],  # multi-token
    ),
    ("Rate item_55 for user_3 from 1 to 5: ", list("12345")),
]


@pytest.fixture(scope="module")
def backend():
    from recprompt.backends.local import LocalBackend

    return LocalBackend(batch_scoring=True)


def score_queued(backend) -> dict[int, list[float]]:
    """Score every prompt from its own thread while the model is held, so that all calls
    queue before the first is answered."""
    model = backend._model
    results: dict[int, list[float]] = {}

    def call(k: int) -> None:
        prompt, options = PROMPTS[k]
        results[k] = backend.score(prompt, options)

    threads = [threading.Thread(target=call, args=(k,)) for k in range(len(PROMPTS))]
    with model.lock:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while len(model.pending) < len(PROMPTS) and time.monotonic() < deadline:
            time.sleep(0.01)
    for thread in threads:
        thread.join(timeout=120)
    return results


def test_batched_scores_equal_one_at_a_time(backend):
    alone = [backend.score(prompt, options) for prompt, options in PROMPTS]
    model = backend._model
    before = model.batched_calls
    results = score_queued(backend)
    assert model.batched_calls - before == len(PROMPTS)  # all answered in one batch
    for k, scores in enumerate(alone):
        assert results[k] == pytest.approx(scores, abs=BATCH_TOLERANCE, rel=0)
    # after a batch the single path still gives its own scores
    assert backend.score(*PROMPTS[0]) == alone[0]


def test_without_batch_scoring_queued_calls_are_answered_one_at_a_time():
    """The default: batching measured slower on a CPU (bench/scale.py b), so it is opt-in."""
    from recprompt.backends.local import LocalBackend

    backend = LocalBackend()
    model = backend._model
    before = model.batched_calls
    results = score_queued(backend)
    assert len(results) == len(PROMPTS)
    assert model.batched_calls == before
    assert not model.pending
