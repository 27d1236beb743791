"""Test helpers: a real godeld subprocess, raw socket clients, short temp dirs."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from godelctl.client import Client

REPO = Path(__file__).resolve().parent.parent


def short_tmpdir() -> Path:
    # AF_UNIX paths are limited to 107 bytes: pytest's tmp_path is often longer.
    return Path(tempfile.mkdtemp(prefix="g", dir="/tmp"))


class Godeld:
    """A real godeld process on a temporary home, started and awaited like systemd would."""

    def __init__(self, home: Path, *args: str, env: dict[str, str] | None = None, config: dict | None = None):
        self.home = home
        self.socket = home / "godeld.sock"
        self.args = list(args)
        self.env = dict(os.environ, **(env or {}))
        self.env.pop("GODEL_CONFIG", None)
        self.env.pop("GODEL_SOCKET", None)
        self.env.setdefault("GODEL_PLUGINS__ENTRY_POINTS", "false")
        self.log = home / "godeld.log"
        self.proc: subprocess.Popen | None = None
        if config is not None:
            import yaml

            (home / "config.yaml").write_text(yaml.safe_dump(config))

    def start(self, timeout: float = 20.0) -> "Godeld":
        self.home.mkdir(parents=True, exist_ok=True)
        ready = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        address = f"godel-test-{os.getpid()}-{time.monotonic_ns()}"
        ready.bind("\0" + address)
        env = dict(self.env, NOTIFY_SOCKET="@" + address)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "godeld", "run", "--home", str(self.home), *self.args],
                env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            )
        pidfd = os.pidfd_open(self.proc.pid)
        try:
            deadline = time.monotonic() + timeout
            while True:
                readable, _, _ = select.select([ready, pidfd], [], [], max(0.0, deadline - time.monotonic()))
                if not readable:
                    raise AssertionError(f"godeld not ready within {timeout}s:\n{self.output()}")
                if pidfd in readable:
                    raise AssertionError(f"godeld exited with {self.proc.wait()} during start:\n{self.output()}")
                if b"READY=1" in ready.recv(4096):
                    return self
        finally:
            os.close(pidfd)
            ready.close()

    def run_expecting_failure(self, timeout: float = 20.0) -> tuple[int, str]:
        """Run godeld that is expected not to start; return (exit code, its output)."""
        self.home.mkdir(parents=True, exist_ok=True)
        result = subprocess.run([sys.executable, "-m", "godeld", "run", "--home", str(self.home), *self.args], env=self.env, capture_output=True, text=True, timeout=timeout)
        return result.returncode, result.stdout + result.stderr

    def client(self, timeout: float = 30.0) -> Client:
        return Client(self.socket, timeout=timeout).connect()

    def call(self, method: str, params: Any = None) -> Any:
        with self.client() as client:
            return client.call(method, params)

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"godeld did not stop on SIGTERM:\n{self.output()}")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


def cleanup_home(home: Path) -> None:
    shutil.rmtree(home, ignore_errors=True)


class AsyncRpc:
    """A raw line-oriented JSON-RPC client on a trio stream (for in-process daemon tests)."""

    def __init__(self, stream: trio.SocketStream):
        self.stream = stream
        self._buffer = bytearray()
        self._ids = 0
        self.notifications: list[dict[str, Any]] = []

    @classmethod
    async def connect(cls, path: Path) -> "AsyncRpc":
        return cls(await trio.open_unix_socket(os.fspath(path)))

    async def send_raw(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def send(self, message: Any) -> None:
        await self.send_raw(json.dumps(message).encode() + b"\n")

    async def read_line(self) -> bytes:
        while b"\n" not in self._buffer:
            chunk = await self.stream.receive_some(65536)
            if not chunk:
                raise EOFError("connection closed")
            self._buffer += chunk
        line, _, rest = bytes(self._buffer).partition(b"\n")
        self._buffer = bytearray(rest)
        return line

    async def read(self) -> Any:
        return json.loads(await self.read_line())

    async def call(self, method: str, **params: Any) -> Any:
        """Call and return the response object (skipping notifications, which are kept)."""
        self._ids += 1
        request_id = self._ids
        await self.send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        while True:
            message = await self.read()
            if isinstance(message, dict) and "method" in message:
                self.notifications.append(message)
                continue
            return message

    async def result(self, method: str, **params: Any) -> Any:
        response = await self.call(method, **params)
        assert "result" in response, response
        return response["result"]

    async def next_notification(self) -> dict[str, Any]:
        if self.notifications:
            return self.notifications.pop(0)
        message = await self.read()
        assert isinstance(message, dict) and "method" in message, message
        return message

    async def aclose(self) -> None:
        await self.stream.aclose()


def shared_fixtures() -> Path:
    """The third-party material of ../shared/fixtures (public Agent Skills folders, the reference
    Godel's workflow, team and skill files). Found beside the project as the docs say, else where
    this machine kind keeps it, else where $GODEL_FIXTURES points; the tests need it, so its
    absence is an error, not a skip."""
    root = Path(__file__).resolve().parent.parent
    candidates = [Path(p) for p in [os.environ.get("GODEL_FIXTURES", "")] if p] + [root.parent / "shared" / "fixtures", Path("/work/shared/fixtures")]
    for candidate in candidates:
        if (candidate / "godel").is_dir():
            return candidate
    raise RuntimeError(f"the shared fixtures are missing: looked in {', '.join(map(str, candidates))} (set GODEL_FIXTURES)")


def wait_for(proc: "Godeld", patterns: list[str], key: str, value: str, done, timeout: float = 90.0) -> Any:
    """Wait on events, not the clock: subscribe from the start of the log to `patterns`; each
    time an event whose data[key] == value arrives, `done()` is asked, and its first truthy
    answer is returned. The subscription replays what already happened, so nothing is missed."""
    deadline = time.monotonic() + timeout
    found = done()
    if found:
        return found
    with proc.client(timeout=timeout) as client:
        client.call("events.subscribe", {"pattern": patterns, "since": 0})
        for message in client.notifications(timeout=timeout):
            event = message.get("params") or {}
            if message.get("method") == "events.event" and (event.get("data") or {}).get(key) == value:
                found = done()
                if found:
                    return found
            if time.monotonic() > deadline:
                break
    raise AssertionError(f"timed out waiting on {patterns} for {key}={value}: {proc.output()[-3000:]}")
