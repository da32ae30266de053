"""The disk cache with many writers: threads of one process and two processes on one folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from recprompt.backends.cache import CachedBackend, entry_payload

ROOT = Path(__file__).resolve().parent.parent

WRITER = textwrap.dedent(
    """
    import sys, threading, time
    from recprompt.backends.base import Completion, Usage
    from recprompt.backends.cache import CachedBackend
    from recprompt.constraints import Choice

    class Slow:
        name, supports_logits = "fake:slow", True
        def generate(self, prompt, *, constraint, max_tokens, temperature=0.0, seed=None):
            time.sleep(0.002)  # widen the window in which writers overlap
            return Completion("answer:" + prompt, Usage(calls=1, prompt_tokens=3))
        def score(self, prompt, continuations):
            return [-float(len(prompt + c)) for c in continuations]

    cached = CachedBackend(Slow(), sys.argv[1])
    wrong = []
    def work(offset):
        for n in range(400):
            prompt = f"p{(n * 7 + offset) % 60}"
            if n % 2:
                text = cached.generate(prompt, constraint=Choice(("a", "b")), max_tokens=2).text
                if text != "answer:" + prompt:
                    wrong.append(text)
            elif cached.score(prompt, ["x", "yy"]) != [-float(len(prompt) + 1),
                                                         -float(len(prompt) + 2)]:
                wrong.append(prompt)
    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads: t.start()
    for t in threads: t.join()
    print(len(wrong), cached.corrupted, cached.usage.calls, cached.usage.cache_hits)
    """
)


def test_two_processes_and_threads_share_one_cache(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    for wrong, corrupted, calls, hits in outputs:
        assert (wrong, corrupted) == ("0", "0")  # never a wrong or torn answer
        assert int(calls) + int(hits) == 2400  # every call answered, by the model or the cache
    assert sum(int(o[3]) for o in outputs) > 0  # entries written by either were reused
    entries = list(tmp_path.rglob("*.json"))
    assert len(entries) == 120  # 60 prompts x (generate, score): one entry each
    assert not list(tmp_path.rglob(".tmp-*"))
    for path in entries:
        assert entry_payload(path, path.stem) is not None  # every entry valid
    # a third reader sees exactly what the writers computed
    reader = CachedBackend(_Never(), tmp_path)
    assert reader.score("p5", ["x", "yy"]) == [-3.0, -4.0]
    assert json.loads(entries[0].read_text())["key"] == entries[0].stem


class _Never:
    name, supports_logits = "fake:slow", True

    def generate(self, *a, **k):  # pragma: no cover - must not be reached
        raise AssertionError("the cache should have answered")

    def score(self, *a, **k):  # pragma: no cover
        raise AssertionError("the cache should have answered")
