"""Shared fixtures: where the real datasets are, and a CLI runner."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from server_fixture import junk_server, llama_server  # noqa: F401  (pytest fixtures)
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def data_root() -> Path:
    """Datasets are read from $RECPROMPT_DATA (CI: ../shared/data), never copied here."""
    root = Path(os.environ.get("RECPROMPT_DATA", ROOT.parent / "shared" / "data"))
    if not (root / "ml-100k" / "u.data").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"CI needs MovieLens 100K under {root}")
        pytest.skip(f"MovieLens 100K not found under {root}; set RECPROMPT_DATA")
    return root


@pytest.fixture()
def cli() -> CliRunner:
    return CliRunner()


_EXTRA_MISSING = ("extra not installed", "needs llama-cpp-python", "needs the default GGUF")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI every test an extra enables must run: a skip for a missing extra is a failure."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[-1])
        if any(words in reason for words in _EXTRA_MISSING):
            report.outcome = "failed"
            report.longrepr = f"CI installs every extra, but this test was skipped: {reason}"
