"""Bad input to the scaling options: a clear error, exit status 2, nothing written."""

from __future__ import annotations

import sys
import time

import pytest

from recprompt.cli import app

SERVER = ["--model", "openai/none", "--api-base", "http://127.0.0.1:9/v1", "--no-cache"]


def _eval(cli, out, *extra):
    args = ["eval", "p5.rating", "--data", "ml-100k", "--users", "2", "--out", str(out)]
    return cli.invoke(app, [*args, *SERVER, *extra])


@pytest.mark.parametrize("value", ["0", "-3"])
def test_concurrency_must_be_positive(cli, tmp_path, value):
    result = _eval(cli, tmp_path / "out", "--concurrency", value)
    assert result.exit_code == 2, result.output
    assert "--concurrency must be a positive integer" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()
    batch = tmp_path / "cases.jsonl"
    batch.write_text('{"user_id": "1", "item_id": "2"}\n')
    run = cli.invoke(app, ["run", "p5.rating", "--input", f"@{batch}", *SERVER, "-j", value])
    assert run.exit_code == 2 and "--concurrency" in run.output


def test_unknown_engine(cli, tmp_path):
    result = _eval(cli, tmp_path / "out", "--engine", "spark")
    assert result.exit_code == 2 and "unknown engine 'spark'" in result.output
    assert not (tmp_path / "out").exists()


def test_ray_missing_names_the_extra(cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    result = _eval(cli, tmp_path / "out", "--engine", "ray")
    assert result.exit_code == 2, result.output
    assert "recprompt[ray]" in result.output and not (tmp_path / "out").exists()


def test_unreachable_ray_address_fails_in_bounded_time(cli, tmp_path):
    pytest.importorskip("ray")
    started = time.monotonic()
    result = _eval(cli, tmp_path / "out", "--engine", "ray", "--ray-address", "127.0.0.1:9")
    assert result.exit_code == 2, result.output
    assert "cannot reach a Ray cluster at 127.0.0.1:9" in result.output
    assert time.monotonic() - started < 15 and not (tmp_path / "out").exists()


@pytest.mark.parametrize("address", ["auto", "127.0.0.1:6379"])
def test_a_cluster_that_does_not_answer_is_not_reported_as_ray_missing(monkeypatch, address):
    ray = pytest.importorskip("ray")
    from recprompt.errors import ServerError
    from recprompt.eval import ray_engine

    def refuse(*_args, **_kwargs):
        raise ConnectionError("Could not find any running Ray instance.")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", refuse)
    monkeypatch.setattr(ray_engine, "_reachable", lambda *_a: None)  # a port that listens
    with pytest.raises(ServerError) as caught:
        ray_engine.connect(address)
    hint = caught.value.hint or ""
    assert "pip install" not in hint and "Ray is installed" in hint
    assert "ray status" in hint and address in hint


def test_ray_address_without_ray_engine(cli, tmp_path):
    result = _eval(cli, tmp_path / "out", "--ray-address", "127.0.0.1:6379")
    assert result.exit_code == 2 and "needs --engine ray" in result.output


def test_batch_input_reports_the_bad_line(cli, tmp_path):
    batch = tmp_path / "cases.jsonl"
    batch.write_text('{"user_id": "1", "item_id": "2"}\n[1, 2]\n')
    result = cli.invoke(app, ["run", "p5.rating", "--input", f"@{batch}", *SERVER])
    assert result.exit_code == 2 and f"{batch}:2" in result.output
