"""``recprompt compare RUN_A RUN_B ...``: runs over the same cases, side by side and paired.

Two variants, a tuned program against zero-shot, two models: a difference between runs means
something only on the same cases, so compare first checks that every run holds exactly the
same case ids with the same truths and candidates, and refuses otherwise. The first run is
the reference; for each other run it gives, per metric, the paired difference (run minus
reference) with a seeded bootstrap interval and a sign-flip p-value
(:func:`recprompt.eval.significance.paired_table`). The page lists the cases where the runs
disagree first, with each run's prompts and answers side by side.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from markupsafe import Markup

from recprompt._files import check_output_path, write_text_atomic
from recprompt.errors import InputError
from recprompt.eval.cases_view import Interner, case_payload, script_json
from recprompt.eval.html import asset, environment, paired_plots
from recprompt.eval.scoring import summarize
from recprompt.eval.significance import paired_table
from recprompt.eval.store import read_lines
from recprompt.eval.svg import Bar, hbars

__all__ = ["CompareError", "Run", "compare_runs", "load_run"]

RERUN = "rerun `recprompt eval` with the same arguments and --out: it resumes from the stored "
RERUN += "results (no model call) and rewrites the report files"


class CompareError(InputError):
    """Runs that cannot be compared: missing files, or different cases."""


@dataclass
class Run:
    """One finished ``recprompt eval`` folder, its records in case order."""

    folder: Path
    name: str
    config: dict[str, Any]
    report: dict[str, Any]
    ids: list[str]
    values: dict[str, np.ndarray]
    records: list[dict[str, Any]] = field(repr=False)


def _json(path: Path, what: str) -> dict[str, Any]:
    """A JSON object file of a run folder; anything else is refused, naming the file."""
    if not path.is_file():
        raise CompareError(f"{path.parent} has no {path.name} ({what})", hint=RERUN)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise CompareError(f"{path} is not valid JSON: nested too deeply", hint=RERUN) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CompareError(f"{path} is not valid JSON: {exc}", hint=RERUN) from None
    if not isinstance(value, dict):
        _malformed(path, f"a JSON {type(value).__name__}, not an object")
    return value


def _malformed(path: Path, problem: str) -> None:
    raise CompareError(f"{path} is not as `recprompt eval` writes it: {problem}", hint=RERUN)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_report(path: Path, report: dict[str, Any]) -> None:
    """The report's metrics: name -> {"value": number, optional "ci_low"/"ci_high"}."""
    metrics = report.get("metrics") or {}
    if not isinstance(metrics, dict):
        _malformed(path, f"'metrics' is a {type(metrics).__name__}, not an object")
    for name, cell in metrics.items():
        if not isinstance(cell, dict) or not _number(cell.get("value")):
            _malformed(path, f"metric {name!r} has no numeric 'value'")
        for bound in ("ci_low", "ci_high"):
            if cell.get(bound) is not None and not _number(cell[bound]):
                _malformed(path, f"metric {name!r} has a non-numeric {bound!r}")


def _per_case(path: Path, per_case: dict[str, Any]) -> tuple[list[str], dict[str, np.ndarray]]:
    """Case ids, and each metric's per-case values (one number per id)."""
    ids, program = per_case.get("ids", []), per_case.get("program", {})
    if not isinstance(ids, list):
        _malformed(path, "'ids' is not a list")
    if not isinstance(program, dict):
        _malformed(path, "'program' is not an object of metric names to value lists")
    values = {}
    for name, column in program.items():
        try:
            values[name] = np.asarray(column, dtype=float)
        except (TypeError, ValueError):
            values[name] = np.empty(0)
        if values[name].shape != (len(ids),):
            _malformed(path, f"'program.{name}' is not {len(ids)} numbers, one per case id")
        if not np.isfinite(values[name]).all():  # eval never writes NaN or infinity
            _malformed(path, f"'program.{name}' holds NaN or infinite values")
    return [str(i) for i in ids], values


_RECORD_FIELDS = {
    "meta": dict,
    "prompts": list,
    "scores": dict,
    "llm_scores": dict,
    "prior_scores": dict,
    "uncalibrated_scores": dict,
    "usage": dict,
}


def _check_record(path: Path, record: dict[str, Any]) -> None:
    """A stored case has the fields the page reads in the shapes `recprompt eval` writes."""
    for name, kind in _RECORD_FIELDS.items():
        value = record.get(name)
        if value is not None and not isinstance(value, kind):
            _malformed(
                path,
                f"case {record['id']!r}: {name!r} is a JSON {type(value).__name__}, not "
                f"{'an object' if kind is dict else 'a list'}",
            )


def load_run(folder: str | Path, name: str | None = None) -> Run:
    """Read a run folder: ``run.json``, ``report.json``, ``per_case.json``, ``results.jsonl``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CompareError(
            f"{folder} is not a run folder",
            hint="pass folders written by `recprompt eval --out FOLDER`",
        )
    config = _json(folder / "run.json", "what the run was")
    report = _json(folder / "report.json", "its metrics")
    _check_report(folder / "report.json", report)
    per_case = _json(folder / "per_case.json", "per-case metric values")
    ids, values = _per_case(folder / "per_case.json", per_case)
    records: dict[str, dict[str, Any]] = {}
    results = folder / "results.jsonl"
    if results.exists() and not results.is_file():
        _malformed(results, "not a regular file")
    try:
        lines = read_lines(results)[0]
    except OSError as exc:
        raise CompareError(f"{results} cannot be read: {exc}", hint=RERUN) from None
    for record in lines:
        _check_record(results, record)
        records.setdefault(str(record["id"]), record)  # the first valid line wins, as in the store
    missing = [i for i in ids if i not in records]
    if missing:
        raise CompareError(
            f"{folder}/results.jsonl lacks {len(missing)} case(s) of its report, e.g. {missing[0]}",
            hint=RERUN,
        )
    return Run(folder, name or folder.name, config, report, ids, values, [records[i] for i in ids])


def _case_key(record: dict[str, Any]) -> tuple[str, str]:
    meta = record.get("meta") or {}
    return json.dumps(record.get("label"), default=str), json.dumps(
        meta.get("candidates"), default=str
    )


def check_same_cases(runs: Sequence[Run]) -> None:
    """Refuse runs whose cases differ: ids, truths or candidate lists."""
    first = runs[0]
    reference = {i: _case_key(r) for i, r in zip(first.ids, first.records, strict=True)}
    for run in runs[1:]:
        ids = set(run.ids)
        extra = sorted(ids - set(reference))
        lacking = sorted(set(reference) - ids)
        if extra or lacking:
            parts = []
            if lacking:
                parts.append(f"lacks {len(lacking)} case(s) of {first.name} (e.g. {lacking[0]})")
            if extra:
                parts.append(f"has {len(extra)} case(s) {first.name} lacks (e.g. {extra[0]})")
            raise CompareError(
                f"{run.name} and {first.name} hold different cases: {run.name} "
                + " and ".join(parts),
                hint="compare runs of one protocol: same data, --users, --seed and negatives",
            )
        for case_id, record in zip(run.ids, run.records, strict=True):
            mine, theirs = _case_key(record), reference[case_id]
            if mine != theirs:
                what = "truth" if mine[0] != theirs[0] else "candidates"
                raise CompareError(
                    f"case {case_id} has different {what} in {run.name} than in {first.name}",
                    hint="compare runs of one protocol: same data, split, sampler and seed",
                )


def _aligned(run: Run, order: list[str]) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    index = {case_id: n for n, case_id in enumerate(run.ids)}
    take = np.array([index[i] for i in order], dtype=int)
    return [run.records[n] for n in take], {k: v[take] for k, v in run.values.items()}


def _summary(run: Run, values: dict[str, np.ndarray], seed: int) -> dict[str, dict[str, float]]:
    summary = summarize(values, seed) if values and len(run.ids) else {}
    for name, cell in (run.report.get("metrics") or {}).items():
        summary.setdefault(name, cell)  # e.g. AUC, which is not defined per case
    return summary


def _agreement(rows: Sequence[dict[str, Any]]) -> str:
    hits = {r["hit"] for r in rows}
    answers = {json.dumps(r["answer"]) for r in rows}
    if len(hits) > 1:
        return "hit differs"
    return "answer differs" if len(answers) > 1 else "same"


ORDER = {"hit differs": 0, "answer differs": 1, "same": 2}


def compare_runs(
    folders: Sequence[str | Path], out: str | Path, *, seed: int = 0, page_size: int = 100
) -> dict[str, Any]:
    """Write ``out`` (HTML) and its statistics beside it (``.json``); return the statistics.

    ``out`` and its ``.json`` may not lie inside any of the run folders compared."""
    if len(folders) < 2:
        raise CompareError("compare needs at least two run folders")
    out = Path(out)
    # the page and its .json go beside each other, never into a run folder being read
    check_output_path(
        out,
        inputs=folders,
        siblings=[out.with_suffix(".json")],
        apart_from=folders,
        make_parents=True,
    )
    seen: dict[Path, str | Path] = {}
    for folder in folders:  # a run against itself pairs every case with itself: p = 1
        if Path(folder).resolve() in seen:
            raise CompareError(
                f"{folder} is given twice (also as {seen[Path(folder).resolve()]})",
                hint="compare different runs",
            )
        seen[Path(folder).resolve()] = folder
    names = [Path(f).name for f in folders]
    if len(set(names)) != len(names):
        names = [str(f) for f in folders]
    runs = [load_run(f, n) for f, n in zip(folders, names, strict=True)]
    for run in runs:  # else a page of '0 cases', or 'lacks N cases' about another run
        if not run.ids:
            raise CompareError(
                f"{run.folder} has no model results to compare (a --baselines-only or "
                "--model none run?)",
                hint="compare runs of a model; each run's report.md lists its baselines",
            )
    check_same_cases(runs)
    order = runs[0].ids
    aligned = [_aligned(run, order) for run in runs]
    reference = runs[0]
    paired = {
        run.name: paired_table(values, {reference.name: aligned[0][1]}, seed=seed).get(
            reference.name, {}
        )
        for run, (_, values) in zip(runs[1:], aligned[1:], strict=True)
    }
    summaries = [
        _summary(run, values, seed) for run, (_, values) in zip(runs, aligned, strict=True)
    ]
    strings = Interner()
    payloads = [case_payload(records, values, strings) for records, values in aligned]
    rows = []
    for n, case_id in enumerate(order):
        per_run = [p["rows"][n] for p in payloads]
        first = per_run[0]
        rows.append(
            {
                "id": case_id,
                "truth": first["truth"],
                "position": first["position"],
                "agreement": _agreement(per_run),
                "runs": [
                    {k: v for k, v in r.items() if k not in ("id", "truth", "position")}
                    for r in per_run
                ],
            }
        )
    rows.sort(key=lambda r: ORDER[r["agreement"]])  # stable: case order within each group
    stats = {
        "runs": [
            {
                "name": r.name,
                "folder": str(r.folder),
                **{k: r.config.get(k) for k in ("spec", "variant", "model", "spec_hash")},
            }
            for r in runs
        ],
        "reference": reference.name,
        "cases": len(order),
        "metrics": {r.name: s for r, s in zip(runs, summaries, strict=True)},
        "paired": paired,
        "agreement": {k: sum(r["agreement"] == k for r in rows) for k in ORDER},
        "protocol": reference.config.get("protocol"),
    }
    metric_names = list(dict.fromkeys(m for s in summaries for m in s))
    plots = [
        hbars(
            metric,
            [
                Bar(
                    r.name,
                    s[metric]["value"],
                    s[metric].get("ci_low"),
                    s[metric].get("ci_high"),
                    n == 0,
                )
                for n, (r, s) in enumerate(zip(runs, summaries, strict=True))
                if metric in s
            ],
        )
        for metric in metric_names
    ]
    data = {
        "runs": [
            {"name": r.name, "metric_names": p["metric_names"], "primary": p["primary"]}
            for r, p in zip(runs, payloads, strict=True)
        ],
        "rule": payloads[0]["rule"],
        "rows": rows,
        "page_size": page_size,
    }
    data = strings.finish(data)
    data["strings"] = strings.strings
    page = (
        environment()
        .get_template("compare.html.j2")
        .render(
            stats=stats,
            metric_names=metric_names,
            summaries=list(zip(runs, summaries, strict=True)),
            plots=plots,
            rule=payloads[0]["rule"],
            paired_plots=paired_plots(paired, "run − reference"),
            css=asset("style.css"),
            common_js=asset("common.js"),
            page_js=asset("compare.js"),
            data_json=Markup(script_json(data)),
        )
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, page)
    write_text_atomic(out.with_suffix(".json"), json.dumps(stats, indent=2, default=str))
    return stats
