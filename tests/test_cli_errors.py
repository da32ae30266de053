"""The command line on bad values and hostile text: exit status 2 with a clear message, never a
traceback, and user text (keys, ids, paths, titles) printed literally, never as Rich markup."""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
from pathlib import Path

import pytest

from recprompt.cli import app

# Arguments that must fail cleanly; each list runs after "dry-run p5.rating --data ml-100k".
BAD_VALUES = {
    "users 0": ["--users", "0"],
    "users -1": ["--users", "-1"],
    "negatives -1": ["--negatives", "-1"],
    "history -1": ["--history", "-1"],
    "limit -1": ["--limit", "-1"],
    "variant nope": ["--variant", "nope"],
    "seed -1": ["--seed", "-1"],
}


def _clean_failure(result) -> None:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output


@pytest.fixture()
def ml100k(data_root, monkeypatch):
    monkeypatch.setenv("RECPROMPT_DATA", str(data_root))
    return data_root


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_bad_numbers_are_clear_errors(cli, ml100k, tmp_path, case):
    base = ["p5.rating", "--data", "ml-100k"]
    _clean_failure(cli.invoke(app, ["dry-run", *base, *BAD_VALUES[case]]))
    if case not in ("limit -1", "variant nope"):
        out = tmp_path / "run"
        _clean_failure(cli.invoke(app, ["eval", *base, "--out", str(out), *BAD_VALUES[case]]))


SEEDED = {
    "eval": ["eval", "p5.rating", "--data", "ml-100k", "--users", "2", "--model", "none"],
    "dry-run": ["dry-run", "p5.rating", "--data", "ml-100k", "--users", "2"],
    "run": ["run", "p5.rating", "-i", '{"user_id": "1", "item_id": "2"}', "--model", "none"],
    "compare": ["compare", "a", "b"],
    "optimize": ["optimize", "p5.rating", "--data", "ml-100k", "--budget", "1"],
}


@pytest.mark.parametrize("command", sorted(SEEDED))
def test_a_negative_seed_is_refused_before_anything_is_written(cli, ml100k, tmp_path, command):
    out = tmp_path / "out"
    writes = [] if command == "run" else ["--out", str(out)]
    result = cli.invoke(app, [*SEEDED[command], "--seed", "-1", *writes])
    _clean_failure(result)
    assert "--seed" in result.output and not out.exists()


def test_the_protocol_refuses_a_negative_seed():
    from pydantic import ValidationError

    from recprompt.data import Protocol

    with pytest.raises(ValidationError, match="seed"):
        Protocol(dataset="ml-100k", seed=-1)


def test_unknown_sampler_is_a_clear_error(cli, ml100k, tmp_path):
    result = cli.invoke(
        app,
        ["eval", "p5.rating", "--data", "ml-100k", "--out", str(tmp_path / "r"),
         "--sampler", "bogus", "--model", "none"],
    )  # fmt: skip
    _clean_failure(result)
    assert "bogus" in result.output and "uniform" in result.output


def test_samplers_offered_are_the_protocols():
    from typing import get_args

    from recprompt.cli_args import SAMPLERS
    from recprompt.data import Protocol

    assert get_args(Protocol.model_fields["sampler"].annotation) == SAMPLERS


@pytest.mark.parametrize("where", ["folder", "missing parent", "proc"])
def test_unwritable_dry_run_outputs_are_clear_errors(cli, ml100k, tmp_path, where):
    out = {
        "folder": tmp_path,
        "missing parent": tmp_path / "no" / "such" / "p.jsonl",
        "proc": Path("/proc/recprompt-prompts.jsonl"),
    }[where]
    args = ["dry-run", "p5.rating", "--data", "ml-100k", "--users", "2", "--out", str(out)]
    result = cli.invoke(app, args)
    _clean_failure(result)
    assert str(out) in result.output


@pytest.mark.parametrize("where", ["file", "proc"])
def test_unwritable_eval_folders_are_clear_errors(cli, ml100k, tmp_path, where):
    out = {"file": tmp_path / "f.txt", "proc": Path("/proc")}[where]
    if where == "file":
        out.write_text("mine\n")
    args = ["eval", "p5.rating", "--data", "ml-100k", "--users", "2", "--out", str(out),
            "--model", "none"]  # fmt: skip
    _clean_failure(cli.invoke(app, args))
    if where == "file":
        assert out.read_text() == "mine\n"


EMPTY_OUT = {
    "eval": ["eval", "p5.rating", "--data", "ml-100k", "--users", "2", "--model", "none"],
    "dry-run": ["dry-run", "p5.rating", "--data", "ml-100k", "--users", "2"],
    "schema": ["schema"],
    "compare": ["compare", "a", "b"],
    "optimize": ["optimize", "p5.rating", "--data", "ml-100k", "--budget", "1"],
}


@pytest.mark.parametrize("command", sorted(EMPTY_OUT))
def test_an_empty_out_is_refused_not_the_current_folder(
    cli, ml100k, tmp_path, monkeypatch, command
):
    monkeypatch.chdir(tmp_path)
    result = cli.invoke(app, [*EMPTY_OUT[command], "--out", ""])
    _clean_failure(result)
    assert "--out is empty" in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", ["ancestor", "dataset", "inside"])
def test_eval_never_writes_into_or_around_the_dataset(cli, tmp_path, where):
    (tmp_path / "collection").mkdir()
    data = _ml100k_folder(tmp_path / "collection" / "d", 6, "Movie")
    out = {"ancestor": data.parent, "dataset": data, "inside": data / "run"}[where]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = cli.invoke(
        app,
        ["eval", "p5.rating", "--data", str(data), "--users", "2", "--model", "none",
         "--out", str(out)],
    )  # fmt: skip
    _clean_failure(result)
    assert "which this command reads" in result.output
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


@pytest.mark.parametrize(
    ("command", "target"),
    [("dry-run", "u.item"), ("dry-run", "ratings.csv"), ("dry-run", "titles.csv"),
     ("optimize", "u.item"), ("optimize", "ratings.csv"), ("eval", "ratings.csv")],
)  # fmt: skip
def test_no_output_replaces_a_file_the_dataset_is_read_from(cli, tmp_path, command, target):
    """dry-run --out DATA/u.item replaced the dataset's titles (only the --data path itself
    was protected); a dataset YAML's CSVs were not protected by any command."""
    data = _ml100k_folder(tmp_path / "ml", 6, "Movie")
    rows = "".join(f"u{u},i{i},4,{u * 10 + i}\n" for u in range(4) for i in range(5))
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "ratings.csv").write_text("user,item,rating,ts\n" + rows)
    (tmp_path / "csv" / "titles.csv").write_text("item,title\n" + "i0,Zero\n")
    descriptor = tmp_path / "books.yaml"
    descriptor.write_text(
        "path: csv/ratings.csv\ncolumns: {user: user, item: item, rating: rating, timestamp: ts}"
        "\nitems: {path: csv/titles.csv, item: item, title: title}\n"
    )
    source = data if target == "u.item" else descriptor
    out = (data if target == "u.item" else tmp_path / "csv") / target
    if command == "eval":
        out = tmp_path / "csv"
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    args = {
        "dry-run": ["dry-run", "p5.rating", "--data", str(source), "--show", "0"],
        "optimize": ["optimize", "p5.rating", "--data", str(source), "--budget", "100",
                     "--model", "openai/x", "--api-base", "http://127.0.0.1:9/v1"],
        "eval": ["eval", "p5.rating", "--data", str(source), "--model", "none"],
    }[command]  # fmt: skip
    result = cli.invoke(app, [*args, "--out", str(out)])
    _clean_failure(result)
    assert "which this command reads" in result.output
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--baselines", "bpr"], "bpr cannot predict the ratings of p5.rating"),
        (["--baselines", "global_mean,popularity,itemknn,random"], "popularity, itemknn, random"),
        (["--baselines", "nope"], "nope cannot predict"),
        (["--retriever", "bpr"], "--retriever bpr needs a ranking spec"),
        (["--retriever", "bpr", "--shortlist", "30"], "needs a ranking spec"),
        (["--shortlist", "30"], "--shortlist needs --retriever"),
        (["--negatives", "5"], "--negatives sets the candidates of ranking specs"),
        (["--sampler", "popularity"], "p5.rating ranks nothing"),
    ],
)
def test_eval_refuses_a_plan_that_does_not_fit_a_rating_spec(cli, ml100k, tmp_path, flags, message):
    out = tmp_path / "run"
    args = ["eval", "p5.rating", "--data", "ml-100k", "--users", "2", "--model", "none"]
    result = cli.invoke(app, [*args, "--out", str(out), *flags])
    _clean_failure(result)
    assert message in result.output, result.output
    assert not out.exists()
    if "--baselines" in flags:
        assert "global_mean,user_mean,item_mean" in result.output  # what fits instead


@pytest.mark.parametrize("command", ["eval", "dry-run"])
def test_history_is_refused_on_a_spec_that_reads_no_history(cli, tmp_path, command):
    """--history 3 on a spec without a history input was recorded in the run's protocol
    and changed nothing in its prompts."""
    data = str(_ml100k_folder(tmp_path / "ml", 6, "Movie"))
    spec = tmp_path / "rate.yaml"
    spec.write_text(
        "name: t.rate\ntask: rating\ninputs: {user_id: str, item_title: str}\n"
        "template: 'User {{ user_id }}: stars for {{ item_title }}? Rating:'\n"
        "output: {name: rating, type: rating, scale: [1, 5]}\n"
    )
    out = tmp_path / "run"
    args = {"eval": ["eval", "--model", "none", "--out", str(out)], "dry-run": ["dry-run"]}
    result = cli.invoke(app, [*args[command], str(spec), "--data", data, "--history", "3"])
    ran = cli.invoke(app, [*args[command], str(spec), "--data", data])
    assert ran.exit_code == 0, ran.output  # the spec itself is fine
    _clean_failure(result)
    assert "--history sets the history of specs that read one" in result.output


@pytest.mark.parametrize("holdout", ["last", "random"])
def test_file_order_is_time_is_refused_where_it_changes_nothing(cli, tmp_path, holdout):
    """On data with timestamps, or with a random holdout, it was recorded in the run's
    protocol and changed nothing (it only confirms file order as time for 'last')."""
    data = str(_ml100k_folder(tmp_path / "ml", 6, "Movie"))  # has timestamps
    args = ["dry-run", "p5.rating", "--data", data, "--holdout", holdout, "--file-order-is-time"]
    result = cli.invoke(app, args)
    _clean_failure(result)
    assert "--file-order-is-time" in result.output and "changes nothing" in result.output


@pytest.mark.parametrize("flags", [["--negatives", "5"], ["--sampler", "popularity"]])
def test_negatives_and_sampler_are_refused_beside_a_retriever(cli, tmp_path, flags):
    """The retriever's shortlist is the candidates: --negatives and --sampler were recorded
    in the run's protocol and changed nothing."""
    data = str(_ml100k_folder(tmp_path / "ml", 6, "Movie"))
    out = tmp_path / "run"
    args = ["eval", "rank.pointwise", "--data", data, "--model", "none", "--out", str(out),
            "--retriever", "popularity", "--shortlist", "10"]  # fmt: skip
    result = cli.invoke(app, [*args, *flags])
    _clean_failure(result)
    assert f"{flags[0]} does nothing with --retriever" in result.output
    assert not out.exists()


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-0.5"])
def test_a_temperature_that_is_not_finite_and_non_negative_is_refused(cli, ml100k, tmp_path, value):
    out = tmp_path / "run"
    args = ["eval", "p5.rating", "--data", "ml-100k", "--users", "2", "--model", "none"]
    result = cli.invoke(app, [*args, "--out", str(out), "--temperature", value])
    _clean_failure(result)
    assert "temperature must be a finite number >= 0" in result.output
    assert not out.exists()
    server = ["--model", "openai/x", "--api-base", "http://127.0.0.1:9/v1"]  # never reached
    ran = cli.invoke(app, ["run", "p5.rating", "-i", "{}", *server, "--temperature", value])
    _clean_failure(ran)
    assert "temperature must be a finite number >= 0" in ran.output


def test_a_shortlist_shorter_than_k_is_refused_before_a_model_is_built(
    cli, ml100k, tmp_path, monkeypatch
):
    import recprompt.backends

    def no_model(*_a, **_k):
        raise AssertionError("a plan that cannot run must not build a model")

    monkeypatch.setattr(recprompt.backends, "get_backend", no_model)
    out = tmp_path / "run"
    args = ["eval", "rank.letters", "--data", "ml-100k", "--users", "3", "--out", str(out)]
    result = cli.invoke(app, [*args, "--retriever", "bpr", "--shortlist", "5"])
    _clean_failure(result)
    assert "shortlist has 5 candidates" in result.output and not out.exists()


HOSTILE_INPUTS = {
    "nested 100k": "[" * 100_000 + "]" * 100_000,
    "nested object": '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "1e400": '{"user_id": 1e400}',
    "bare 1e400": "1e400",
    "huge integer": '{"user_id": ' + "9" * 5000 + "}",
    "NaN": '{"user_id": NaN}',
    "dev zero": "@/dev/zero",
    "missing file": "@/no/such/input.json",
    "lone surrogate": '{"user_id": "\\ud800", "item_id": "2"}',
    "lone surrogate key": '{"\\udc00": "1", "user_id": "1"}',
    "undecodable argument": '{"user_id": "\udcff", "item_id": "2"}',
}


@pytest.mark.parametrize("case", sorted(HOSTILE_INPUTS))
def test_hostile_inputs_are_clear_errors(cli, case):
    result = cli.invoke(app, ["render", "p5.rating", "--input", HOSTILE_INPUTS[case]])
    _clean_failure(result)
    assert "--input" in result.output


def test_a_batch_line_with_a_lone_surrogate_is_a_clear_error(cli, tmp_path):
    batch = tmp_path / "cases.jsonl"
    batch.write_text('{"user_id": "1", "item_id": "2"}\n{"user_id": "\\ud800", "item_id": "2"}\n')
    server = ["--model", "openai/x", "--api-base", "http://127.0.0.1:9/v1"]  # never reached
    result = cli.invoke(app, ["run", "p5.rating", "--input", f"@{batch}", *server])
    _clean_failure(result)
    assert f"{batch}:2" in result.output and "not valid Unicode" in result.output


def test_every_batch_line_is_checked_before_a_model_is_built(cli, tmp_path, monkeypatch):
    """A bad line 3 was found after the calls of lines 1-2, whose answers were then lost,
    and the error did not say which line."""

    def no_model(*args, **kwargs):
        raise AssertionError("a model was built before the lines were checked")

    monkeypatch.setattr("recprompt.cli.build_backend", no_model)
    batch = tmp_path / "cases.jsonl"
    good = '{"user_id": "1", "item_id": "2"}\n'
    batch.write_text(good + good + '{"user_id": "1", "itme_id": "2"}\n')
    result = cli.invoke(app, ["run", "p5.rating", "--input", f"@{batch}"])
    _clean_failure(result)
    assert f"{batch}:3: p5.rating: unknown input(s) ['itme_id']" in result.output


@pytest.mark.parametrize("variant", ["nope", ""])
@pytest.mark.parametrize("command", ["eval", "dry-run", "render", "run"])
def test_an_unknown_or_empty_variant_is_refused_by_every_command(cli, tmp_path, command, variant):
    """eval stopped with a KeyError traceback; '' was taken for 'the default' elsewhere."""
    data = str(_ml100k_folder(tmp_path / "ml", 6, "Movie"))
    server = ["--model", "openai/x", "--api-base", "http://127.0.0.1:9/v1"]  # never reached
    args = {
        "eval": ["eval", "p5.rating", "--data", data, "--model", "none", "--out",
                 str(tmp_path / "run")],
        "dry-run": ["dry-run", "p5.rating", "--data", data],
        "render": ["render", "p5.rating", "-i", '{"user_id": "1", "item_id": "2"}'],
        "run": ["run", "p5.rating", "-i", '{"user_id": "1", "item_id": "2"}', *server],
    }[command]  # fmt: skip
    result = cli.invoke(app, [*args, "--variant", variant])
    _clean_failure(result)
    assert f"no variant {variant!r}" in result.output and "1-1" in result.output


def test_ray_actors_without_the_ray_engine_is_refused(cli, tmp_path):
    """It was accepted and changed nothing (--ray-address was already refused)."""
    data = str(_ml100k_folder(tmp_path / "ml", 6, "Movie"))
    args = ["eval", "p5.rating", "--data", data, "--model", "none", "--out", str(tmp_path / "r")]
    result = cli.invoke(app, [*args, "--ray-actors", "4"])
    _clean_failure(result)
    assert "--ray-actors needs --engine ray" in result.output
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("flags", "unused"),
    [(["--model", "local", "--api-base", "http://127.0.0.1:9/v1"], "--api-base"),
     (["--model", "x.gguf", "--server-kind", "vllm"], "--server-kind"),
     (["--model", "local", "--api-key", "k"], "--api-key"),
     (["--model", "openai/x", "--chat-format", "gemma"], "--chat-format")],
)  # fmt: skip
def test_backend_flags_the_model_does_not_use_are_refused(cli, flags, unused):
    """They were accepted and changed nothing: a local model reaches no server, and a
    server applies its own chat format."""
    args = ["run", "p5.rating", "-i", '{"user_id": "1", "item_id": "2"}']
    result = cli.invoke(app, [*args, *flags])
    _clean_failure(result)
    assert f"{unused} does nothing with --model {flags[1]}" in result.output


@pytest.mark.parametrize("command", ["optimize", "schema"])
def test_an_output_folder_that_cannot_be_made_stops_before_any_work(
    cli, tmp_path, monkeypatch, command
):
    """schema --out /proc/x stopped with a FileNotFoundError traceback; optimize --out
    /proc/x/p.json failed only when saving, after its whole budget was spent."""

    def no_model(*args, **kwargs):
        raise AssertionError("a model was built before the --out folder was made")

    monkeypatch.setattr("recprompt.cli.build_backend", no_model)
    data = str(_ml100k_folder(tmp_path / "ml", 6, "Movie"))
    args = {
        "optimize": ["optimize", "p5.rating", "--data", data, "--budget", "100",
                     "--out", "/proc/recprompt-x/p.json"],
        "schema": ["schema", "--out", "/proc/recprompt-x"],
    }[command]  # fmt: skip
    result = cli.invoke(app, args)
    _clean_failure(result)
    assert "/proc/recprompt-x" in result.output and "cannot" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [(["validate", ""], "an empty path"),
     (["dry-run", "p5.rating", "--data", ""], "--data is empty"),
     (["eval", "p5.rating", "--data", "", "--model", "none", "--out", "run"], "--data is empty"),
     (["optimize", "p5.rating", "--data", "", "--budget", "9", "--out", "p.json"],
      "--data is empty")],
)  # fmt: skip
def test_an_empty_path_is_refused_not_the_current_folder(cli, tmp_path, monkeypatch, args, message):
    """'' meant the current folder: validate checked every YAML below it, and --data ''
    loaded whatever dataset the current folder held."""
    _ml100k_folder(tmp_path, 6, "Movie")
    (tmp_path / "spec.yaml").write_text("name: x\n")
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = cli.invoke(app, args)
    _clean_failure(result)
    assert message in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@contextlib.contextmanager
def _fifo(path: Path):
    """A named pipe; should a reader block on it, a watchdog opens it for writing after 10 s
    so that the test fails instead of hanging."""
    os.mkfifo(path)
    done = threading.Event()

    def unblock() -> None:
        while not done.wait(10):
            with contextlib.suppress(OSError):  # ENXIO: nobody is reading
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))

    watchdog = threading.Thread(target=unblock, daemon=True)
    watchdog.start()
    try:
        yield path
    finally:
        done.set()
        watchdog.join()


FIFO_READS = {
    "validate spec": ("spec.yaml", lambda f: ["validate", str(f)]),
    "validate folder": ("spec.yaml", lambda f: ["validate", str(f.parent)]),
    "render input": ("in.json", lambda f: ["render", "p5.rating", "-i", f"@{f}"]),
    "tuned program": ("tuned.json", lambda f: ["render", str(f), "-i", "{}"]),
    "run batch": (
        "cases.jsonl",
        lambda f: ["run", "p5.rating", "-i", f"@{f}", "--model", "openai/x",
                   "--api-base", "http://127.0.0.1:9/v1"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(FIFO_READS))
def test_a_named_pipe_is_refused_where_a_file_is_read(cli, tmp_path, case):
    name, args = FIFO_READS[case]
    with _fifo(tmp_path / name) as fifo:
        started = time.monotonic()
        result = cli.invoke(app, args(fifo))
        assert time.monotonic() - started < 10, "the command waited on the pipe"
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "named pipe (FIFO), not a regular file" in result.output, result.output


def test_a_named_pipe_in_a_spec_library_is_skipped_with_a_warning(tmp_path, monkeypatch):
    from recprompt.library import resolve_spec_path

    monkeypatch.setenv("RECPROMPT_TEMPLATES", str(tmp_path))
    with _fifo(tmp_path / "pipe.yaml"), pytest.warns(UserWarning, match="named pipe"):
        started = time.monotonic()
        assert resolve_spec_path("p5.rating").name == "rating.yaml"
        assert time.monotonic() - started < 10, "the library lookup waited on the pipe"


MARKUP = ["[/x]", "[bold red]X", "[link=http://e.vil]click[/link]", ":thumbs_up:"]


@pytest.mark.parametrize("text", MARKUP)
def test_user_text_is_printed_literally(cli, tmp_path, text):
    bad_key = cli.invoke(
        app, ["render", "p5.rating", "--input", json.dumps({text: 1, "user_id": "1"})]
    )
    assert bad_key.exit_code == 2 and text in bad_key.output, bad_key.output
    assert "MarkupError" not in repr(bad_key.exception)
    bad_variant = cli.invoke(
        app, ["render", "p5.rating", "--variant", text, "--input", '{"user_id": "1"}']
    )
    assert bad_variant.exit_code == 2 and text in bad_variant.output, bad_variant.output
    missing = tmp_path / f"{text.replace('/', '_')}.yaml"
    bad_path = cli.invoke(app, ["validate", str(missing)])
    assert bad_path.exit_code == 2 and str(missing) in bad_path.output, bad_path.output


def _ml100k_folder(folder: Path, users: int, title: str) -> Path:
    """A small folder in MovieLens 100K's format: 30 items, 8 ratings per user."""
    folder.mkdir(exist_ok=True)
    rows = [
        f"{u}\t{(5 * u + j) % 30 + 1}\t{1 + (u + j) % 5}\t{1000 + j}\n"
        for u in range(1, users + 1)
        for j in range(8)
    ]
    (folder / "u.data").write_text("".join(rows))
    items = [f"{i}|{title} {i} (1990)|01-Jan-1990||" + "|0" * 19 + "\n" for i in range(1, 31)]
    (folder / "u.item").write_text("".join(items), encoding="latin-1")
    return folder


def test_titles_with_markup_print_literally(cli, tmp_path):
    title = "[/x] [bold red]X"
    data = _ml100k_folder(tmp_path / "d", 6, title)
    result = cli.invoke(
        app,
        ["dry-run", "rank.letters", "--data", str(data), "--users", "2", "--negatives", "5",
         "--show", "2"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.count(title) >= 2 * 7  # each shown case: its label and 6 candidates


def test_listwise_with_no_negatives_is_refused(cli, ml100k, tmp_path):
    args = ["dry-run", "rank.listwise", "--data", "ml-100k", "--users", "2", "--negatives", "0"]
    result = cli.invoke(app, args)
    _clean_failure(result)
    assert "top-10" in result.output and "--negatives 9" in result.output


def test_more_users_than_exist_warns_in_dry_run(cli, tmp_path):
    data = _ml100k_folder(tmp_path / "d", 3, "Movie")
    result = cli.invoke(
        app, ["dry-run", "p5.rating", "--data", str(data), "--users", "5000", "--show", "0"]
    )
    assert result.exit_code == 0, result.output
    found = re.search(
        r"--users 5000 requested, but the dataset has only (\d) eligible", result.output
    )
    assert found and 0 < int(found.group(1)) <= 3, result.output


@pytest.mark.parametrize(
    ("flags", "named"),
    [(["--model", "none", "--temperature", "0.7"], "--temperature"),
     (["--model", "none", "--concurrency", "4"], "--concurrency"),
     (["--baselines-only", "--model", "my.gguf"], "--model"),
     (["--baselines-only", "--api-base", "http://x"], "--api-base"),
     (["--model", "none", "--max-calls", "5"], "--max-calls"),
     (["--baselines-only", "--rpm", "60"], "--rpm"),
     (["--model", "none", "--max-seconds", "5"], "--max-seconds"),
     (["--baselines-only", "--no-cache"], "--no-cache")],
)  # fmt: skip
def test_model_flags_on_a_run_without_a_model_are_refused(cli, ml100k, tmp_path, flags, named):
    """They were accepted and did nothing: a reader of the command would think they applied."""
    out = tmp_path / "run"
    args = ["eval", "p5.rating", "--data", "ml-100k", "--users", "2", "--out", str(out)]
    result = cli.invoke(app, [*args, *flags])
    _clean_failure(result)
    assert f"{named} set(s) how the model is called" in result.output, result.output
    assert not out.exists()


@pytest.mark.parametrize(
    ("value", "words"),
    [("random,random", "random more than once"), ("none,bpr", "mixes 'none'")],
)
def test_baselines_that_say_two_things_are_refused(cli, ml100k, tmp_path, value, words):
    out = tmp_path / "run"
    args = ["eval", "rank.letters", "--data", "ml-100k", "--users", "2", "--model", "none"]
    result = cli.invoke(app, [*args, "--out", str(out), "--baselines", value])
    _clean_failure(result)
    assert words in result.output and not out.exists()


def test_users_left_out_of_every_user_are_named(cli, tmp_path):
    """All_Beauty 5-core has 10 users with one interaction after deduplication; a run over
    every user covered 981 of 991 and said nothing about the other 10."""
    data = _ml100k_folder(tmp_path / "d", 6, "Movie")
    with (data / "u.data").open("a") as rows:
        rows.write("7\t3\t4\t1000\n")  # a seventh user with one rating: nothing to hold out
    expected = "1 of the dataset's 7 users have fewer than 2 interactions"
    dry = cli.invoke(
        app, ["dry-run", "rank.letters", "--data", str(data), "--negatives", "5", "--show", "0"]
    )
    assert dry.exit_code == 0 and expected in dry.output, dry.output
    out = tmp_path / "run"
    run = cli.invoke(
        app,
        ["eval", "rank.letters", "--data", str(data), "--negatives", "5", "--out", str(out),
         "--baselines-only", "--baselines", "random"],
    )  # fmt: skip
    assert run.exit_code == 0 and expected in run.output, run.output
    report = json.loads((out / "report.json").read_text())
    assert report["users"]["evaluated"] == 6 and report["users"]["without_a_case"] == 1
    assert any(expected in w for w in report["warnings"])
    sample = cli.invoke(
        app,
        ["dry-run", "rank.letters", "--data", str(data), "--negatives", "5", "--users", "3",
         "--show", "0"],
    )  # fmt: skip
    assert sample.exit_code == 0 and "fewer than 2" not in sample.output  # a sample: no claim


def test_baselines_only_from_the_command_line(cli, ml100k, tmp_path, monkeypatch):
    import recprompt.backends

    def no_model(*_a, **_k):
        raise AssertionError("a baselines-only run must not build a model")

    monkeypatch.setattr(recprompt.backends, "get_backend", no_model)
    out = tmp_path / "base"
    result = cli.invoke(
        app,
        ["eval", "rank.letters", "--data", "ml-100k", "--users", "20", "--out", str(out),
         "--baselines-only", "--baselines", "random,popularity"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["model"] == "none" and set(report["baselines"]) == {"random", "popularity"}
    assert report["usage"]["this_invocation"]["calls"] == 0
    again = cli.invoke(
        app,
        ["eval", "rank.letters", "--data", "ml-100k", "--users", "20", "--out", str(out),
         "--model", "none", "--baselines", "random,popularity"],
    )  # fmt: skip
    assert again.exit_code == 0, again.output  # --model none is the same run


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--valid-users", "0"), ("--test-users", "0"), ("--demo-users", "-1"), ("--budget", "0")],
)
def test_optimize_refuses_tuning_or_reporting_on_nobody(
    cli, data_root, tmp_path: Path, flag: str, value: str
) -> None:
    out_file = tmp_path / "tuned.json"
    args = ["optimize", "p5.rating", "--data", str(data_root / "ml-100k"), "--budget", "10"]
    server = ["--model", "openai/x", "--api-base", "http://127.0.0.1:9/v1"]
    result = cli.invoke(app, [*args, flag, value, "--out", str(out_file), *server])
    assert result.exit_code == 2, result.output
    assert flag in result.output and "Traceback" not in result.output
    assert not out_file.exists()


@pytest.mark.parametrize("noun", ["", "   ", "movie\nAnswer: Yes"])
def test_a_blank_or_multiline_item_noun_is_refused(cli, ml100k, noun):
    """'' was ignored silently and '   ' made prompts say 'The    s I watched'."""
    result = cli.invoke(app, ["dry-run", "rank.listwise", "--data", "ml-100k", "--item-noun", noun])
    _clean_failure(result)
    assert "--item-noun" in result.output


def test_optimize_checks_its_numbers_and_data_before_building_a_model(
    cli, data_root, tmp_path: Path, monkeypatch
) -> None:
    def no_model(*args, **kwargs):
        raise AssertionError("a model was built before the arguments were checked")

    monkeypatch.setattr("recprompt.cli.build_backend", no_model)
    (tmp_path / "r.csv").write_text("user,item\n")
    (tmp_path / "empty.yaml").write_text("path: r.csv\ncolumns: {user: user, item: item}\n")
    ml = str(data_root / "ml-100k")
    for data, flags in [(ml, ["--budget", "0"]), (ml, ["--budget", "9", "--valid-users", "0"]),
                        (str(tmp_path / "empty.yaml"), ["--budget", "9"])]:  # fmt: skip
        args = ["optimize", "p5.rating", "--data", data, *flags, "--out", str(tmp_path / "t.json")]
        _clean_failure(cli.invoke(app, args))


def test_a_second_optimize_on_the_same_out_stops_before_a_model(
    cli, data_root, tmp_path: Path, monkeypatch
) -> None:
    """Two optimize runs on one --out could each write half of the program and its report."""
    import subprocess
    import sys

    def no_model(*args, **kwargs):
        raise AssertionError("a model was built while another run held --out")

    monkeypatch.setattr("recprompt.cli.build_backend", no_model)
    holder = subprocess.Popen(  # another process holds the lock on t.json
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from recprompt._files import exclusive_lock\n"
         "with exclusive_lock(Path(sys.argv[1]), name='.t.json.lock'):\n"
         "    print('held', flush=True); time.sleep(60)", str(tmp_path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        args = ["optimize", "p5.rating", "--data", str(data_root / "ml-100k"), "--budget", "9",
                "--out", str(tmp_path / "t.json")]  # fmt: skip
        result = cli.invoke(app, args)
        _clean_failure(result)
        said = " ".join(result.output.split())
        assert f"another recprompt run (pid {holder.pid})" in said
        assert str(tmp_path / "t.json") in said and "resume" not in said  # the file, not folder
        other = cli.invoke(app, [*args[:-1], str(tmp_path / "u.json"), "--budget", "0"])
        assert "another recprompt run" not in other.output  # another file in the folder: free
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("command", ["run", "optimize"])
def test_model_none_outside_eval_says_it_needs_a_model(cli, data_root, tmp_path, command):
    """'--model none' used to reach litellm as a model name: 'is the server running?'."""
    args = {
        "run": ["run", "p5.rating", "-i", '{"user_id": "1", "item_id": "2"}'],
        "optimize": ["optimize", "p5.rating", "--data", str(data_root / "ml-100k"),
                     "--budget", "200", "--out", str(tmp_path / "t.json")],
    }[command]  # fmt: skip
    result = cli.invoke(app, [*args, "--model", "none"])
    _clean_failure(result)
    assert "--model none" in result.output and "server" not in result.output


def test_optimize_refuses_a_special_report_file_before_any_call(cli, data_root, tmp_path):
    precious = tmp_path / "precious.md"
    precious.write_text("precious\n")
    (tmp_path / "tuned.report.md").symlink_to(precious)
    args = ["optimize", "p5.rating", "--data", str(data_root / "ml-100k"), "--budget", "10"]
    server = ["--model", "openai/x", "--api-base", "http://127.0.0.1:9/v1"]  # never reached
    result = cli.invoke(app, [*args, "--out", str(tmp_path / "tuned.json"), *server])
    _clean_failure(result)
    assert "tuned.report.md is a symbolic link" in result.output
    assert precious.read_text() == "precious\n" and not (tmp_path / "tuned.json").exists()


def test_ctrl_c_exits_130_with_a_word_on_how_to_go_on(cli, monkeypatch):
    import recprompt

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(recprompt, "load", interrupted)
    result = cli.invoke(app, ["render", "p5.rating", "-i", '{"user_id": "1", "item_id": "2"}'])
    assert result.exit_code == 130
    assert "interrupted" in result.output and "run the same command" in result.output
    assert "Traceback" not in result.output


def test_more_candidates_than_a_letters_spec_has_letters_is_refused(cli, tmp_path, monkeypatch):
    """--negatives 30 on rank.letters failed at its first case ('letters ranking labels at
    most 26 candidates', no hint) after the model was loaded and run.json written, so the
    folder refused the corrected rerun; 21 to 26 candidates ran past the spec's 20 letters."""
    import recprompt.backends

    data = _ml100k_folder(tmp_path / "d", 6, "Movie")
    dry = cli.invoke(app, ["dry-run", "rank.letters", "--data", str(data), "--negatives", "20"])
    _clean_failure(dry)
    assert "(A to T: 20), but each case has 21 candidates" in dry.output, dry.output
    assert "--negatives 19 or fewer" in dry.output

    def no_model(*_a, **_k):
        raise AssertionError("the model must not load for a run that cannot start")

    monkeypatch.setattr(recprompt.backends, "get_backend", no_model)
    out = tmp_path / "run"
    run = cli.invoke(
        app,
        ["eval", "rank.letters.rerank", "--data", str(data), "--retriever", "bpr",
         "--shortlist", "21", "--users", "2", "--out", str(out)],
    )  # fmt: skip
    _clean_failure(run)
    assert "21 candidates (the --shortlist of bpr)" in run.output, run.output
    assert "--shortlist 20 or fewer" in run.output
    assert not (out / "run.json").exists()


def test_too_many_negatives_for_a_user_names_the_flag(cli, tmp_path):
    """The hint said 'lower n_negatives', a name no command takes."""
    data = _ml100k_folder(tmp_path / "d", 6, "Movie")  # 30 items, 8 rated by each user
    result = cli.invoke(app, ["dry-run", "rank.listwise", "--data", str(data), "--negatives", "25"])
    _clean_failure(result)
    assert "has only 22 unseen items, 25 negatives asked" in result.output, result.output
    assert "--negatives 22 or fewer" in result.output


def test_dry_run_takes_a_retriever_and_counts_the_calls_on_validation_users(cli, tmp_path):
    """dry-run had no --retriever (rank.letters.rerank is meant to run with one), and it left
    out the rank.tune_users calls eval makes before the test cases: 5 where eval made 55."""
    data = _ml100k_folder(tmp_path / "d", 6, "Movie")  # 30 items, 8 rated by each user
    prompts = tmp_path / "prompts.jsonl"
    args = ["dry-run", "rank.letters.rerank", "--data", str(data), "--retriever", "bpr",
            "--shortlist", "10", "--show", "0"]  # fmt: skip
    result = cli.invoke(app, [*args, "--users", "3", "--out", str(prompts)])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "rank.tune_users asks for 50 validation users, but only 3 user(s) are left" in said
    assert "{'fusion_tuning': 3}" in said and re.search(r"model_calls │ 6 │", said), said
    rows = [json.loads(line) for line in prompts.read_text().splitlines()]
    assert len(rows) == 3 and all("\nJ. " in str(row["prompt"]) for row in rows)
    assert all("\nK. " not in str(row["prompt"]) for row in rows)  # the shortlist of 10, not 20
    everyone = cli.invoke(app, args)
    assert everyone.exit_code == 0, everyone.output
    assert "eval would stop: rank.letters.rerank: rank.tune_users needs validation users" in (
        " ".join(everyone.output.split())
    )
    refused = cli.invoke(app, [*args, "--negatives", "5"])
    _clean_failure(refused)
    assert "--negatives does nothing with --retriever" in refused.output
