"""Any litellm provider, or any OpenAI-compatible server, as a recprompt backend.

Why litellm and not DSPy's native client: DSPy sends ``max_completion_tokens``, which
``llama_cpp.server`` ignores (runaway generation); litellm sends ``max_tokens``.

Constraints go down to the server where it can enforce them. A llama.cpp server (declared with
``server="llama_cpp"`` or found by ``server="auto"``: its ``/models`` answer says
``owned_by: "me"`` (llama-cpp-python) or ``"llamacpp"`` (llama-server)) gets a GBNF grammar
for Choice and ItemList and a ``json_object`` response format with the schema for JsonObject
(OpenAI's ``json_schema`` form makes that server answer HTTP 500). Every answer is then checked
with ``constraint.validate``; an invalid one is *repaired* by re-asking with the validation
message appended, at most ``max_repairs`` times. A repair sees the output and the constraint,
never a label. For an ItemList under a grammar the repair instead keeps the distinct prefix of
the bad answer and forbids its items in the open positions, so each re-ask makes progress.

Requests to ``openai/<model>`` at an ``api_base`` (any OpenAI-compatible server) go through
one pooled HTTP client kept for the run (:mod:`recprompt.backends.openai_http`), not through
litellm's per-call client; a shared :class:`~recprompt.backends.throttle.Throttle` bounds the
requests in flight when a run sets ``--concurrency``.

Transport failures (HTTP 429 honouring Retry-After, 5xx, timeouts, refused connections) are
retried with exponential backoff, at most ``max_retries`` times, each request bounded by
``timeout`` seconds; then :class:`~recprompt.errors.ServerError`. ``Usage.calls`` counts
requests sent, ``Usage.retries`` counts transport retries plus repairs.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Sequence
from typing import Any, Literal

from recprompt.backends.base import Completion, Prompt, Usage
from recprompt.backends.grammar import gbnf_for, itemlist_gbnf, itemlist_prefix_text
from recprompt.backends.openai_http import client_for
from recprompt.backends.throttle import Throttle, is_rate_limit, response_tokens
from recprompt.constraints import Constraint, FreeText, ItemList, JsonObject
from recprompt.errors import BackendError, ModelNotFoundError, OutputError, ServerError

__all__ = ["LiteLLMBackend"]

ServerKind = Literal["auto", "llama_cpp", "generic"]
_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
_MAX_RETRY_AFTER = 30.0


def _litellm() -> Any:
    """Import litellm on first use: the import costs ~3 s, and offline it would try to fetch
    its cost map (~8 s) unless told to use the local copy."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    return litellm


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def _retryable(exc: BaseException) -> bool:
    litellm = _litellm()
    if isinstance(exc, litellm.Timeout | litellm.APIConnectionError | litellm.RateLimitError):
        return True
    status = _status(exc)
    return status is not None and (status in _RETRY_STATUS or status >= 500)


def _retry_after(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait (``Retry-After``), if it said."""
    headers: Any = getattr(exc, "litellm_response_headers", None)
    if headers is None:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
    if not headers:
        return None
    value = headers.get("retry-after") or headers.get("Retry-After")
    try:
        return min(max(float(value), 0.0), _MAX_RETRY_AFTER)
    except (TypeError, ValueError):
        return None


class LiteLLMBackend:
    """A model behind litellm: ``openai/<name>`` plus ``api_base`` for any OpenAI-compatible
    server, or any litellm provider string. Text prompts use text completion in
    ``mode="completion"`` (base models) and become one user message in ``mode="chat"``;
    message-list prompts always use chat."""

    supports_logits = False

    def __init__(
        self,
        model: str,
        api_base: str | None = None,
        api_key: str | None = None,
        mode: Literal["completion", "chat"] = "completion",
        max_retries: int = 3,
        timeout: float = 60,
        *,
        server: ServerKind = "auto",
        max_repairs: int | None = None,
        backoff: float = 0.5,
    ) -> None:
        if mode not in ("completion", "chat"):
            raise BackendError(f"mode must be 'completion' or 'chat', got {mode!r}")
        self.model = model
        self.api_base = api_base.rstrip("/") if api_base else None
        self.api_key = api_key if api_key is not None else ("none" if api_base else None)
        self.mode = mode
        self.max_retries = max_retries
        self.max_repairs = max_retries if max_repairs is None else max_repairs
        self.timeout = timeout
        self.backoff = backoff
        self.name = f"litellm:{model}" + (f"@{self.api_base}" if self.api_base else "")
        self._server: ServerKind = server
        self.throttle: Throttle | None = None
        """Shared by a run's threads: AIMD on rate limits, RPM/TPM caps (see .throttle)."""

    # -- server detection -------------------------------------------------------------------

    @property
    def server(self) -> ServerKind:
        """``llama_cpp`` or ``generic``; probed once when constructed with ``auto``."""
        if self._server == "auto":
            self._server = self._probe()
        return self._server

    def _probe(self) -> ServerKind:
        if not self.api_base:
            return "generic"
        import httpx

        try:
            answer = httpx.get(
                f"{self.api_base}/models",
                headers={"Authorization": f"Bearer {self.api_key}"},
                timeout=min(self.timeout, 5.0),
            )
            owners = {m.get("owned_by") for m in answer.json().get("data", [])}
        except Exception:  # an unreachable server surfaces on the first real call
            return "generic"
        return "llama_cpp" if owners & {"me", "llamacpp"} else "generic"

    # -- one request, with transport retries ------------------------------------------------

    def _request(self, prompt: Prompt, usage: Usage, **params: Any) -> str:
        from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

        litellm = _litellm()
        chat = isinstance(prompt, list) or self.mode == "chat"
        kwargs: dict[str, Any] = {
            "model": self.model,
            "timeout": self.timeout,
            "max_retries": 0,  # retries are ours, so they are bounded and counted once
            "api_base": self.api_base,
            "api_key": self.api_key,
            **{k: v for k, v in params.items() if v is not None},
        }
        if chat:
            kwargs["messages"] = (
                prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
            )
        else:
            kwargs["prompt"] = prompt

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            asked = _retry_after(exc) if exc else None
            return asked if asked is not None else self.backoff * 2 ** (state.attempt_number - 1)

        def before_sleep(state: RetryCallState) -> None:
            usage.retries += 1

        def send() -> Any:
            usage.calls += 1
            call = litellm.completion if chat else litellm.text_completion
            if self.api_base and self.model.startswith("openai/"):  # one pooled client
                call = functools.partial(
                    client_for(self.api_base, self.api_key, self.timeout).send, chat
                )
            if self.throttle is None:
                return call(**kwargs)
            return self.throttle.call(
                lambda: call(**kwargs),
                is_rate_limit=is_rate_limit,
                retry_after=_retry_after,
                tokens=response_tokens,
            )

        retrying = Retrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=wait,
            retry=retry_if_exception(_retryable),
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            response = retrying(send)
        except Exception as exc:
            raise self._as_error(exc) from exc
        counts = getattr(response, "usage", None)
        usage.prompt_tokens += int(getattr(counts, "prompt_tokens", 0) or 0)
        usage.completion_tokens += int(getattr(counts, "completion_tokens", 0) or 0)
        choice = response.choices[0]
        text = choice.message.content if chat else choice.text
        return text or ""

    def _as_error(self, exc: Exception) -> BackendError:
        litellm = _litellm()
        where = self.api_base or "the provider"
        if isinstance(exc, litellm.NotFoundError):
            return ModelNotFoundError(
                f"{where} does not serve model {self.model!r}: {exc}",
                hint="check the model name (litellm provider prefix, e.g. 'openai/<name>')",
            )
        tries = self.max_retries + 1 if _retryable(exc) else 1
        return ServerError(
            f"request to {where} for {self.model!r} failed after {tries} attempt(s): "
            f"{type(exc).__name__}: {str(exc)[:300]}",
            hint=f"is the server running and reachable? (timeout per request: {self.timeout:g} s)",
        )

    # -- constraints ------------------------------------------------------------------------

    def _constraint_params(self, constraint: Constraint | None, chat: bool) -> dict[str, Any]:
        if isinstance(constraint, FreeText):
            return {"stop": list(constraint.stop) or None}
        if constraint is None or self.server != "llama_cpp":
            return {}
        grammar = gbnf_for(constraint)
        if grammar is not None:
            return {"extra_body": {"grammar": grammar}}
        if isinstance(constraint, JsonObject):
            if chat:
                return {"response_format": {"type": "json_object", "schema": constraint.schema}}
            grammar = _json_schema_gbnf(constraint.schema)
            if grammar is not None:  # /v1/completions takes a grammar, not a response_format
                return {"extra_body": {"grammar": grammar}}
        return {}

    # -- the Backend protocol ---------------------------------------------------------------

    def generate(
        self,
        prompt: Prompt,
        *,
        constraint: Constraint | None,
        max_tokens: int,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> Completion:
        usage = Usage()
        start = time.monotonic()
        chat = isinstance(prompt, list) or self.mode == "chat"
        params = self._constraint_params(constraint, chat)
        grammar_list = isinstance(constraint, ItemList) and "extra_body" in params
        if chat and isinstance(prompt, str):
            prompt = [{"role": "user", "content": prompt}]
        current: Prompt = prompt
        forced = ""  # list text already written into a completion prompt by a repair
        bound = self.max_repairs
        if grammar_list:
            assert isinstance(constraint, ItemList)
            bound = max(bound, constraint.k - 1)  # each narrowing repair fixes >= 1 position
        try:
            for repair in range(bound + 1):
                text = forced + self._request(
                    current,
                    usage,
                    max_tokens=max_tokens,
                    temperature=temperature,
                    seed=seed,
                    **params,
                )
                error = constraint.validate(text) if constraint is not None else None
                if error is None:
                    return Completion(text, usage)
                if repair == bound:
                    raise OutputError(
                        f"{self.name}: output still invalid after {bound} repair(s): "
                        f"{error}\n  last output: {text[:500]!r}",
                        hint=f"expected {constraint.describe()}; raise max_tokens or "
                        "max_repairs, or use a backend that enforces the constraint",
                    )
                usage.retries += 1
                if grammar_list:
                    assert isinstance(constraint, ItemList)
                    prefix = _distinct_prefix(constraint, text)
                    if isinstance(prompt, str):  # continue the list instead of re-decoding it
                        forced = itemlist_prefix_text(constraint, prefix)
                        current = prompt + forced
                        grammar = itemlist_gbnf(constraint, prefix, emit_prefix=False)
                    else:
                        grammar = itemlist_gbnf(constraint, prefix)
                    params["extra_body"] = {"grammar": grammar}
                else:
                    current = _repair_prompt(prompt, text, error)
        finally:
            usage.seconds += time.monotonic() - start
        raise AssertionError("unreachable")  # pragma: no cover

    def score(self, prompt: str, continuations: Sequence[str]) -> list[float]:
        raise BackendError(
            f"{self.name} cannot score continuations: it exposes no logits",
            hint="use the local llama.cpp backend (model='local' or a .gguf path) to score "
            "options instead of parsing text",
        )


def _repair_prompt(prompt: Prompt, output: str, error: str) -> Prompt:
    """The original prompt plus the invalid answer and what was wrong with it."""
    if isinstance(prompt, list):
        return [
            *prompt,
            {"role": "assistant", "content": output},
            {
                "role": "user",
                "content": f"That answer is invalid: {error}. Reply again with only a "
                "corrected answer.",
            },
        ]
    return f"{prompt}{output}\n\n(That answer is invalid: {error}.)\nCorrected answer: "


def _distinct_prefix(constraint: ItemList, text: str) -> list[str]:
    """The longest prefix of the answer made of distinct candidates (empty if unparseable)."""
    try:
        values = constraint.parse(text)
    except (ValueError, SyntaxError):
        return []
    allowed, prefix = set(constraint.items), []
    for value in values[: constraint.k - 1]:
        if value not in allowed or value in prefix:
            break
        prefix.append(value)
    return prefix


def _json_schema_gbnf(schema: dict) -> str | None:
    """llama-cpp-python's JSON-schema→GBNF converter, when it is installed on this side."""
    try:
        from llama_cpp.llama_grammar import json_schema_to_gbnf
    except ImportError:
        return None
    return json_schema_to_gbnf(json.dumps(schema))
