"""Fuzz and hostile-data campaign: spec failures stay located, constrained outputs stay valid.

1. Runs the hypothesis suites (tests/test_fuzz_specs.py, tests/test_hostile_data.py) with
   ``RECPROMPT_FUZZ_SCALE`` times the CI example counts and collects hypothesis' counts of
   generated examples: every YAML or decorator spec either builds or fails with a located
   ``RecpromptError``.
2. Drives the local model with hostile candidate titles (Jinja, template escapes, prompt
   injection, quotes and brackets) through built-in specs at temperature 1.0, one seed per
   call, and counts outputs the constraint rejects (must be 0) and rendered prompts where
   hostile text was evaluated instead of shown (must be 0).

3. Resource cases: exponential YAML (billion laughs under ``demos.examples`` and
   ``output.schema``, recursive anchors), an oversized spec, duplicate keys and YAML
   booleans, and template bombs (huge ``%`` and ``format`` widths, chained ``**``,
   ``center``/``indent`` widths, nested ``range(100000)`` loops, doubling ``~``, fan-out
   macros) at validation and, behind an input-dependent ``if``, at render time. Each case
   runs in a forked child with a 5 s deadline and 500 MB of address space above its start;
   it must end in a located ``RecpromptError``: no hang, no memory error, no traceback.

Counts go under ``"fuzz"``, ``"hostile"`` and ``"resources"`` in
``bench/results/reliability.json``.

    python bench/fuzz.py [--scale 3] [--calls 24] [--only fuzz|hostile|resources]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_hostile_data import HOSTILE, PLAIN
from test_spec_limits import BASE, BOMBS, lol

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


DEADLINE_S = 5.0
MEMORY_BYTES = 500 * 2**20


def resource_cases() -> dict[str, tuple[str, str]]:
    """name -> (where: 'validate' or 'render', spec text)."""

    def nested(lines: str, indent: int) -> str:
        return "\n".join(" " * indent + line for line in lines.splitlines())

    cases: dict[str, tuple[str, str]] = {
        "yaml: billion laughs in demos.examples": (
            "validate",
            BASE + "demos:\n  examples:\n    - user_id: '1'\n      history:\n"
            + nested(lol(), 4) + "\n",
        ),
        "yaml: billion laughs in output.schema": (
            "validate",
            BASE.replace(
                "output: {name: rating, type: rating, scale: [1, 5]}",
                "output:\n  type: object\n  schema:\n    enum:\n" + nested(lol(), 6),
            ).replace("metric: rmse\n", ""),
        ),
        "yaml: recursive anchor": ("validate", BASE + "demos:\n  examples: &a [*a]\n"),
        "yaml: 50 MB spec": ("validate", BASE + "description: '" + "x" * 50_000_000 + "'\n"),
        "yaml: 100k nested brackets": ("validate", BASE + "x: " + "[" * 100_000 + "\n"),
        "yaml: duplicate key": ("validate", BASE + "metric: mae\n"),
        "yaml: unquoted Yes/No": (
            "validate",
            BASE.replace("name: rating, type: rating, scale: [1, 5]",
                         "name: liked, type: choice, options: [Yes, No]"),
        ),
    }  # fmt: skip
    for name, template in BOMBS.items():
        cases[f"template at validate: {name}"] = (
            "validate",
            BASE.replace("Rating:", "Rating: " + template),
        )
        cases[f"template at render: {name}"] = ("render", template)
    return cases


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _vm_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _child(where: str, text: str, out: int) -> None:
    from recprompt.errors import RecpromptError

    start_rss = _rss_bytes()
    limit = _vm_bytes() + MEMORY_BYTES
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    started = time.monotonic()
    outcome, message = "loaded", ""
    try:
        if where == "render":  # validation skipped: rendering itself must be bounded
            spec = recprompt.parse_spec(BASE).model_copy(update={"template": text})
            recprompt.Program(spec).render(user_id="go", history=[])
            outcome = "rendered"
        else:
            recprompt.parse_spec(text, "case.yaml")
    except RecpromptError as exc:
        located = exc.location is not None or where == "render"
        outcome, message = ("refused" if located else "refused, not located"), str(exc)[:160]
    except MemoryError:
        outcome = "memory"
    except BaseException as exc:
        outcome, message = "traceback", f"{type(exc).__name__}: {exc}"[:160]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result = {
        "outcome": outcome,
        "message": message,
        "seconds": round(time.monotonic() - started, 3),
        "memory_mb": round(max(peak - start_rss, 0) / 2**20, 1),
    }
    os.write(out, json.dumps(result).encode())
    os._exit(0)


def resource_campaign() -> dict[str, Any]:
    """Every resource case in a forked child under the deadline and the memory bound."""
    recprompt.parse_spec(BASE)  # import and warm up once, before forking
    by_case: dict[str, Any] = {}
    for name, (where, text) in resource_cases().items():
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            _child(where, text, write)
        os.close(write)
        started = time.monotonic()
        while True:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() - started > DEADLINE_S:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
            time.sleep(0.02)
        raw = b""
        while chunk := os.read(read, 65536):
            raw += chunk
        os.close(read)
        result = json.loads(raw) if raw else {"outcome": "hang", "seconds": DEADLINE_S}
        by_case[name] = result
        print(f"{name}: {result['outcome']} in {result['seconds']} s", flush=True)
    outcomes = [r["outcome"] for r in by_case.values()]
    return {
        "cases": len(by_case),
        "refused_with_clear_error": outcomes.count("refused"),
        "hangs_over_5s": outcomes.count("hang"),
        "memory_over_500mb": outcomes.count("memory")
        + sum(1 for r in by_case.values() if r.get("memory_mb", 0) > 500),
        "tracebacks": outcomes.count("traceback"),
        "not_located": outcomes.count("refused, not located"),
        "accepted": outcomes.count("loaded") + outcomes.count("rendered"),
        "max_seconds": max(r["seconds"] for r in by_case.values()),
        "max_memory_mb": max(r.get("memory_mb", 0) for r in by_case.values()),
        "deadline_s": DEADLINE_S,
        "memory_bound_mb": MEMORY_BYTES // 2**20,
        "by_case": by_case,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=3)
    parser.add_argument("--calls", type=int, default=24)
    parser.add_argument("--only", choices=["fuzz", "hostile", "resources"])
    args = parser.parse_args()
    if args.only in (None, "fuzz"):
        result = fuzz_counts(args.scale)
        print(result)
        merge_result("reliability", "fuzz", result)
    if args.only in (None, "resources"):
        result = resource_campaign()
        merge_result("reliability", "resources", result)
    if args.only in (None, "hostile"):
        result = hostile_through_model(args.calls)
        print(result)
        merge_result("reliability", "hostile", result)


if __name__ == "__main__":
    main()
