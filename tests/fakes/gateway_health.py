"""A stand-in for the gateway's ``GET /health/tokens`` on 127.0.0.1 (stdlib, in a thread).

The operator reads account refusals from there. ``tokens`` is the body it answers (change it
at any time); ``hang`` holds every request open until ``stop``; ``requests`` counts GETs.
The body has the gateway's shape (gateway/llmhub_gateway/api/routes/health.py).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def entry(error: str | None = None, message: str = "Token is valid") -> dict[str, Any]:
    """One provider's entry as the gateway writes it (``error`` only when refused)."""
    body: dict[str, Any] = {
        "status": "valid",
        "expires_at": "2027-01-01T00:00:00Z",
        "days_remaining": 30,
        "message": message,
    }
    if error is not None:
        body["error"] = error
    return body


class GatewayHealth:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.tokens: dict[str, Any] = {}
        self.hang = False
        self.requests = 0
        self.paths: list[str] = []
        self._lock = threading.Lock()
        self._release = threading.Event()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                with stand_in._lock:
                    stand_in.requests += 1
                    stand_in.paths.append(self.path)
                    hang, body = stand_in.hang, json.dumps(stand_in.tokens).encode()
                if hang:
                    stand_in._release.wait(120)
                    return
                status = 200 if self.path == "/health/tokens" else 404
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def count(self) -> int:
        with self._lock:
            return self.requests

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
