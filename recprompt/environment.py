"""The numeric environment of a run: what, besides the seed, changes a model's numbers.

Local numerics depend on the thread count (llama.cpp splits matrix products by thread), the
llama.cpp build (kernels differ by version and CPU features) and the exact model file. A
report or tuned program that does not record them cannot be reproduced: the same seed on
another machine may tune a different program. Every report and tuned program carries
:func:`numeric_environment`.
"""

from __future__ import annotations

import hashlib
import os
import platform
from pathlib import Path
from typing import Any

__all__ = ["file_sha256", "innermost_backend", "numeric_environment"]

_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, computed once per (path, size, mtime) in a process."""
    stat = Path(path).stat()
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def innermost_backend(backend: Any) -> Any:
    """The model backend under wrappers (disk cache, call meter, accounting)."""
    seen = 0
    while getattr(backend, "backend", None) is not None and seen < 10:
        backend = backend.backend
        seen += 1
    return backend


def numeric_environment(backend: Any = None) -> dict[str, Any]:
    """Threads, llama.cpp build and model file hash of ``backend`` (JSON-safe)."""
    env: dict[str, Any] = {
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    inner = innermost_backend(backend) if backend is not None else None
    if inner is None:
        return env
    env["backend"] = getattr(inner, "name", type(inner).__name__)
    llm = getattr(getattr(inner, "_model", None), "llm", None)
    if llm is not None:
        env["threads"] = getattr(llm, "n_threads", None)
        env["threads_batch"] = getattr(llm, "n_threads_batch", None)
        try:
            import llama_cpp

            env["llama_cpp_python"] = llama_cpp.__version__
            info = llama_cpp.llama_print_system_info()
            env["llama_cpp_system"] = info.decode() if isinstance(info, bytes) else str(info)
        except (ImportError, AttributeError):
            pass
    path = getattr(inner, "path", None)
    if path is not None and Path(path).is_file():
        env["model_file"] = Path(path).name
        env["model_sha256"] = file_sha256(path)
    for attr in ("model", "api_base"):
        if getattr(inner, attr, None) is not None and isinstance(getattr(inner, attr), str):
            env[attr] = getattr(inner, attr)
    return env
