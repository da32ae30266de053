"""``report.html``: one self-contained page per run, opened straight from disk.

The page holds the protocol, the metrics with intervals beside the baselines (table and
inline SVG with error bars), the paired differences, validity, position and popularity bias,
cost, any further section a report carries, and a case table whose rows open the exact
prompts, the raw output or scores, the parsed answer, the truth and the case's metrics.

Safety: the page is rendered by Jinja with autoescaping; case data travels as JSON inside a
``<script type="application/json">`` element with every ``<`` escaped, and the page's script
puts it into the document only as text. No file, font or script is fetched from anywhere.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
from markupsafe import Markup

from recprompt._files import write_text_atomic
from recprompt.eval.cases_view import Interner, case_payload, script_json
from recprompt.eval.significance import per_case_json
from recprompt.eval.svg import Bar, hbars, position_bars

__all__ = ["render_report", "write_case_files"]

KNOWN = frozenset(
    {
        "spec", "spec_hash", "variant", "demos", "model", "protocol", "temperature", "seed",
        "cases", "metrics", "validity", "invalid_policy", "baselines", "dataset", "position",
        "diagnostics", "usage", "versions", "paired",
    }
)  # fmt: skip
"""Report keys with their own section; any other key is shown under "More"."""


def _num(value: Any, digits: int = 4) -> str:
    if isinstance(value, bool) or value is None:
        return "–" if value is None else str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        return (
            str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.{digits}f}"
        )
    return str(value)


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("recprompt.eval", "assets"),
        autoescape=True,
        undefined=jinja2.ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _num
    return env


@cache
def asset(name: str) -> Markup:
    """A CSS or JS file of the package, inlined verbatim (our own code, never data)."""
    return Markup(resources.files("recprompt.eval").joinpath("assets", name).read_text("utf-8"))


def metric_plots(report: dict[str, Any]) -> list[Markup]:
    """One chart per metric: program and baselines, bars with their bootstrap intervals."""
    systems = {"program": report.get("metrics", {}), **report.get("baselines", {})}
    plots = []
    for name in report.get("metrics", {}):
        bars = [
            Bar(system, cell["value"], cell.get("ci_low"), cell.get("ci_high"), system == "program")
            for system, metrics in systems.items()
            if (cell := metrics.get(name)) is not None
        ]
        plots.append(hbars(name, bars))
    return plots


def paired_plots(
    paired: dict[str, dict[str, dict[str, Any]]], what: str = "program − baseline"
) -> list[Markup]:
    """One chart per metric: program minus each baseline (or ``what``), paired interval."""
    metrics: dict[str, list[Bar]] = {}
    for baseline, rows in paired.items():
        for metric, d in rows.items():
            metrics.setdefault(metric, []).append(
                Bar(baseline, d["difference"], d["low"], d["high"])
            )
    return [
        hbars(f"{metric}: {what}", bars, css_class="paired-plot")
        for metric, bars in metrics.items()
    ]


def _position_tables(value: Any, path: str, depth: int = 0) -> list[tuple[str, list[dict]]]:
    """Every list of ``{position, hit_rate}`` rows in a report section (e.g. before and after
    calibration), with where it was found."""
    found: list[tuple[str, list[dict]]] = []
    if (
        isinstance(value, list)
        and value
        and all(isinstance(r, dict) and "position" in r and "hit_rate" in r for r in value)
    ):
        return [(path, value)]
    if isinstance(value, dict) and depth < 3:
        for key, inner in value.items():
            found += _position_tables(inner, f"{path} · {key}" if path else str(key), depth + 1)
    return found


def report_context(report: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    metric_names = list(report.get("metrics", {}))
    systems = {"program": report.get("metrics", {}), **report.get("baselines", {})}
    diagnostics = dict(report.get("diagnostics") or {})
    tables = []
    if report.get("position"):
        tables.append(("hit rate at 10 by position", report["position"]))
    diagnostics.pop("position", None)  # the same as report["position"], in coarser buckets
    extra = {k: v for k, v in report.items() if k not in KNOWN}
    for key, value in extra.items():
        tables += _position_tables(value, key)
    for key, value in diagnostics.items():
        if key not in ("popularity", "cost"):
            tables += _position_tables(value, f"diagnostics · {key}")
    return {
        "page_title": f"{report.get('spec')} on {report.get('protocol', {}).get('dataset')}",
        "report": report,
        "metric_names": metric_names,
        "metric_rows": [(s, [m.get(n) for n in metric_names]) for s, m in systems.items()],
        "metric_plots": metric_plots(report),
        "paired": report.get("paired") or {},
        "paired_plots": paired_plots(report.get("paired") or {}),
        "position_plots": [position_bars(title, table) for title, table in tables],
        "popularity": diagnostics.get("popularity"),
        "cost": diagnostics.get("cost"),
        "extra": {
            **extra,
            **{
                f"diagnostics · {k}": v
                for k, v in diagnostics.items()
                if k not in ("popularity", "cost")
            },
        },
        "rule": payload.get("rule"),
    }


def render_report(
    report: dict[str, Any],
    records: Sequence[dict[str, Any]],
    values: dict[str, np.ndarray],
    *,
    page_size: int = 100,
) -> str:
    """The HTML page of one run."""
    strings = Interner()
    payload = case_payload(records, values, strings)
    data = strings.finish({**payload, "page_size": page_size})
    data["strings"] = strings.strings
    context = report_context(report, payload)
    return (
        environment()
        .get_template("report.html.j2")
        .render(
            **context,
            css=asset("style.css"),
            common_js=asset("common.js"),
            page_js=asset("report.js"),
            data_json=Markup(script_json(data)),
        )
    )


def write_case_files(
    out: Path,
    report: dict[str, Any],
    records: Sequence[dict[str, Any]],
    values: dict[str, np.ndarray],
    baseline_values: dict[str, dict[str, np.ndarray]],
) -> list[Path]:
    """``per_case.json`` (metric values by case, for ``recprompt compare``) and
    ``report.html``; ``report.png``, a screenshot of the page, when Chromium is installed."""
    from recprompt.eval.browser import BrowserError, find_chromium, screenshot

    ids = [str(r["id"]) for r in records]
    per_case = write_text_atomic(
        out / "per_case.json",
        json.dumps(per_case_json(ids, values, baseline_values), separators=(",", ":")),
    )
    page = write_text_atomic(out / "report.html", render_report(report, records, values))
    paths = [per_case, page]
    if find_chromium() is not None:
        try:
            paths.append(screenshot(page, out / "report.png"))
        except BrowserError as exc:  # the report itself is written; the picture is a bonus
            warnings.warn(f"no report.png: {exc}", stacklevel=2)
    return paths
