"""The product-level runs quoted in closing notes: tuned vs zero-shot.

Runs, through the CLI with the default local model and the disk cache:

* ``recprompt optimize p5.rating`` (RMSE) and ``recprompt optimize
  cookbook/optimize/next_movie.yaml`` (NDCG@10): zero-shot against tuned on validation and on
  held-out test users.

The README's main job and the runs on every user are ``bench/full_scale.py``.

A rerun is answered from the disk cache (same seeds, same calls), so it reproduces the same
tables in seconds; the reports' call counts then show only the calls that missed the cache.
Writes bench/results/acceptance.json.

    RECPROMPT_DATA=../shared/data python bench/acceptance.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import write_result

ROOT = Path(__file__).resolve().parents[1]
OPTIMIZE = {
    "rating": ["p5.rating", "--budget", "300", "--valid-users", "30", "--test-users", "60"],
    "ranking": ["cookbook/optimize/next_movie.yaml", "--budget", "400", "--test-users", "30"],
}


def recprompt(*args: str) -> float:
    started = time.monotonic()
    command = [sys.executable, "-c", "from recprompt.cli import main; main()", *args]
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return round(time.monotonic() - started, 1)


def tuned_vs_zero_shot(work: Path, name: str, args: list[str]) -> dict[str, Any]:
    out = work / f"{name}.json"
    seconds = recprompt("optimize", *args, "--data", "ml-100k", "--seed", "0", "--out", str(out))
    report = json.loads(out.with_suffix(".report.json").read_text())
    return {
        "command": "recprompt optimize " + " ".join([*args, "--data ml-100k --seed 0"]),
        "metric": report["metric"],
        "plan": report["plan"],
        "users": {split: len(ids) for split, ids in report["users"].items()},
        "protocol": report["protocol"],
        "tuned_config": report["results"]["tuned"]["config"],
        "table": {
            program: {split: report["results"][program][split] for split in ("valid", "test")}
            for program in ("zero_shot", "tuned")
        },
        "calls_this_invocation": report["calls"],
        "seconds": seconds,
    }


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="recprompt-acceptance-"))
    result = {name: tuned_vs_zero_shot(work, name, args) for name, args in OPTIMIZE.items()}
    write_result("acceptance", {"model": "local (Gemma 3 270M Q4_K_M)", **result})


if __name__ == "__main__":
    main()
