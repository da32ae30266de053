"""The data path at scale: load, leave-one-out split and 1+99 candidates for 10,000 users.

A synthetic dataset in MovieLens 100K layout (``u.data`` tab-separated, ``u.item``
latin-1 with ``|``) is generated at 0.1M, 1M and 10M interactions in a temporary folder
(deleted afterwards, never committed; no data is downloaded). Each size is measured in its
own subprocess, so that its peak memory (VmHWM) is its own:

* ``load``: ``load_dataset`` (parse, per-(user, item) dedupe, stats);
* ``split``: ``leave_one_out`` (time order per user, last = test, second-last = valid);
* ``sample``: ``ranking_examples`` with 1+99 uniform candidates and a 20-item history for
  10,000 seeded users (the split and popularity tables included, as an eval pays them).

Target (issue "Scale", benchmark d): 10M in under 60 s and 4 GiB, growing no worse than
linearly. ``seconds_per_million`` and ``growth`` (ratio of per-interaction cost against
the smallest size) make the linearity visible. Writes ``bench/results/data_scale.json``.

    nice -n 10 python bench/data_scale.py [--sizes 100000,1000000,10000000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
USERS_SAMPLED = 10_000
NEGATIVES = 99


def shape(n: int) -> tuple[int, int]:
    """Users and items for ``n`` interactions: ~100 events a user, MovieLens-like items."""
    return max(n // 100, USERS_SAMPLED), max(1682, n // 500)


def generate(folder: Path, n: int, seed: int = 0) -> dict[str, int]:
    """Write ``u.data`` and ``u.item`` with ``n`` distinct (user, item) events, shuffled."""
    rng = np.random.default_rng(seed)
    n_users, n_items = shape(n)
    # events per user: at least 20 as in MovieLens (10 at 0.1M, which needs 10,000 users),
    # the rest spread at random
    counts = np.full(n_users, min(20, n // n_users), np.int64)
    counts += np.bincount(rng.integers(0, n_users, n - counts.sum()), minlength=n_users)
    counts = np.minimum(counts, n_items)
    users = np.repeat(np.arange(1, n_users + 1), counts)
    within = np.arange(len(users)) - np.repeat(np.cumsum(counts) - counts, counts)
    offset = np.repeat(rng.integers(0, n_items, n_users), counts)
    stride = 7919  # prime, coprime with the item count: a user's items are distinct
    items = (offset + within * stride) % n_items + 1
    ratings = rng.integers(1, 6, len(users))
    stamps = 874_724_710 + np.repeat(rng.integers(0, 10**7, n_users), counts) + within * 60
    order = rng.permutation(len(users))
    with (folder / "u.data").open("w", encoding="ascii") as fh:
        for start in range(0, len(order), 1_000_000):
            chunk = order[start : start + 1_000_000]
            rows = zip(
                users[chunk].tolist(),
                items[chunk].tolist(),
                ratings[chunk].tolist(),
                stamps[chunk].tolist(),
                strict=True,
            )
            fh.write("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in rows))
    genres = "|".join(["0"] * 19)
    with (folder / "u.item").open("w", encoding="latin-1") as fh:
        for i in range(1, n_items + 1):
            # every 500th title repeats its neighbour's, as MovieLens 100K's do
            title = f"Synthetic Film {i - 1 if i % 500 == 0 else i} (1995)"
            fh.write(f"{i}|{title}|01-Jan-1995||http://example.invalid/{i}|{genres}\n")
    return {"interactions": len(users), "users": n_users, "items": n_items}


def _high_water_mib() -> float:
    """This process's peak resident memory. ``/proc/self/status`` VmHWM belongs to the
    process image since exec; ``ru_maxrss`` would also count the parent's size at fork."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(folder: str) -> dict[str, float | int]:
    """Run in a fresh interpreter: time each step, then read the peak resident memory."""
    import recprompt.data as data  # imported before the clock starts: not the data path

    baseline = _high_water_mib()
    c0, t0 = time.process_time(), time.perf_counter()
    ds = data.load_dataset(folder)
    c1, t1 = time.process_time(), time.perf_counter()
    split = data.leave_one_out(ds)
    c2, t2 = time.process_time(), time.perf_counter()
    protocol = data.Protocol(
        n_negatives=NEGATIVES, n_users=USERS_SAMPLED, history_length=20, seed=0
    )
    cases = data.ranking_examples(ds, protocol)
    c3, t3 = time.process_time(), time.perf_counter()
    assert all(len(c.candidates) == NEGATIVES + 1 for c in cases)
    assert all(c.positive not in {h.item_id for h in c.history} for c in cases)
    peak = _high_water_mib()
    return {
        "loaded_interactions": len(ds),
        "test_cases": len(split.test),
        "sampled_users": len(cases),
        "load_s": round(t1 - t0, 3),
        "split_s": round(t2 - t1, 3),
        "sample_s": round(t3 - t2, 3),
        "total_s": round(t3 - t0, 3),
        "load_cpu_s": round(c1 - c0, 3),
        "split_cpu_s": round(c2 - c1, 3),
        "sample_cpu_s": round(c3 - c2, 3),
        "total_cpu_s": round(c3 - c0, 3),
        "peak_rss_mib": round(peak, 1),
        "rss_after_import_mib": round(baseline, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100000,1000000,10000000")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    runs = []
    for n in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="recprompt-scale-") as tmp:
            started = time.perf_counter()
            made = generate(Path(tmp), n)
            generated = time.perf_counter() - started
            child = subprocess.run(
                [sys.executable, __file__, "--measure", tmp],
                capture_output=True,
                text=True,
                check=False,
            )
            if child.returncode != 0:
                raise SystemExit(f"measuring {n} failed:\n{child.stderr[-3000:]}")
            row = {"size": n, **made, "generate_s": round(generated, 1)}
            row |= json.loads(child.stdout.strip().splitlines()[-1])
            millions = made["interactions"] / 1e6
            row["seconds_per_million"] = round(row["total_s"] / millions, 3)
            row["cpu_seconds_per_million"] = round(row["total_cpu_s"] / millions, 3)
            runs.append(row)
            print(json.dumps(row), flush=True)
    base = runs[0]["cpu_seconds_per_million"]
    for row in runs:
        row["growth"] = round(row["cpu_seconds_per_million"] / base, 3)
    largest = runs[-1]
    result = {
        "benchmark": "data path: load, leave-one-out split, 1+99 candidates for 10,000 users",
        "layout": "MovieLens 100K (u.data, u.item), synthetic, generated in a temp dir",
        "runs": runs,
        "target": {"interactions": 10_000_000, "seconds": 60, "peak_gib": 4},
        "largest_within_target": bool(
            largest["total_cpu_s"] < 60 and largest["peak_rss_mib"] < 4 * 1024
        ),
        "load_average_at_end": round(os.getloadavg()[0], 1),
        "growth_note": "growth = CPU seconds per interaction relative to the smallest size; "
        "<= 1 means no worse than linear (fixed costs amortise). CPU seconds (process time) "
        "are quoted beside wall seconds because the 2 cores are shared by other jobs: "
        "wall time there measures the queue, not the code",
        "note": "each size runs in its own process; peak_rss_mib includes the interpreter "
        "and imports (rss_after_import_mib); one run per size on a shared 2-core machine",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "data_scale.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))


if __name__ == "__main__":
    main()
