"""The report's PNG figures (matplotlib): metrics with bootstrap error bars, paired
differences, and hit rate by integer position.

Every metric the report computes gets its own panel (their scales differ: NDCG in [0, 1],
RMSE in stars), with the program beside each baseline and whiskers from the seeded 95%
bootstrap interval. Axes of integer quantities (positions) get integer ticks only.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from recprompt._files import atomic_writer

__all__ = ["write_plots"]

PROGRAM, BASELINE = "#d9480f", "#4c6ef5"


def _grid(n: int) -> tuple[int, int]:
    cols = min(n, 4)
    return math.ceil(n / cols), cols


def _metrics_figure(plt: Any, report: dict[str, Any]) -> Any:
    systems = {"program": report["metrics"], **report.get("baselines", {})}
    names = list(report["metrics"])
    rows, cols = _grid(len(names))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        labels, values, low, high, colors = [], [], [], [], []
        for system, metrics in systems.items():
            cell = metrics.get(name)
            if not cell:
                continue
            labels.append(system)
            values.append(cell["value"])
            low.append(max(0.0, cell["value"] - cell.get("ci_low", cell["value"])))
            high.append(max(0.0, cell.get("ci_high", cell["value"]) - cell["value"]))
            colors.append(PROGRAM if system == "program" else BASELINE)
        ys = range(len(labels))
        ax.barh(ys, values, color=colors, alpha=0.85, xerr=[low, high], capsize=3)
        ax.set_yticks(list(ys), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(name, fontsize=10)
        ax.tick_params(axis="x", labelsize=8)
    for ax in list(axes.flat)[len(names) :]:
        ax.set_visible(False)
    fig.suptitle(
        f"{report['spec']} on {report['protocol'].get('dataset')} "
        f"({report.get('cases')} cases, 95% bootstrap intervals)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def _paired_figure(plt: Any, paired: dict[str, dict[str, dict[str, Any]]]) -> Any:
    metrics = list(dict.fromkeys(m for rows in paired.values() for m in rows))
    rows, cols = _grid(len(metrics))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        entries = [(b, r[metric]) for b, r in paired.items() if metric in r]
        ys = range(len(entries))
        diffs = [d["difference"] for _, d in entries]
        # an interval of equal differences can miss their mean by a rounding error
        # (-0.05000000000000001 around -0.049999999999999996), and matplotlib refuses a
        # negative whisker: the run ended in a traceback after its last case, without report
        err = [
            [max(0.0, d["difference"] - d["low"]) for _, d in entries],
            [max(0.0, d["high"] - d["difference"]) for _, d in entries],
        ]
        ax.errorbar(diffs, list(ys), xerr=err, fmt="o", color=PROGRAM, capsize=3)
        ax.axvline(0.0, color="#868e96", linewidth=1)
        ax.set_yticks(list(ys), [b for b, _ in entries], fontsize=8)
        ax.invert_yaxis()
        ax.set_title(f"{metric}: program − baseline", fontsize=10)
        ax.tick_params(axis="x", labelsize=8)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def _position_figure(plt: Any, table: list[dict[str, Any]]) -> Any:
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(8, 3.5))
    positions = [int(p["position"]) for p in table]
    ax.bar(positions, [p["hit_rate"] for p in table], color=BASELINE)
    if len(positions) <= 30:
        ax.set_xticks(positions)  # one tick per position
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("position of the positive in the candidate list")
    ax.set_ylabel("HR@10")
    ax.set_ylim(0, 1.05)
    ax.set_title("Position bias")
    fig.tight_layout()
    return fig


def write_plots(out: Path, report: dict[str, Any]) -> list[Path]:
    """``metrics.png``, ``paired.png`` (when baselines were paired) and ``position_bias.png``
    (ranking runs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = {}
    if report.get("metrics"):
        figures["metrics.png"] = _metrics_figure(plt, report)
    if report.get("paired"):
        figures["paired.png"] = _paired_figure(plt, report["paired"])
    if report.get("position"):
        figures["position_bias.png"] = _position_figure(plt, report["position"])
    paths = []
    for name, fig in figures.items():
        path = out / name
        with atomic_writer(path, "wb") as handle:  # a crash never leaves half a PNG
            fig.savefig(handle, format="png", dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths
