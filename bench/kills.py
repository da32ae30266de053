"""SIGKILL campaign: killed ``eval`` and ``optimize`` runs must resume to the uninterrupted result.

Why: a long evaluation or search on a laptop gets killed (OOM killer, closed lid, Ctrl-\\).
The promise is that rerunning the same command finishes with exactly what one uninterrupted
run with the same seed produces: no case lost, none counted twice, the same values, the same
report and the same tuned program, and that the result store and the disk cache survive a
write torn by the kill. tests/test_eval_runner.py kills one eval once; this kills many times
at seeded random points, on the real local model, for both verbs.

Each campaign runs the command once uninterrupted (the reference, with its own fresh cache),
then again in a fresh folder and cache: it starts the same command, SIGKILLs it after a delay
drawn from ``random.Random(seed)``, and repeats until ``--kills`` kills have landed, then lets
a last invocation finish. A delay is uniform between 1 s and the time this attempt should
take (startup plus the reference's time for the work still left), so kills fall during model
loading, mid-run and near the end of an attempt, and later attempts, with less left to do,
are killed closer to the end of the whole run. ``eval`` resumes from its result store;
``optimize`` resumes through the disk cache (the same cache for all attempts of the campaign),
so progress is the store's cases or the cache's entries.

After every kill the folder is inspected without touching it: valid and torn result lines,
cache entries that fail their checksum, temp files left in the cache. At the end the killed
run's results are compared with the reference: ids lost or duplicated, values (abs 1e-6),
report metrics; for optimize the saved program and its report, minus the fields that count
this invocation's model calls (a rerun answers earlier calls from the cache and does not
count them, by design) and package versions.

    RECPROMPT_DATA=../shared/data python bench/kills.py [--kills 6] [--seed 0] [--only eval]

Writes the key "kills" of bench/results/reliability.json (other keys are kept).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recprompt.backends.cache import entry_payload
from recprompt.eval.store import read_lines

from _common import merge_result

RESULTS = Path(__file__).resolve().parent / "results" / "reliability.json"
EVAL_ARGS = ["--users", "8", "--baselines", "global_mean,user_mean"]
OPTIMIZE_ARGS = ["--budget", "40", "--demo-users", "6", "--valid-users", "4", "--test-users", "4"]
TOLERANCE = 1e-6

Json = dict[str, Any]


# -- read-only inspection of what a killed run left behind ------------------------------------


def inspect_cache(directory: Path) -> Json:
    """Entries, entries that would be rejected (torn, bad checksum, wrong key), temp files."""
    entries = corrupt = temp = 0
    if directory.exists():
        for path in directory.rglob("*"):
            if not path.is_file():
                continue
            if path.name.startswith(".tmp-"):
                temp += 1
                continue
            entries += 1
            try:
                entry_payload(path, path.stem)
            except (OSError, ValueError, KeyError, TypeError):
                corrupt += 1
    return {"entries": entries, "corrupt": corrupt, "temp_files": temp}


def close(a: Any, b: Any) -> bool:
    """Structural equality with floats compared to ``TOLERANCE``."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float | int) and isinstance(b, float | int):
        return a == b or abs(a - b) <= TOLERANCE
    return bool(a == b)


# -- running and killing ----------------------------------------------------------------------


def start(command: list[str], cache: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RECPROMPT_CACHE": str(cache)}
    with log.open("ab") as handle:
        return subprocess.Popen(
            command, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )


def wait(proc: subprocess.Popen[bytes], timeout: float | None = None) -> bool:
    """Wait for ``proc``; SIGKILL its process group after ``timeout``. True if killed. If the
    bench itself is interrupted, the run it started goes with it."""
    try:
        proc.wait(timeout=timeout)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return True
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        raise


def reference(command: list[str], cache: Path, log: Path, progress: Callable[[], int]) -> Json:
    """One uninterrupted run; also when its first unit of progress appeared (its startup)."""
    started = time.monotonic()
    proc = start(command, cache, log)
    first = None
    try:
        while proc.poll() is None:
            if first is None and progress() > 0:
                first = time.monotonic() - started
            time.sleep(0.1)
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    duration = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"reference run failed ({proc.returncode}); see {log}")
    return {"seconds": round(duration, 2), "startup_seconds": round(first or duration, 2)}


def campaign(
    command: list[str],
    cache: Path,
    log: Path,
    kills: int,
    rng: random.Random,
    ref: Json,
    progress: Callable[[], int],
    total: int,
    inspect: Callable[[], Json],
) -> Json:
    """Kill ``command`` ``kills`` times at seeded random delays, then let it finish."""
    attempts: list[Json] = []
    started = time.monotonic()
    startup, work = ref["startup_seconds"], ref["seconds"] - ref["startup_seconds"]
    while sum(a["killed"] for a in attempts) < kills and len(attempts) < 3 * kills:
        before = progress()
        expected = startup + work * max(0.0, 1 - before / total)
        delay = rng.uniform(1.0, max(expected, 1.5))
        proc = start(command, cache, log)
        killed = wait(proc, delay)
        attempts.append(
            {
                "delay_s": round(delay, 2),
                "expected_s": round(expected, 2),
                "killed": killed,
                "returncode": proc.returncode,
                "progress_before": before,
                "progress_made": progress() - before,
                **inspect(),
            }
        )
        print(f"  attempt {len(attempts)}: {attempts[-1]}", flush=True)
    final_started = time.monotonic()
    final = start(command, cache, log)
    wait(final)
    if final.returncode != 0:
        raise SystemExit(f"final run failed ({final.returncode}); see {log}")
    return {
        "attempts": attempts,
        "killed": sum(a["killed"] for a in attempts),
        "finished_before_kill": sum(not a["killed"] for a in attempts),
        "kill_delays_s": [a["delay_s"] for a in attempts],
        "final_seconds": round(time.monotonic() - final_started, 2),
        "seconds": round(time.monotonic() - started, 2),
    }


def cli(verb: str, spec: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "recprompt.cli", verb, spec, "--data", "ml-100k", *args]


# -- the two campaigns ------------------------------------------------------------------------


def eval_campaign(work: Path, kills: int, seed: int) -> Json:
    def command(out: Path) -> list[str]:
        return cli("eval", "p5.rating", "--seed", str(seed), "--out", str(out), *EVAL_ARGS)

    ref_out, out = work / "eval-ref", work / "eval-killed"
    ref = reference(
        command(ref_out),
        work / "eval-ref-cache",
        work / "eval-ref.log",
        lambda: len(read_lines(ref_out / "results.jsonl")[0]),
    )
    expected, _ = read_lines(ref_out / "results.jsonl")
    print(f"eval reference: {len(expected)} cases in {ref['seconds']} s", flush=True)
    cache = work / "eval-cache"

    def inspect() -> Json:
        _, bad = read_lines(out / "results.jsonl")
        return {"torn_lines": bad, "cache": inspect_cache(cache)}

    run = campaign(
        command(out),
        cache,
        work / "eval-killed.log",
        kills,
        random.Random(seed),
        ref,
        lambda: len({r["id"] for r in read_lines(out / "results.jsonl")[0]}),
        len(expected),
        inspect,
    )
    got, bad = read_lines(out / "results.jsonl")
    ids = [r["id"] for r in got]
    want = {r["id"]: r["value"] for r in expected}
    have: dict[str, Any] = {}
    for r in got:
        have.setdefault(r["id"], r["value"])
    ref_report = json.loads((ref_out / "report.json").read_text())
    report = json.loads((out / "report.json").read_text())
    same = ("cases", "metrics", "validity", "baselines", "protocol", "spec_hash")
    return {
        "command": "recprompt " + " ".join(command(Path("OUT"))[3:]),
        "reference": ref | {"cases": len(expected)},
        **run,
        "cases_per_attempt": [a["progress_made"] for a in run["attempts"]],
        "lost": len(set(want) - set(have)),
        "duplicated": len(ids) - len(set(ids)),
        "extra": len(set(have) - set(want)),
        "invalid_lines_left": bad,
        "values_equal": set(want) == set(have) and all(close(want[k], have[k]) for k in want),
        "report_equal": all(close(ref_report[k], report[k]) for k in same),
        "report_compared": list(same),
        "cache_after": inspect_cache(cache),
    }


def _program(path: Path) -> Json:
    saved = json.loads(path.read_text())
    saved.pop("versions", None)
    settings = saved.get("settings", {})
    settings.pop("calls_search", None)
    for trial in settings.get("trials", []):
        trial.pop("calls_so_far", None)
    return saved


def _report(path: Path) -> Json:
    report = json.loads(path.read_text())
    for key in ("calls", "program"):
        report.pop(key, None)
    for trial in report.get("trials", []):
        trial.pop("calls_so_far", None)
    return report


def optimize_campaign(work: Path, kills: int, seed: int) -> Json:
    def command(out: Path) -> list[str]:
        return cli("optimize", "p5.rating", "--seed", str(seed), "--out", str(out), *OPTIMIZE_ARGS)

    ref_out, out = work / "opt-ref" / "program.json", work / "opt-killed" / "program.json"
    ref_cache, cache = work / "opt-ref-cache", work / "opt-cache"
    ref = reference(
        command(ref_out),
        ref_cache,
        work / "opt-ref.log",
        lambda: inspect_cache(ref_cache)["entries"],
    )
    total = inspect_cache(ref_cache)["entries"]
    print(f"optimize reference: {total} model calls in {ref['seconds']} s", flush=True)
    run = campaign(
        command(out),
        cache,
        work / "opt-killed.log",
        kills,
        random.Random(seed),
        ref,
        lambda: inspect_cache(cache)["entries"],
        total,
        lambda: {"cache": inspect_cache(cache)},
    )
    ref_program, program = _program(ref_out), _program(out)
    ref_report = _report(ref_out.with_suffix(".report.json"))
    report = _report(out.with_suffix(".report.json"))
    differ = sorted(
        k
        for k in ref_program.keys() | program.keys()
        if not close(ref_program.get(k), program.get(k))
    )
    calls = json.loads(out.with_suffix(".report.json").read_text())["calls"]
    return {
        "command": "recprompt " + " ".join(command(Path("PROGRAM.json"))[3:]),
        "reference": ref | {"model_calls": total},
        **run,
        "calls_per_attempt": [a["progress_made"] for a in run["attempts"]],
        "program_equal": not differ,
        "program_fields_differing": differ,
        "report_equal": close(ref_report, report),
        "ignored_fields": [
            "versions",
            "settings.calls_search",
            "trials[].calls_so_far",
            "report.calls",
            "report.program (the path)",
        ],
        "final_invocation_calls": calls,
        "cache_after": inspect_cache(cache),
    }


# -- entry point ------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=6, help="kills per campaign")
    parser.add_argument("--seed", type=int, default=0, help="seed of the runs and kill delays")
    parser.add_argument("--only", choices=("eval", "optimize"), default=None)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the run in flight is ended
    if not os.environ.get("RECPROMPT_DATA"):
        parser.error("set RECPROMPT_DATA to the folder holding ml-100k")
    work = Path(tempfile.mkdtemp(prefix="recprompt-kills-"))
    result: Json = {
        "seed": args.seed,
        "kills_per_campaign": args.kills,
        "loadavg_start": list(os.getloadavg()),
    }
    started = time.monotonic()
    if args.only in (None, "eval"):
        result["eval"] = eval_campaign(work, args.kills, args.seed)
    if args.only in (None, "optimize"):
        result["optimize"] = optimize_campaign(work, args.kills, args.seed)
    result |= {
        "loadavg_end": list(os.getloadavg()),
        "seconds": round(time.monotonic() - started, 1),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }
    ok = True
    for name in ("eval", "optimize"):
        part = result.get(name)
        if part is None:
            continue
        equal = [part[k] for k in ("values_equal", "program_equal", "report_equal") if k in part]
        lost, dup = part.get("lost", 0), part.get("duplicated", 0)
        ok &= all(equal) and lost == 0 and dup == 0
        print(
            f"{name}: killed {part['killed']} (+{part['finished_before_kill']} finished first), "
            f"lost {lost}, duplicated {dup}, equal {all(equal)}, "
            f"cache {part['cache_after']}"
        )
    result["ok"] = ok
    merge_result("reliability", "kills", result)
    print(f"{'ok' if ok else 'MISMATCH'}; wrote {RESULTS} (work folder {work})")
    if ok:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
