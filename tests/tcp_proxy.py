"""A TCP proxy for the tests between a process and a real server (Redis, the API server) that
can delay the next reply, drop every connection, or black-hole traffic (a partition).

Plain threads and sockets, so it serves gateways in this process and in subprocesses alike.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Any


class FaultyProxy:
    def __init__(self, target_port: int) -> None:
        self._target = ("127.0.0.1", target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._lock = threading.Lock()
        self._delay_next = 0.0
        self._blackholed = False
        self._lose_until = 0.0
        self._sockets: set[socket.socket] = set()
        self._closed = False
        self.replies_delayed = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self) -> FaultyProxy:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def delay_next_reply(self, seconds: float) -> None:
        """Hold the next chunk Redis sends back (on any connection) for ``seconds``."""
        with self._lock:
            self._delay_next = seconds

    def lose_replies_for(self, seconds: float) -> None:
        """Commands still reach Redis and run, but their replies are discarded for a while."""
        self._lose_until = time.monotonic() + seconds

    def partition(self, on: bool = True) -> None:
        """While on, bytes in both directions are silently discarded (no RST, no reply)."""
        self._blackholed = on
        if on:
            self.drop_connections()

    def drop_connections(self) -> None:
        with self._lock:
            doomed = list(self._sockets)
            self._sockets.clear()
        for sock in doomed:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.drop_connections()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self._target, timeout=2)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, replies: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if self._blackholed:
                    continue
                if replies and time.monotonic() < self._lose_until:
                    continue
                if replies:
                    with self._lock:
                        delay, self._delay_next = self._delay_next, 0.0
                    if delay:
                        self.replies_delayed += 1
                        time.sleep(delay)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
