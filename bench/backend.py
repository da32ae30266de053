"""Benchmark of the local llama.cpp backend; writes bench/results/backend.json.

Run: ``python bench/backend.py [--repeats 7] [--validity-calls 200]``.

Every comparison is a ratio of medians measured in the same process, interleaved, so that
load from other processes on the machine affects both sides alike:

a. overhead: recprompt ``generate`` under an ItemList constraint vs a raw llama-cpp-python
   ``create_completion`` with the same processor (as a ``logits_processor``) producing the same
   text (target ratio <= 1.05);
b. scoring 20 multi-token titles after a >= 400-token prompt: shared prefix vs 20 independent
   full evaluations (target >= 10x), with the largest score difference;
c. constrained vs unconstrained generation of the same number of tokens;
d. validity: top-10 of 20 candidates at temperature 1.0, N seeded calls (must all be valid);
e. compile cost: the trie processor vs an outlines_core index for the same ItemList regex.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from recprompt.backends import LocalBackend
from recprompt.backends.processors import LlamaCppLogitsProcessor, RegexProcessor
from recprompt.constraints import Choice, FreeText, ItemList

TITLES = (
    "Toy Story (1995)",
    "GoldenEye (1995)",
    "Four Rooms (1995)",
    "Get Shorty (1995)",
    "Copycat (1995)",
    "Twelve Monkeys (1995)",
    "Babe (1995)",
    "Dead Man Walking (1995)",
    "Richard III (1995)",
    "Seven (Se7en) (1995)",
    "The Usual Suspects (1995)",
    "Mighty Aphrodite (1995)",
    "Postino, Il (1994)",
    "Mr. Holland's Opus (1995)",
    "French Twist (1995)",
    "From Dusk Till Dawn (1996)",
    "White Balloon, The (1995)",
    "Antonia's Line (1995)",
    "Angels and Insects (1995)",
    "Muppet Treasure Island (1996)",
)
ITEMS = tuple(f"item_{i}" for i in range(1, 21))
HISTORY = "The user rated these movies: " + "; ".join(
    f"{t} rated {1 + i % 5}" for i, t in enumerate(TITLES * 2)
)


def timed(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def bench_overhead(backend: LocalBackend, repeats: int) -> dict[str, Any]:
    from llama_cpp import LogitsProcessorList

    constraint = ItemList(TITLES, 10, "python_list")
    prompt = HISTORY + "\nCandidates: " + ", ".join(TITLES) + "\nTop 10 as a python list: "
    processor = backend.processor(constraint)
    n_prompt = len(backend.tokenize(prompt))

    def ours() -> str:
        backend.reset()  # both sides evaluate the whole prompt, in the same batches
        return backend.generate(prompt, constraint=constraint, max_tokens=200).text

    def raw() -> str:
        adapter = LlamaCppLogitsProcessor(processor, n_prompt)
        with backend._model.lock:
            backend.reset()
            out = backend.llm.create_completion(
                prompt,
                max_tokens=200,
                temperature=0.0,
                repeat_penalty=1.0,
                logits_processor=LogitsProcessorList([adapter]),
            )
        return out["choices"][0]["text"]

    ours(), raw()  # warm both (processor memo, prefix cache)
    t_ours, t_raw, texts = [], [], set()
    for _ in range(repeats):
        dt, a = timed(ours)
        t_ours.append(dt)
        dt, b = timed(raw)
        t_raw.append(dt)
        texts.update([a, b])
    ours_s, raw_s = statistics.median(t_ours), statistics.median(t_raw)
    return {
        "recprompt_s": ours_s,
        "raw_create_completion_s": raw_s,
        "ratio": ours_s / raw_s,
        "target_ratio_max": 1.05,
        "same_text": len(texts) == 1,
        "completion_tokens": len(backend.tokenize(texts.pop(), bos=False)),
        "prompt_tokens": n_prompt,
    }


def bench_scoring(backend: LocalBackend, repeats: int) -> dict[str, Any]:
    prompt = HISTORY + "\nThe next movie the user will watch is:"
    conts = [" " + t for t in TITLES]
    n_prompt = len(backend.tokenize(prompt))

    def shared() -> list[float]:
        backend.reset()
        return backend.score(prompt, conts)

    def independent() -> list[float]:
        out = []
        for c in conts:
            backend.reset()
            out.extend(backend.score(prompt, [c]))
        return out

    t_shared, t_indep = [], []
    for _ in range(max(1, repeats // 2)):
        dt, a = timed(shared)
        t_shared.append(dt)
        dt, b = timed(independent)
        t_indep.append(dt)
    s, i = statistics.median(t_shared), statistics.median(t_indep)
    return {
        "prompt_tokens": n_prompt,
        "continuation_tokens": [len(backend.tokenize(c, bos=False)) for c in conts],
        "repeats": len(t_shared),
        "shared_s": s,
        "independent_s": i,
        "speedup": i / s,
        "target_speedup_min": 10,
        "max_abs_diff": max(abs(x - y) for x, y in zip(a, b, strict=True)),
    }


def bench_constrained_vs_free(backend: LocalBackend, repeats: int) -> dict[str, Any]:
    results = {}
    list_prompt = "Candidates: " + ", ".join(ITEMS) + "\nTop 10: "
    cases = {
        "choice_1_token": ("Do you like it? Answer:", Choice(("Yes", "No")), 1),
        "itemlist_top10": (list_prompt, ItemList(ITEMS, 10), 60),
    }
    for name, (prompt, constraint, budget) in cases.items():
        text = backend.generate(prompt, constraint=constraint, max_tokens=budget).text
        n = len(backend.tokenize(text, bos=False))
        t_c, t_f = [], []
        for _ in range(repeats):
            t_c.append(
                timed(
                    lambda p=prompt, c=constraint, b=budget: backend.generate(
                        p, constraint=c, max_tokens=b
                    )
                )[0]
            )
            dt, free = timed(
                lambda p=prompt, n=n: backend.generate(
                    p, constraint=FreeText(stop=()), max_tokens=n
                )
            )
            t_f.append(dt)
        c, f = statistics.median(t_c), statistics.median(t_f)
        results[name] = {
            "tokens": n,
            "free_tokens": free.usage.completion_tokens,
            "constrained_s": c,
            "unconstrained_s": f,
            "ratio": c / f,
            "delta_ms": 1e3 * (c - f),
        }
    return results


def bench_validity(backend: LocalBackend, calls: int) -> dict[str, Any]:
    constraint = ItemList(ITEMS, 10, "python_list")
    prompt = "The user liked item_4 and item_9.\nCandidates: " + ", ".join(ITEMS) + "\nTop 10: "
    valid, start = 0, time.perf_counter()
    for seed in range(calls):
        text = backend.generate(
            prompt, constraint=constraint, max_tokens=80, temperature=1.0, seed=seed
        ).text
        valid += constraint.validate(text) is None
        if (seed + 1) % 20 == 0:
            print(f"validity: {valid}/{seed + 1}", flush=True)
    return {"calls": calls, "valid": valid, "seconds": time.perf_counter() - start}


def bench_compile(backend: LocalBackend) -> dict[str, Any]:
    constraint = ItemList(TITLES, 10, "python_list")
    vocab = backend._model.vocab
    from recprompt.backends.processors import compile_constraint

    dt_trie, proc = timed(lambda: compile_constraint(constraint, vocab))
    dt_first, _ = timed(lambda: proc.allowed(proc.initial()))
    dt_outlines, _ = timed(lambda: RegexProcessor(constraint.regex(), vocab))
    return {
        "trie_compile_s": dt_trie,
        "trie_first_mask_s": dt_first,
        "outlines_index_s": dt_outlines,
        "note": "outlines index does not enforce distinctness",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--validity-calls", type=int, default=200)
    parser.add_argument("--only", nargs="*", help="sections to run; others kept from --out")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "backend.json"))
    args = parser.parse_args()
    load_s, backend = timed(LocalBackend)
    vocab_s, _ = timed(lambda: backend._model.vocab)
    previous = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else {}
    report: dict[str, Any] = {
        **(previous if args.only else {}),
        "model": backend.name,
        "n_threads": backend.llm.n_threads,
        "load_s": load_s,
        "vocab_build_s": vocab_s,
        "loadavg_start": os.getloadavg(),
    }
    for key, fn in [
        ("overhead", lambda: bench_overhead(backend, args.repeats)),
        ("scoring", lambda: bench_scoring(backend, args.repeats)),
        ("constrained_vs_free", lambda: bench_constrained_vs_free(backend, args.repeats)),
        ("compile", lambda: bench_compile(backend)),
        ("validity", lambda: bench_validity(backend, args.validity_calls)),
    ]:
        if args.only and key not in args.only:
            continue
        report[key] = fn()
        report["loadavg_end"] = os.getloadavg()
        print(key, json.dumps(report[key], indent=1), flush=True)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")  # partial results too
    print("wrote", args.out)


if __name__ == "__main__":
    main()
