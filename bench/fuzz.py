"""Fuzz and hostile-data campaign: spec failures stay located, constrained outputs stay valid.

1. Runs the hypothesis suites (tests/test_fuzz_specs.py, tests/test_hostile_data.py) with
   ``RECPROMPT_FUZZ_SCALE`` times the CI example counts and collects hypothesis' counts of
   generated examples: every YAML or decorator spec either builds or fails with a located
   ``RecpromptError``.
2. Drives the local model with hostile candidate titles (Jinja, template escapes, prompt
   injection, quotes and brackets) through built-in specs at temperature 1.0, one seed per
   call, and counts outputs the constraint rejects (must be 0) and rendered prompts where
   hostile text was evaluated instead of shown (must be 0).

Counts go under ``"fuzz"`` and ``"hostile"`` in ``bench/results/reliability.json``.

    python bench/fuzz.py [--scale 3] [--calls 24]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_hostile_data import HOSTILE, PLAIN

import recprompt
from recprompt.backends import get_backend

from _common import merge_result

ROOT = Path(__file__).resolve().parents[1]


def fuzz_counts(scale: int) -> dict[str, Any]:
    files = ["tests/test_fuzz_specs.py", "tests/test_hostile_data.py"]
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               "--hypothesis-show-statistics", *files]  # fmt: skip
    env = {**os.environ, "RECPROMPT_FUZZ_SCALE": str(scale)}
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    per_test: dict[str, int] = {}
    current = None
    for line in done.stdout.splitlines():
        header = re.match(r"^(tests/\S+::\S+):$", line.strip())
        if header:
            current = header.group(1)
        counted = re.search(r"(\d+) passing examples, (\d+) failing", line)
        if counted and current:
            per_test[current] = per_test.get(current, 0) + int(counted.group(1))
            if int(counted.group(2)):
                per_test[current + " FAILING"] = int(counted.group(2))
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-300:]
    yaml_specs = sum(v for k, v in per_test.items() if "yaml_specs" in k)
    decorator = sum(v for k, v in per_test.items() if "decorated" in k)
    return {
        "scale": scale,
        "pytest_exit": done.returncode,
        "pytest_summary": summary,
        "yaml_specs_fuzzed": yaml_specs,
        "decorator_specs_fuzzed": decorator,
        "examples_by_test": per_test,
        "failures_not_located": 0 if done.returncode == 0 else "see pytest_summary",
        "seconds": round(time.monotonic() - started, 1),
    }


def hostile_through_model(calls: int) -> dict[str, Any]:
    backend = get_backend("local")
    rng = random.Random(0)
    invalid: list[str] = []
    evaluated = 0
    per_spec: dict[str, int] = {}
    specs = ["llmrank.ranking", "rank.letters", "tallrec.binary", "p5.direct_yes_no"]
    for n in range(calls):
        name = specs[n % len(specs)]
        program = recprompt.load(name)
        titles = rng.sample(HOSTILE, 12) + rng.sample(PLAIN, 8)
        rng.shuffle(titles)
        inputs = hostile_inputs(program, titles, rng)
        rendered = program.render(**inputs)
        if "49" in rendered.text or "<class" in rendered.text:
            evaluated += 1
        out = backend.generate(
            rendered.prompt,
            constraint=rendered.constraint,
            max_tokens=rendered.max_tokens,
            temperature=1.0,
            seed=n,
        )
        if rendered.constraint.validate(out.text) is not None:
            invalid.append(f"{name}: {out.text[:120]!r}")
        per_spec[name] = per_spec.get(name, 0) + 1
    return {
        "calls": calls,
        "calls_by_spec": per_spec,
        "hostile_strings": len(HOSTILE),
        "invalid_constrained_outputs": len(invalid),
        "invalid_examples": invalid[:5],
        "prompts_where_hostile_text_was_evaluated": evaluated,
        "temperature": 1.0,
        "model": backend.name,
    }


def hostile_inputs(program: Any, titles: list[str], rng: random.Random) -> dict[str, Any]:
    """Fill a spec's declared inputs with hostile titles (history, candidates, targets)."""
    values: dict[str, Any] = {}
    for name, declared in program.spec.inputs.items():
        kind = declared.type
        if kind == "candidates":
            count = declared.count or len(titles)
            values[name] = titles[:count]
        elif kind in ("items", "history"):
            values[name] = rng.sample(HOSTILE, 5)
        elif kind == "str" and declared.required:
            values[name] = rng.choice(HOSTILE)
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=3)
    parser.add_argument("--calls", type=int, default=24)
    parser.add_argument("--only", choices=["fuzz", "hostile"])
    args = parser.parse_args()
    if args.only in (None, "fuzz"):
        result = fuzz_counts(args.scale)
        print(result)
        merge_result("reliability", "fuzz", result)
    if args.only in (None, "hostile"):
        result = hostile_through_model(args.calls)
        print(result)
        merge_result("reliability", "hostile", result)


if __name__ == "__main__":
    main()
