"""Keys, cost and bad input on the server path, through the real CLI and a recording server.

Each bad input (unknown server kind, a scoring strategy the server cannot serve, a missing key
for a hosted provider, an exceeded --max-cost) must be a RecpromptError with exit status 2,
before any model call where possible: the recording server counts the calls that reached it.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from contract_server import ContractServer, completion_logprobs, openai_body

from recprompt.backends.cost import CostGuard, estimate, price_of
from recprompt.backends.litellm_backend import LiteLLMBackend
from recprompt.cli import app
from recprompt.constraints import Choice
from recprompt.errors import BackendError, BudgetError

INPUT = json.dumps({"user_id": "1", "item_id": "50", "item_title": "Star Wars (1977)"})
SECRET = "sk-test-Zq81sEcReT0000key"
STARS = {"5": -0.4, "4": -1.3, "3": -2.6, "2": -4.0, "1": -5.2}


def rating_answer(request, n):
    return openai_body(request.path, "5", completion_logprobs(STARS))


def output(result) -> str:
    text = result.output
    with contextlib.suppress(ValueError, AttributeError):
        text += result.stderr
    return text


def test_unknown_server_kind_exits_2_before_any_call(cli):
    with ContractServer("vllm") as server:
        result = cli.invoke(app, ["run", "p5.rating", "--input", INPUT, "--model", "openai/m",
                                  "--api-base", server.url, "--server-kind", "vlm"])  # fmt: skip
    assert result.exit_code == 2, output(result)
    assert "unknown server kind 'vlm'" in output(result) and server.requests == []


def test_missing_key_for_a_hosted_provider_exits_2(cli, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result = cli.invoke(
        app, ["run", "p5.rating", "--input", INPUT, "--model", "openai/gpt-4o-mini", "--no-cache"]
    )
    assert result.exit_code == 2, output(result)
    assert "OPENAI_API_KEY is not set" in output(result) and "--api-key" in output(result)


def test_a_scoring_strategy_the_server_cannot_serve_exits_2_before_any_call(cli):
    with ContractServer("generic") as server:
        result = cli.invoke(app, ["run", "p5.rating", "--input", INPUT, "--model", "openai/m",
                                  "--api-base", server.url, "--no-cache"])  # fmt: skip
    assert result.exit_code == 2, output(result)
    assert "needs top_logprobs scoring" in output(result)
    assert server.posts == []  # only the detection probes reached it


def test_likelihood_ranking_on_a_top_logprobs_only_server_fails_before_any_call():
    import recprompt

    with ContractServer("sglang") as server:
        backend = LiteLLMBackend("openai/m", api_base=server.url, timeout=5)
        program = recprompt.load("rank.likelihood", backend=backend)
        with pytest.raises(BackendError, match="needs continuation scoring"):
            program.rank(
                [{"item_id": "1", "title": "Heat (1995)"}, {"item_id": "2", "title": "Babe"}],
                history=[{"item_id": "3", "title": "Fargo (1996)", "rating": 5}],
            )
    assert server.posts == []


def test_expected_rating_is_read_from_top_logprobs(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("RECPROMPT_CACHE", str(tmp_path / "cache"))
    with ContractServer("vllm", rating_answer) as server:
        result = cli.invoke(app, ["run", "p5.rating", "--input", INPUT, "--model", "openai/m",
                                  "--api-base", server.url])  # fmt: skip
    assert result.exit_code == 0, output(result)
    prediction = json.loads(result.stdout)
    assert prediction["decode"] == "expected" and 4.0 < prediction["rating"] < 5.0
    assert server.posts[0].body["logprobs"] == 20


def test_the_api_key_is_never_written_or_shown(cli, tmp_path, monkeypatch, data_root):
    """Run a real eval with --api-key, then scan every file written (run folder, cache) and
    everything printed; then an authentication error whose server message echoes the key."""
    monkeypatch.setenv("RECPROMPT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("RECPROMPT_DATA", str(data_root))
    with ContractServer("vllm", rating_answer) as server:
        result = cli.invoke(app, ["eval", "p5.rating", "--data", "ml-100k", "--users", "2",
                                  "--out", str(tmp_path / "run"), "--model", "openai/m",
                                  "--api-base", server.url, "--api-key", SECRET,
                                  "--baselines", "none"])  # fmt: skip
    assert result.exit_code == 0, output(result)
    assert server.posts and all(
        r.headers.get("authorization") == f"Bearer {SECRET}" for r in server.posts
    )  # the key was used...
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) > 5
    for path in written:  # ...and never written
        assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in output(result)

    leak = f"Incorrect API key provided: {SECRET}"
    with ContractServer("vllm", status=lambda n: (401, leak)) as server:
        failed = cli.invoke(app, ["run", "p5.rating", "--input", INPUT, "--model", "openai/m",
                                  "--api-base", server.url, "--api-key", SECRET,
                                  "--no-cache"])  # fmt: skip
    assert failed.exit_code == 2
    assert SECRET not in output(failed) and "***" in output(failed)


def test_dry_run_estimates_the_cost_of_a_hosted_model(cli, monkeypatch, data_root):
    monkeypatch.setenv("RECPROMPT_DATA", str(data_root))
    result = cli.invoke(app, ["dry-run", "p5.rating", "--data", "ml-100k", "--limit", "4",
                              "--show", "0", "--model", "openai/gpt-4o-mini"])  # fmt: skip
    assert result.exit_code == 0, output(result)
    price = price_of("openai/gpt-4o-mini")
    assert price is not None and price.prompt > 0
    assert (
        "cost_usd_upper_bound" in result.stdout and "cost_usd_per_1m_prompt_tokens" in result.stdout
    )
    line = next(x for x in result.stdout.splitlines() if "cost_usd_upper_bound" in x)
    assert float(line.split()[-2 if line.rstrip().endswith("│") else -1]) > 0
    bound = estimate("openai/gpt-4o-mini", 4, 400, 2)["cost_usd_upper_bound"]
    assert bound == pytest.approx(400 * price.prompt + 8 * price.completion, abs=1e-6)


def test_max_cost_exceeded_before_the_first_call_exits_2(cli):
    with ContractServer("openai", rating_answer) as server:
        result = cli.invoke(app, ["run", "p5.rating", "--input", INPUT,
                                  "--model", "openai/gpt-4o-mini", "--api-base", server.url,
                                  "--server-kind", "openai", "--api-key", "k",
                                  "--max-cost", "0.0000001", "--no-cache"])  # fmt: skip
    assert result.exit_code == 2, output(result)
    assert "--max-cost" in output(result) and server.posts == []


def test_max_cost_stops_a_run_before_it_exceeds_the_budget():
    budget = 0.00002
    with ContractServer("openai", lambda r, n: "Yes") as server:
        inner = LiteLLMBackend("openai/gpt-4o-mini", api_base=server.url, server="openai",
                               api_key="k", mode="chat")  # fmt: skip
        guard = CostGuard(inner, "openai/gpt-4o-mini", budget)
        calls = 0
        with pytest.raises(BudgetError, match="max-cost"):
            for _ in range(1000):
                guard.generate("Q? " * 20, constraint=Choice(("Yes", "No")), max_tokens=4)
                calls += 1
    assert calls == len(server.posts) > 1
    assert guard.spent <= budget  # stopped before exceeding, not after


def test_max_cost_without_a_price_is_a_clear_error():
    with pytest.raises(Exception, match="no price"):
        CostGuard(object(), "openai/my-own-model", 1.0)


def test_report_counts_invalid_answers_before_and_after_repair(tmp_path, data_root):
    """A generic server (no constraint) answers junk first: the report says 1 before, 0 after."""
    import recprompt
    from recprompt.data import load_dataset
    from recprompt.eval.cases import default_protocol
    from recprompt.eval.evaluate import evaluate

    spec = recprompt.load("p5.rating").spec
    spec = spec.model_copy(update={"output": spec.output.model_copy(update={"decode": "generate"})})
    with ContractServer("generic", lambda r, n: "five" if n == 0 else "4") as server:
        backend = LiteLLMBackend("openai/m", api_base=server.url, timeout=5)
        program = recprompt.Program(spec, backend=backend)
        protocol = default_protocol(spec, "ml-100k", n_users=2)
        report = evaluate(program, load_dataset("ml-100k", root=data_root), protocol,
                          Path(tmp_path / "run"), baselines=[], progress=False)  # fmt: skip
    usage = report["usage"]["all_cases"]
    assert usage["invalid_before_repair"] == 1 and usage["invalid_after_repair"] == 0
    assert "invalid_before_repair" in (tmp_path / "run" / "report.md").read_text()
