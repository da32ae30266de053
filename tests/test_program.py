"""The compiled program: rendering, demonstrations, DSPy optimizers, typed predictions."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Literal

import dspy
import pytest
from pydantic import BaseModel

import recprompt
from recprompt.backends.base import Completion, Usage
from recprompt.constraints import Choice, ItemList
from recprompt.errors import InputError, SpecError

RATING = """
name: t.rate
task: rating
inputs:
  user_id: str
  item_title: {type: str, optional: true}
  history: {type: history, max_length: 2}
template: |
  User {{ user_id }} watched {{ history | titles | join(', ') }}.
  {% if item_title %}How many stars for {{ item_title }}?{% endif %} Rating:
output: {name: rating, type: rating, scale: [1, 5], decode: expected}
demos: {k: 2}
"""

TOPK = """
name: t.topk
task: direct
inputs: {history: history, candidates: {type: candidates, count: 4}}
template: "Watched {{ history | pylist }}. Candidates: {{ candidates | pylist }}. Top 2:"
output: {name: items, type: item_list, k: 2}
"""


class ReplayBackend:
    """A test double that answers with fixed text or log-probabilities and records calls."""

    name = "replay"

    def __init__(self, text: str = "", logps: Sequence[float] = (), logits: bool = False):
        self.text, self.logps, self.supports_logits = text, list(logps), logits
        self.calls: list[tuple] = []

    def generate(self, prompt, *, constraint, max_tokens, temperature=0.0, seed=None):
        self.calls.append(("generate", prompt, constraint, max_tokens))
        return Completion(self.text, Usage(calls=1, prompt_tokens=10, completion_tokens=2))

    def score(self, prompt, continuations):
        self.calls.append(("score", prompt, tuple(continuations)))
        return self.logps


def test_render_is_exact_and_model_free():
    program = recprompt.Program(recprompt.parse_spec(RATING))
    rendered = program.render(user_id="7", item_title="Fargo", history=["A", "B", "C"])
    assert rendered.prompt == "User 7 watched B, C.\nHow many stars for Fargo? Rating: "
    assert rendered.constraint == Choice(("1", "2", "3", "4", "5"))
    assert rendered.max_tokens == 4 and rendered.decode == "expected"
    assert program.backend is None  # rendering never loads a model


def test_inputs_are_checked():
    program = recprompt.Program(recprompt.parse_spec(RATING))
    with pytest.raises(InputError, match="missing required input 'user_id'"):
        program.render(history=[])
    with pytest.raises(InputError, match="unknown input"):
        program.render(user_id="1", history=[], usr="x")
    with pytest.raises(InputError, match="pass a list"):
        program.render(user_id="1", history="Fargo")


SCALARS = """
name: t.scalars
task: explanation
inputs:
  noun: str
  count: {type: int, optional: true}
  short: {type: bool, optional: true}
  history: history
template: "{{ noun }} {{ count }} {{ short }} {{ history | titles | join(', ') }}"
output: {name: text, type: text}
"""


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"noun": ["movies"]}, "input 'noun' must be str, got"),
        ({"noun": {"a": 1}}, "input 'noun' must be str, got"),
        ({"noun": "x", "count": True}, "input 'count' must be int, got True"),
        ({"noun": "x", "short": "maybe"}, "input 'short' must be bool, got 'maybe'"),
        ({"noun": "x", "short": [1]}, "input 'short' must be bool, got"),
        ({"noun": "x", "history": [{"title": {"a": 1}}]}, "'title' must be a string or number"),
        ({"noun": "x", "history": [{"item_id": [1]}]}, "'item_id' must be a string or number"),
        ({"noun": "x", "history": [""]}, "an item needs a non-empty id or title"),
    ],
)
def test_inputs_of_the_wrong_type_are_refused_not_printed(inputs, message):
    """A list given for a str (or a dict for a title) used to be rendered as its repr."""
    program = recprompt.Program(recprompt.parse_spec(SCALARS))
    with pytest.raises(InputError, match=message):
        program.render(**{"history": ["A"], **inputs})


def test_a_program_built_or_called_with_the_wrong_types_says_what_to_pass():
    """Program("p5.rating") raised AttributeError ('str' has no 'inputs'), backend="local"
    did so at the first call, and program("x") raised forward()'s TypeError."""
    with pytest.raises(InputError, match="Program needs a Spec, got str") as caught:
        recprompt.Program("p5.rating")
    assert "recprompt.load" in caught.value.hint
    with pytest.raises(InputError, match="Program needs a Spec, got dict"):
        recprompt.Program({"name": "x"})
    spec = recprompt.parse_spec(RATING)
    with pytest.raises(InputError, match="backend must be a model backend, got str"):
        recprompt.Program(spec, backend="local")
    backend = ReplayBackend("3")
    program = recprompt.Program(spec, backend=backend)
    with pytest.raises(InputError, match="inputs are passed by name") as caught:
        program("7")
    assert "user_id=..." in caught.value.hint and backend.calls == []


def test_scalar_inputs_keep_their_friendly_conversions():
    program = recprompt.Program(recprompt.parse_spec(SCALARS))
    rendered = program.render(noun=12, count="3", short="yes", history=[{"item_id": 5}])
    assert rendered.prompt.startswith("12 3 True 5")


def test_a_top_k_list_over_fewer_than_k_candidates_is_refused_before_a_call():
    """The constraint 'exactly 2 distinct items from 1 candidates' was rendered and sent."""
    backend = ReplayBackend("['Movie 0']")
    program = recprompt.Program(recprompt.parse_spec(TOPK), backend=backend)
    with pytest.raises(InputError, match="asks for 2 distinct candidates, but 1 were given"):
        program.render(history=[], candidates=["Movie 0"])
    with pytest.raises(InputError, match="asks for 2 distinct candidates"):
        program(history=[], candidates=["Movie 0"])
    assert backend.calls == []


def test_item_list_constraint_comes_from_candidates():
    program = recprompt.Program(recprompt.parse_spec(TOPK))
    cands = [{"item_id": str(i), "title": f"Movie {i}"} for i in range(4)]
    rendered = program.render(history=[{"item_id": "9", "title": "Heat"}], candidates=cands)
    assert rendered.constraint == ItemList(tuple(f"Movie {i}" for i in range(4)), 2)
    assert "['Movie 0', 'Movie 1', 'Movie 2', 'Movie 3']" in rendered.prompt


def test_generated_list_parses_and_failures_are_kept():
    cands = [f"Movie {i}" for i in range(4)]
    program = recprompt.Program(
        recprompt.parse_spec(TOPK), backend=ReplayBackend("['Movie 2', 'Movie 0']")
    )
    prediction = program(history=["Heat"], candidates=cands)
    assert prediction.items == ["Movie 2", "Movie 0"] and prediction.valid
    assert type(prediction).__name__ == "TTopkPrediction"
    program.backend = ReplayBackend("I recommend Movie 2")
    broken = program(history=["Heat"], candidates=cands)
    assert broken.items is None and not broken.valid and "list" in broken.error


def test_scoring_gives_expected_rating():
    backend = ReplayBackend(logps=[-9, -9, -9, 0.0, 0.0], logits=True)
    program = recprompt.Program(recprompt.parse_spec(RATING), backend=backend)
    prediction = program(user_id="1", history=["A"])
    assert prediction.rating == pytest.approx(4.5, abs=1e-3)
    assert prediction.scores["4"] == pytest.approx(0.5, abs=1e-3)
    assert backend.calls[0][0] == "score" and backend.calls[0][2] == ("1", "2", "3", "4", "5")


@pytest.mark.parametrize("logps", [[math.nan, 0, 0, 0, 0], [-math.inf] * 5, [math.inf, 0, 0, 0, 0]])
def test_unusable_log_probabilities_make_an_invalid_answer_not_a_nan_rating(logps):
    """NaN or +inf log-probabilities (or all -inf) gave rating NaN and NaN scores, counted as
    a valid prediction."""
    backend = ReplayBackend(logps=logps, logits=True)
    prediction = recprompt.Program(recprompt.parse_spec(RATING), backend=backend)(
        user_id="1", history=["A"]
    )
    assert not prediction.valid and prediction.rating is None
    assert "not usable numbers" in prediction.error


@pytest.mark.parametrize("logps", [[0.0, 0.0], [0.0] * 6])
def test_a_backend_scoring_the_wrong_number_of_options_is_a_backend_error(logps):
    """zip(strict=True) raised a bare ValueError."""
    from recprompt.errors import BackendError

    program = recprompt.Program(
        recprompt.parse_spec(RATING), backend=ReplayBackend(logps=logps, logits=True)
    )
    with pytest.raises(BackendError, match=f"returned {len(logps)} scores for 5 options"):
        program(user_id="1", history=["A"])


def test_without_logits_scoring_falls_back_to_generation():
    program = recprompt.Program(recprompt.parse_spec(RATING), backend=ReplayBackend(" 4"))
    prediction = program(user_id="1", history=["A"])
    assert prediction.rating == 4.0 and prediction.decode == "generate"


def test_dspy_optimizer_sets_demos_and_copies_share_backend():
    backend = ReplayBackend(" 3")
    program = recprompt.Program(recprompt.parse_spec(RATING), backend=backend)
    train = [
        dspy.Example(user_id="2", item_title="Up", history=["Q"], rating=5).with_inputs(
            "user_id", "item_title", "history"
        )
    ]
    tuned = dspy.LabeledFewShot(k=1).compile(program, trainset=train)
    text = tuned.render(user_id="1", item_title="Fargo", history=["A"]).prompt
    assert text.startswith("User 2 watched Q.\nHow many stars for Up? Rating: 5\n\nUser 1")
    assert program.predict.demos == [] and tuned.backend is backend
    clone = copy.deepcopy(tuned)
    assert clone.backend is backend and clone.predict.demos == tuned.predict.demos


def test_bootstrap_trace_is_recorded():
    program = recprompt.Program(recprompt.parse_spec(RATING), backend=ReplayBackend(" 4"))
    with dspy.context(trace=[]):
        program(user_id="1", history=["A"])
        trace = dspy.settings.trace
        assert trace[0][0] is program.predict and trace[0][2].rating == 4.0


def test_decorator_builds_the_same_program():
    @recprompt.task(task="binary", metric="auc")
    def likes(user_id: str, liked: list[str], title: str) -> Literal["Yes", "No"]:
        """User {{ user_id }} liked {{ liked | join(', ') }}. Will they like {{ title }}? Answer:"""

    rendered = likes.render(user_id="3", liked=["Heat"], title="Fargo")
    assert rendered.prompt == "User 3 liked Heat. Will they like Fargo? Answer: "
    assert rendered.constraint == Choice(("Yes", "No"))
    assert likes.spec.inputs["liked"].type == "items" and likes.spec.metric == "auc"

    class Profile(BaseModel):
        keywords: list[str]

    @recprompt.task(task="profile")
    def profile(history: recprompt.History, k: int = 3) -> Profile:
        """Keywords for {{ history | titles | join(', ') }} ({{ k }}):"""

    assert profile.spec.output.type == "object" and profile.spec.inputs["k"].default == 3


def test_decorator_errors_point_at_the_function():
    with pytest.raises(SpecError) as caught:

        @recprompt.task(output={"type": "rating", "scale": [3, 1]})
        def rate(user_id: str) -> float:
            """{{ user_id }}"""

    assert caught.value.location.file == __file__
    with pytest.raises(SpecError, match="does not declare"):

        @recprompt.task()
        def rate2(user_id: str) -> float:
            """{{ item }}"""


@pytest.mark.parametrize("kind", ["partial", "object", "number", "builtin"])
def test_decorating_what_is_not_a_function_is_a_spec_error(kind):
    """A partial, a callable object or a number raised AttributeError on __name__; a partial
    would have taken functools' own docstring as its template."""
    import functools

    def rate(user_id: str, history: list[str]) -> float:
        """{{ user_id }}"""

    class Rater:
        def __call__(self, user_id: str) -> float:
            """{{ user_id }}"""

    target = {"partial": functools.partial(rate, history=[]), "object": Rater(), "number": 3,
              "builtin": print}[kind]  # fmt: skip
    with pytest.raises(SpecError, match=r"@recprompt\.task decorates a function, got"):
        recprompt.task(template="{{ user_id }}", output={"type": "text"})(target)


def test_star_parameters_are_not_inputs():
    """def f(*args) made one required str input named 'args'."""
    with pytest.raises(SpecError, match=r"\*args cannot declare inputs"):

        @recprompt.task(output={"type": "text"})
        def f(*args):
            """{{ args }}"""

    with pytest.raises(SpecError, match=r"\*\*kw cannot declare inputs"):

        @recprompt.task(output={"type": "text"})
        def g(user_id: str, **kw):
            """{{ user_id }}"""
