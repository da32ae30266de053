"""Tuned programs as JSON: save what the optimizer chose, reload it anywhere a spec runs.

The file holds the spec's path and the SHA-256 of its parsed content, the chosen config
(variant, k, selector, history length), the selector's state, the demonstrations (fixed ones,
or the pool a per-input selector draws from), the optimizer's settings, package versions and
the numeric environment (threads, llama.cpp build, model file hash). The spec itself is *not*
copied: a tuned program is a set of choices about one spec, and a program tuned against an
older version of a spec is refused rather than silently applied to the new one (the choices
were measured on the old prompts).

The whole file is verified on load: its own checksum (``sha256``, over every other field),
the structure of every field, the agreement of the config with the stored variant, selector
and demonstrations, and the program hash recomputed from the rebuilt program. A hand-edited
demonstration, ``k`` or selector, or a held-out variant as the chosen one, is refused: the
file would claim a measured choice that was never measured.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

import dspy
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recprompt._files import open_regular, write_text_atomic
from recprompt.compile.program import Program
from recprompt.errors import ProgramError, RecpromptError
from recprompt.eval.identity import content_sha256
from recprompt.select import attach, make_selector
from recprompt.spec.model import Spec

__all__ = ["FORMAT", "load_program", "save_program", "spec_sha256"]

FORMAT = "recprompt.program/2"
_REDO = "re-run 'recprompt optimize' to write a fresh tuned program"


def spec_sha256(spec: Spec) -> str:
    """Hash of the spec's content (comments and key order in the YAML do not matter)."""
    dump = spec.model_dump(mode="json", by_alias=True)
    return hashlib.sha256(json.dumps(dump, sort_keys=True, default=str).encode()).hexdigest()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _SpecRef(_Strict):
    name: str
    path: str | None = None
    resolved: str | None = None
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class _Config(_Strict):
    variant: str
    k: int = Field(ge=0)
    selector: str
    history_length: int | None = Field(None, ge=1)
    draw: int = Field(0, ge=0)
    calibration: Literal["none", "contextual", "pride"] = "none"
    prior_weight: float | None = Field(None, ge=0.0, le=1.0)


class _Example(_Strict):
    data: dict[str, Any]
    inputs: list[str] | None = None


class _Saved(_Strict):
    """The file's structure; a missing or mistyped field is a clear error, not a KeyError."""

    format: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    spec: _SpecRef
    config: _Config
    variant: str
    selector: dict[str, Any] | None
    demos: list[_Example]
    pool: list[_Example]
    program_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    settings: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, Any] = Field(default_factory=dict)
    environment: dict[str, Any] = Field(default_factory=dict)


def _example(ex: Any) -> dict[str, Any]:
    data = dict(ex.toDict() if hasattr(ex, "toDict") else ex)
    keys = getattr(ex, "_input_keys", None)
    return {"data": data, "inputs": sorted(keys) if keys else None}


def _restore(entry: _Example) -> dspy.Example:
    ex = dspy.Example(**entry.data)
    return ex.with_inputs(*entry.inputs) if entry.inputs else ex


def save_program(
    program: Program,
    path: str | os.PathLike[str],
    *,
    spec: Spec,
    spec_path: str | os.PathLike[str],
    config: dict[str, Any],
    settings: dict[str, Any] | None = None,
    environment: dict[str, Any] | None = None,
) -> Path:
    """Write ``program`` (tuned from ``spec`` at ``spec_path``) as JSON; returns the path."""
    from recprompt.environment import numeric_environment
    from recprompt.eval.evaluate import spec_hash
    from recprompt.eval.report import package_versions
    from recprompt.optimize.search import Config, tuned_spec

    selector = program.selector
    # the hash of the program as load_program rebuilds it: a rank spec's search scores with
    # fusion off, and the saved spec carries the chosen calibration and weight
    rebuilt = tuned_spec(spec, Config(**config))
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
        "program_hash": spec_hash(program, rebuilt),
        "settings": settings or {},
        "versions": package_versions(),
        "environment": environment
        if environment is not None
        else numeric_environment(program.backend),
    }
    state = json.loads(json.dumps(state, default=str))  # the JSON the checksum will see
    state["sha256"] = content_sha256(state)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(out, json.dumps(state, indent=1, sort_keys=True))


def _find_spec(saved: _Saved, where: Path) -> Path:
    from recprompt.library import resolve_spec_path

    info = saved.spec
    for given in filter(None, (info.path, info.resolved)):
        for base in (Path.cwd(), where.parent):
            candidate = base / given
            if candidate.is_file():
                return candidate
    try:
        return resolve_spec_path(info.name)
    except RecpromptError:
        raise ProgramError(
            f"{where}: the spec it was tuned from is gone ({info.path})",
            hint="restore the spec file, or run the program's spec through optimize again",
        ) from None


def _read(where: Path) -> _Saved:
    try:
        with open_regular(where) as handle:  # a named pipe would wait for a writer forever
            raw = json.loads(handle.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProgramError(f"{where}: not a readable tuned program ({exc})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        found = raw.get("format") if isinstance(raw, dict) else None
        raise ProgramError(
            f"{where}: not a tuned program of this version (format {found!r}, expected {FORMAT!r})",
            hint=f"tuned programs are written by 'recprompt optimize --out P.json'; {_REDO}",
        )
    try:
        saved = _Saved.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in exc.errors()
        )
        raise ProgramError(f"{where}: malformed tuned program: {problems}", hint=_REDO) from None
    if content_sha256(raw) != saved.sha256:
        raise ProgramError(
            f"{where}: the file changed after optimize wrote it (checksum "
            f"{content_sha256(raw)[:12]} ≠ saved {saved.sha256[:12]})",
            hint="a tuned program records measured choices; edits to demonstrations, k, "
            "selector or variant were never measured. " + _REDO,
        )
    return saved


def _check_consistent(saved: _Saved, spec: Spec, where: Path) -> None:
    """The config must agree with what the file stores, and name a usable variant."""
    config = saved.config
    ids = {v.id: v for v in spec.all_variants()}
    problem = None
    if config.variant not in ids:
        problem = f"its variant {config.variant!r} is not in the spec (has {', '.join(ids)})"
    elif ids[config.variant].held_out:
        problem = (
            f"its variant {config.variant!r} is held out for zero-shot evaluation; "
            "the optimizer never chooses it"
        )
    elif saved.variant != config.variant:
        problem = f"its variant {saved.variant!r} differs from the config's {config.variant!r}"
    elif config.k == 0 and (saved.demos or saved.selector):
        problem = "its config is zero-shot but it stores demonstrations or a selector"
    elif config.selector == "fixed" and len(saved.demos) != config.k:
        problem = f"it stores {len(saved.demos)} fixed demonstrations for k={config.k}"
    elif config.k and config.selector != "fixed":
        name = (saved.selector or {}).get("name")
        inner = (saved.selector or {}).get("selector", {})
        if config.selector not in (name, inner.get("name") if isinstance(inner, dict) else None):
            problem = f"its selector {name!r} differs from the config's {config.selector!r}"
    if problem:
        raise ProgramError(f"{where}: inconsistent tuned program: {problem}", hint=_REDO)


def load_program(path: str | os.PathLike[str], **options: Any) -> Program:
    """Reload a tuned program; ``options`` go to :class:`Program` (backend, temperature...)."""
    from recprompt.eval.evaluate import spec_hash
    from recprompt.optimize.search import Config, tuned_spec
    from recprompt.spec import load_spec

    where = Path(path)
    saved = _read(where)
    spec_file = _find_spec(saved, where)
    spec = load_spec(spec_file)
    if spec_sha256(spec) != saved.spec.sha256:
        raise ProgramError(
            f"{where}: the spec {spec_file} changed since this program was tuned "
            f"(hash {spec_sha256(spec)[:12]} ≠ saved {saved.spec.sha256[:12]})",
            hint="re-run 'recprompt optimize' on the current spec; a tuned program's "
            "demonstrations and variant were measured on the old prompts",
        )
    _check_consistent(saved, spec, where)
    config = Config(**saved.config.model_dump())
    # an explicit variant (e.g. --variant) is the caller's choice; the tuned one otherwise
    variant = options.pop("variant", None) or saved.variant
    program = Program(tuned_spec(spec, config), variant=variant, **options)
    program.set_demos([_restore(d) for d in saved.demos])
    if saved.selector:
        try:
            selector = make_selector(**saved.selector)
        except (RecpromptError, TypeError) as exc:
            raise ProgramError(f"{where}: its selector cannot be rebuilt: {exc}") from None
        attach(program, selector, [_restore(d) for d in saved.pool])
    if spec_hash(program) != saved.program_hash:
        raise ProgramError(
            f"{where}: the rebuilt program differs from the one optimize saved "
            f"(program hash {spec_hash(program)[:12]} ≠ saved {saved.program_hash[:12]})",
            hint=_REDO,
        )
    program.saved = saved.model_dump(mode="json")  # type: ignore[attr-defined]
    return program
