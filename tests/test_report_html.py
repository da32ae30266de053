"""report.html and compare.html: rendered by a real headless Chromium, escaped, paired.

The runs use a deterministic fake scorer (no model) on a small dataset whose every title
carries a planted script, so each case row holds hostile text.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import zlib
from collections.abc import Sequence
from pathlib import Path

import pytest

import recprompt
from recprompt.backends.base import Completion, Usage
from recprompt.data import Dataset
from recprompt.eval.browser import dump_dom, find_chromium
from recprompt.eval.cases import default_protocol
from recprompt.eval.evaluate import evaluate

PLANT = "<script>document.body.dataset.pwned='script'</script>"
PLANT += "<img src=x onerror=\"document.body.dataset.pwned='img'\">"


class FakeBackend:
    """Deterministic log-likelihoods from a hash of prompt and option (``salt`` changes them)."""

    supports_logits = True

    def __init__(self, salt: str = "") -> None:
        self.usage = Usage()
        self.salt = salt
        self.name = f"fake{salt}"

    def score(self, prompt: str, continuations: Sequence[str]) -> list[float]:
        self.usage.calls += 1
        self.usage.prompt_tokens += len(prompt) // 4
        text = self.salt + prompt
        return [-(zlib.crc32((text + c).encode()) % 1000) / 300 for c in continuations]

    def generate(self, prompt, *, constraint, max_tokens, temperature=0.0, seed=None):
        self.usage.calls += 1
        return Completion("A", Usage(calls=1))


def hostile_dataset(n_users: int = 14, n_items: int = 32) -> Dataset:
    users, items, ratings, times = [], [], [], []
    for u in range(n_users):
        for j in range(7):
            users.append(str(u))
            items.append(str((u * 5 + j * 3) % n_items))
            ratings.append(1 + (u + j) % 5)
            times.append(j)
    titles = {str(i): {"title": f"Movie {i} {PLANT} ({1990 + i % 10})"} for i in range(n_items)}
    return Dataset.from_records("hostile", users, items, ratings, times, items=titles)


def run_eval(out: Path, *, salt: str = "", users: int = 12, seed: int = 0) -> dict:
    program = recprompt.load("rank.letters", backend=FakeBackend(salt))
    data = hostile_dataset()
    protocol = default_protocol(program.spec, data.name, n_users=users, seed=seed)
    return evaluate(
        program, data, protocol, out, baselines=["random", "popularity"], progress=False
    )


@pytest.fixture(scope="module")
def chromium() -> str:
    found = find_chromium()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs Chromium (.ci/run installs Debian's chromium package)")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    return found


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    folders = {"a": root / "a", "a_again": root / "a_again", "b": root / "b"}
    run_eval(folders["a"])
    run_eval(folders["a_again"])
    run_eval(folders["b"], salt="other")
    return folders


def test_report_json_and_md_pair_the_program_with_each_baseline(runs) -> None:
    report = json.loads((runs["a"] / "report.json").read_text())
    assert set(report["paired"]) == {"random", "popularity"}
    cell = report["paired"]["popularity"]["ndcg@10"]
    assert cell["low"] <= cell["difference"] <= cell["high"] and 0 < cell["p_value"] <= 1
    program = report["metrics"]["ndcg@10"]["value"]
    baseline = report["baselines"]["popularity"]["ndcg@10"]["value"]
    assert cell["difference"] == pytest.approx(program - baseline)
    markdown = (runs["a"] / "report.md").read_text()
    assert "paired on the same cases" in markdown and "| popularity | ndcg@10 |" in markdown
    per_case = json.loads((runs["a"] / "per_case.json").read_text())
    assert len(per_case["ids"]) == report["cases"] == len(per_case["baselines"]["random"]["mrr"])


def test_each_case_keeps_its_exact_prompt(runs) -> None:
    from recprompt.eval.store import ResultStore

    records = list(ResultStore(runs["a"] / "results.jsonl"))
    assert all(r["prompt_count"] == 1 and len(r["prompts"]) == 1 for r in records)
    prompt = records[0]["prompts"][0]
    assert prompt.rstrip().endswith("Answer:") and PLANT in prompt
    candidates = records[0]["meta"]["candidate_names"]
    assert all(name in prompt for name in candidates)


def test_report_renders_in_chromium_and_the_planted_script_never_runs(runs, chromium) -> None:
    page = runs["a"] / "report.html"
    html = page.read_text()
    assert "<script>document.body" not in html and "http://" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )  # escaped everywhere, nothing fetched from a network
    dom = dump_dom(page)
    assert 'data-ready="1"' in dom and "data-pwned" not in dom
    rows = re.findall(r'<tr class="case-row[^"]*" data-case="([^"]+)"', dom)
    assert len(rows) == 12
    assert "&lt;script&gt;document.body.dataset.pwned" in dom  # shown as text
    assert dom.count('class="metric-plot"') == 7 and 'class="errorbar"' in dom
    assert 'class="position-plot"' in dom and 'class="paired-plot"' in dom
    assert re.search(r'<tr class="program" data-system="program"><td>program</td>', dom)
    assert (runs["a"] / "report.png").stat().st_size > 10_000


def test_a_case_opens_its_prompt_answer_truth_and_metrics(runs, chromium) -> None:
    from recprompt.eval.store import ResultStore

    record = next(iter(ResultStore(runs["a"] / "results.jsonl")))
    dom = dump_dom(runs["a"] / "report.html", fragment=f"case={record['id']}")
    assert 'class="detail-row"' in dom and "data-pwned" not in dom
    shown = re.search(r'<pre class="prompt">(.*?)</pre>', dom, re.S).group(1)
    unescaped = shown.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"')
    assert unescaped.replace("&amp;", "&") == record["prompts"][0]
    assert "Truth" in dom and "This case's metrics" in dom and "Scores" in dom


def test_compare_pairs_identical_runs_with_p_one(runs, tmp_path, chromium) -> None:
    from recprompt.eval.compare import compare_runs

    stats = compare_runs([runs["a"], runs["a_again"]], tmp_path / "same.html")
    paired = stats["paired"]["a_again"]
    assert paired and all(d["p_value"] == 1.0 and d["difference"] == 0.0 for d in paired.values())
    assert stats["agreement"]["same"] == 12
    different = compare_runs([runs["a"], runs["b"]], tmp_path / "compare.html")
    assert different["agreement"]["same"] < 12
    dom = dump_dom(tmp_path / "compare.html")
    assert 'data-ready="1"' in dom and "data-pwned" not in dom
    agreements = re.findall(r"<td>(hit differs|answer differs|same)</td></tr>", dom)
    assert len(agreements) == 12 and agreements == sorted(
        agreements, key=["hit differs", "answer differs", "same"].index
    )  # disagreements first


def test_compare_refuses_runs_over_different_cases(runs, tmp_path, cli) -> None:
    from recprompt.cli import app
    from recprompt.eval.store import ResultStore

    fewer = tmp_path / "fewer"
    run_eval(fewer, users=10)
    result = cli.invoke(
        app, ["compare", str(runs["a"]), str(fewer), "--out", str(tmp_path / "x.html")]
    )
    assert result.exit_code == 2
    assert "hold different cases" in result.output and "hint:" in result.output
    assert not (tmp_path / "x.html").exists()
    swapped = tmp_path / "swapped"  # the same ids, but one case drew other candidates
    shutil.copytree(runs["a"], swapped)
    lines = (swapped / "results.jsonl").read_text().splitlines()
    record = json.loads(json.loads(lines[0])["payload"])
    record["meta"]["candidates"] = list(reversed(record["meta"]["candidates"]))
    (swapped / "results.jsonl").unlink()
    store = ResultStore(swapped / "results.jsonl")
    store.append(record)
    for line in lines[1:]:
        store.append(json.loads(json.loads(line)["payload"]))
    result = cli.invoke(app, ["compare", str(runs["a"]), str(swapped)])
    assert result.exit_code == 2
    assert f"case {record['id']} has different candidates" in result.output


def test_compare_refuses_runs_without_model_results_and_a_folder_twice(runs, tmp_path, cli):
    """Both used to write a page of '0 cases' (or of a run against itself) with exit 0."""
    from recprompt.cli import app

    program = recprompt.load("rank.letters")
    data = hostile_dataset()
    protocol = default_protocol(program.spec, data.name, n_users=12, seed=0)
    only = tmp_path / "baselines_only"
    evaluate(program, data, protocol, only, baselines_only=True, progress=False)
    out = tmp_path / "x.html"
    result = cli.invoke(app, ["compare", str(runs["a"]), str(only), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "no model results" in result.output and not out.exists()
    twice = cli.invoke(app, ["compare", str(runs["a"]), str(runs["a"]) + "/", "--out", str(out)])
    assert twice.exit_code == 2, twice.output
    assert "twice" in twice.output and not out.exists()


@pytest.mark.parametrize("out", ["a/results.jsonl", "a/run.html", "b/report.html", "b/sub/x.html"])
def test_compare_never_writes_into_a_run_folder_it_compares(runs, tmp_path, cli, out) -> None:
    from recprompt.cli import app
    from recprompt.errors import InputError
    from recprompt.eval.compare import compare_runs

    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(runs["a"], a)
    shutil.copytree(runs["a_again"], b)

    def snapshot() -> dict[str, bytes]:
        return {str(p): p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}

    before = snapshot()
    result = cli.invoke(app, ["compare", str(a), str(b), "--out", str(tmp_path / out)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    if "sub" not in out:  # the command line refuses a missing folder first; the library makes it
        assert "lies inside" in result.output
    with pytest.raises(InputError, match="lies inside"):
        compare_runs([a, b], tmp_path / out)
    assert snapshot() == before and not (tmp_path / "b" / "sub").exists()


def _no_value(report: dict) -> dict:
    report["metrics"] = {name: {"ci_low": 0.1} for name in report["metrics"]}
    return report


MALFORMED = {
    "report list": ("report.json", lambda _: [], "a JSON list, not an object"),
    "report metrics lack value": ("report.json", _no_value, "has no numeric 'value'"),
    "report metrics a list": ("report.json", lambda r: {**r, "metrics": [1]}, "'metrics' is a"),
    "run.json string": ("run.json", lambda _: "run", "a JSON str, not an object"),
    "per_case short": (
        "per_case.json",
        lambda p: {**p, "program": {k: v[:-1] for k, v in p["program"].items()}},
        "one per case id",
    ),
    "per_case ids object": ("per_case.json", lambda p: {**p, "ids": {}}, "'ids' is not a list"),
    "per_case NaN": (
        "per_case.json",
        lambda p: {**p, "program": {k: [float("nan")] * len(v) for k, v in p["program"].items()}},
        "NaN or infinite",
    ),
    "per_case infinite": (
        "per_case.json",
        lambda p: {**p, "program": {k: [float("inf")] * len(v) for k, v in p["program"].items()}},
        "NaN or infinite",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_compare_refuses_a_run_file_of_the_wrong_shape(runs, tmp_path, cli, case) -> None:
    from recprompt.cli import app

    name, change, message = MALFORMED[case]
    broken = tmp_path / "broken"
    shutil.copytree(runs["a"], broken)
    path = broken / name
    path.write_text(json.dumps(change(json.loads(path.read_text()))))
    out = tmp_path / "x.html"
    result = cli.invoke(app, ["compare", str(runs["a_again"]), str(broken), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert str(path) in result.output and message in result.output
    assert "hint:" in result.output and not out.exists()


def _rewrite_records(folder: Path, change) -> None:
    """Rewrite results.jsonl with each record changed, checksums kept valid."""
    import zlib

    path = folder / "results.jsonl"
    lines = []
    for line in path.read_text().splitlines():
        payload = json.dumps(change(json.loads(json.loads(line)["payload"])))
        lines.append(json.dumps({"crc": f"{zlib.crc32(payload.encode()):08x}", "payload": payload}))
    path.write_text("\n".join(lines) + "\n")


def _replace_with_folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


UNREADABLE = {
    "run.json not UTF-8": (lambda f: (f / "run.json").write_bytes(b"\xff\xfe{}"), "run.json"),
    "report.json nested too deeply": (
        lambda f: (f / "report.json").write_text("[" * 100_000 + "]" * 100_000),
        "nested too deeply",
    ),
    "results.jsonl a folder": (
        lambda f: _replace_with_folder(f / "results.jsonl"),
        "results.jsonl is not as",
    ),
    "record meta a list": (
        lambda f: _rewrite_records(f, lambda r: {**r, "meta": [1]}),
        "'meta' is a JSON list, not an object",
    ),
    "record prompts a number": (
        lambda f: _rewrite_records(f, lambda r: {**r, "prompts": 5}),
        "'prompts' is a JSON int, not a list",
    ),
    "record scores a string": (
        lambda f: _rewrite_records(f, lambda r: {**r, "scores": "x"}),
        "'scores' is a JSON str, not an object",
    ),
}


@pytest.mark.parametrize("case", sorted(UNREADABLE))
def test_compare_refuses_unreadable_run_files_without_a_traceback(runs, tmp_path, cli, case):
    """Each of these ended in a traceback (UnicodeDecodeError, RecursionError,
    IsADirectoryError, AttributeError, TypeError)."""
    from recprompt.cli import app

    damage, message = UNREADABLE[case]
    broken = tmp_path / "broken"
    shutil.copytree(runs["a"], broken)
    damage(broken)
    out = tmp_path / "x.html"
    result = cli.invoke(app, ["compare", str(runs["a_again"]), str(broken), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert message in result.output and "hint:" in result.output and not out.exists()


def test_records_without_prompts_still_render(runs) -> None:
    import numpy as np

    from recprompt.eval.html import render_report
    from recprompt.eval.store import ResultStore

    report = json.loads((runs["a"] / "report.json").read_text())
    records = [
        {k: v for k, v in r.items() if k not in ("prompts", "prompt_count")}
        for r in ResultStore(runs["a"] / "results.jsonl")
    ]
    page = render_report(report, records, {"mrr": np.ones(len(records))})
    data = re.search(r'id="case-data">(.*?)</script>', page, re.S).group(1)
    assert "<" not in data and all(r["prompts"] is None for r in json.loads(data)["rows"])


def test_plots_show_every_metric_with_error_bars_and_integer_positions(runs) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from recprompt.eval.plots import _metrics_figure, _position_figure

    report = json.loads((runs["a"] / "report.json").read_text())
    fig = _metrics_figure(plt, report)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == list(report["metrics"])  # ndcg@10 included
    from matplotlib.container import ErrorbarContainer

    assert all(any(isinstance(c, ErrorbarContainer) for c in ax.containers) for ax in panels)
    plt.close(fig)
    fig = _position_figure(plt, report["position"])
    ticks = fig.axes[0].get_xticks()
    assert len(ticks) and all(float(t).is_integer() for t in ticks)
    plt.close(fig)
    assert all((runs["a"] / n).stat().st_size for n in ("metrics.png", "paired.png"))
    assert (runs["a"] / "position_bias.png").exists()


def test_a_rating_run_pairs_errors_and_renders_its_cases(tmp_path) -> None:
    program = recprompt.load("p5.rating", backend=FakeBackend())
    data = hostile_dataset()
    protocol = default_protocol(program.spec, data.name, n_users=8, seed=0)
    report = evaluate(
        program, data, protocol, tmp_path, baselines=["global_mean", "user_mean"], progress=False
    )
    assert set(report["paired"]["global_mean"]) == {"mse", "mae"}
    assert report["paired"]["user_mean"]["mae"]["better"] == "lower"
    page = (tmp_path / "report.html").read_text()
    data_json = re.search(r'id="case-data">(.*?)</script>', page, re.S).group(1)
    payload = json.loads(data_json)
    assert payload["rule"] == "hit: the prediction is within 0.5 of the truth"
    assert len(payload["rows"]) == report["cases"] and payload["metric_names"] == ["rmse", "mae"]
    assert all(isinstance(r["answer"], float) and r["prompts"] for r in payload["rows"])


def test_plots_take_intervals_that_miss_their_value_by_a_rounding_error(tmp_path) -> None:
    """6 cases whose every paired difference is -0.05 (hr@1 0 against random's exact 1/20)
    gave the interval [-0.05000000000000001, -0.05000000000000001] around the mean
    -0.049999999999999996: matplotlib refused the negative whisker and eval ended in a
    traceback after its last case, with no report.html."""
    from recprompt.eval.plots import write_plots

    below, mean = -0.05000000000000001, -0.049999999999999996
    cell = {"value": 0.05, "ci_low": 0.05000000000000001, "ci_high": 0.05000000000000001}
    report = {
        "spec": "rank.letters",
        "protocol": {"dataset": "d"},
        "cases": 6,
        "metrics": {"hr@1": {"value": 0.0, "ci_low": 0.0, "ci_high": 0.0}},
        "baselines": {"random": {"hr@1": cell}},
        "paired": {"random": {"hr@1": {"difference": mean, "low": below, "high": below}}},
    }
    write_plots(tmp_path, report)
    assert (tmp_path / "metrics.png").stat().st_size and (tmp_path / "paired.png").stat().st_size
