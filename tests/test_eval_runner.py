"""The evaluation runner: torn writes, refusal of mixed runs, kill-and-resume on the real model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recprompt.eval.store import ResultStore


def test_store_drops_torn_and_corrupt_lines(tmp_path):
    store = ResultStore(tmp_path / "r.jsonl")
    for n in range(3):
        store.append({"id": str(n), "value": n})
    store.append({"id": "1", "value": 99})  # a duplicate id is never written twice
    lines = (tmp_path / "r.jsonl").read_text().splitlines()
    assert len(lines) == 3
    corrupt = lines[1].replace('\\"value\\": 1', '\\"value\\": 7')  # payload no longer matches crc
    torn = lines[2][: len(lines[2]) // 2]  # a write cut midway
    (tmp_path / "r.jsonl").write_text(lines[0] + "\n" + corrupt + "\n" + torn)
    reopened = ResultStore(tmp_path / "r.jsonl")
    assert sorted(reopened.records) == ["0"] and reopened.dropped == 2
    assert (tmp_path / "r.jsonl").read_text().count("\n") == 1  # repaired on disk
    reopened.append({"id": "1", "value": 1})
    assert ResultStore(tmp_path / "r.jsonl").records["1"]["value"] == 1


def _eval(out: Path, data_root: Path) -> subprocess.Popen:
    env = {**os.environ, "RECPROMPT_DATA": str(data_root)}
    command = [
        sys.executable, "-m", "recprompt.cli", "eval", "p5.rating", "--data", "ml-100k",
        "--users", "4", "--seed", "0", "--out", str(out), "--no-cache",
        "--baselines", "global_mean,user_mean",
    ]  # fmt: skip
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _values(out: Path) -> dict[str, float]:
    return {r["id"]: r["value"] for r in ResultStore(out / "results.jsonl")}


@pytest.mark.model
def test_killed_run_resumes_to_the_same_results(tmp_path, data_root):
    whole = _eval(tmp_path / "whole", data_root)
    assert whole.wait(timeout=300) == 0, whole.stdout.read().decode()
    killed = _eval(tmp_path / "killed", data_root)
    results = tmp_path / "killed" / "results.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if results.exists() and results.read_text().count("\n") >= 4:
            break
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    partial = len(_values(tmp_path / "killed"))
    expected = _values(tmp_path / "whole")
    assert 4 <= partial < len(expected)
    resumed = _eval(tmp_path / "killed", data_root)
    assert resumed.wait(timeout=300) == 0, resumed.stdout.read().decode()
    assert _values(tmp_path / "killed") == pytest.approx(expected, abs=1e-6)
    lines = results.read_text().splitlines()
    assert len(lines) == len(expected)  # nothing duplicated
    report = json.loads((tmp_path / "killed" / "report.json").read_text())
    assert report["protocol"]["seed"] == 0 and report["cases"] == len(expected)
    assert {"global_mean", "user_mean"} <= set(report["baselines"])
    assert (tmp_path / "killed" / "report.md").exists()
    assert (tmp_path / "killed" / "metrics.png").stat().st_size > 1000


def test_a_folder_of_another_run_is_refused(tmp_path):
    from recprompt.errors import RecpromptError
    from recprompt.eval.runner import RunConfig, check_folder

    config = RunConfig("a", "h1", "1-1", 0, "local", {"seed": 0}, 0.0, 0)
    check_folder(tmp_path, config)
    check_folder(tmp_path, config)  # the same run resumes
    other = RunConfig("a", "h1", "1-1", 0, "local", {"seed": 1}, 0.0, 0)
    with pytest.raises(RecpromptError, match=r"different run .*protocol"):
        check_folder(tmp_path, other)


def test_reports_are_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    from recprompt._files import write_text_atomic

    target = write_text_atomic(tmp_path / "report.json", '{"old": 1}')

    def crash(self, other):  # the process dies between writing the temp file and renaming it
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        write_text_atomic(target, '{"new": 2}')
    assert target.read_text() == '{"old": 1}'  # never half of the new text
    monkeypatch.undo()
    write_text_atomic(target, '{"new": 2}')
    assert target.read_text() == '{"new": 2}' and sorted(p.name for p in tmp_path.iterdir()) == [
        "report.json"
    ]
