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

__all__ = ["package_versions", "write_markdown", "write_plots", "write_report"]

PACKAGES = (
    "recprompt",
    "dspy",
    "llama_cpp_python",
    "outlines",
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


def write_markdown(out: Path, report: dict[str, Any]) -> Path:
    """The program and its baselines side by side, then validity, protocol and cost."""
    rows = {"program": report["metrics"], **report.get("baselines", {})}
    names = list(report["metrics"])
    lines = [
        f"# {report['spec']} [{report['variant']}] on {report['protocol'].get('dataset')}",
        "",
        f"Model: `{report['model']}` · cases: {report['cases']} · spec hash "
        f"`{report['spec_hash'][:12]}` · seed {report['protocol'].get('seed')}",
        "",
        "| system | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for system, metrics in rows.items():
        lines.append(f"| {system} | " + " | ".join(_fmt(metrics.get(n)) for n in names) + " |")
    lines += ["", "Values are means with seeded 95% bootstrap intervals.", "", "## Validity", ""]
    lines += [f"- {k}: {v}" for k, v in report["validity"].items()]
    if report.get("position"):
        lines += ["", "## Hit rate by the positive's position in the candidate list", ""]
        lines += ["| position | cases | hit rate |", "|---|---|---|"]
        lines += [
            f"| {p['position']} | {p['cases']} | {p['hit_rate']:.3f} |" for p in report["position"]
        ]
    from recprompt.eval.report_sections import extra_sections

    lines += extra_sections(report)
    lines += ["", "## Protocol", "", "```json", json.dumps(report["protocol"], indent=2), "```"]
    lines += ["", "## Cost", "", "```json", json.dumps(report["usage"], indent=2), "```", ""]
    path = out / "report.md"
    write_text_atomic(path, "\n".join(lines))
    return path


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


def write_plots(out: Path, report: dict[str, Any]) -> list[Path]:
    """Metric comparison (program vs baselines) and hit rate by the positive's position."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    rows = {"program": report["metrics"], **report.get("baselines", {})}
    names = [n for n in report["metrics"] if n != "auc"][:6]
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / max(len(rows), 1)
    for n, (system, metrics) in enumerate(rows.items()):
        xs = [i + n * width for i in range(len(names))]
        values = [metrics.get(m, {}).get("value", 0.0) for m in names]
        ax.bar(xs, values, width, label=system)
    ax.set_xticks([i + width * (len(rows) - 1) / 2 for i in range(len(names))], names)
    ax.set_title(f"{report['spec']} on {report['protocol'].get('dataset')}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "metrics.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths.append(path)
    if report.get("position"):
        fig, ax = plt.subplots(figsize=(8, 3.5))
        table = report["position"]
        ax.bar([p["position"] for p in table], [p["hit_rate"] for p in table])
        ax.set_xlabel("position of the positive in the candidate list")
        ax.set_ylabel("HR@10")
        ax.set_title("Position bias")
        fig.tight_layout()
        path = out / "position_bias.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths
