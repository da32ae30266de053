"""A disk cache in front of any backend, so a repeated run makes zero model calls.

One JSON file per call, named by the SHA-256 of everything that determines the answer
(backend name, method, prompt, constraint repr, max_tokens, temperature, seed). Entries are
written atomically (temp file, fsync, ``os.replace``) and carry a checksum of their payload,
so many writers (threads, or processes sharing one directory) never leave a torn entry: a
reader sees the old file or the new one, and equal keys hold equal answers;
an entry that is torn, corrupted or does not match its key is deleted and recomputed, never
returned. Errors are not cached.

Sampling (``temperature > 0``) without a seed is cached too: the first sample is replayed on
later runs. That makes reruns reproducible; pass distinct seeds to draw distinct samples.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from recprompt.backends.base import Backend, Completion, Prompt, Usage
from recprompt.backends.usage import UsageLedger, running_usage
from recprompt.constraints import Constraint
from recprompt.environment import innermost_backend

__all__ = ["CachedBackend", "default_cache_dir", "entry_payload"]

_FORMAT = 1


def default_cache_dir() -> Path:
    """``$RECPROMPT_CACHE`` if set, else ``~/.cache/recprompt``."""
    env = os.environ.get("RECPROMPT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "recprompt"


def _checksum(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def entry_payload(path: Path, key: str) -> Any:
    """The payload an entry file holds for ``key``; raises if the file is missing
    (FileNotFoundError), torn, corrupted or another key's (ValueError, KeyError, TypeError)."""
    entry = json.loads(path.read_text(encoding="utf-8"))
    if entry["key"] != key or entry["checksum"] != _checksum(entry["payload"]):
        raise ValueError(f"{path} fails its key or checksum")
    return entry["payload"]


class CachedBackend:
    """Wraps ``backend``; answers repeated calls from ``directory``.

    ``usage`` accumulates this wrapper's totals (hits, and the inner usage of misses);
    ``last_usage()`` gives the usage of this thread's most recent call, which
    :class:`~recprompt.backends.accounting.MeteredBackend` reads for ``score``.
    """

    def __init__(self, backend: Backend, directory: str | Path | None = None) -> None:
        self.backend = backend
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.name = backend.name
        self.supports_logits = backend.supports_logits
        self.usage = Usage()
        self._ledger = UsageLedger(self.usage)
        self.corrupted = 0
        self._lock = threading.Lock()
        self._local = threading.local()

    # -- keys and files ---------------------------------------------------------------------

    def key(self, method: str, prompt: Any, **params: Any) -> str:
        """The entry's name: SHA-256 over the backend name, method, prompt and parameters."""
        material = {"v": _FORMAT, "backend": self.name, "method": method, "prompt": prompt}
        material.update(params)
        if method == "score":  # a scoring change never serves older scores
            inner = innermost_backend(self.backend)
            material["revision"] = getattr(inner, "scoring_revision", None)
        return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def _read(self, key: str) -> Any | None:
        path = self.path(key)
        seen = None
        try:
            seen = path.stat().st_ino
            return entry_payload(path, key)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            pass
        with self._lock:
            self.corrupted += 1
        # another writer (thread or process) may have replaced the bad entry meanwhile:
        # delete only the file that was read, never its valid successor
        with contextlib.suppress(OSError):
            if path.stat().st_ino == seen:
                path.unlink()
        return None

    def _write(self, key: str, payload: Any) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = {"key": key, "checksum": _checksum(payload), "payload": payload}
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(entry, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _count(self, usage: Usage) -> Usage:
        self._ledger.add(usage)
        self._local.last = usage
        return usage

    def thread_usage(self) -> Usage:
        """The calling thread's running usage through this wrapper."""
        return self._ledger.mine()

    def last_usage(self) -> Usage | None:
        """Usage of this thread's most recent call through this wrapper."""
        return getattr(self._local, "last", None)

    # -- the Backend protocol ---------------------------------------------------------------

    def will_call(self, method: str, prompt: Any, **params: Any) -> bool:
        """Whether this call would reach the inner backend (no valid entry yet); a budget
        check uses it so that hits are served even when the call budget is spent."""
        if method == "generate":
            params["constraint"] = repr(params.get("constraint"))
        elif "continuations" in params:
            params["continuations"] = list(params["continuations"])
        return self._read(self.key(method, prompt, **params)) is None

    def generate(
        self,
        prompt: Prompt,
        *,
        constraint: Constraint | None,
        max_tokens: int,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> Completion:
        key = self.key(
            "generate",
            prompt,
            constraint=repr(constraint),
            max_tokens=max_tokens,
            temperature=temperature,
            seed=seed,
        )
        hit = self._read(key)
        if isinstance(hit, dict) and isinstance(hit.get("text"), str):
            return Completion(hit["text"], self._count(Usage(cache_hits=1)))
        start = time.monotonic()
        completion = self.backend.generate(
            prompt, constraint=constraint, max_tokens=max_tokens, temperature=temperature, seed=seed
        )
        usage = replace(completion.usage)
        if not usage.calls and not usage.seconds:
            usage.seconds = time.monotonic() - start
        self._write(key, {"text": completion.text, "usage": usage.as_dict()})
        return Completion(completion.text, self._count(usage))

    def score(self, prompt: str, continuations: Sequence[str]) -> list[float]:
        key = self.key("score", prompt, continuations=list(continuations))
        hit = self._read(key)
        if isinstance(hit, dict) and isinstance(hit.get("scores"), list):
            self._count(Usage(cache_hits=1))
            return [float(s) for s in hit["scores"]]
        start = time.monotonic()
        inner = running_usage(self.backend)
        before = copy.copy(inner) if isinstance(inner, Usage) else None
        scores = [float(s) for s in self.backend.score(prompt, continuations)]
        self._write(key, {"scores": scores})
        usage = Usage(calls=1)
        after = running_usage(self.backend)
        if before is not None and isinstance(after, Usage):  # the inner backend's own counts
            usage.prompt_tokens = after.prompt_tokens - before.prompt_tokens
            usage.completion_tokens = after.completion_tokens - before.completion_tokens
            usage.truncated_scores = after.truncated_scores - before.truncated_scores
        usage.seconds = time.monotonic() - start
        self._count(usage)
        return scores
