"""Checks of command-line values that the option parser cannot make, as clear errors.

Ranges (``--users 0``) and choices (``--sampler bogus``) are declared on the options; this
module holds what needs more: ``--input`` JSON bounded in size, depth and number range, the
protocol built from the flags (its validation errors become :class:`InputError`), and the
list of files a command reads, so that an output never overwrites one of them.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path
from typing import Any

from recprompt._files import open_regular
from recprompt.errors import InputError, RecpromptError

__all__ = [
    "MAX_INPUT_BYTES",
    "SAMPLERS",
    "data_path",
    "data_reads",
    "input_paths",
    "make_protocol",
    "out_path",
    "parse_input",
]

SAMPLERS = ("uniform", "popularity")
"""Negative samplers of :class:`recprompt.data.Protocol` (a test keeps the two in step)."""

MAX_INPUT_BYTES = 8 * 1024 * 1024
"""Largest ``--input`` accepted; real inputs are a few kB, ``@/dev/zero`` never ends."""

_INPUT_HINT = 'pass e.g. --input \'{"user_id": "12", "item_id": "55"}\' or --input @file.json'


def _read_input_file(name: str) -> str:
    try:
        with open_regular(name) as handle:  # a named pipe would wait for a writer forever
            raw = handle.read(MAX_INPUT_BYTES + 1)
    except OSError as exc:
        raise InputError(f"--input @{name}: {exc.strerror or exc}", hint=_INPUT_HINT) from None
    if len(raw) > MAX_INPUT_BYTES:
        raise InputError(
            f"--input @{name} is larger than {MAX_INPUT_BYTES // (1024 * 1024)} MB",
            hint="pass a JSON object of the spec's inputs",
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"--input @{name} is not UTF-8 text ({exc})", hint=_INPUT_HINT) from None


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _check_unicode(text: str, what: str, *, at: bool = True) -> None:
    """Refuse text that is not valid Unicode: a lone surrogate (an unpaired ``\\ud800``
    escape, or undecodable bytes of a command-line argument) cannot be printed, rendered
    into a prompt or sent to a model."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start : exc.end]
        where = f" at character {exc.start}" if at else ""
        raise InputError(
            f"--input {what} that is not valid Unicode: a lone surrogate {bad!r}{where}",
            hint="pair \\ud800-\\udfff escapes as in JSON's UTF-16 (or write the character "
            "itself), and pass UTF-8 text",
        ) from None


def parse_input(text: str) -> dict[str, Any]:
    """``--input`` takes a JSON object, or @path to a JSON file (at most 8 MB)."""
    raw = _read_input_file(text[1:]) if text.startswith("@") else text
    if len(raw) > MAX_INPUT_BYTES:
        raise InputError("--input is larger than 8 MB", hint=_INPUT_HINT)
    _check_unicode(raw, "is text")
    try:
        value = json.loads(raw, parse_float=_finite, parse_constant=_no_constant)
    except RecursionError:
        raise InputError("--input is nested too deeply", hint=_INPUT_HINT) from None
    except ValueError as exc:  # JSONDecodeError, huge integers, out-of-range numbers
        raise InputError(f"--input is not a valid JSON object: {exc}", hint=_INPUT_HINT) from None
    if not isinstance(value, dict):
        raise InputError("--input must be a JSON object of input names to values", hint=_INPUT_HINT)
    try:  # \ud800 escapes decode to lone surrogates: every key and string, checked at once
        _check_unicode(json.dumps(value, ensure_ascii=False), "holds a string", at=False)
    except RecursionError:
        raise InputError("--input is nested too deeply", hint=_INPUT_HINT) from None
    return value


HISTORY_INPUTS = ("history", "liked", "disliked", "example_history", "user_examples")
"""Inputs that evaluation fills from the user's history (see recprompt.eval.cases)."""


def parse_baselines(text: str) -> list[str]:
    """``--baselines a,b``: the names in order; ``none`` alone (or empty) means no baseline.
    A repeated name or ``none`` beside names is refused: the report would not show what the
    command seems to ask for."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if "none" in names and len(names) > 1:
        raise InputError(
            f"--baselines {text!r} mixes 'none' with baselines",
            hint="pass --baselines none for no baseline, or list the baselines without 'none'",
        )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InputError(
            f"--baselines names {', '.join(repeated)} more than once",
            hint="list each baseline once",
        )
    return [n for n in names if n != "none"]


def check_no_model_flags(given: dict[str, bool]) -> None:
    """Refuse model and server flags on a run that loads no model (``--baselines-only`` or
    ``--model none``): they would be accepted and do nothing. ``given`` maps each flag to
    whether it was set to something other than its default."""
    used = [flag for flag, was_given in given.items() if was_given]
    if used:
        raise InputError(
            f"{', '.join(used)} set(s) how the model is called, but this run loads no model "
            "(--baselines-only or --model none)",
            hint=f"drop {', '.join(used)}, or drop --baselines-only / --model none",
        )


def check_candidate_flags(
    spec: Any, negatives: int | None, sampler: str, history: int | None = None
) -> None:
    """Refuse --negatives and --sampler where no negatives are drawn, and --history where no
    history is read: they would be recorded in the run's identity while changing nothing.
    (Specs with stages may pass the history to a stage, so --history is left to them.)"""
    from recprompt.eval.cases import _is_ranking

    ranking = _is_ranking(spec)
    if negatives is not None and not (ranking or "candidates" in spec.inputs):
        raise InputError(
            f"--negatives sets the candidates of ranking specs, but {spec.name} has none",
            hint="drop --negatives, or evaluate a ranking spec",
        )
    if sampler != "uniform" and not ranking:
        raise InputError(
            f"--sampler draws the negatives of ranking specs, but {spec.name} ranks nothing",
            hint="drop --sampler, or evaluate a ranking spec",
        )
    reads = any(n in HISTORY_INPUTS or d.type == "history" for n, d in spec.inputs.items())
    if history is not None and not (reads or spec.stages):
        raise InputError(
            f"--history sets the history of specs that read one, but {spec.name} has no "
            f"history input ({', '.join(HISTORY_INPUTS)})",
            hint="drop --history",
        )


def make_protocol(spec: Any, dataset: Any, **settings: Any) -> Any:
    """The spec's default protocol with the flags' overrides; a bad value is an InputError."""
    from pydantic import ValidationError

    from recprompt.eval.cases import default_protocol

    check_candidate_flags(
        spec,
        settings.get("n_negatives"),
        settings.get("sampler", "uniform"),
        settings.get("history_length"),
    )
    if settings.get("file_order_is_time") and (
        dataset.time != "none" or settings.get("holdout", "last") != "last"
    ):  # it only lets 'last' take file order as time where the data has no time
        why = "the data has its own time" if dataset.time != "none" else "--holdout random"
        raise InputError(
            f"--file-order-is-time changes nothing here: {why}",
            hint="drop it; it confirms that rows are in time order for --holdout last on "
            "data without a time field",
        )
    try:
        return default_protocol(spec, dataset, **settings)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'protocol'}: {e['msg']}" for e in exc.errors()
        )
        raise InputError(
            f"invalid evaluation protocol: {problems}",
            hint="check --users, --negatives, --history and --sampler",
        ) from None


def out_path(text: str, flag: str = "--out") -> Path:
    """An output path given on the command line; an empty one is refused (``Path("")`` would
    silently mean the current folder)."""
    if not text:
        raise InputError(f"{flag} is empty", hint=f"pass {flag} PATH: a file or folder to write")
    return Path(text)


def data_path(data: str) -> Path | None:
    """Where ``--data`` is read from: the path as given, else the name under $RECPROMPT_DATA.
    An empty one is refused (``Path("")`` would silently mean the current folder)."""
    if not data:
        raise InputError(
            "--data is empty", hint="pass --data PATH, or a dataset name under $RECPROMPT_DATA"
        )
    given = Path(data).expanduser()
    if given.exists():
        return given
    if os.environ.get("RECPROMPT_DATA"):
        return Path(os.environ["RECPROMPT_DATA"]).expanduser() / data
    return None


def data_reads(data: str) -> list[Path]:
    """Where a dataset is read from, which no output may replace or lie in: the --data
    folder or file, and the files and folders a dataset YAML names (its own folder may
    hold outputs: only what it names is data)."""
    from recprompt.data.descriptor import DatasetFile, _read

    found = data_path(data)
    if found is None or not found.exists():
        return []
    reads = [found]
    if found.is_file() and found.suffix in (".yaml", ".yml"):
        try:
            described: DatasetFile = _read(found)
        except RecpromptError:  # reported by the loader, with its location
            return reads
        reads.append((found.parent / described.path).expanduser())
        if described.items is not None:
            reads.append((found.parent / described.items.path).expanduser())
    return reads


def input_paths(spec: str, data: str | None = None) -> list[Path]:
    """Files and folders a command reads: the spec file and the dataset, where they exist."""
    from recprompt.library import resolve_spec_path

    paths: list[Path] = []
    with contextlib.suppress(RecpromptError):  # an unknown name fails later, with its message
        paths.append(resolve_spec_path(spec))
    found = data_path(data) if data is not None else None
    if found is not None:
        paths.append(found)
    return paths
