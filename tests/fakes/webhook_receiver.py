"""A chat-webhook receiver on 127.0.0.1 (stdlib, in a thread): records bodies, answers as told.

``answers`` is consumed one status per request (then 200; a 3xx carries ``Location:
redirect_to``); ``hang`` keeps every request open until ``stop``. Runs in its own thread so an
operator process or an in-loop client can use it.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    body: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


class WebhookReceiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.attempts = 0
        self.answers: list[int] = []
        self.hang = False
        self.redirect_to = ""
        self._lock = threading.Lock()
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with receiver._lock:
                    receiver.attempts += 1
                    status = receiver.answers.pop(0) if receiver.answers else 200
                    hang = receiver.hang
                if hang:
                    receiver._release.wait(60)
                    return
                if status == 200:
                    with receiver._lock:
                        receiver.received.append(Received(self.path, json.loads(raw)))
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", receiver.redirect_to)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks/T000/B000/secretpart"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def bodies(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.body for r in self.received]

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
