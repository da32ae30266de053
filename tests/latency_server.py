"""An OpenAI-compatible stand-in that answers every request after a fixed delay.

It measures what the client side can do with many requests in flight: the answer is valid
for recprompt's rating, choice and number outputs (a digit from 1 to 5 chosen by a hash of
the prompt, so it is the same however requests interleave), and arrives ``delay`` seconds
after the request. With ``admit=K`` it answers HTTP 429 (with ``Retry-After``) to requests
beyond K at once, as a rate-limited hosted API does; with ``remaining=True`` it reports
``x-ratelimit-remaining-requests`` on every answer.

Run it as a process (``python tests/latency_server.py --port 0 --delay 0.2`` prints the base
URL) so that its threads do not share the client's interpreter, or in-process with
:class:`LatencyServer` in tests. It binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["LatencyServer", "answer_for", "spawn"]


def answer_for(prompt: str) -> str:
    """The digit this server answers to ``prompt`` (deterministic)."""
    return str(1 + hashlib.sha256(prompt.encode("utf-8")).digest()[0] % 5)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


class LatencyServer:
    """The server; ``requests``, ``rejected`` and ``peak`` count what it saw."""

    def __init__(
        self,
        delay: float = 0.2,
        *,
        port: int = 0,
        admit: int | None = None,
        remaining: bool = False,
    ) -> None:
        self.delay, self.admit, self.remaining = delay, admit, remaining
        self.requests = self.rejected = self.in_flight = self.peak = 0
        self.prompts: list[str] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(data)

            def do_GET(self) -> None:
                models = {"object": "list", "data": [{"id": "latency", "owned_by": "latency"}]}
                self._send(200, models, {})

            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(size) or b"{}")
                status, headers = owner._enter()
                try:
                    if status == 429:
                        error = {"error": {"message": "rate limited", "type": "rate_limit"}}
                        self._send(429, error, headers)
                        return
                    time.sleep(owner.delay)
                    self._send(200, owner._body(self.path, body), headers)
                finally:
                    owner._leave(status)

        self.httpd = _Server(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def _enter(self) -> tuple[int, dict[str, str]]:
        with self._lock:
            self.requests += 1
            if self.admit is not None and self.in_flight >= self.admit:
                self.rejected += 1
                return 429, {"Retry-After": "0.05"}
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            left = max(0, (self.admit or 1000) - self.in_flight)
            return 200, ({"x-ratelimit-remaining-requests": str(left)} if self.remaining else {})

    def _leave(self, status: int) -> None:
        if status != 429:
            with self._lock:
                self.in_flight -= 1

    def _body(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path.endswith("/chat/completions"):
            prompt = json.dumps(body.get("messages", []), sort_keys=True)
        else:
            prompt = body.get("prompt", "")
            prompt = prompt[0] if isinstance(prompt, list) and prompt else str(prompt)
        with self._lock:
            self.prompts.append(prompt)
        text = answer_for(prompt)
        usage = {"prompt_tokens": max(1, len(prompt) // 4), "completion_tokens": 1}
        usage["total_tokens"] = usage["prompt_tokens"] + 1
        if path.endswith("/chat/completions"):
            choice = {"index": 0, "message": {"role": "assistant", "content": text}}
            return {"id": "l", "object": "chat.completion", "created": 0, "model": "latency",
                    "choices": [choice | {"finish_reason": "stop"}], "usage": usage}  # fmt: skip
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}
        return {"id": "l", "object": "text_completion", "created": 0, "model": "latency",
                "choices": [choice], "usage": usage}  # fmt: skip

    def __enter__(self) -> LatencyServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def spawn(delay: float = 0.2, *, admit: int | None = None) -> tuple[subprocess.Popen[str], str]:
    """Start the server in its own process; returns the process and its base URL."""
    args = [sys.executable, __file__, "--port", "0", "--delay", str(delay)]
    if admit is not None:
        args += ["--admit", str(admit)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http://127.0.0.1:"):
        proc.kill()
        raise RuntimeError(f"latency server did not start: {url!r}")
    return proc, url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--admit", type=int, default=None)
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="stop by itself")
    args = parser.parse_args()
    server = LatencyServer(args.delay, port=args.port, admit=args.admit)
    print(server.url, flush=True)
    timer = threading.Timer(args.max_seconds, server.httpd.shutdown)
    timer.daemon = True
    timer.start()
    parent = os.getppid()

    def orphaned() -> None:  # never outlive the process that started it
        while os.getppid() == parent:
            time.sleep(0.5)
        server.httpd.shutdown()

    threading.Thread(target=orphaned, daemon=True).start()
    server.httpd.serve_forever()


if __name__ == "__main__":
    main()
