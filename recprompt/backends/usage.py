"""A backend's running usage, per thread as well as in total.

Programs, rankers and meters measure what one call cost as the difference of a backend's
running usage before and after it. With several calls in flight on threads, a shared total
would mix other threads' calls into that difference; each thread therefore also keeps its
own running usage, and :func:`running_usage` gives the one a difference should be taken of.
"""

from __future__ import annotations

import threading
from typing import Any

from recprompt.backends.base import Usage

__all__ = ["UsageLedger", "running_usage"]


class UsageLedger:
    """``total`` counts every thread's calls (it is the backend's ``usage``); ``mine()`` only
    the calling thread's."""

    def __init__(self, total: Usage | None = None) -> None:
        self.total = total if total is not None else Usage()
        self._local = threading.local()
        self._lock = threading.Lock()

    def mine(self) -> Usage:
        usage = getattr(self._local, "usage", None)
        if usage is None:
            usage = self._local.usage = Usage()
        return usage

    def add(self, usage: Usage) -> None:
        with self._lock:
            self.total.add(usage)
        self.mine().add(usage)


def running_usage(backend: Any) -> Usage | None:
    """The usage to difference around one call: the calling thread's when the backend keeps
    it per thread, else its ``usage`` attribute (None when it keeps none)."""
    mine = getattr(backend, "thread_usage", None)
    if callable(mine):
        return mine()
    usage = getattr(backend, "usage", None)
    return usage if isinstance(usage, Usage) else None
