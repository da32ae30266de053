"""Headless Chromium for the HTML reports: a screenshot for people, the rendered DOM for tests.

Chromium is optional at run time: ``recprompt eval`` writes ``report.png`` only when it finds
one (``$RECPROMPT_CHROMIUM``, else ``chromium`` on the PATH; Debian's package is
``chromium``). Each call gets a fresh profile directory, so parallel runs never share a lock.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from recprompt.errors import RecpromptError

__all__ = ["BrowserError", "dump_dom", "find_chromium", "screenshot"]

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class BrowserError(RecpromptError):
    """Chromium is missing or failed to render a page."""


def find_chromium() -> str | None:
    """The Chromium binary to use, or None."""
    given = os.environ.get("RECPROMPT_CHROMIUM")
    if given:
        return given if Path(given).exists() or shutil.which(given) else None
    return next((found for name in NAMES if (found := shutil.which(name))), None)


def _run(
    page: Path, *flags: str, timeout: float, fragment: str = ""
) -> subprocess.CompletedProcess[bytes]:
    binary = find_chromium()
    if binary is None:
        raise BrowserError(
            "no Chromium found to render the report",
            hint="apt-get install chromium, or set RECPROMPT_CHROMIUM to a Chromium binary",
        )
    with tempfile.TemporaryDirectory(prefix="recprompt-chromium-") as profile:
        command = [
            binary,
            "--headless",
            "--no-sandbox",  # containers and CI run as root, where the sandbox cannot start
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            *flags,
            Path(page).resolve().as_uri() + (f"#{fragment}" if fragment else ""),
        ]
        try:
            done = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise BrowserError(
                f"Chromium did not finish rendering {page} within {timeout:g} s",
                hint="open the page in a browser to see what hangs",
            ) from None
    if done.returncode != 0:
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        raise BrowserError(
            f"Chromium failed on {page} (exit {done.returncode}): {' | '.join(tail)}",
            hint="check that the chromium package is complete (chromium --version)",
        )
    return done


def dump_dom(page: Path, *, fragment: str = "", timeout: float = 60.0) -> str:
    """The page's DOM after its scripts ran, serialized as HTML (``fragment``: the part after
    ``#`` in the address, e.g. ``case=ID`` to open one case of a report)."""
    done = _run(page, "--dump-dom", timeout=timeout, fragment=fragment)
    return done.stdout.decode("utf-8", "replace")


def screenshot(
    page: Path, png: Path, *, width: int = 1280, height: int = 1600, timeout: float = 60.0
) -> Path:
    """A PNG of the top of the rendered page; returns ``png``."""
    png = Path(png).resolve()
    png.unlink(missing_ok=True)
    _run(page, f"--screenshot={png}", f"--window-size={width},{height}", timeout=timeout)
    if not png.exists():
        raise BrowserError(f"Chromium wrote no screenshot of {page}")
    return png


def timed_screenshot(page: Path, png: Path, **kwargs: object) -> float:
    """Seconds Chromium took, start to finish, to render ``page`` into ``png``."""
    started = time.perf_counter()
    screenshot(page, png, **kwargs)  # type: ignore[arg-type]
    return time.perf_counter() - started
