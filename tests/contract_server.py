"""A recording HTTP server on 127.0.0.1 that answers like one server kind, for contract tests.

vLLM, SGLang, Ollama and OpenAI cannot run on this machine, so contract tests send recprompt's
real requests (through litellm or the scoring client, over a real socket) to this server,
which records every request (path, JSON body, headers) and answers in the shape the kind
documents. The tests then check each body against the parameters that server documents.
These are contract tests, not live tests: they prove what recprompt sends, not what a real
server does with it.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["ContractServer", "Request"]

Answer = Callable[["Request", int], Any]
"""(request, index among POSTs) -> the answer text, or a dict sent as the whole body."""


@dataclass
class Request:
    method: str
    path: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    """Lower-case header names."""


def _openai(path: str, text: str, logprobs: Any) -> dict[str, Any]:
    usage = {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13}
    if path.endswith("/chat/completions"):
        message = {"role": "assistant", "content": text}
        choice = {"index": 0, "message": message, "finish_reason": "stop", "logprobs": logprobs}
        return {"id": "c", "object": "chat.completion", "created": 0, "model": "m",
                "choices": [choice], "usage": usage}  # fmt: skip
    choice = {"index": 0, "text": text, "logprobs": logprobs, "finish_reason": "stop"}
    return {"id": "t", "object": "text_completion", "created": 0, "model": "m",
            "choices": [choice], "usage": usage}  # fmt: skip


class ContractServer:
    """Answers as ``kind`` (``vllm``, ``sglang``, ``ollama``, ``openai``, ``generic``).

    ``answer`` scripts the completion text per POST; ``status`` (index -> (code, message))
    scripts errors; ``version`` is what ``/version`` (vLLM) or ``/api/version`` (Ollama) says.
    """

    def __init__(
        self,
        kind: str,
        answer: Answer | None = None,
        *,
        version: str | None = None,
        status: Callable[[int], tuple[int, str] | None] | None = None,
    ) -> None:
        self.kind = kind
        self.answer = answer or (lambda request, n: "Yes")
        self.version = version
        self.status = status or (lambda n: None)
        self.requests: list[Request] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(data)

            def do_GET(self) -> None:
                owner.requests.append(
                    Request("GET", self.path, {}, {k.lower(): v for k, v in self.headers.items()})
                )
                owned = {"vllm": "vllm", "sglang": "sglang", "ollama": "library",
                         "openai": "openai", "generic": "someone"}[owner.kind]  # fmt: skip
                if self.path.endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": "m", "owned_by": owned}]})
                elif self.path == "/version" and owner.kind == "vllm":
                    self._send(200, {"version": owner.version or "0.12.0"})
                elif self.path == "/api/version" and owner.kind == "ollama":
                    self._send(200, {"version": owner.version or "0.12.11"})
                else:
                    self._send(404, {"error": "not found"})

            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(size) or b"{}")
                request = Request(
                    "POST", self.path, body, {k.lower(): v for k, v in self.headers.items()}
                )
                owner.requests.append(request)
                n = len(owner.posts) - 1
                failure = owner.status(n)
                if failure is not None:
                    self._send(failure[0], {"error": {"message": failure[1], "type": "x"}})
                    return
                value = owner.answer(request, n)
                if isinstance(value, dict):
                    self._send(200, value)
                elif self.path == "/api/generate":
                    self._send(200, {"model": "m", "response": value, "done": True,
                                     "prompt_eval_count": 11, "eval_count": 2})  # fmt: skip
                elif self.path == "/api/chat":
                    message = {"role": "assistant", "content": value}
                    self._send(200, {"model": "m", "message": message, "done": True,
                                     "prompt_eval_count": 11, "eval_count": 2})  # fmt: skip
                else:
                    self._send(200, _openai(self.path, value, None))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.root = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.url = f"{self.root}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def posts(self) -> list[Request]:
        return [r for r in self.requests if r.method == "POST"]

    def __enter__(self) -> ContractServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def completion_logprobs(alternatives: dict[str, float]) -> dict[str, Any]:
    """An OpenAI completions ``logprobs`` object for one generated token."""
    best = max(alternatives, key=alternatives.__getitem__)
    return {"tokens": [best], "token_logprobs": [alternatives[best]],
            "top_logprobs": [alternatives], "text_offset": [0]}  # fmt: skip


def chat_logprobs(alternatives: dict[str, float]) -> dict[str, Any]:
    """An OpenAI chat ``logprobs`` object for one generated token."""
    best = max(alternatives, key=alternatives.__getitem__)
    tops = [{"token": t, "logprob": v, "bytes": None} for t, v in alternatives.items()]
    first = {"token": best, "logprob": alternatives[best], "bytes": None, "top_logprobs": tops}
    return {"content": [first]}


def openai_body(path: str, text: str, logprobs: Any) -> dict[str, Any]:
    return _openai(path, text, logprobs)
