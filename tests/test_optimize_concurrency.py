"""The optimizer with several validation cases scored at once: the same tuned program."""

from __future__ import annotations

import threading
from pathlib import Path

from test_optimize import RATING, SMALL, FakeBackend, tiny_dataset

from recprompt.optimize import optimize


class LockedFake(FakeBackend):
    """The fake backend, safe to call from threads."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()

    def score(self, prompt, continuations):
        with self.lock:
            return super().score(prompt, continuations)


def _run(tmp_path: Path, concurrency: int):
    backend = LockedFake()
    outcome = optimize(
        RATING,
        tiny_dataset(),
        backend,
        budget=60,
        out=tmp_path / f"tuned{concurrency}.json",
        seed=0,
        demo_users=6,
        valid_users=6,
        test_users=6,
        configs=SMALL,
        max_prompt_tokens=None,
        announce=lambda _: None,
        concurrency=concurrency,
    )
    return outcome, backend


def test_concurrent_search_tunes_the_same_program_within_budget(tmp_path):
    serial, serial_backend = _run(tmp_path, 1)
    wide, wide_backend = _run(tmp_path, 4)
    assert wide.result.best == serial.result.best
    assert wide.report["results"] == serial.report["results"]
    assert wide_backend.usage.calls == serial_backend.usage.calls <= 60
    assert sorted(wide_backend.prompts) == sorted(serial_backend.prompts)
