"""Every system of the literature the project serves, run end to end with the default model.

One ``recprompt eval`` command per row (P5's five families, ChatGPT-rec's five tasks,
LLMRank, PRP, TALLRec, PALR, LLM-Rec, and ChatGPT-rec's explanation after a recommendation),
each on N seeded users of the shared data, with the disk cache on (a rerun is free). Writes
bench/results/systems.json and prints the README table.

    RECPROMPT_DATA=../shared/data nice -n 10 python bench/systems.py [N]
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
ML, AMAZON = "ml-100k", "amazon-2018-all-beauty-5core"
ROWS = [  # (system, task, spec, data, headline metric); text and multi-stage rows first
    ("P5", "review summary (4-x)", "p5.review_summary", AMAZON, "rouge-l"),
    ("P5", "explanation (3-x)", "p5.explanation", AMAZON, "bleu-4"),
    ("ChatGPT-rec", "review summary", "chatgpt.review_summary", AMAZON, "rouge-l"),
    ("ChatGPT-rec", "explanation", "chatgpt.explanation", AMAZON, "bleu-4"),
    ("ChatGPT-rec", "recommend, then explain", "chatgpt.explain_recommendation", AMAZON, "bleu-4"),
    ("PALR", "profile -> rank", "palr.ranking", ML, "ndcg@10"),
    ("LLM-Rec", "enrich -> rank", "llmrec.ranking", ML, "ndcg@10"),
    ("TALLRec", "like / dislike", "tallrec.binary", ML, "auc"),
    ("P5", "rating (1-x)", "p5.rating", ML, "rmse"),
    ("ChatGPT-rec", "rating", "chatgpt.rating", ML, "rmse"),
    ("P5", "sequential (2-x)", "p5.sequential", ML, "ndcg@10"),
    ("ChatGPT-rec", "sequential", "chatgpt.sequential", ML, "ndcg@10"),
    ("LLMRank", "listwise ranking", "llmrank.ranking", ML, "ndcg@10"),
    ("PRP", "pairwise ranking (heap)", "rank.pairwise", ML, "ndcg@10"),
    ("P5", "direct (5-x), 1+99", "p5.direct", ML, "ndcg@10"),
    ("ChatGPT-rec", "direct, 1+99", "chatgpt.direct", ML, "ndcg@10"),
]


def command(spec: str, data: str, users: int) -> list[str]:
    return ["eval", spec, "--data", data, "--users", str(users), "--seed", "0"]


def run(spec: str, data: str, users: int, out: Path) -> dict[str, Any]:
    args = [*command(spec, data, users), "--out", str(out)]
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", "from recprompt.cli import main; main()", *args],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    seconds = round(time.monotonic() - started, 1)
    if done.returncode != 0:
        return {"error": (done.stderr or done.stdout)[-400:], "seconds": seconds}
    report = json.loads((out / "report.json").read_text())
    return {"report": report, "seconds": seconds}


def _cell(metrics: dict[str, Any], name: str) -> str:
    cell = metrics.get(name)
    if not cell:
        return "–"
    digits = 3 if name in ("rmse", "auc") or "@" in name else 2
    text = f"{cell['value']:.{digits}f}"
    if "ci_low" in cell:
        text += f" [{cell['ci_low']:.2f}, {cell['ci_high']:.2f}]"
    return text


def main() -> None:
    users = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    work = Path(tempfile.mkdtemp(prefix="recprompt-systems-"))
    rows, table = (
        [],
        [
            f"| system | task | command (+ `--out DIR`) | cases | metric (N={users} users) | "
            "best baseline | s/case |",
            "|---|---|---|---|---|---|---|",
        ],
    )
    for system, task, spec, data, metric in ROWS:
        result = run(spec, data, users, work / spec)
        cmd = "recprompt " + " ".join(command(spec, data, users))
        row: dict[str, Any] = {"system": system, "task": task, "command": cmd, "metric": metric}
        if "error" in result:
            row["error"] = result["error"]
            table.append(f"| {system} | {task} | `{cmd}` | – | failed | – | – |")
            rows.append(row)
            print(row, file=sys.stderr)
            continue
        report = result["report"]
        lower = metric in ("rmse", "mae")
        baselines = {k: v[metric]["value"] for k, v in report["baselines"].items() if metric in v}
        best = (min if lower else max)(baselines, key=baselines.get) if baselines else None
        row |= {
            "cases": report["cases"],
            "value": report["metrics"][metric],
            "baselines": baselines,
            "validity": report["validity"],
            "stages": report.get("stages"),
            "seconds": result["seconds"],
        }
        best_text = f"{best} {baselines[best]:.3f}" if best else "–"
        table.append(
            f"| {system} | {task} | `{cmd}` | {report['cases']} | {metric} "
            f"{_cell(report['metrics'], metric)} | {best_text} | "
            f"{result['seconds'] / report['cases']:.2f} |"
        )
        rows.append(row)
        print(table[-1], file=sys.stderr)
        # written after every row: a long campaign keeps what it finished
        result = {"users": users, "model": "local (Gemma 3 270M)", "rows": rows, "table": table}
        write_result("systems", result)
    print("\n".join(table))


if __name__ == "__main__":
    main()
