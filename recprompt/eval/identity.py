"""Fingerprints that tie a results folder to exactly one run.

A folder name, a dataset name or a spec name says nothing about content: every folder with a
``u.data`` used to be recorded as "ml-100k", so a changed dataset went unnoticed and old
results were reused. These fingerprints hash content instead:

* the data actually loaded (every interaction column and the item and user side tables);
* the cases built from it (ids, inputs, labels and candidate sets), which also pins the
  protocol's sampling and any change in how cases are built;
* the model: the backend's name plus, for a local GGUF file, its size and a hash of its
  first and last MiB (cheap on multi-GB files, and it changes with the weights).

Everything is hashed through canonical JSON (sorted keys), so equal content gives equal
hashes across runs and machines.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from recprompt.data import Dataset
from recprompt.environment import innermost_backend
from recprompt.eval.cases import Case

__all__ = ["cases_fingerprint", "content_sha256", "dataset_fingerprint", "model_identity"]

_CHUNK = 1 << 20


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False).encode("utf-8")


def content_sha256(state: dict[str, Any]) -> str:
    """Checksum of a saved JSON state (a tuned program, a run's prepared.json): every field
    but ``sha256`` itself, canonical JSON."""
    body = {k: v for k, v in state.items() if k != "sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _strings(column: np.ndarray) -> bytes:
    return "\x1f".join(map(str, column.tolist())).encode("utf-8", "surrogatepass")


def dataset_fingerprint(ds: Dataset) -> str:
    """SHA-256 of the loaded interactions (file order) and side tables; the name is left out."""
    digest = hashlib.sha256()
    for part in (
        _strings(ds.user),
        _strings(ds.item),
        np.ascontiguousarray(ds.rating, dtype="<f8").tobytes(),
        np.ascontiguousarray(ds.timestamp, dtype="<i8").tobytes(),
        _canonical(ds.items),
        _canonical(ds.users),
    ):
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return digest.hexdigest()


def _case_state(case: Case) -> list[Any]:
    meta = {k: v for k, v in case.meta.items() if k != "candidate_items"}  # derived from inputs
    return [case.id, case.inputs, case.label, meta]


def cases_fingerprint(cases: Iterable[Case]) -> str:
    """SHA-256 of every case in order: what the model is asked and what it is scored on."""
    digest = hashlib.sha256()
    for case in cases:
        part = _canonical(_case_state(case))
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return digest.hexdigest()


def _file_identity(path: Path) -> dict[str, Any]:
    size = path.stat().st_size
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        digest.update(handle.read(_CHUNK))
        if size > 2 * _CHUNK:
            handle.seek(size - _CHUNK)
        digest.update(handle.read(_CHUNK))
    return {"file": path.name, "bytes": size, "sha256_first_last_mib": digest.hexdigest()}


def model_identity(backend: Any) -> dict[str, Any]:
    """What identifies the model behind ``backend`` (unwrapping cache and meter wrappers)."""
    inner = innermost_backend(backend)
    identity: dict[str, Any] = {"name": getattr(backend, "name", str(backend))}
    revision = getattr(inner, "scoring_revision", None)
    if revision is not None:
        identity["scoring_revision"] = revision
    path = getattr(inner, "path", None)
    if isinstance(path, Path) and path.is_file():
        identity.update(_file_identity(path))
    return identity
