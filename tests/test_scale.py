"""Many calls in flight against a real HTTP server on 127.0.0.1 (no model needed).

The server is :mod:`latency_server`: valid OpenAI-shaped answers after a fixed delay, a digit
chosen by a hash of the prompt, so a run's results do not depend on arrival order.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from latency_server import LatencyServer, answer_for, spawn

from recprompt.backends.throttle import Throttle
from recprompt.errors import InputError
from recprompt.eval.executor import bounded_map
from recprompt.eval.store import read_lines

ROOT = Path(__file__).resolve().parent.parent
# p5.rating as generated text: the stand-in server returns no log-probabilities, so expected
# ratings are refused against it before any call (a server must say what it can score)
GENERATED_RATING = Path(__file__).resolve().parent / "specs" / "rating_generated.yaml"
SAME = ("cases", "metrics", "validity", "baselines", "position", "diagnostics", "protocol")


def _program(url: str, concurrency: int = 1, **throttle):
    import recprompt
    from recprompt.backends.litellm_backend import LiteLLMBackend
    from recprompt.backends.throttle import attach_throttle

    backend = LiteLLMBackend("openai/latency", api_base=url, timeout=20, backoff=0.05)
    if concurrency > 1 or throttle:
        attach_throttle(backend, concurrency, **throttle)
    return recprompt.load(GENERATED_RATING, backend=backend)


def _evaluate(url: str, out: Path, data_root: Path, concurrency: int, users: int = 5, **kw):
    from recprompt.data import load_dataset
    from recprompt.eval.cases import default_protocol
    from recprompt.eval.evaluate import evaluate

    program = _program(url, concurrency)
    dataset = load_dataset(data_root / "ml-100k")
    protocol = default_protocol(program.spec, dataset.name, n_users=users, seed=0)
    return evaluate(
        program, dataset, protocol, out, progress=False, concurrency=concurrency, **kw
    ), program


def _values(out: Path) -> dict[str, object]:
    records, torn = read_lines(out / "results.jsonl")
    assert torn == 0
    return {r["id"]: (r["value"], r["raw"], r["error"]) for r in records}


def _once(out: Path) -> Counter:
    records, _ = read_lines(out / "results.jsonl")
    return Counter(r["id"] for r in records)


def test_concurrent_report_equals_serial_and_each_case_is_stored_once(tmp_path, data_root):
    with LatencyServer(delay=0.05) as server:
        serial, _ = _evaluate(server.url, tmp_path / "serial", data_root, 1)
        wide, _ = _evaluate(server.url, tmp_path / "wide", data_root, 16)
    assert serial["cases"] == wide["cases"] >= 30
    for key in SAME:
        assert serial[key] == wide[key], key
    assert _values(tmp_path / "serial") == _values(tmp_path / "wide")
    counts = _once(tmp_path / "wide")
    assert len(counts) == wide["cases"] and set(counts.values()) == {1}
    assert wide["usage"]["all_cases"]["calls"] == wide["cases"]  # per-case accounting holds
    assert server.peak > 1  # calls really overlapped
    seconds = [r["usage"]["this_invocation"]["seconds"] for r in (serial, wide)]
    assert seconds[1] < 0.7 * seconds[0]  # the cases themselves ran faster


def test_batch_keeps_input_order_and_equals_one_at_a_time():
    inputs = [{"user_id": str(u), "item_id": str(100 + u)} for u in range(24)]
    with LatencyServer(delay=0.05) as server:
        program = _program(server.url, 8)
        batched = program.batch(inputs, concurrency=8)
        single = [program(**given) for given in inputs]
    assert [p.rating for p in batched] == [p.rating for p in single]
    rendered = [program.render(**given).prompt for given in inputs]
    assert [p.raw for p in batched] == [answer_for(text) for text in rendered]
    assert server.peak > 1


def test_throttle_backs_off_on_429_and_the_run_completes(tmp_path, data_root):
    with LatencyServer(delay=0.05, admit=3) as server:
        report, program = _evaluate(server.url, tmp_path / "limited", data_root, 12)
    throttle = program.backend.throttle
    assert server.rejected > 0 and throttle.decreases > 0  # it saw 429s and slowed down
    assert throttle.limit <= 12
    answers = _values(tmp_path / "limited")
    assert len(answers) == report["cases"] and all(e is None for _, _, e in answers.values())
    assert set(_once(tmp_path / "limited").values()) == {1}


def test_aimd_halves_recovers_and_never_exceeds_the_cap():
    throttle = Throttle(8)
    throttle.decrease()
    throttle.decrease()
    assert throttle.limit == 2.0
    for _ in range(200):
        throttle.increase()
    assert throttle.limit == 8.0  # additive recovery, capped at N
    assert throttle.observe({"x-ratelimit-remaining-requests": "0"}) is True
    assert throttle.limit == 4.0
    assert throttle.observe({"x-ratelimit-remaining-requests": "500"}) is False
    for _ in range(20):
        throttle.decrease()
    assert throttle.limit == 1.0  # never below one request


def test_rpm_cap_waits_for_the_window():
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    throttle = Throttle(4, rpm=2, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        throttle.acquire()
        throttle.release()
    assert now[0] >= 60.0 and slept  # the third request waited for the 60 s window


def test_concurrency_is_bounded_in_flight():
    import threading

    lock, running, peak = threading.Lock(), [0], [0]

    def work(x: int) -> int:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.01)
        with lock:
            running[0] -= 1
        return x * x

    results = {i: r for i, _, r in bounded_map(work, range(40), 5)}
    assert results == {i: i * i for i in range(40)} and 1 < peak[0] <= 5
    with pytest.raises(InputError, match="positive integer"):
        list(bounded_map(work, range(3), 0))


def _eval_process(url: str, out: Path, data_root: Path, concurrency: int) -> subprocess.Popen:
    env = {**os.environ, "RECPROMPT_DATA": str(data_root), "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable, "-m", "recprompt.cli", "eval", str(GENERATED_RATING), "--data", "ml-100k",
        "--users", "8", "--seed", "0", "--out", str(out), "--no-cache",
        "--model", "openai/latency", "--api-base", url, "--concurrency", str(concurrency),
        "--baselines", "global_mean",
    ]  # fmt: skip
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_killed_with_calls_in_flight_resumes_without_duplicates(tmp_path, data_root):
    proc, url = spawn(delay=0.2)
    try:
        reference = _eval_process(url, tmp_path / "ref", data_root, 16)
        assert reference.wait(timeout=240) == 0, reference.stdout.read().decode()
        out = tmp_path / "killed"
        victim = _eval_process(url, out, data_root, 8)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(_once(out)) < 6:
            time.sleep(0.05)
        victim.send_signal(signal.SIGKILL)  # 8 calls in flight at this moment
        victim.wait(timeout=30)
        first = _once(out)
        assert 6 <= len(first) < len(_once(tmp_path / "ref"))
        resumed = _eval_process(url, out, data_root, 8)
        assert resumed.wait(timeout=240) == 0, resumed.stdout.read().decode()
    finally:
        proc.kill()
        proc.wait(timeout=10)
    counts = _once(out)
    assert set(counts.values()) == {1}  # none duplicated
    assert _values(out) == _values(tmp_path / "ref")  # none lost, same answers
    report = json.loads((out / "report.json").read_text())
    assert (
        report["metrics"] == json.loads((tmp_path / "ref" / "report.json").read_text())["metrics"]
    )
