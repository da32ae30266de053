"""How many requests a server gets at once: AIMD on rate limits, optional RPM/TPM caps.

A run asks for ``--concurrency N``; a server that answers HTTP 429, sends ``Retry-After``
or reports its remaining quota low (``x-ratelimit-remaining-requests`` /
``x-ratelimit-remaining-tokens``) gets fewer requests at once: the allowed number is halved
(multiplicative decrease, never below 1) and every request waits out ``Retry-After``. Each
success then adds ``1/limit`` (additive increase: one more request in flight per round of
successes), never above N. ``rpm`` / ``tpm`` cap requests and tokens over any 60-second
window, as hosted APIs count them.

One :class:`Throttle` is shared by every thread of a run; :meth:`Throttle.call` wraps one
HTTP attempt.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from recprompt.errors import InputError

__all__ = ["Throttle", "attach_throttle", "is_rate_limit", "rate_headers", "response_tokens"]

T = TypeVar("T")
_WINDOW = 60.0


def rate_headers(source: Any) -> dict[str, str]:
    """Response headers of a litellm response or exception, lower-cased (empty if none).

    litellm keeps a provider's headers in ``_hidden_params["additional_headers"]`` (prefixed
    ``llm_provider-``) on responses and in ``litellm_response_headers`` on exceptions.
    """
    found: Any = None
    hidden = getattr(source, "_hidden_params", None)
    if isinstance(hidden, Mapping):
        found = hidden.get("additional_headers") or hidden.get("headers")
    if not found:
        found = getattr(source, "litellm_response_headers", None)
    if not found:
        found = getattr(getattr(source, "response", None), "headers", None)
    if not found:
        return {}
    out = {}
    for key, value in dict(found).items():
        name = str(key).lower().removeprefix("llm_provider-")
        out[name] = str(value)
    return out


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class Throttle:
    """At most ``limit`` requests at once (AIMD between 1 and ``max_concurrency``)."""

    def __init__(
        self,
        max_concurrency: int,
        *,
        rpm: int | None = None,
        tpm: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        for name, value in (("concurrency", max_concurrency), ("rpm", rpm), ("tpm", tpm)):
            if value is not None and (isinstance(value, bool) or int(value) != value or value < 1):
                raise InputError(
                    f"--{name} must be a positive integer, got {value!r}",
                    hint=f"omit --{name} for no cap" if name != "concurrency" else None,
                )
        self.max_concurrency = int(max_concurrency)
        self.limit = float(max_concurrency)
        self.rpm, self.tpm = rpm, tpm
        self.in_flight = 0
        self.decreases = 0
        self.peak = 0
        self._resume_at = 0.0
        self._requests: collections.deque[float] = collections.deque()
        self._tokens: collections.deque[tuple[float, int]] = collections.deque()
        self._clock, self._sleep = clock, sleep
        self._cond = threading.Condition()

    # -- admission --------------------------------------------------------------------------

    def _wait_needed(self, now: float) -> float:
        """Seconds until a request may start (0 = now); called with the condition held."""
        if self.in_flight >= max(1, int(self.limit)):
            return -1.0  # wait for a release
        waits = [self._resume_at - now]
        while self._requests and self._requests[0] <= now - _WINDOW:
            self._requests.popleft()
        while self._tokens and self._tokens[0][0] <= now - _WINDOW:
            self._tokens.popleft()
        if self.rpm is not None and len(self._requests) >= self.rpm:
            waits.append(self._requests[0] + _WINDOW - now)
        if self.tpm is not None and sum(n for _, n in self._tokens) >= self.tpm:
            waits.append(self._tokens[0][0] + _WINDOW - now)
        return max(0.0, *waits)

    def acquire(self) -> None:
        with self._cond:
            while True:
                wait = self._wait_needed(self._clock())
                if wait == 0.0:
                    break
                if wait < 0:
                    self._cond.wait(timeout=1.0)
                else:
                    self._cond.release()
                    try:
                        self._sleep(min(wait, 1.0))
                    finally:
                        self._cond.acquire()
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            self._requests.append(self._clock())

    def release(self) -> None:
        with self._cond:
            self.in_flight -= 1
            self._cond.notify_all()

    # -- feedback ---------------------------------------------------------------------------

    def decrease(self, retry_after: float | None = None) -> None:
        """Halve the number in flight (not below 1); hold every request for ``retry_after``."""
        with self._cond:
            self.limit = max(1.0, self.limit / 2)
            self.decreases += 1
            if retry_after:
                self._resume_at = max(self._resume_at, self._clock() + retry_after)

    def increase(self) -> None:
        """One success: ``+1/limit``, so the limit grows by one per round of successes."""
        with self._cond:
            self.limit = min(float(self.max_concurrency), self.limit + 1.0 / self.limit)
            self._cond.notify_all()

    def count_tokens(self, tokens: int) -> None:
        if tokens > 0:
            with self._cond:
                self._tokens.append((self._clock(), tokens))

    def observe(self, headers: Mapping[str, str]) -> bool:
        """React to a success's rate-limit headers; True when they asked to slow down."""
        remaining = [
            _number(headers.get(f"x-ratelimit-remaining-{kind}")) for kind in ("requests", "tokens")
        ]
        retry_after = _number(headers.get("retry-after"))
        low_requests = remaining[0] is not None and remaining[0] < max(1.0, self.limit)
        low_tokens = remaining[1] is not None and remaining[1] <= 0
        if low_requests or low_tokens or retry_after:
            self.decrease(retry_after)
            return True
        self.increase()
        return False

    def call(
        self,
        send: Callable[[], T],
        *,
        is_rate_limit: Callable[[BaseException], bool],
        retry_after: Callable[[BaseException], float | None],
        tokens: Callable[[T], int] = lambda _: 0,
    ) -> T:
        """One attempt under the throttle; a rate-limit error lowers the limit and re-raises."""
        self.acquire()
        try:
            result = send()
        except BaseException as exc:
            if is_rate_limit(exc):
                self.decrease(retry_after(exc))
            raise
        finally:
            self.release()
        self.count_tokens(tokens(result))
        self.observe(rate_headers(result))
        return result


def is_rate_limit(exc: BaseException) -> bool:
    """HTTP 429 (litellm's RateLimitError, or any error carrying that status)."""
    return getattr(exc, "status_code", None) == 429 or type(exc).__name__ == "RateLimitError"


def response_tokens(response: Any) -> int:
    """Prompt + completion tokens a litellm response reports (0 if it does not say)."""
    counts = getattr(response, "usage", None)
    total = getattr(counts, "total_tokens", None)
    if isinstance(total, int):
        return total
    return int(getattr(counts, "prompt_tokens", 0) or 0) + int(
        getattr(counts, "completion_tokens", 0) or 0
    )


def attach_throttle(
    backend: Any, concurrency: int, *, rpm: int | None = None, tpm: int | None = None
) -> Throttle | None:
    """Give the server backend inside ``backend`` (through cache and meter wrappers) one
    shared throttle, unless it already has one; returns the throttle in place, or None when
    no backend there talks to a server."""
    seen = 0
    while backend is not None and seen < 10:
        if hasattr(backend, "throttle"):
            if not isinstance(backend.throttle, Throttle):
                backend.throttle = Throttle(concurrency, rpm=rpm, tpm=tpm)
            return backend.throttle
        backend, seen = getattr(backend, "backend", None), seen + 1
    return None
