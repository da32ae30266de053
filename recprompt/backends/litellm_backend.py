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

Other server kinds (vLLM, SGLang, Ollama, OpenAI) get their own strongest form of each
constraint, built in :mod:`recprompt.backends.server_kinds`; scores (expected rating, P(Yes),
letters, candidate likelihood) are read from ``top_logprobs`` or echoed prompt log-probabilities
by :mod:`recprompt.backends.http_scoring`. ``Usage.invalid_before_repair`` counts answers that
failed validation when first returned, ``Usage.invalid_after_repair`` those still invalid when
the repairs ran out. An API key is sent only in the request's Authorization header and is
masked in every error message.

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
import os
import time
from collections.abc import Sequence
from typing import Any, Literal

from recprompt.backends import http_scoring as hs
from recprompt.backends.base import Completion, Prompt, Usage, heal_space
from recprompt.backends.grammar import itemlist_gbnf, itemlist_prefix_text
from recprompt.backends.openai_http import client_for
from recprompt.backends.server_kinds import (
    ServerConstraint,
    ServerInfo,
    detect,
    kind_from_model,
    parse_kind,
    server_constraint,
)
from recprompt.backends.throttle import Throttle, is_rate_limit, response_tokens
from recprompt.constraints import Constraint, FreeText, ItemList
from recprompt.errors import BackendError, ModelNotFoundError, OutputError, ServerError

__all__ = ["LiteLLMBackend"]

ServerKind = str
"""One of :data:`recprompt.backends.server_kinds.KINDS`."""
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
    import httpx

    litellm = _litellm()
    if isinstance(exc, litellm.Timeout | litellm.APIConnectionError | litellm.RateLimitError):
        return True
    if isinstance(exc, httpx.TransportError):
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
    ``mode="completion"`` (base models; the default with an api_base) and become one user
    message in ``mode="chat"`` (the default for hosted providers);
    message-list prompts always use chat."""

    scoring_revision = 2
    """As :attr:`LocalBackend.scoring_revision`; 2: prompts' trailing spaces healed."""

    def __init__(
        self,
        model: str,
        api_base: str | None = None,
        api_key: str | None = None,
        mode: Literal["completion", "chat"] | None = None,
        max_retries: int = 3,
        timeout: float = 60,
        *,
        server: ServerKind = "auto",
        max_repairs: int | None = None,
        backoff: float = 0.5,
    ) -> None:
        if mode is None:  # hosted models are chat models; a local server serves completions
            mode = "chat" if api_base is None else "completion"
        if mode not in ("completion", "chat"):
            raise BackendError(f"mode must be 'completion' or 'chat', got {mode!r}")
        self.model = model
        self.api_base = api_base.rstrip("/") if api_base else None
        self.api_key = api_key if api_key is not None else ("none" if api_base else None)
        if api_key is None and api_base is None:
            _require_provider_key(model)
        self.mode = mode
        self.max_retries = max_retries
        self.max_repairs = max_retries if max_repairs is None else max_repairs
        self.timeout = timeout
        self.backoff = backoff
        self.name = f"litellm:{model}" + (f"@{self.api_base}" if self.api_base else "")
        self._declared = parse_kind(server)
        self._info: ServerInfo | None = None
        self.usage = Usage()
        """Everything this backend spent, over all calls (read by programs and the cache)."""
        self._split_options: set[tuple[str, ...]] = set()
        """Option sets this server's tokenizer splits after a space (" 5" as " ", "5")."""
        self.throttle: Throttle | None = None
        """Shared by a run's threads: AIMD on rate limits, RPM/TPM caps (see .throttle)."""

    # -- server detection -------------------------------------------------------------------

    @property
    def info(self) -> ServerInfo:
        """The server's kind (and version); probed once, lazily, when declared ``auto``."""
        if self._info is None:
            if self._declared != "auto":
                self._info = ServerInfo(self._declared)
            else:
                implied = kind_from_model(self.model, self.api_base)
                if implied is not None:
                    self._info = ServerInfo(implied, source="model")
                else:
                    assert self.api_base is not None
                    self._info = detect(self.api_base, self._headers(), min(self.timeout, 2.0))
        return self._info

    @property
    def server(self) -> ServerKind:
        """The server kind: ``llama_cpp``, ``vllm``, ``sglang``, ``ollama``, ``openai``..."""
        return self.info.kind

    @property
    def scoring(self) -> frozenset[str]:
        """How this server can score: ``top_logprobs`` and/or ``continuation`` (may be empty)."""
        if self.model.split("/", 1)[0] in ("ollama", "ollama_chat"):
            return frozenset()  # litellm's native Ollama route returns no logprobs
        ways = set()
        if self.info.returns_top_logprobs:
            ways.add("top_logprobs")
        if self.info.scores_continuations and self.mode == "completion":
            ways.add("continuation")
        return frozenset(ways)

    @property
    def supports_logits(self) -> bool:
        """True when the server returns log-probabilities, so programs score instead of parse."""
        return bool(self.scoring)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def _mask(self, text: str) -> str:
        """``text`` with the API key replaced, for every message that may be shown or stored."""
        key = self.api_key
        return text.replace(key, "***") if key and len(key) >= 4 else text

    # -- one request, with transport retries ------------------------------------------------

    def _retrying(self, send: Any, usage: Usage) -> Any:
        """Call ``send()`` with bounded, counted retries of transport failures."""
        from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            asked = _retry_after(exc) if exc else None
            return asked if asked is not None else self.backoff * 2 ** (state.attempt_number - 1)

        def before_sleep(state: RetryCallState) -> None:
            usage.retries += 1

        retrying = Retrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=wait,
            retry=retry_if_exception(_retryable),
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            return retrying(send)
        except Exception as exc:
            raise self._as_error(exc) from exc

    def _post(self, path: str, body: dict[str, Any], usage: Usage, stream: bool = False) -> Any:
        """POST a JSON body to ``api_base + path`` (scoring requests), with the retries."""
        import httpx

        if not self.api_base:
            raise BackendError(
                f"{self.name}: scoring over HTTP needs an OpenAI-compatible api_base",
                hint="pass --api-base http://host:port/v1",
            )
        url = f"{self.api_base}{path}"
        payload = {"model": self.model.split("/", 1)[-1], **body, "stream": stream}

        def send() -> Any:
            usage.calls += 1
            if not stream:
                answer = httpx.post(
                    url, json=payload, headers=self._headers(), timeout=self.timeout
                )
                _raise_for_status(answer)
                return answer.json()
            with httpx.stream(
                "POST", url, json=payload, headers=self._headers(), timeout=self.timeout
            ) as answer:
                _raise_for_status(answer)
                return hs.read_sse(answer.iter_lines())

        response = self._retrying(send, usage)
        counts = response.get("usage") or {}
        usage.prompt_tokens += int(counts.get("prompt_tokens") or 0)
        usage.completion_tokens += int(counts.get("completion_tokens") or 0)
        return response

    def _request(self, prompt: Prompt, usage: Usage, **params: Any) -> str:
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

        response = self._retrying(send, usage)
        counts = getattr(response, "usage", None)
        usage.prompt_tokens += int(getattr(counts, "prompt_tokens", 0) or 0)
        usage.completion_tokens += int(getattr(counts, "completion_tokens", 0) or 0)
        choice = response.choices[0]
        text = choice.message.content if chat else choice.text
        return text or ""

    def _as_error(self, exc: Exception) -> BackendError:
        litellm = _litellm()
        where = self.api_base or "the provider"
        if isinstance(exc, BackendError):
            return exc
        if isinstance(exc, litellm.NotFoundError):
            return ModelNotFoundError(
                f"{where} does not serve model {self.model!r}: {self._mask(str(exc))}",
                hint="check the model name (litellm provider prefix, e.g. 'openai/<name>')",
            )
        tries = self.max_retries + 1 if _retryable(exc) else 1
        return ServerError(
            f"request to {where} for {self.model!r} failed after {tries} attempt(s): "
            f"{type(exc).__name__}: {self._mask(str(exc))[:300]}",
            hint=f"is the server running and reachable? (timeout per request: {self.timeout:g} s)",
        )

    # -- constraints ------------------------------------------------------------------------

    def _chat(self, prompt: Prompt) -> bool:
        return isinstance(prompt, list) or self.mode == "chat"

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
        chat = self._chat(prompt)
        native_ollama = self.model.split("/", 1)[0] in ("ollama", "ollama_chat")
        enforced = (
            ServerConstraint()  # free text needs no server kind (and no probe)
            if constraint is None or isinstance(constraint, FreeText)
            else server_constraint(self.info, constraint, chat=chat, native_ollama=native_ollama)
        )
        params = dict(enforced.params)
        if isinstance(constraint, FreeText):
            params["stop"] = list(constraint.stop) or None
        grammar_list = isinstance(constraint, ItemList) and enforced.grammar is not None
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
                answer = self._request(
                    current,
                    usage,
                    max_tokens=max_tokens,
                    temperature=temperature,
                    seed=seed,
                    **params,
                )
                text = forced + enforced.read(answer)
                error = constraint.validate(text) if constraint is not None else None
                if error is None:
                    return Completion(text, usage)
                if repair == 0:
                    usage.invalid_before_repair += 1
                if repair == bound:
                    usage.invalid_after_repair += 1
                    failure = OutputError(
                        f"{self.name}: output still invalid after {bound} repair(s): "
                        f"{error}\n  last output: {text[:500]!r}",
                        hint=f"expected {constraint.describe()}; raise max_tokens or "
                        "max_repairs, or use a backend that enforces the constraint",
                    )
                    failure.usage = usage  # type: ignore[attr-defined]
                    raise failure
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
                    assert enforced.grammar is not None
                    params.update(enforced.grammar(grammar))
                else:
                    current = _repair_prompt(prompt, text, error)
        finally:
            usage.seconds += time.monotonic() - start
            self.usage.add(usage)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- scoring over HTTP ------------------------------------------------------------------

    def score_method(self, continuations: Sequence[str]) -> str:
        """``top_logprobs`` for short labels (single words; on vLLM any not found exactly
        among the alternatives is then scored as a continuation), ``continuation`` for longer
        texts; raises
        :class:`BackendError` (before any call) when the server supports neither."""
        ways = self.scoring
        labels = all(hs.is_label(c) for c in continuations)
        if labels and "top_logprobs" in ways:
            return "top_logprobs"
        if "continuation" in ways:
            return "continuation"
        need = "top_logprobs" if labels else "continuation scoring (echo with logprobs)"
        raise BackendError(
            f"{self.name} (server kind {self.server!r}) cannot score "
            f"{'these labels' if labels else 'candidate texts'}: it offers no {need}",
            hint="use a strategy this server supports (letters, pointwise and expected "
            "ratings need top_logprobs; likelihood needs vLLM or llama.cpp in completion "
            "mode), decode: generate, or the local llama.cpp backend (model 'local')",
        )

    def score(self, prompt: Prompt, continuations: Sequence[str]) -> list[float]:
        """Log-probability of each continuation after ``prompt`` (see http_scoring)."""
        method = self.score_method(continuations)
        usage = Usage()
        start = time.monotonic()
        try:
            if method == "top_logprobs":
                return self._score_top(prompt, list(continuations), usage)
            if not isinstance(prompt, str):
                raise BackendError(f"{self.name}: continuation scoring needs a completion prompt")
            return self._score_echo(prompt, list(continuations), usage)
        finally:
            usage.seconds += time.monotonic() - start
            self.usage.add(usage)

    def _score_top(self, prompt: Prompt, options: list[str], usage: Usage) -> list[float]:
        """Options read after the prompt with its trailing spaces moved into them (" A" is
        one token, as the local backend scores it); where that leaves options unfound
        (Gemma writes " 5" as [" ", "5"]), read after the prompt as written."""
        healed, spaced = heal_space(prompt, options)
        if healed is not prompt and tuple(options) not in self._split_options:
            scored = self._read_top(healed, spaced, usage)
            if not scored.truncated and not scored.variants:
                return scored.logprobs
            self._split_options.add(tuple(options))
        scored = self._read_top(prompt, options, usage)
        inexact = [o for o in options if o in scored.truncated or o in scored.variants]
        # vLLM scores echoed prompts in one cheap batched request; llama-cpp-python sorts the
        # whole vocabulary for every echoed token (minutes for a long prompt), so there an
        # option outside the top-k stays truncated, and is counted
        if inexact and self.server == "vllm" and "continuation" in self.scoring:
            assert isinstance(prompt, str)
            exact = dict(zip(inexact, self._score_echo(prompt, inexact, usage), strict=True))
            return [exact.get(o, v) for o, v in zip(options, scored.logprobs, strict=True)]
        usage.truncated_scores += len(scored.truncated)
        return scored.logprobs

    def _read_top(self, prompt: Prompt, options: list[str], usage: Usage) -> hs.OptionScores:
        chat = self._chat(prompt)
        if chat and isinstance(prompt, str):
            prompt = [{"role": "user", "content": prompt}]
        k = self.info.top_logprobs_limit
        body = hs.top_logprobs_body(prompt, chat=chat, k=k)
        path = "/chat/completions" if chat else "/completions"
        response = self._post(path, body, usage, stream=self.server == "llama_cpp")
        return hs.option_logprobs(hs.parse_top_logprobs(response, chat=chat), options)

    def _score_echo(self, prompt: str, conts: list[str], usage: Usage) -> list[float]:
        healed, conts = heal_space(prompt, conts)  # a " Title" token then starts in the text
        prompt = str(healed)  # a text prompt stays text
        texts = [prompt + c for c in conts]
        if self.server == "vllm":  # one request scores every candidate
            response = self._post("/completions", hs.continuation_body(texts), usage)
            choices = sorted(response["choices"], key=lambda c: c.get("index", 0))
        else:  # llama.cpp's Python server takes one prompt per request
            choices = [
                self._post("/completions", hs.continuation_body([t]), usage)["choices"][0]
                for t in texts
            ]
        return [hs.parse_continuation(ch, prompt, c) for ch, c in zip(choices, conts, strict=True)]


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


class _HTTPStatusError(Exception):
    """A scoring request's error status, shaped like litellm's errors for the retry rule."""

    def __init__(self, status_code: int, message: str, headers: Any) -> None:
        super().__init__(f"HTTP {status_code}: {message}")
        self.status_code = status_code
        self.litellm_response_headers = headers


def _raise_for_status(answer: Any) -> None:
    if answer.status_code >= 400:
        answer.read()
        raise _HTTPStatusError(answer.status_code, answer.text[:300], answer.headers)


def _require_provider_key(model: str) -> None:
    """A hosted provider's key must be in its usual environment variable (or --api-key):
    say so before any call, naming the variable, never the value."""
    provider = model.split("/", 1)[0] if "/" in model else ""
    if provider in ("ollama", "ollama_chat"):
        return
    litellm = _litellm()
    try:
        check = litellm.validate_environment(model=model)
    except Exception:  # an unknown provider: litellm says so on the first call
        return
    missing = check.get("missing_keys") or []
    if not check.get("keys_in_environment", True) and missing:
        raise BackendError(
            f"no API key for {model!r}: {', '.join(missing)} is not set",
            hint=f"export {missing[0]}=... or pass --api-key (it is never written to logs, "
            "reports or the cache); for a local server pass --api-base",
        )
