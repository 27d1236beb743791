"""A tiny synchronous JSON-RPC client for the agent worker: one connection to godeld, re-made
when godeld restarts (the worker outlives a daemon crash and is re-adopted). Stdlib only."""

from __future__ import annotations

import json
import socket
import time
from typing import Any


class DaemonGone(Exception):
    pass


class RemoteError(Exception):
    def __init__(self, error: dict[str, Any]):
        super().__init__(error.get("message", "error"))
        self.code = error.get("code")
        self.data = error.get("data")


class WorkerClient:
    def __init__(self, path: str, *, reconnect_for_s: float = 600.0):
        self.path = path
        self.reconnect_for_s = reconnect_for_s
        self._sock: socket.socket | None = None
        self._buf = b""
        self._next_id = 0

    def _connect(self) -> None:
        deadline = time.monotonic() + self.reconnect_for_s
        delay = 0.05
        while True:
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(self.path)
                self._sock, self._buf = sock, b""
                return
            except OSError:
                sock.close()
                if time.monotonic() > deadline:
                    raise DaemonGone(f"godeld is not running (socket: {self.path})") from None
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def call(self, method: str, **params: Any) -> Any:
        """Call `method`; if godeld goes away, reconnect and ask again (the worker's requests
        are idempotent or safe to repeat)."""
        while True:
            if self._sock is None:
                self._connect()
            self._next_id += 1
            request_id = self._next_id
            try:
                assert self._sock is not None
                self._sock.sendall(json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}).encode() + b"\n")
                while True:
                    message = json.loads(self._read_line())
                    if isinstance(message, dict) and message.get("id") == request_id:
                        break  # anything else (a notification) is not for us
            except (OSError, ValueError, DaemonGone):
                self.close()
                continue
            if "error" in message:
                error = message["error"]
                if error.get("code") == -32003:  # godeld is shutting down: wait for the next one
                    self.close()
                    time.sleep(0.2)
                    continue
                raise RemoteError(error)
            return message.get("result")

    def _read_line(self) -> bytes:
        assert self._sock is not None
        while b"\n" not in self._buf:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise DaemonGone("connection closed")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None
