"""Shared by the bench scripts: a real godeld on a throwaway home, and a load client."""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def running_godeld(extra_env: dict[str, str] | None = None):
    """Start godeld (sd_notify readiness, as systemd would); yield its socket path; stop it."""
    home = Path(tempfile.mkdtemp(prefix="gbench", dir="/tmp"))
    ready = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    address = f"godel-bench-{os.getpid()}-{time.monotonic_ns()}"
    ready.bind("\0" + address)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GODEL_")}
    env.update(NOTIFY_SOCKET="@" + address, GODEL_PLUGINS__ENTRY_POINTS="false", GODEL_PLUGINS__WATCH="false", GODEL_LOG__LEVEL="warning", **(extra_env or {}))
    proc = subprocess.Popen([sys.executable, "-m", "godeld", "run", "--home", str(home)], env=env, stdin=subprocess.DEVNULL)
    try:
        readable, _, _ = select.select([ready], [], [], 30)
        if not readable or b"READY=1" not in ready.recv(4096):
            raise SystemExit("godeld did not start")
        yield home / "godeld.sock"
    finally:
        ready.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        shutil.rmtree(home, ignore_errors=True)


def median(values):
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2
