"""systemd's readiness protocol (sd_notify), without libsystemd: one datagram to $NOTIFY_SOCKET."""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger("godeld")


def notify(*states: str) -> bool:
    """Send e.g. notify("READY=1"). Does nothing (and returns False) outside systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall("\n".join(states).encode())
    except OSError as exc:
        # e.g. `godelctl daemon start` stopped listening after READY=1: nothing to report to.
        log.debug("sd_notify to %s failed: %s", address, exc)
        return False
    return True


def reloading() -> bool:
    # Type=notify-reload wants the monotonic time with RELOADING=1.
    return notify("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")


def listen_fds() -> list[int]:
    """File descriptors passed by systemd socket activation (LISTEN_FDS), if meant for us."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return []
    try:
        count = int(os.environ.get("LISTEN_FDS", "0"))
    except ValueError:
        return []
    return list(range(3, 3 + count))
