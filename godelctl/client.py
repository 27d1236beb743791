"""A synchronous JSON-RPC client over godeld's Unix socket. Standard library only (fast start)."""

from __future__ import annotations

import itertools
import json
import os
import socket
from collections import deque
from pathlib import Path
from typing import Any, Iterator

from godeld import protocol


class ClientError(Exception):
    """Base of the client's errors."""


class DaemonNotRunning(ClientError):
    def __init__(self, socket_path: Path, reason: str = ""):
        self.socket_path = socket_path
        super().__init__(f"godeld is not running (socket: {socket_path})" + (f": {reason}" if reason else ""))


class ConnectionLost(ClientError):
    def __init__(self, socket_path: Path):
        super().__init__(f"lost the connection to godeld (socket: {socket_path})")


class RpcError(ClientError):
    def __init__(self, code: int, message: str, data: Any = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_dict(self) -> dict[str, Any]:
        out = {"code": self.code, "message": self.message}
        if self.data is not None:
            out["data"] = self.data
        return out


class Client:
    def __init__(self, socket_path: Path | str, *, timeout: float | None = 60.0):
        self.socket_path = Path(socket_path)
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._reader = None
        self._ids = itertools.count(1)
        self._notifications: deque[dict[str, Any]] = deque()

    def connect(self) -> "Client":
        if self._sock is not None:
            return self
        path = os.fspath(self.socket_path)
        if len(os.fsencode(path)) > protocol.MAX_SOCKET_PATH_BYTES:
            raise DaemonNotRunning(self.socket_path, "the socket path is too long")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            raise DaemonNotRunning(self.socket_path) from None
        except PermissionError:
            sock.close()
            raise DaemonNotRunning(self.socket_path, "permission denied (the socket belongs to another user)") from None
        except OSError as exc:
            sock.close()
            raise DaemonNotRunning(self.socket_path, exc.strerror or str(exc)) from None
        self._sock = sock
        self._reader = sock.makefile("rb")
        return self

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        if self._sock is not None:
            self._sock.close()
        self._sock = self._reader = None

    def __enter__(self) -> "Client":
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, payload: Any) -> None:
        self.connect()
        data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
        try:
            assert self._sock is not None
            self._sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            raise ConnectionLost(self.socket_path) from None

    def _read(self, timeout: float | None = ...) -> Any:
        assert self._sock is not None and self._reader is not None
        self._sock.settimeout(self.timeout if timeout is ... else timeout)
        try:
            line = self._reader.readline()
        except ConnectionResetError:
            raise ConnectionLost(self.socket_path) from None
        if not line:
            raise ConnectionLost(self.socket_path)
        return json.loads(line)

    def call(self, method: str, params: Any = None) -> Any:
        request_id = next(self._ids)
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        self._send(message)
        while True:
            reply = self._read()
            if isinstance(reply, dict) and "method" in reply and "id" not in reply:
                self._notifications.append(reply)  # a subscription's event, arriving meanwhile
                continue
            if isinstance(reply, dict) and reply.get("id") in (request_id, None):
                if "error" in reply:
                    error = reply["error"]
                    raise RpcError(error.get("code", 0), error.get("message", "error"), error.get("data"))
                return reply.get("result")

    def batch(self, calls: list[tuple[str, Any]]) -> list[Any]:
        """Send calls as one batch; returns results (or RpcError instances) in order."""
        first = next(self._ids)
        ids = [first + i for i in range(len(calls))]
        self._ids = itertools.count(first + len(calls))
        self._send([{"jsonrpc": "2.0", "id": i, "method": m, **({"params": p} if p is not None else {})} for i, (m, p) in zip(ids, calls)])
        while True:
            reply = self._read()
            if isinstance(reply, list):
                by_id = {r.get("id"): r for r in reply}
                out = []
                for i in ids:
                    r = by_id.get(i, {"error": {"code": protocol.INTERNAL_ERROR, "message": "no response"}})
                    out.append(RpcError(r["error"].get("code", 0), r["error"].get("message", ""), r["error"].get("data")) if "error" in r else r.get("result"))
                return out
            if isinstance(reply, dict) and "error" in reply and reply.get("id") is None:
                raise RpcError(reply["error"].get("code", 0), reply["error"].get("message", ""), reply["error"].get("data"))
            if isinstance(reply, dict) and "method" in reply:
                self._notifications.append(reply)

    def notifications(self, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """Server notifications, in order, as they arrive (blocks; `timeout` per notification)."""
        while True:
            while self._notifications:
                yield self._notifications.popleft()
            try:
                message = self._read(timeout)
            except socket.timeout:
                return
            if isinstance(message, dict) and "method" in message:
                yield message
