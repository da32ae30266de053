"""Evaluation on Ray: cases spread over actors, results streamed back to one store.

Why Ray: an evaluation that outgrows one process (a local model per core, or many server
clients on many machines) needs workers that can die and be replaced, and a driver that
still writes one resumable result file. Each actor rebuilds the program with its own
backend (a local model of its own, or a client to a server) from a recipe, never from a
pickled model. The driver keeps a few cases queued at each actor, appends every result to
the :class:`~recprompt.eval.store.ResultStore` as it arrives (exactly once: the store is
keyed by case id), and puts back in the queue the cases of an actor that died, starting a
replacement. A rerun skips the cases already stored, as with the local engine.

Ray is an optional extra: ``pip install 'recprompt[ray]'``. Without an address a local
cluster is started (``ray.init(num_cpus=<cores>, include_dashboard=False)``).
"""

from __future__ import annotations

import collections
import copy
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recprompt.backends.base import Usage
from recprompt.errors import BackendError, InputError, RecpromptError, ServerError
from recprompt.eval.executor import _Rates, case_record, progress_bar

__all__ = ["backend_recipe", "build_backend", "connect", "run_on_ray"]

RAY_HINT = "install the extra: pip install 'recprompt[ray]' (ray==2.60.0)"
CONNECT_TIMEOUT = 5.0
_START_ATTEMPTS = 3


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise InputError("--engine ray needs Ray, which is not installed", hint=RAY_HINT) from None
    return ray


def _reachable(address: str, timeout: float) -> None:
    """Fail fast (``timeout`` seconds) when nothing listens at a ``host:port`` address."""
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise InputError(
            f"--ray-address {address!r} is not host:port",
            hint="pass e.g. --ray-address 127.0.0.1:6379, 'auto', or omit it for a local cluster",
        )
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ServerError(
            f"cannot reach a Ray cluster at {address} ({exc})",
            hint="start it with 'ray start --head', check the address, or omit --ray-address "
            "to start a local cluster",
        ) from None


def connect(address: str | None = None, *, timeout: float = CONNECT_TIMEOUT) -> Any:
    """The ``ray`` module, connected: to ``address``, or to a new local cluster."""
    ray = _ray()
    if ray.is_initialized():
        return ray
    package_root = str(Path(__file__).resolve().parents[2])
    if address is None:
        path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
        for attempt in range(_START_ATTEMPTS):
            try:
                ray.init(
                    num_cpus=os.cpu_count() or 2,
                    include_dashboard=False,
                    log_to_driver=False,
                    runtime_env={"env_vars": {"PYTHONPATH": path}},
                )
                return ray
            except Exception as exc:  # Ray waits 30 s for its raylet, then gives up
                ray.shutdown()
                if attempt + 1 == _START_ATTEMPTS:
                    raise BackendError(
                        f"could not start a local Ray cluster: {exc}",
                        hint="the machine may be overloaded; retry, or start one with "
                        "'ray start --head' and pass --ray-address",
                    ) from exc
    if address != "auto":
        _reachable(address, timeout)
    try:
        ray.init(address=address, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ServerError(
            f"cannot join the Ray cluster at {address}: {exc}", hint=_unreachable_hint(address)
        ) from None
    return ray


def _unreachable_hint(address: str) -> str:
    """What to check when Ray imports fine but its cluster did not answer."""
    status = "ray status" if address == "auto" else f"ray status --address {address}"
    return (
        f"Ray is installed, but no cluster answered at {address}: check that one is running "
        f"('{status}'), that the address is its head node's (host:port, GCS port 6379 by "
        "default), or start one with 'ray start --head'; omit --ray-address to start a "
        "local cluster"
    )


# -- what an actor needs to rebuild the program ----------------------------------------------


def backend_recipe(backend: Any) -> dict[str, Any]:
    """A picklable description of ``backend`` from which an actor builds its own."""
    from recprompt.backends.cache import CachedBackend
    from recprompt.backends.local import LocalBackend

    if isinstance(backend, CachedBackend):
        return {
            "kind": "cache",
            "directory": str(backend.directory),
            "inner": backend_recipe(backend.backend),
        }
    if isinstance(backend, LocalBackend):
        return {
            "kind": "local",
            "path": str(backend.path),
            "seed": backend.seed,
            "n_ctx": int(backend.llm.n_ctx()),
        }
    if type(backend).__name__ == "LiteLLMBackend":
        throttle = getattr(backend, "throttle", None)
        return {
            "kind": "litellm",
            "model": backend.model,
            "api_base": backend.api_base,
            "api_key": backend.api_key,
            "mode": backend.mode,
            "max_retries": backend.max_retries,
            "timeout": backend.timeout,
            "server": backend._declared,  # the declared kind; "auto" detects it again
            "concurrency": getattr(throttle, "max_concurrency", 1),
            "rpm": getattr(throttle, "rpm", None),
            "tpm": getattr(throttle, "tpm", None),
        }
    raise InputError(
        f"--engine ray cannot rebuild the backend {getattr(backend, 'name', backend)!r} in "
        "its actors",
        hint="use model='local', a .gguf path or a litellm model string, optionally cached",
    )


def build_backend(recipe: dict[str, Any]) -> Any:
    """The backend a recipe describes (inside an actor)."""
    kind = recipe["kind"]
    if kind == "cache":
        from recprompt.backends.cache import CachedBackend

        return CachedBackend(build_backend(recipe["inner"]), recipe["directory"])
    if kind == "local":
        from recprompt.backends.local import LocalBackend

        return LocalBackend(recipe["path"], seed=recipe["seed"], n_ctx=recipe["n_ctx"])
    from recprompt.backends.litellm_backend import LiteLLMBackend
    from recprompt.backends.throttle import attach_throttle

    backend = LiteLLMBackend(
        recipe["model"],
        api_base=recipe["api_base"],
        api_key=recipe["api_key"],
        mode=recipe["mode"],
        max_retries=recipe["max_retries"],
        timeout=recipe["timeout"],
        server=recipe["server"],
    )
    if recipe["concurrency"] > 1 or recipe["rpm"] or recipe["tpm"]:
        attach_throttle(backend, recipe["concurrency"], rpm=recipe["rpm"], tpm=recipe["tpm"])
    return backend


class _Shard:
    """A Ray actor: one program on one backend of its own, running the cases it is sent."""

    def __init__(self, program: Any, recipe: dict[str, Any], threads: int) -> None:
        os.environ["RECPROMPT_N_THREADS"] = str(threads)  # before a local model is loaded
        self.program = program
        self.program.backend = build_backend(recipe)

    def run(self, case: Any) -> dict[str, Any]:
        return case_record(self.program, case)

    def pid(self) -> int:
        return os.getpid()


def _portable(program: Any) -> Any:
    """A shallow copy of the program without its backend (a loaded model does not travel)."""
    clone = copy.copy(program)
    clone.__dict__ = dict(program.__dict__)
    clone.backend = None
    return clone


def run_on_ray(
    program: Any,
    cases: list[Any],
    store: Any,
    *,
    limits: Any,
    progress: bool = True,
    actors: int = 2,
    concurrency: int = 1,
    on_result: Callable[[int, list[Any]], None] | None = None,
    max_replacements: int | None = None,
) -> Usage:
    """Run every case not in ``store`` on ``actors`` Ray actors; stream results into it.

    Each actor holds ``max(2, concurrency)`` cases at a time (``concurrency`` of them run at
    once inside it, for server backends). ``on_result(done, actors)`` is called after each
    stored result (tests use it to kill an actor mid-run). A dead actor's cases go back to
    the queue and a replacement starts, at most ``max_replacements`` times (default:
    ``actors``); then the run stops with an error and a rerun resumes it.
    """
    ray = connect(None) if not _ray().is_initialized() else _ray()
    from ray.exceptions import RayActorError, RayTaskError

    todo = collections.deque(c for c in cases if c.id not in store)
    recipe = backend_recipe(program.resolve_backend())
    shipped = ray.put(_portable(program))
    cpus = float(ray.cluster_resources().get("CPU", 1.0))
    threads = max(1, int(cpus // actors))
    remote = ray.remote(_Shard).options(
        num_cpus=min(1.0, cpus / actors), max_concurrency=max(1, concurrency), max_restarts=0
    )
    pool: list[Any] = [remote.remote(shipped, recipe, threads) for _ in range(actors)]
    alive = [True] * actors
    depth = max(2, concurrency)
    replacements = actors if max_replacements is None else max_replacements
    inflight = [0] * actors
    pending: dict[Any, tuple[int, Any]] = {}
    usage, started, rates = Usage(), time.monotonic(), _Rates()
    failure: list[BaseException] = []
    requeued = 0

    def submit() -> None:
        for index, actor in enumerate(pool):
            while alive[index] and todo and inflight[index] < depth and not failure:
                try:
                    limits.check(usage, started)
                except RecpromptError as exc:
                    failure.append(exc)
                    return
                case = todo.popleft()
                pending[actor.run.remote(case)] = (index, case)
                inflight[index] += 1

    with progress_bar(progress) as bar:
        task = bar.add_task(f"{program.spec.name} (ray ×{actors})", total=len(cases), rate="")
        bar.update(task, completed=len(store))
        submit()
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                index, case = pending.pop(ref)
                inflight[index] -= 1
                try:
                    record = ray.get(ref)
                except RayActorError:
                    todo.appendleft(case)  # its actor died: the case is redone elsewhere
                    requeued += 1
                    if alive[index]:
                        alive[index] = False
                        if replacements > 0:
                            replacements -= 1
                            pool.append(remote.remote(shipped, recipe, threads))
                            alive.append(True)
                            inflight.append(0)
                    continue
                except RayTaskError as exc:
                    cause = exc.cause if isinstance(exc.cause, BaseException) else exc
                    failure.append(cause)
                    continue
                store.append(record)
                for key in ("calls", "prompt_tokens", "completion_tokens", "cache_hits"):
                    setattr(usage, key, getattr(usage, key) + int(record["usage"].get(key, 0)))
                rate = rates.add(record["usage"]) + (f" · {requeued} requeued" if requeued else "")
                bar.update(task, advance=1, rate=rate)
                if on_result is not None:
                    on_result(len(store), pool)
            submit()
    for actor, up in zip(pool, alive, strict=True):
        if up:
            ray.kill(actor)
    usage.seconds = time.monotonic() - started
    if failure:
        raise failure[0]
    if todo:
        raise BackendError(
            f"every Ray actor died; {len(todo)} case(s) not run",
            hint="rerun with the same --out to resume; check the actors' memory and logs",
        )
    return usage
