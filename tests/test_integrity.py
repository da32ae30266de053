"""Evaluation integrity: results tied to their run, files never destroyed, one writer per
folder, call budgets per call, honest dry-run counts, clear CLI errors, literal user text."""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
import random
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

import recprompt
from recprompt.backends.base import Completion, Usage
from recprompt.data import Dataset
from recprompt.errors import BudgetError, InputError, RecpromptError, ServerError
from recprompt.eval.cases import default_protocol
from recprompt.eval.evaluate import evaluate


class Scripted:
    """A deterministic backend with logits: scores hash the prompt, every call is counted."""

    name = "fake:scripted"
    supports_logits = True

    def __init__(self, fail: bool = False) -> None:
        self.calls = 0
        self.fail = fail
        self.usage = Usage()

    def _count(self) -> None:
        if self.fail:
            raise ServerError("model server unreachable at http://127.0.0.1:9")
        self.calls += 1
        self.usage.calls += 1

    def score(self, prompt: str, continuations: Sequence[str]) -> list[float]:
        self._count()
        return [
            -(int(hashlib.sha256((prompt + c).encode()).hexdigest()[:6], 16) % 1000) / 100
            for c in continuations
        ]

    def generate(self, prompt, *, constraint, max_tokens, temperature=0.0, seed=None):
        self._count()
        options = list(getattr(constraint, "options", ()) or ["3"])
        return Completion(options[0], Usage(calls=1))


def small_dataset(name: str = "tiny", *, users: int = 8, bump: float = 0.0) -> Dataset:
    """``users`` users with 8 rated interactions each; 8 users cover all 40 titled items."""
    rows = []
    for u in range(users):
        for t, i in enumerate((5 * u + j) % 40 for j in range(8)):
            rows.append((f"u{u}", f"i{i}", float(1 + (u + i) % 5), 1000 + t))
    if bump:
        user, item, rating, ts = rows[0]
        rows[0] = (user, item, rating + bump, ts)
    items = {f"i{i}": {"title": f"Movie {i} (199{i % 10})"} for i in range(40)}
    u, i, r, t = zip(*rows, strict=True)
    return Dataset.from_records(name, u, i, r, t, items=items)


def rating_program(backend=None):
    return recprompt.load("p5.rating", backend=backend or Scripted())


def protocol_for(program, ds: Dataset, **overrides):
    return default_protocol(program.spec, ds.name, **overrides)


def run(program, ds, out, **kw):
    kw.setdefault("baselines", ["global_mean"])
    return evaluate(program, ds, protocol_for(program, ds), out, progress=False, **kw)


# --- 1. foreign results are never reused -----------------------------------------------------


def test_results_without_run_json_are_refused_and_left_untouched(tmp_path):
    ds = small_dataset()
    first = tmp_path / "first"
    run(rating_program(), ds, first)
    (first / "run.json").unlink()
    before = (first / "results.jsonl").read_bytes()
    with pytest.raises(RecpromptError, match=r"no run\.json") as caught:
        run(rating_program(Scripted(fail=True)), ds, first)
    assert "rm -r" in str(caught.value)  # says how to start fresh
    assert (first / "results.jsonl").read_bytes() == before


class Fives(Scripted):
    """Another model: always five stars."""

    name = "fake:fives"

    def score(self, prompt: str, continuations: Sequence[str]) -> list[float]:
        self._count()
        return [0.0 if c == "5" else -9.0 for c in continuations]


@pytest.mark.parametrize("how", ["copied", "run.json edited"])
def test_another_runs_results_are_refused_not_reused(tmp_path, how):
    """results.jsonl copied from a run of another model over the same cases was reused
    whole: 0 calls, and the report gave that model's RMSE as this model's. So was a folder
    whose run.json was edited to match the rerun."""
    ds = small_dataset()
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    run(rating_program(), ds, mine)
    run(rating_program(Fives()), ds, theirs)
    if how == "copied":
        shutil.copy(theirs / "results.jsonl", mine / "results.jsonl")
        target = mine
    else:
        config = json.loads((theirs / "run.json").read_text())
        config["model"] = config["model_identity"]["name"] = "fake:scripted"
        (theirs / "run.json").write_text(json.dumps(config))
        target = theirs
    before = (target / "results.jsonl").read_bytes()
    backend = Scripted()
    with pytest.raises(RecpromptError, match=r"did not write .* none is reused") as caught:
        run(rating_program(backend), ds, target)
    assert "rm -r" in caught.value.hint and backend.calls == 0
    assert (target / "results.jsonl").read_bytes() == before


def test_a_folder_with_report_files_but_no_run_json_is_left_untouched(tmp_path):
    """A user's own report.md in --out was replaced without a word."""
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "report.md").write_text("my notes\n")
    with pytest.raises(RecpromptError, match=r"holds report\.md but no run\.json"):
        run(rating_program(), small_dataset(), folder)
    assert sorted(p.name for p in folder.iterdir() if p.name != ".recprompt.lock") == ["report.md"]
    assert (folder / "report.md").read_text() == "my notes\n"


def test_unreadable_run_json_is_refused(tmp_path):
    ds = small_dataset()
    run(rating_program(), ds, tmp_path)
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(RecpromptError, match="cannot be read"):
        run(rating_program(), ds, tmp_path)
    (tmp_path / "run.json").write_text("[" * 100_000 + "]" * 100_000)  # was a RecursionError
    with pytest.raises(RecpromptError, match="cannot be read"):
        run(rating_program(), ds, tmp_path)


def test_changed_data_under_the_same_name_is_refused_with_what_differs(tmp_path):
    run(rating_program(), small_dataset("ml-100k"), tmp_path)
    changed = small_dataset("ml-100k", bump=1.0)  # one rating differs, same name and size
    with pytest.raises(RecpromptError) as caught:
        run(rating_program(), changed, tmp_path)
    message = str(caught.value)
    assert "data.fingerprint" in message and "rm -r" in message
    assert "data.name" not in message  # the name is equal: content is what counts


def test_every_setting_that_makes_a_case_is_compared(tmp_path):
    ds = small_dataset()
    program = rating_program()
    evaluate(program, ds, protocol_for(program, ds), tmp_path, progress=False, baselines=[])
    other = rating_program()
    other.set_demos([{"user_id": "u1", "item_id": "i1", "rating": 4}])
    with pytest.raises(RecpromptError, match=r"spec_hash.*\n.*demos|demos"):
        evaluate(other, ds, protocol_for(other, ds), tmp_path, progress=False, baselines=[])
    with pytest.raises(RecpromptError, match=r"protocol\.seed"):
        evaluate(
            program, ds, protocol_for(program, ds, seed=1), tmp_path, progress=False, baselines=[]
        )
    identical = rating_program()
    evaluate(identical, ds, protocol_for(identical, ds), tmp_path, progress=False, baselines=[])
    assert identical.backend.calls == 0  # the same run resumes from its results


@pytest.mark.parametrize("baselines", [["bpr"], ["global_mean", "popularity"]])
def test_ranking_baselines_on_a_rating_spec_are_refused_before_any_folder(tmp_path, baselines):
    out = tmp_path / "run"
    with pytest.raises(InputError, match="cannot predict the ratings"):
        run(rating_program(), small_dataset(), out, baselines=baselines)
    assert not out.exists()


def test_run_json_records_content_fingerprints(tmp_path):
    ds = small_dataset()
    run(rating_program(), ds, tmp_path)
    saved = json.loads((tmp_path / "run.json").read_text())
    assert len(saved["data"]["fingerprint"]) == 64 and saved["data"]["interactions"] == len(ds)
    assert saved["cases"]["count"] > 0 and len(saved["cases"]["fingerprint"]) == 64
    assert saved["model_identity"]["name"] == "fake:scripted"


# --- 2. nothing destroyed on failure --------------------------------------------------------


def test_failed_eval_keeps_every_byte_of_existing_results(tmp_path):
    ds = small_dataset()
    run(rating_program(), ds, tmp_path)
    results = tmp_path / "results.jsonl"
    lines = results.read_text().splitlines()
    torn = lines[-1][:30]
    results.write_text("\n".join(lines[:-1]) + "\n" + torn)  # a crash tore the last line
    original = results.read_text()
    with pytest.raises(ServerError):
        run(rating_program(Scripted(fail=True)), ds, tmp_path)
    kept = results.read_text() + (tmp_path / "results.jsonl.dropped").read_text()
    assert results.stat().st_size > 0
    assert sorted(kept.split()) == sorted(original.split())


def test_dry_run_failure_leaves_out_file_untouched(tmp_path, cli, data_root, monkeypatch):
    from recprompt.cli import app

    monkeypatch.setenv("RECPROMPT_DATA", str(data_root))
    spec = tmp_path / "needs.yaml"
    spec.write_text(
        "name: needs.mood\ntask: rating\ninputs: {user_id: str, mood: str}\n"
        "template: 'user {{ user_id }} feels {{ mood }}'\n"
        "output: {name: rating, type: rating, scale: [1, 5], decode: expected}\n"
    )
    target = tmp_path / "prompts.jsonl"
    target.write_text("precious\n")
    result = cli.invoke(
        app, ["dry-run", str(spec), "--data", "ml-100k", "--users", "2", "--out", str(target)]
    )
    assert result.exit_code == 2, result.output
    assert target.read_text() == "precious\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_an_output_that_is_an_input_is_refused(tmp_path, cli, data_root, monkeypatch):
    from recprompt.cli import app
    from recprompt.library import resolve_spec_path

    monkeypatch.setenv("RECPROMPT_DATA", str(data_root))
    spec = tmp_path / "rating.yaml"
    shutil.copy(resolve_spec_path("p5.rating"), spec)
    before = spec.read_bytes()
    result = cli.invoke(
        app, ["dry-run", str(spec), "--data", "ml-100k", "--users", "2", "--out", str(spec)]
    )
    assert result.exit_code == 2 and "which this command reads" in result.output
    assert spec.read_bytes() == before
    data = data_root / "ml-100k"
    result = cli.invoke(app, ["eval", "p5.rating", "--data", str(data), "--out", str(data)])
    assert result.exit_code == 2 and "which this command reads" in result.output


def _special_files(tmp_path: Path) -> dict[str, Path]:
    """A symlink to a precious file, and a named pipe: outputs that must never be replaced."""
    precious = tmp_path / "precious.txt"
    precious.write_text("precious\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(precious)
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    return {"symlink": link, "fifo": fifo}


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_the_atomic_writer_never_replaces_a_special_file(tmp_path, kind):
    from recprompt._files import check_replaceable, write_text_atomic

    target = _special_files(tmp_path)[kind]
    before = os.lstat(target)
    with pytest.raises(InputError, match="not a regular file"):
        write_text_atomic(target, "new\n")
    after = os.lstat(target)
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)
    assert (tmp_path / "precious.txt").read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    with pytest.raises(InputError, match="a character device"):
        check_replaceable("/dev/null")  # checked only: the writer must never be tried on it


def test_a_read_only_file_is_never_replaced(tmp_path, cli, data_root, monkeypatch):
    """A rename replaces a file whatever its mode (and root ignores modes): a file made
    read-only, e.g. a protected result or a dataset file, was replaced without a word."""
    from recprompt._files import write_text_atomic
    from recprompt.cli import app

    kept = tmp_path / "kept.jsonl"
    kept.write_text("precious\n")
    kept.chmod(0o444)
    with pytest.raises(InputError, match="read-only"):
        write_text_atomic(kept, "new\n")
    monkeypatch.setenv("RECPROMPT_DATA", str(data_root))
    args = ["dry-run", "p5.rating", "--data", "ml-100k", "--users", "2", "--out", str(kept)]
    result = cli.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "read-only" in result.output and "Traceback" not in result.output
    assert kept.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.jsonl"]


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_dry_run_refuses_a_special_out_file_up_front(tmp_path, cli, data_root, monkeypatch, kind):
    from recprompt.cli import app

    monkeypatch.setenv("RECPROMPT_DATA", str(data_root))
    target = _special_files(tmp_path)[kind]
    before = os.lstat(target)
    result = cli.invoke(
        app, ["dry-run", "p5.rating", "--data", "ml-100k", "--users", "2", "--out", str(target)]
    )
    assert result.exit_code == 2, result.output
    assert "not a regular file" in result.output and "Traceback" not in result.output
    assert os.lstat(target).st_ino == before.st_ino
    assert (tmp_path / "precious.txt").read_text() == "precious\n"


# --- 3. one writer per folder, untorn files -------------------------------------------------


def _hammer(path: str, tag: str, n: int, errors) -> None:
    from recprompt._files import write_text_atomic

    for k in range(n):
        body = json.dumps({"writer": tag, "k": k, "pad": tag * (200 + k % 50)})
        try:
            write_text_atomic(path, body)
        except Exception as exc:  # any failure of a writer is a defect
            errors.put(repr(exc))


def test_concurrent_atomic_writes_never_fail_nor_tear(tmp_path):
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"writer": "-", "k": -1, "pad": ""}))
    ctx = multiprocessing.get_context("fork")
    errors = ctx.Queue()
    writers = [ctx.Process(target=_hammer, args=(str(path), t, 1500, errors)) for t in "ab"]
    for w in writers:
        w.start()
    torn = reads = 0
    while any(w.is_alive() for w in writers):
        try:
            json.loads(path.read_text())
        except json.JSONDecodeError:
            torn += 1
        reads += 1
    for w in writers:
        w.join()
    failures = []
    while not errors.empty():
        failures.append(errors.get())
    assert failures == [] and torn == 0 and reads > 0
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temp file left


def test_threads_writing_one_file_never_fail(tmp_path):
    import queue

    errors: queue.Queue[str] = queue.Queue()
    threads = [
        threading.Thread(target=_hammer, args=(str(tmp_path / "r.json"), t, 300, errors))
        for t in "xyz"
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors.empty()


def test_a_second_run_on_a_locked_folder_stops_clearly(tmp_path):
    from recprompt._files import exclusive_lock

    ds = small_dataset()
    backend = Scripted()
    held, done = threading.Event(), threading.Event()

    def other_run() -> None:  # another run (here a thread; a process in the next test)
        with exclusive_lock(tmp_path):
            held.set()
            done.wait(30)

    holder = threading.Thread(target=other_run)
    holder.start()
    assert held.wait(30)
    try:
        with pytest.raises(InputError, match=rf"another recprompt run \(pid {os.getpid()}\)"):
            run(rating_program(backend), ds, tmp_path)
    finally:
        done.set()
        holder.join()
    assert backend.calls == 0 and not (tmp_path / "results.jsonl").exists()
    with exclusive_lock(tmp_path):  # the holder's own thread may lock again and run
        run(rating_program(backend), ds, tmp_path)
    assert backend.calls > 0


def test_a_lock_file_that_is_a_symlink_is_never_followed(tmp_path):
    from recprompt._files import LOCK_NAME, exclusive_lock

    precious = tmp_path / "precious.txt"
    precious.write_text("keep me\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_NAME).symlink_to(precious)
    with pytest.raises(InputError, match="symbolic link"), exclusive_lock(run):
        pass
    assert precious.read_text() == "keep me\n"


def test_the_lock_is_released_when_its_holder_is_killed(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from recprompt._files import exclusive_lock

    code = (
        "import sys, time; from pathlib import Path; from recprompt._files import exclusive_lock\n"
        "with exclusive_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(recprompt.__file__).parents[1])}
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, env=env
    )
    assert holder.stdout.readline().strip() == b"held"
    with pytest.raises(InputError, match=f"pid {holder.pid}"), exclusive_lock(tmp_path):
        pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    time.sleep(0.05)
    with exclusive_lock(tmp_path):
        pass


# --- 10. call counts and per-call budgets ---------------------------------------------------


def pairwise_program(method: str = "heap", backend=None):
    from recprompt.compile.program import Program

    spec = recprompt.load("rank.pairwise").spec
    spec = spec.model_copy(update={"rank": spec.rank.model_copy(update={"method": method})})
    return Program(spec, backend=backend or Scripted())


def test_dry_run_counts_pairwise_calls_per_strategy():
    from recprompt.eval.dryrun import dry_run

    ds = small_dataset()
    # 20 candidates, top_k 10; the high end allows 3 repairs per ask (a server without logits)
    heap_high = 2 * (2 * 20 + 2 * 10 * 4)
    for method, low, high in (("allpair", 380, 380), ("heap", 38, heap_high), ("sliding", 38, 290)):
        program = pairwise_program(method)
        protocol = protocol_for(program, ds, n_negatives=19, n_users=3)
        result, rendered = dry_run(program, ds, protocol)
        list(rendered)
        summary = result.summary()
        assert result.cases == 3
        assert summary["model_calls_min"] == 3 * low, method
        assert summary["model_calls_max"] == 3 * high * 4, method
        typical = summary["model_calls_typical_local"]
        assert 3 * low <= typical <= 3 * high, method
        assert (typical == 3 * low) == (method == "allpair"), method  # the sorts do more
        assert "estimated_local_seconds" in summary
        assert not any("upper_bound" in key for key in summary)


@pytest.mark.parametrize("method", ["allpair", "sliding", "heap"])
def test_pairwise_call_ranges_hold_for_every_comparator(method):
    from recprompt.eval.calls import pairwise_calls
    from recprompt.rank.pairwise import Comparator, all_pairs, heap_top_k, sliding_window

    rng = random.Random(0)
    for _ in range(300):
        n, k = rng.randint(2, 25), rng.randint(1, 12)
        names = [f"c{i}" for i in range(n)]
        strength = {c: rng.random() for c in names}
        tie = rng.random() < 0.3

        def ask(a, b, strength=strength, tie=tie):
            if tie and rng.random() < 0.3:
                return 0.5
            return 1.0 if strength[a] > strength[b] else 0.0

        counted: list[int] = []
        compare = Comparator(lambda a, b, ask=ask, counted=counted: counted.append(1) or ask(a, b))
        if method == "allpair":
            all_pairs(names, compare)
        elif method == "sliding":
            sliding_window(names, compare, k)
        else:
            heap_top_k(names, compare, k)
        low, high = pairwise_calls(method, n, k)
        assert low <= len(counted) <= high, (n, k, len(counted), low, high)


def test_max_calls_holds_inside_a_pairwise_case(tmp_path):
    ds = small_dataset()
    backend = Scripted()
    program = pairwise_program("heap", backend)
    protocol = protocol_for(program, ds, n_negatives=19, n_users=3)
    with pytest.raises(BudgetError, match="max_calls=7"):
        evaluate(
            program,
            ds,
            protocol,
            tmp_path,
            progress=False,
            baselines=[],
            limits=__import__("recprompt.eval.runner", fromlist=["Limits"]).Limits(max_calls=7),
        )
    assert backend.calls == 7
    assert program.backend is backend  # the meter is removed after the run


# --- 13. shortfalls are reported ------------------------------------------------------------


def test_more_users_requested_than_exist_is_reported_and_warned(tmp_path):
    ds = small_dataset()
    program = rating_program()
    seen: list[str] = []
    report = evaluate(
        program,
        ds,
        protocol_for(program, ds, n_users=5000),
        tmp_path,
        progress=False,
        baselines=["global_mean"],
        on_warning=seen.append,
    )
    evaluated = len({r["meta"]["user_id"] for r in map(json.loads, _payloads(tmp_path))})
    assert report["users"] == {"requested": 5000, "evaluated": evaluated}
    assert seen and "5000" in seen[0] and f"only {evaluated}" in seen[0]
    assert report["warnings"] == seen
    markdown = (tmp_path / "report.md").read_text()
    assert f"{evaluated} evaluated of 5000 requested" in markdown


def _payloads(folder: Path) -> list[str]:
    lines = (folder / "results.jsonl").read_text().splitlines()
    return [json.loads(line)["payload"] for line in lines]


def test_a_top_k_list_longer_than_the_candidates_is_refused(tmp_path):
    ds = small_dataset()
    program = recprompt.load("rank.listwise", backend=Scripted())
    with pytest.raises(InputError, match=r"top-10 list.*only 1 candidate"):
        evaluate(program, ds, protocol_for(program, ds, n_negatives=0), tmp_path, progress=False)
    assert program.backend.calls == 0


# --- 19. baselines only ---------------------------------------------------------------------


def test_baselines_only_makes_no_model_call(tmp_path):
    ds = small_dataset()
    program = recprompt.load("rank.letters")  # no backend: one would be loaded if asked
    report = evaluate(
        program,
        ds,
        protocol_for(program, ds),
        tmp_path,
        progress=False,
        baselines=["random", "popularity"],
        baselines_only=True,
    )
    assert program.backend is None and report["model"] == "none"
    assert set(report["baselines"]) == {"random", "popularity"} and report["metrics"] == {}
    markdown = (tmp_path / "report.md").read_text()
    assert "| popularity |" in markdown and "| program |" not in markdown
    assert "hr@10" in markdown


def test_metered_counts_equal_the_backends_own():
    from recprompt.backends.accounting import MeteredBackend, UsageMeter

    inner = Scripted()
    metered = MeteredBackend(inner, UsageMeter(max_calls=3))
    for _ in range(3):
        metered.score("p", ["A", "B"])
    assert metered.usage is inner.usage and metered.meter.usage.calls == 3
    with pytest.raises(BudgetError):
        metered.score("p", ["A", "B"])
    assert inner.calls == 3 and math.isfinite(metered.meter.elapsed)
