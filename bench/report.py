"""report.html at scale: a 10,000-case ranking report's size and Chromium's time to render it.

Builds 10,000 cases shaped like the README's main job (rank.letters on MovieLens 100K: 20
history titles, 1 positive + 19 sampled negatives, the real rendered prompt kept per case),
with seeded random letter scores standing in for the model, then writes the report page as
``recprompt eval`` does and renders it in headless Chromium. MovieLens has 943 users, so the
cases come from several protocol seeds (each samples other negatives).

Targets: the page stays under 10 MB; Chromium renders it to a screenshot in under 3 s. The
same screenshot of a near-empty page is timed in the same run, so the ratio shows what the
report costs beyond Chromium's start-up.

    RECPROMPT_DATA=../shared/data nice -n 10 python bench/report.py [CASES]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import recprompt
from recprompt.data import load_dataset
from recprompt.eval.browser import dump_dom, timed_screenshot
from recprompt.eval.cases import default_protocol
from recprompt.eval.evaluate import _ranking_baselines
from recprompt.eval.html import render_report
from recprompt.eval.report import position_table
from recprompt.eval.runner import make_cases, train_split
from recprompt.eval.scoring import per_case_values, summarize
from recprompt.eval.significance import paired_table
from recprompt.rank import ranking_diagnostics

from _common import write_result


def build(n_cases: int):
    program = recprompt.load("rank.letters")
    dataset = load_dataset("ml-100k")
    cases, seed = [], 0
    while len(cases) < n_cases:
        protocol = default_protocol(program.spec, dataset.name, seed=seed)
        for case in make_cases(program, dataset, protocol):
            case.id = f"{seed}:{case.id}"
            cases.append(case)
        seed += 1
    cases = cases[:n_cases]
    train = train_split(dataset, default_protocol(program.spec, dataset.name, seed=0))
    rng = np.random.default_rng(0)
    records = []
    for case in cases:
        prompt = program.render(**case.inputs).text
        names = case.meta["candidate_names"]
        logits = rng.normal(size=len(names)) + np.where(
            np.arange(len(names)) == case.meta["positive_index"], 1.0, 0.0
        )
        probs = np.exp(logits) / np.exp(logits).sum()
        order = np.argsort(-probs)
        ranking = [names[i] for i in order]
        records.append(
            {
                "id": case.id,
                "label": case.label,
                "value": ranking,
                "raw": None,
                "scores": {names[i]: float(probs[i]) for i in order},
                "error": None,
                "decode": "letters",
                "usage": {"calls": 1, "prompt_tokens": len(prompt) // 4, "seconds": 0.3},
                "meta": {k: v for k, v in case.meta.items() if k != "candidate_items"},
                "prompts": [prompt],
                "prompt_count": 1,
            }
        )
    return program, dataset, train, cases, records


def main(n_cases: int = 10_000) -> None:
    started = time.perf_counter()
    program, dataset, train, cases, records = build(n_cases)
    built = time.perf_counter() - started
    values = per_case_values(program.spec, records, 0.0)
    base_values = _ranking_baselines(["random", "popularity"], train, cases, 0)
    t = time.perf_counter()
    paired = paired_table(values, base_values, seed=0)
    paired_seconds = time.perf_counter() - t
    report = {
        "spec": program.spec.name,
        "spec_hash": "bench",
        "variant": "lettered",
        "demos": 0,
        "model": "seeded random letter scores (benchmark)",
        "protocol": {"dataset": dataset.name, "seed": "0..", "n_negatives": 19},
        "temperature": 0.0,
        "seed": 0,
        "cases": len(records),
        "metrics": summarize(values, 0),
        "validity": {"n": len(records), "invalid": 0, "invalid_rate": 0.0},
        "invalid_policy": "unparseable ranking = miss",
        "baselines": {k: summarize(v, 0) for k, v in base_values.items()},
        "dataset": {"name": dataset.name},
        "position": position_table(records),
        "diagnostics": ranking_diagnostics(records, train.popularity(), k=10, bucket=5),
        "usage": {"all_cases": {"calls": len(records)}},
        "versions": {},
        "paired": paired,
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        page = folder / "report.html"
        t = time.perf_counter()
        html = render_report(report, records, values)
        render_seconds = time.perf_counter() - t
        page.write_text(html, encoding="utf-8")
        size = page.stat().st_size
        blank = folder / "blank.html"
        blank.write_text("<!DOCTYPE html><title>blank</title><p>blank</p>", encoding="utf-8")
        shots, blanks = [], []
        for _ in range(3):  # interleaved, so both see the same machine load
            blanks.append(timed_screenshot(blank, folder / "blank.png"))
            shots.append(timed_screenshot(page, folder / "report.png"))
        dom = dump_dom(page)
        rows = dom.count('class="case-row"')
    screenshot_s = statistics.median(shots)
    blank_s = statistics.median(blanks)
    write_result(
        "report",
        {
            "what": "report.html of a rank.letters-shaped run on ml-100k (real rendered prompts, "
            "seeded random scores), Chromium 156 headless; screenshots: medians of 3, interleaved "
            "with a near-empty page",
            "cases": len(records),
            "html_bytes": size,
            "html_mb": round(size / 1e6, 2),
            "bytes_per_case": round(size / len(records)),
            "raw_prompt_bytes": sum(len(r["prompts"][0].encode()) for r in records),
            "under_10_mb": size < 10_000_000,
            "render_html_seconds": round(render_seconds, 3),
            "paired_stats_seconds": round(paired_seconds, 3),
            "build_cases_seconds": round(built, 2),
            "screenshot_seconds": round(screenshot_s, 3),
            "screenshot_seconds_all": [round(s, 3) for s in shots],
            "blank_page_screenshot_seconds": round(blank_s, 3),
            "report_over_blank_ratio": round(screenshot_s / blank_s, 2),
            "under_3_s": screenshot_s < 3.0,
            "case_rows_in_dom": rows,
            "page_ready_in_dom": 'data-ready="1"' in dom,
        },
    )


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))
