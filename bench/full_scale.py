"""The README's main job, and the programs it quotes run on every user, through the CLI.

With the default local model (Gemma 3 270M) and the disk cache, seed 0:

* ``readme_main_job``: the README's first command, 200 ML-100K users, and
  ``readme_main_job_no_cache``: the same with ``--no-cache`` (one wall-clock measurement of
  what the main job costs when every call is made; the machine is shared, so it is rough);
* ``ml100k_every_user`` and ``all_beauty_every_user``: the same program on every user with a
  case, except the 50 that ``rank.tune_users`` tunes the fusion weight on (ML-100K 893 of 943;
  All_Beauty 931 of 981, the other 10 of its 991 having one interaction);
* ``likelihood_every_user``: ``rank.likelihood`` on all 943 ML-100K users, 1+19 sampled;
* ``made_up_every_user``: a dataset of another shape, written here from a seed: no
  timestamps (``--holdout random``), repeated titles, half-star ratings, books.

Each entry keeps the command, NDCG@10 with its interval for the program and each baseline,
the program's paired difference against each baseline, the tuned weight, the retriever's
recall, validity and the calls made and answered from the cache. Wall seconds are kept; only
the no-cache run's say what a run costs (elsewhere the cache answers a varying share).
Writes bench/results/full_scale.json.

    RECPROMPT_DATA=../shared/data python bench/full_scale.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import write_result

ROOT = Path(__file__).resolve().parents[1]
RERANK = ["rank.letters.rerank", "--seed", "0", "--retriever", "bpr"]
RUNS = {
    "readme_main_job": ["eval", *RERANK, "--data", "ml-100k", "--users", "200"],
    # the same without the disk cache: every call made, so its seconds are the main job's cost
    "readme_main_job_no_cache": [
        "eval", *RERANK, "--data", "ml-100k", "--users", "200", "--no-cache",
    ],
    "ml100k_every_user": ["eval", *RERANK, "--data", "ml-100k", "--users", "893"],
    "all_beauty_every_user": [
        "eval", *RERANK, "--data", "amazon-2018-all-beauty-5core", "--users", "931",
    ],
    "likelihood_every_user": [
        "eval", "rank.likelihood", "--data", "ml-100k", "--seed", "0", "--history", "10",
    ],
}  # fmt: skip
MADE_UP_USERS, MADE_UP_BOOKS = 150, 120


def made_up(folder: Path) -> Path:
    """Readers rating books in half stars, rows in no time order, every tenth title shared."""
    rng = np.random.default_rng(7)
    rows = ["reader,book,stars"]
    for reader in range(MADE_UP_USERS):
        for book in rng.choice(MADE_UP_BOOKS, size=int(rng.integers(8, 21)), replace=False):
            rows.append(f"r{reader},b{book:03d},{rng.choice(np.arange(0.5, 5.5, 0.5))}")
    (folder / "ratings.csv").write_text("\n".join(rows) + "\n")
    titles = [f"Book {b - 1 if b % 10 == 1 else b}" for b in range(MADE_UP_BOOKS)]
    (folder / "books.csv").write_text(
        "id,name\n" + "".join(f"b{b:03d},{t}\n" for b, t in enumerate(titles))
    )
    descriptor = folder / "books.yaml"
    descriptor.write_text(
        "path: ratings.csv\ncolumns: {user: reader, item: book, rating: stars}\n"
        "items: {path: books.csv, item: id, title: name}\nitem_noun: book\n"
    )
    return descriptor


def _fusion(fusion: dict[str, Any] | None) -> dict[str, Any] | None:
    keys = ("weight", "best_weight", "valid_users", "calls")
    return {k: fusion[k] for k in keys} if fusion else None


def run(args: list[str], out: Path) -> dict[str, Any]:
    started = time.monotonic()
    command = [sys.executable, "-c", "from recprompt.cli import main; main()", *args]
    subprocess.run([*command, "--out", str(out)], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    seconds = round(time.monotonic() - started, 1)
    report = json.loads((out / "report.json").read_text())
    ndcg = {"program": report["metrics"]["ndcg@10"]}
    ndcg.update({name: m["ndcg@10"] for name, m in report["baselines"].items()})
    return {
        "command": "recprompt " + " ".join(args),
        "protocol": report["protocol"],
        "data_fingerprint": report["data"]["fingerprint"],
        "users": report["users"],
        "warnings": report.get("warnings", []),
        "ndcg@10": {k: [v["value"], v.get("ci_low"), v.get("ci_high")] for k, v in ndcg.items()},
        "paired_ndcg@10": {
            name: {k: d[k] for k in ("difference", "low", "high", "p_value", "cases")}
            for name, pair in report["paired"].items()
            for d in [pair["ndcg@10"]]
        },
        "fusion": _fusion(report.get("fusion")),
        "retrieval": report.get("retrieval"),
        "validity": report["validity"],
        "calls": report["usage"]["this_invocation"]["calls"],
        "cache_hits": report["usage"]["this_invocation"]["cache_hits"],
        "seconds": seconds,
    }


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="recprompt-full-scale-"))
    result = {name: run(args, work / name) for name, args in RUNS.items()}
    books = made_up(Path(tempfile.mkdtemp(prefix="recprompt-made-up-")))
    made_up_args = ["eval", *RERANK, "--data", str(books), "--holdout", "random", "--users", "100"]
    result["made_up_every_user"] = run(made_up_args, work / "made-up")
    result["made_up_every_user"]["command"] = result["made_up_every_user"]["command"].replace(
        str(books), "books.yaml (bench/full_scale.py: made_up)"
    )
    write_result("full_scale", {"model": "local (Gemma 3 270M Q4_K_M)", **result})


if __name__ == "__main__":
    main()
