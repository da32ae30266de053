"""A fault-injecting HTTP proxy on 127.0.0.1, for testing backends against a flaky server.

It forwards requests to a real upstream (a ``llama_cpp.server``) and, per request, injects the
fault a plan names. The faults are what users meet in front of real inference servers:

* ``"500"``: HTTP 500 with an error body;
* ``"429"``: HTTP 429 with ``Retry-After: <retry_after>``;
* ``"timeout"``: the request is held ``hold`` seconds (longer than the client's timeout),
  then the connection closes with no answer;
* ``"drop"``: the connection closes right after the request, with no answer;
* ``"truncate"``: the upstream's answer is cut in half under its full ``Content-Length``;
* ``"pass"``: forwarded untouched. If the upstream is down, the proxy answers 502 as a
  gateway would.

Faults hit completion requests (POST) only; ``GET /models`` always passes, so server detection
is not what a test measures. ``injected`` counts the faults sent, by kind.
"""

from __future__ import annotations

import collections
import contextlib
import http.client
import json
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

__all__ = ["FAULTS", "FaultProxy"]

FAULTS = ("500", "429", "timeout", "drop", "truncate")


class FaultProxy:
    """``plan(n)`` names the fault for the ``n``-th (0-based) POST; ``url`` is the proxy's base."""

    def __init__(
        self,
        upstream: str,
        plan: Callable[[int], str],
        *,
        retry_after: float = 1.0,
        hold: float = 3.0,
        on_request: Callable[[int], None] | None = None,
    ) -> None:
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname or "127.0.0.1", parts.port or 80
        self.plan = plan
        self.retry_after = retry_after
        self.hold = hold
        self.on_request = on_request
        self.injected: collections.Counter[str] = collections.Counter()
        self.posts = 0
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                owner._forward(self, b"")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with owner._lock:
                    n = owner.posts
                    owner.posts += 1
                if owner.on_request is not None:
                    owner.on_request(n)
                fault = owner.plan(n)
                if fault != "pass":
                    with owner._lock:
                        owner.injected[fault] += 1
                owner._inject(self, fault, body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        path = parts.path.rstrip("/")
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- faults -----------------------------------------------------------------------------

    def _inject(self, handler: BaseHTTPRequestHandler, fault: str, body: bytes) -> None:
        if fault == "pass":
            self._forward(handler, body)
        elif fault in ("500", "429"):
            headers = {"Retry-After": f"{self.retry_after:g}"} if fault == "429" else {}
            message = {"error": {"message": f"injected {fault}", "type": "fault"}}
            _send(handler, int(fault), headers, json.dumps(message).encode())
        elif fault == "timeout":
            time.sleep(self.hold)
            _hang_up(handler)
        elif fault == "drop":
            _hang_up(handler)
        elif fault == "truncate":
            status, headers, data = self._upstream(handler, body)
            headers["Content-Length"] = str(len(data))
            _send(handler, status, headers, data[: len(data) // 2])
            _hang_up(handler)
        else:
            raise ValueError(f"unknown fault {fault!r}; known: pass, {', '.join(FAULTS)}")

    def _forward(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        status, headers, data = self._upstream(handler, body)
        _send(handler, status, headers, data)

    def _upstream(
        self, handler: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=300)
        try:
            headers = {k: v for k, v in handler.headers.items() if k.lower() != "host"}
            connection.request(handler.command, handler.path, body=body or None, headers=headers)
            answer = connection.getresponse()
            data = answer.read()
            kept = {"Content-Type": answer.getheader("Content-Type", "application/json")}
            return answer.status, kept, data
        except OSError as exc:  # the upstream is down: answer as a gateway would
            message = {"error": {"message": f"upstream unreachable: {exc}", "type": "gateway"}}
            return 502, {"Content-Type": "application/json"}, json.dumps(message).encode()
        finally:
            connection.close()


def _send(
    handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], data: bytes
) -> None:
    handler.send_response(status)
    headers = {"Content-Type": "application/json", "Content-Length": str(len(data)), **headers}
    for key, value in headers.items():
        handler.send_header(key, value)
    handler.end_headers()
    with contextlib.suppress(OSError):  # the client may have given up already
        handler.wfile.write(data)
        handler.wfile.flush()


def _hang_up(handler: BaseHTTPRequestHandler) -> None:
    """Close the connection now, answering nothing more."""
    handler.close_connection = True
    with contextlib.suppress(OSError):
        handler.connection.shutdown(socket.SHUT_RDWR)
