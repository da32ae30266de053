"""Reports: ``report.json`` (everything), ``report.md`` (program beside baselines), plots.

Every report carries the protocol, the spec hash, the model and the package versions: numbers
from different protocols must never be compared, and a reader must be able to rerun them.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from recprompt._files import write_text_atomic
from recprompt.eval.plots import write_plots
from recprompt.eval.significance import markdown_lines

__all__ = ["package_versions", "write_markdown", "write_plots", "write_report"]

PACKAGES = (
    "recprompt",
    "dspy",
    "llama_cpp_python",
    "outlines_core",
    "litellm",
    "pydantic",
    "numpy",
    "scipy",
)


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def write_report(out: Path, report: dict[str, Any]) -> Path:
    text = json.dumps(report, indent=2, sort_keys=True, default=str)
    return write_text_atomic(out / "report.json", text)


def _fmt(cell: dict[str, float] | None) -> str:
    if not cell:
        return "–"
    text = f"{cell['value']:.4f}"
    if "ci_low" in cell:
        text += f" [{cell['ci_low']:.3f}, {cell['ci_high']:.3f}]"
    return text


def _systems(report: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Rows (the program unless the run was baselines-only, then baselines) and metric names."""
    baselines = report.get("baselines", {})
    if report["metrics"]:
        return {"program": report["metrics"], **baselines}, list(report["metrics"])
    names = list(dict.fromkeys(n for metrics in baselines.values() for n in metrics))
    return dict(baselines), names


def _shortfalls(report: dict[str, Any]) -> list[str]:
    """Users requested against evaluated, and every warning of the run, above the table."""
    users = report.get("users") or {}
    lines = []
    if users.get("requested") is not None:
        lines.append(f"Users: {users['evaluated']} evaluated of {users['requested']} requested")
    lines += [f"**Warning:** {w}" for w in report.get("warnings", [])]
    return [part for line in lines for part in (line, "")]


def write_markdown(out: Path, report: dict[str, Any]) -> Path:
    """The program and its baselines side by side, then validity, protocol and cost."""
    rows, names = _systems(report)
    lines = [
        f"# {report['spec']} [{report['variant']}] on {report['protocol'].get('dataset')}",
        "",
        f"Model: `{report['model']}` · cases: {report['cases']} · spec hash "
        f"`{report['spec_hash'][:12]}` · seed {report['protocol'].get('seed')}",
        "",
        *_shortfalls(report),
        "| system | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for system, metrics in rows.items():
        lines.append(f"| {system} | " + " | ".join(_fmt(metrics.get(n)) for n in names) + " |")
    lines += ["", "Values are means with seeded 95% bootstrap intervals."]
    lines += markdown_lines(report.get("paired") or {})
    lines += ["", "## Validity", ""]
    lines += [f"- {k}: {v}" for k, v in report["validity"].items()]
    lines += _server_notes(report.get("usage", {}).get("all_cases", {}))
    if report.get("position"):
        lines += ["", "## Hit rate by the positive's position in the candidate list", ""]
        lines += ["| position | cases | hit rate |", "|---|---|---|"]
        lines += [
            f"| {p['position']} | {p['cases']} | {p['hit_rate']:.3f} |" for p in report["position"]
        ]
    from recprompt.eval.signal import signal_markdown

    lines += signal_markdown(report)
    from recprompt.eval.report_sections import extra_sections

    lines += extra_sections(report)
    lines += ["", "## Protocol", "", "```json", json.dumps(report["protocol"], indent=2), "```"]
    lines += ["", "## Cost", "", "```json", json.dumps(report["usage"], indent=2), "```", ""]
    path = out / "report.md"
    write_text_atomic(path, "\n".join(lines))
    return path


def _server_notes(usage: dict[str, Any]) -> list[str]:
    """Repairs and truncated scores of a server run, said in words (see http_scoring)."""
    notes = []
    if usage.get("invalid_before_repair"):
        notes.append(
            f"- invalid answers before repair: {int(usage['invalid_before_repair'])}, "
            f"still invalid after repair: {int(usage.get('invalid_after_repair', 0))}"
        )
    if usage.get("truncated_scores"):
        notes.append(
            f"- {int(usage['truncated_scores'])} option score(s) fell outside the server's "
            "top_logprobs limit and were set to the smallest value shown (an upper bound)"
        )
    return notes


def position_table(records: Sequence[dict[str, Any]], k: int = 10) -> list[dict[str, Any]]:
    """Hit rate at k by where the positive stood in the candidate list (position bias)."""
    by_position: dict[int, list[bool]] = {}
    for r in records:
        position = r["meta"].get("positive_index")
        if position is None:
            continue
        ranked = r["value"] if isinstance(r["value"], list) else []
        hit = r["label"] in ranked[:k]
        if r.get("scores"):
            ordered = sorted(r["scores"], key=r["scores"].get, reverse=True)
            hit = r["label"] in ordered[:k]
        by_position.setdefault(int(position), []).append(hit)
    return [
        {"position": p + 1, "cases": len(h), "hit_rate": sum(h) / len(h)}
        for p, h in sorted(by_position.items())
    ]
