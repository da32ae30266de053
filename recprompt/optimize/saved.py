"""Tuned programs as JSON: save what the optimizer chose, reload it anywhere a spec runs.

The file holds the spec's path and the SHA-256 of its parsed content, the chosen config
(variant, k, selector, history length), the selector's state, the demonstrations (fixed ones,
or the pool a per-input selector draws from), the optimizer's settings and package versions.
The spec itself is *not* copied: a tuned program is a set of choices about one spec, and a
program tuned against an older version of a spec is refused rather than silently applied to
the new one (the choices were measured on the old prompts).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import dspy

from recprompt._files import write_text_atomic
from recprompt.compile.program import Program
from recprompt.errors import ProgramError, RecpromptError
from recprompt.select import attach, make_selector
from recprompt.spec.model import Spec

__all__ = ["FORMAT", "load_program", "save_program", "spec_sha256"]

FORMAT = "recprompt.program/1"


def spec_sha256(spec: Spec) -> str:
    """Hash of the spec's content (comments and key order in the YAML do not matter)."""
    dump = spec.model_dump(mode="json", by_alias=True)
    return hashlib.sha256(json.dumps(dump, sort_keys=True, default=str).encode()).hexdigest()


def _example(ex: Any) -> dict[str, Any]:
    data = dict(ex.toDict() if hasattr(ex, "toDict") else ex)
    keys = getattr(ex, "_input_keys", None)
    return {"data": data, "inputs": sorted(keys) if keys else None}


def _restore(entry: dict[str, Any]) -> dspy.Example:
    ex = dspy.Example(**entry["data"])
    return ex.with_inputs(*entry["inputs"]) if entry.get("inputs") else ex


def save_program(
    program: Program,
    path: str | os.PathLike[str],
    *,
    spec: Spec,
    spec_path: str | os.PathLike[str],
    config: dict[str, Any],
    settings: dict[str, Any] | None = None,
) -> Path:
    """Write ``program`` (tuned from ``spec`` at ``spec_path``) as JSON; returns the path."""
    from recprompt.eval.evaluate import spec_hash
    from recprompt.eval.report import package_versions

    selector = program.selector
    state = {
        "format": FORMAT,
        "spec": {
            "name": spec.name,
            "path": str(spec_path),
            "resolved": str(Path(spec_path).resolve()) if Path(spec_path).exists() else None,
            "sha256": spec_sha256(spec),
        },
        "config": config,
        "variant": program.variant,
        "selector": selector.state() if selector is not None else None,
        "demos": [_example(d) for d in program.predict.demos],
        "pool": [_example(d) for d in program.demo_pool] if selector is not None else [],
        "program_hash": spec_hash(program),
        "settings": settings or {},
        "versions": package_versions(),
    }
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(out, json.dumps(state, indent=1, sort_keys=True, default=str))


def _find_spec(saved: dict[str, Any], where: Path) -> Path:
    from recprompt.library import resolve_spec_path

    info = saved["spec"]
    tries = [info.get("path"), info.get("resolved")]
    for given in filter(None, tries):
        for base in (Path.cwd(), where.parent):
            candidate = base / given
            if candidate.is_file():
                return candidate
    try:
        return resolve_spec_path(info["name"])
    except RecpromptError:
        raise ProgramError(
            f"{where}: the spec it was tuned from is gone ({info.get('path')})",
            hint="restore the spec file, or run the program's spec through optimize again",
        ) from None


def load_program(path: str | os.PathLike[str], **options: Any) -> Program:
    """Reload a tuned program; ``options`` go to :class:`Program` (backend, temperature...)."""
    from recprompt.optimize.search import Config, tuned_spec
    from recprompt.spec import load_spec

    where = Path(path)
    try:
        saved = json.loads(where.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ProgramError(f"{where}: not a readable tuned program ({exc})") from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        found = saved.get("format") if isinstance(saved, dict) else None
        raise ProgramError(
            f"{where}: not a tuned program (format {found!r}, expected {FORMAT!r})",
            hint="tuned programs are written by 'recprompt optimize --out PROGRAM.json'",
        )
    spec_file = _find_spec(saved, where)
    spec = load_spec(spec_file)
    if spec_sha256(spec) != saved["spec"]["sha256"]:
        raise ProgramError(
            f"{where}: the spec {spec_file} changed since this program was tuned "
            f"(hash {spec_sha256(spec)[:12]} ≠ saved {saved['spec']['sha256'][:12]})",
            hint="re-run 'recprompt optimize' on the current spec; a tuned program's "
            "demonstrations and variant were measured on the old prompts",
        )
    config = Config(**saved["config"])
    variant = options.pop("variant", None) or saved.get("variant")
    program = Program(tuned_spec(spec, config), variant=variant, **options)
    program.set_demos([_restore(d) for d in saved.get("demos", [])])
    if saved.get("selector"):
        selector = make_selector(**saved["selector"])
        attach(program, selector, [_restore(d) for d in saved.get("pool", [])])
    program.saved = saved  # type: ignore[attr-defined]
    return program
