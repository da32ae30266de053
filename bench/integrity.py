"""Integrity campaign: concurrent writers, hostile command lines, outputs never destroyed.

1. Two processes each replace one ``report.json``-sized file N times with
   ``write_text_atomic`` while a reader parses it in a loop: writer errors and torn reads
   must both be 0.
2. The real CLI (subprocesses) on hostile values, paths, ``--input`` and markup text: every
   invocation must end with exit status 2 and a message, never a traceback or a MarkupError,
   within the per-invocation timeout; files given as outputs keep their bytes.

Counts go under ``"integrity"`` in ``bench/results/reliability.json``.

    RECPROMPT_DATA=../shared/data python bench/integrity.py [--writes 1500]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import merge_result

ROOT = Path(__file__).resolve().parents[1]


def _writer(path: str, tag: str, n: int, errors: Any) -> None:
    from recprompt._files import write_text_atomic

    for k in range(n):
        body = json.dumps({"writer": tag, "k": k, "pad": [tag * 80] * (300 + k % 40)})
        try:
            write_text_atomic(path, body)
        except Exception as exc:  # counted, not raised: the campaign reports every failure
            errors.put(repr(exc))


def concurrent_writes(writes: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "report.json"
        path.write_text("{}")
        ctx = multiprocessing.get_context("fork")
        errors = ctx.Queue()
        procs = [ctx.Process(target=_writer, args=(str(path), t, writes, errors)) for t in "ab"]
        started = time.monotonic()
        for p in procs:
            p.start()
        reads = torn = 0
        while any(p.is_alive() for p in procs):
            try:
                json.loads(path.read_text())
            except json.JSONDecodeError:
                torn += 1
            reads += 1
        for p in procs:
            p.join()
        failures = []
        while not errors.empty():
            failures.append(errors.get())
        leftovers = sorted(p.name for p in Path(folder).iterdir() if p.name != "report.json")
        return {
            "writers": 2,
            "writes": 2 * writes,
            "bytes_per_write": len(path.read_bytes()),
            "reads": reads,
            "torn_reads": torn,
            "writer_errors": len(failures),
            "first_errors": failures[:3],
            "temp_files_left": len(leftovers),
            "seconds": round(time.monotonic() - started, 2),
        }


def _cli(args: list[str], timeout: float) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "recprompt.cli", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "seconds": timeout}
    text = done.stdout + done.stderr
    return {
        "status": done.returncode,
        "traceback": "Traceback" in text,
        "markup_error": "MarkupError" in text,
        "seconds": round(time.monotonic() - started, 2),
        "tail": text.strip().splitlines()[-1][:160] if text.strip() else "",
    }


def hostile_cli(timeout: float) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="recprompt-integrity-"))
    spec = work / "spec.yaml"
    spec.write_text((ROOT / "recprompt/templates/p5/rating.yaml").read_text())
    keep = work / "keep.jsonl"
    keep.write_text("precious\n")
    data = ["--data", "ml-100k"]
    dry = ["dry-run", "p5.rating", *data, "--users", "2", "--show", "0"]
    ev = ["eval", "p5.rating", *data, "--users", "2", "--model", "none"]
    deep = work / "deep.json"  # 200 kB: over the 128 kB limit of one command-line argument
    deep.write_text("[" * 100_000 + "]" * 100_000)
    inline = "[" * 60_000 + "]" * 60_000
    cases: dict[str, list[str]] = {
        "users 0": [*dry, "--users", "0"],
        "users -1": [*dry, "--users", "-1"],
        "negatives -1": [*dry, "--negatives", "-1"],
        "history -1": [*dry, "--history", "-1"],
        "limit -1": [*dry, "--limit", "-1"],
        "sampler bogus": [*ev, "--out", str(work / "e1"), "--sampler", "bogus"],
        "max-calls -1": [*ev, "--out", str(work / "e2"), "--max-calls", "-1"],
        "out is a folder": [*dry, "--out", str(work)],
        "out parent missing": [*dry, "--out", str(work / "no/such/p.jsonl")],
        "out in /proc": [*dry, "--out", "/proc/recprompt.jsonl"],
        "eval out /proc": [*ev, "--out", "/proc"],
        "eval out is a file": [*ev, "--out", str(keep)],
        "out is the spec": ["dry-run", str(spec), *data, "--users", "2", "--out", str(spec)],
        "dry-run fails late": [*dry, "--variant", "nope", "--out", str(keep)],
        "input nested 100k": ["render", "p5.rating", "--input", f"@{deep}"],
        "input nested 60k inline": ["render", "p5.rating", "--input", inline],
        "input @/dev/zero": ["render", "p5.rating", "--input", "@/dev/zero"],
        "input 1e400": ["render", "p5.rating", "--input", '{"user_id": 1e400}'],
        "input huge int": ["render", "p5.rating", "--input", '{"user_id": ' + "9" * 5000 + "}"],
        "input key [/x]": ["render", "p5.rating", "--input", '{"[/x]": 1}'],
        "variant [/x]": ["render", "p5.rating", "-v", "[/x]", "--input", '{"user_id": "1"}'],
        "variant [bold red]X": ["render", "p5.rating", "-v", "[bold red]X", "--input", "{}"],
        "spec path [/x]": ["validate", str(work / "[/x].yaml")],
        "listwise negatives 0": ["dry-run", "rank.listwise", *data, "--users", "2",
                                 "--negatives", "0"],
    }  # fmt: skip
    outcomes = {name: _cli(args, timeout) for name, args in cases.items()}
    return {
        "invocations": len(outcomes),
        "exit_2": sum(o["status"] == 2 for o in outcomes.values()),
        "tracebacks": sum(bool(o.get("traceback")) for o in outcomes.values()),
        "markup_errors": sum(bool(o.get("markup_error")) for o in outcomes.values()),
        "timeouts": sum(o["status"] == "timeout" for o in outcomes.values()),
        "spec_kept": spec.read_text() == (ROOT / "recprompt/templates/p5/rating.yaml").read_text(),
        "out_file_kept": keep.read_text() == "precious\n",
        "per_case": outcomes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=1500, help="Writes per writer process.")
    parser.add_argument("--timeout", type=float, default=60.0, help="Seconds per CLI call.")
    args = parser.parse_args()
    result = {"concurrent_writes": concurrent_writes(args.writes)}
    result["hostile_cli"] = hostile_cli(args.timeout)
    print(json.dumps(result, indent=2))
    merge_result("reliability", "integrity", result)


if __name__ == "__main__":
    main()
