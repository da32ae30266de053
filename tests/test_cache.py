"""The disk cache and the usage meter, with a call-counting test double as the inner backend."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence

import pytest

from recprompt.backends.accounting import MeteredBackend, UsageMeter
from recprompt.backends.base import Backend, Completion, Prompt, Usage
from recprompt.backends.cache import CachedBackend, default_cache_dir
from recprompt.constraints import Choice, Constraint, ItemList
from recprompt.errors import BudgetError


class CountingBackend:
    """Answers deterministically from its inputs and counts how often it was asked."""

    name = "fake:counting"
    supports_logits = True

    def __init__(self) -> None:
        self.calls = 0

    def generate(
        self,
        prompt: Prompt,
        *,
        constraint: Constraint | None,
        max_tokens: int,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> Completion:
        self.calls += 1
        text = f"{prompt}|{max_tokens}|{temperature}|{seed}"
        return Completion(text, Usage(calls=1, prompt_tokens=5, completion_tokens=2))

    def score(self, prompt: str, continuations: Sequence[str]) -> list[float]:
        self.calls += 1
        return [-float(len(c)) for c in continuations]


def gen(backend: Backend, prompt: Prompt = "p", **kw: object) -> Completion:
    args: dict = {"constraint": Choice(("a", "b")), "max_tokens": 4} | kw
    return backend.generate(prompt, **args)


def test_second_run_makes_zero_calls(tmp_path):
    inner = CountingBackend()
    first = CachedBackend(inner, tmp_path)
    a = gen(first)
    s = first.score("p", ["x", "yy"])
    assert inner.calls == 2 and a.usage.calls == 1 and a.usage.cache_hits == 0

    again = CachedBackend(inner, tmp_path)  # a fresh run over the same directory
    b = gen(again)
    assert again.score("p", ["x", "yy"]) == s == [-1.0, -2.0]
    assert inner.calls == 2
    assert b.text == a.text and b.usage.cache_hits == 1 and b.usage.calls == 0
    assert again.usage.cache_hits == 2 and again.usage.calls == 0


def test_message_prompts_are_cached(tmp_path):
    inner = CountingBackend()
    cached = CachedBackend(inner, tmp_path)
    messages = [{"role": "user", "content": "hi"}]
    assert gen(cached, messages).text == gen(cached, messages).text
    assert inner.calls == 1


@pytest.mark.parametrize(
    "garble",
    [
        lambda text: text[: len(text) // 2],  # torn write
        lambda text: text.replace('"text": "', '"text": "X', 1),  # payload changed
        lambda text: "",  # empty file
        lambda text: json.dumps({"key": "other"}),  # wrong shape
    ],
)
def test_corrupted_entry_is_recomputed_not_returned(tmp_path, garble):
    inner = CountingBackend()
    cached = CachedBackend(inner, tmp_path)
    good = gen(cached).text
    (entry,) = tmp_path.rglob("*.json")
    entry.write_text(garble(entry.read_text()))

    again = CachedBackend(inner, tmp_path)
    assert gen(again).text == good
    assert inner.calls == 2 and again.corrupted == 1
    assert gen(CachedBackend(inner, tmp_path)).usage.cache_hits == 1  # rewritten, valid


def test_key_changes_with_each_parameter(tmp_path):
    inner = CountingBackend()
    cached = CachedBackend(inner, tmp_path)
    base = {"constraint": Choice(("a", "b")), "max_tokens": 4, "temperature": 0.0, "seed": None}
    variants = [
        {},
        {"constraint": Choice(("a", "c"))},
        {"constraint": ItemList(("a", "b"), 1)},
        {"constraint": None},
        {"max_tokens": 5},
        {"temperature": 0.7},
        {"seed": 1},
    ]
    keys = set()
    for change in variants:
        args = base | change
        keys.add(
            cached.key(
                "generate",
                "p",
                constraint=repr(args["constraint"]),
                max_tokens=args["max_tokens"],
                temperature=args["temperature"],
                seed=args["seed"],
            )
        )
        gen(cached, **args)
    gen(cached, "q")
    assert len(keys) == len(variants)
    assert inner.calls == len(variants) + 1  # every variant and the other prompt missed

    renamed = CountingBackend()
    renamed.name = "fake:other"
    assert CachedBackend(renamed, tmp_path).key("generate", "p") != cached.key("generate", "p")
    assert cached.key("score", "p") != cached.key("generate", "p")


def test_a_new_scoring_revision_never_serves_older_scores(tmp_path):
    inner = CountingBackend()
    CachedBackend(inner, tmp_path).score("p", ["a"])
    inner.scoring_revision = 2  # the backend now scores the same text differently
    CachedBackend(inner, tmp_path).score("p", ["a"])
    CachedBackend(inner, tmp_path).score("p", ["a"])
    assert inner.calls == 2  # one miss per revision, then a hit


def test_sampling_without_seed_is_still_cached(tmp_path):
    inner = CountingBackend()
    cached = CachedBackend(inner, tmp_path)
    gen(cached, temperature=0.9)
    gen(cached, temperature=0.9)
    assert inner.calls == 1


def test_default_dir_honours_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("RECPROMPT_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("RECPROMPT_CACHE")
    assert default_cache_dir().parts[-2:] == (".cache", "recprompt")


def test_no_temporary_files_left(tmp_path):
    cached = CachedBackend(CountingBackend(), tmp_path)
    for i in range(5):
        gen(cached, f"p{i}")
    assert not list(tmp_path.rglob(".tmp-*"))
    assert len(list(tmp_path.rglob("*.json"))) == 5


def test_meter_counts_hits_without_spending_calls(tmp_path):
    meter = UsageMeter(max_calls=3)
    backend = MeteredBackend(CachedBackend(CountingBackend(), tmp_path), meter)
    gen(backend, "a")
    gen(backend, "b")
    for _ in range(3):
        gen(backend, "a")
    backend.score("a", ["x"])  # the third and last call allowed
    usage = meter.usage
    assert (usage.calls, usage.cache_hits, usage.prompt_tokens) == (3, 3, 10)
    with pytest.raises(BudgetError, match="max_calls=3"):
        gen(backend, "c")


def test_meter_token_and_time_limits():
    meter = UsageMeter(max_tokens=10)
    meter.add(Usage(calls=1, prompt_tokens=6, completion_tokens=4))
    with pytest.raises(BudgetError, match="max_tokens=10"):
        meter.check()
    with pytest.raises(BudgetError, match="max_seconds=0"):
        UsageMeter(max_seconds=0).check()


def test_meter_is_thread_safe():
    meter = UsageMeter()

    def work() -> None:
        for _ in range(1000):
            meter.add(Usage(calls=1, completion_tokens=2))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert meter.usage.calls == 8000 and meter.usage.completion_tokens == 16000
