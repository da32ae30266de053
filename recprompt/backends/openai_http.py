"""One pooled HTTP client for an OpenAI-compatible server, kept for the whole run.

Why not litellm for these requests: measured against a local server, each litellm call built
a new ``httpx.Client`` and with it a new SSL context (``load_verify_locations``: 48 ms on a
quiet machine, 270 ms on a loaded one) and ran its cost and logging machinery, about 0.4 s of
CPU per request that no number of requests in flight can hide. For ``openai/<model>`` with an
``api_base`` the request is plain JSON over HTTP, so one ``httpx.Client`` (one SSL context,
one keep-alive connection pool sized for the run) sends it directly.

Answers keep the shape of litellm's (``choices[0].text`` / ``choices[0].message.content``,
``usage``, response headers under ``_hidden_params["additional_headers"]``) and failures
raise litellm's exception types, so retries, repairs and errors work as with litellm.
"""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace
from typing import Any

__all__ = ["OpenAIHTTP", "client_for"]

_CLIENTS: dict[tuple[str, str | None, float], OpenAIHTTP] = {}
_CLIENTS_LOCK = threading.Lock()
_NOT_BODY = {"model", "timeout", "max_retries", "api_base", "api_key", "extra_body"}


def _namespace(value: Any) -> Any:
    """JSON as attribute-access objects (``response.choices[0].text``), like the SDK's."""
    if isinstance(value, dict):
        return SimpleNamespace(**{k: _namespace(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_namespace(v) for v in value]
    return value


class OpenAIHTTP:
    """Sends ``/completions`` and ``/chat/completions`` requests over one connection pool."""

    def __init__(self, api_base: str, api_key: str | None, timeout: float) -> None:
        import httpx

        self.api_base = api_base.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)
        self.client = httpx.Client(headers=headers, timeout=timeout, limits=limits)

    def send(self, chat: bool, **kwargs: Any) -> Any:
        """One request; raises litellm's exception types on failure."""
        import httpx

        model = str(kwargs["model"]).removeprefix("openai/")
        body = {k: v for k, v in kwargs.items() if k not in _NOT_BODY and v is not None}
        body["model"] = model
        body.update(kwargs.get("extra_body") or {})
        path = "/chat/completions" if chat else "/completions"
        timeout = kwargs.get("timeout")
        try:
            answer = self.client.post(self.api_base + path, json=body, timeout=timeout)
        except httpx.TimeoutException as exc:
            raise _litellm().Timeout(
                message=f"{type(exc).__name__}: {exc}", model=model, llm_provider="openai"
            ) from exc
        except httpx.TransportError as exc:
            raise _litellm().APIConnectionError(
                message=f"{type(exc).__name__}: {exc}", llm_provider="openai", model=model
            ) from exc
        if answer.status_code >= 400:
            raise _status_error(answer, model)
        try:
            data = answer.json()
        except json.JSONDecodeError as exc:
            raise _litellm().APIError(
                status_code=502,
                message=f"the server's answer is not JSON: {answer.text[:200]!r}",
                llm_provider="openai",
                model=model,
            ) from exc
        response = _namespace(data)
        response._hidden_params = {"additional_headers": dict(answer.headers)}
        return response


def _litellm() -> Any:
    from recprompt.backends.litellm_backend import _litellm as load

    return load()


def _status_error(answer: Any, model: str) -> Exception:
    litellm = _litellm()
    text = answer.text[:300]
    status = answer.status_code
    if status == 429:
        return litellm.RateLimitError(
            message=text, llm_provider="openai", model=model, response=answer
        )
    if status == 404:
        return litellm.NotFoundError(
            message=text, model=model, llm_provider="openai", response=answer
        )
    return litellm.APIError(
        status_code=status, message=text, llm_provider="openai", model=model, response=answer
    )


def client_for(api_base: str, api_key: str | None, timeout: float) -> OpenAIHTTP:
    """The process's one client for this server (shared by every backend and thread)."""
    key = (api_base, api_key, timeout)
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            client = _CLIENTS[key] = OpenAIHTTP(api_base, api_key, timeout)
        return client
