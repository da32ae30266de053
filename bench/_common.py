"""Helpers shared by the benchmarks: medians of repeated timings and JSON results."""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def median_seconds(run: Callable[[], Any], repeats: int = 5) -> float:
    """Median wall time of ``run`` over ``repeats`` (the machine is shared and noisy)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def write_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    result = {**result, "machine": {"python": platform.python_version(), "cpus": 2}}
    from recprompt._files import write_text_atomic

    path = write_text_atomic(
        RESULTS / f"{name}.json", json.dumps(result, indent=2, sort_keys=True) + "\n"
    )
    print(json.dumps(result, indent=2))
    return path


def merge_result(name: str, key: str, value: dict[str, Any]) -> Path:
    """Put ``value`` under ``key`` of ``results/NAME.json``, keeping the other keys (several
    benchmarks share reliability.json); written atomically, under a lock so that two
    benchmarks finishing together do not drop each other's key."""
    import fcntl

    from recprompt._files import write_text_atomic

    path = RESULTS / f"{name}.json"
    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # waits: the other writer holds it for milliseconds
        data = json.loads(path.read_text()) if path.exists() else {}
        data[key] = value
        return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
