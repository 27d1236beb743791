"""Shared helpers for agent tests: real git repositories and waiting on agent states."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from tests.helpers import wait_for

FINAL = {"completed", "failed", "killed", "interrupted"}
GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=GIT_ENV).stdout


def make_repo(path: Path, files: dict[str, str] | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    for name, content in (files or {"README.md": "# demo\n"}).items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(content)
    git(path, "add", "-A")
    git(path, "commit", "-qm", "initial")
    return path


def wait_state(proc, agent_id: str, states: set[str] | str = FINAL, timeout: float = 60.0) -> dict[str, Any]:
    """The agent's record once it is in one of `states`, waiting on its agent:state events."""
    states = {states} if isinstance(states, str) else states

    def reached() -> dict[str, Any] | None:
        rec = proc.call("agents.get", {"id": agent_id})
        return rec if rec["state"] in states else None

    return wait_for(proc, ["agent:state"], "agentId", agent_id, reached, timeout)


def events_of(proc, pattern: str, agent_id: str | None = None) -> list[dict[str, Any]]:
    result = proc.call("events.list", {"since": 0, "pattern": pattern, "limit": 10000})
    return [e for e in result["events"] if agent_id is None or e["data"].get("agentId") == agent_id]


def proc_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return stat[stat.rindex(b")") + 2 :].split()[0].decode()


def group_members(pgid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_bytes()
            except OSError:
                continue
            fields = stat[stat.rindex(b")") + 2 :].split()
            if int(fields[2]) == pgid and fields[0] != b"Z":
                out.append(int(entry.name))
    return out
