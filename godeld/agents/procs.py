"""Process facts from /proc, for re-adopting agents after a restart of godeld: a pid is only
"our agent" if the process that has it now started when the agent's did."""

from __future__ import annotations

import os
import signal

import trio


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(b")") + 2 :].split()
    return int(fields[19])


def state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rindex(b")") + 2 :].split()[0].decode()


def alive(pid: int, started: int | None) -> bool:
    st = start_time(pid)
    return st is not None and (started is None or st == started) and state(pid) != "Z"


def signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False


def find_by_env(marks: dict[str, str]) -> list[int]:
    """Pids of live processes whose environment holds every NAME=VALUE of `marks` (processes a
    crashed godeld started, found without anything it had time to store)."""
    wanted = [f"{k}={v}".encode() for k, v in marks.items()]
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if all(w in env for w in wanted) and state(int(entry.name)) not in (None, "Z"):
            found.append(int(entry.name))
    return found


async def wait_exit(pid: int) -> None:
    """Wait until a process that is not our child ends (a re-adopted agent), with a pidfd."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        await trio.lowlevel.wait_readable(fd)
    finally:
        os.close(fd)


__all__ = ["start_time", "state", "alive", "signal_group", "find_by_env", "wait_exit", "signal"]
