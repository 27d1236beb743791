"""The tools of an API agent, confined to its worktree. Safety rules decide *whether* a call may
run (in godeld, before the call); this module also refuses paths that leave the worktree, so the
confinement holds even if a rule is switched off. Stdlib only: runs in the worker."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

from godeld.agents.llm import ToolSpec

MAX_READ = 256 * 1024
MAX_OUTPUT = 64 * 1024
MAX_MATCHES = 200

TOOL_SPECS = [
    ToolSpec("read_file", "Read a text file of the repository.", {"type": "object", "properties": {"path": {"type": "string", "description": "Path relative to the repository root"}}, "required": ["path"]}),
    ToolSpec("write_file", "Create or overwrite a file with the given content.", {"type": "object", "properties": {"path": {"type": "string"}, "content": {"type": "string"}}, "required": ["path", "content"]}),
    ToolSpec("edit_file", "Replace the one occurrence of `old` in a file with `new`.", {"type": "object", "properties": {"path": {"type": "string"}, "old": {"type": "string"}, "new": {"type": "string"}}, "required": ["path", "old", "new"]}),
    ToolSpec("list_dir", "List a directory of the repository.", {"type": "object", "properties": {"path": {"type": "string", "default": "."}}}),
    ToolSpec("search", "Search the repository's files for a regular expression.", {"type": "object", "properties": {"pattern": {"type": "string"}, "path": {"type": "string", "default": "."}}, "required": ["pattern"]}),
    ToolSpec("run_command", "Run a shell command in the repository root.", {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}),
]
TOOL_NAMES = [t.name for t in TOOL_SPECS]
# Offered when skills are available: a skill's files are read on demand (progressive disclosure).
SKILL_TOOL_SPEC = ToolSpec("read_skill_file", "Read a file of a skill listed in your instructions: SKILL.md for its full text, or a file it refers to.",
                           {"type": "object", "properties": {"skill": {"type": "string"}, "path": {"type": "string", "default": "SKILL.md"}}, "required": ["skill"]})
# Offered to agents of a swarm; the worker runs them through godeld (they are swarm:message events).
MESSAGE_TOOL_SPECS = [
    ToolSpec("send_message", "Send a message to the other agents of your swarm (or to one, with `to`: its agent id).",
             {"type": "object", "properties": {"text": {"type": "string"}, "to": {"type": "string"}}, "required": ["text"]}),
    ToolSpec("read_messages", "Read messages sent to you or to the whole swarm since you last read; `wait_s` waits that long for one.",
             {"type": "object", "properties": {"wait_s": {"type": "number", "default": 0}}}),
]


class ToolError(Exception):
    """The tool could not do what was asked; the message goes back to the model."""


class Tools:
    def __init__(self, worktree: str, *, env: dict[str, str], command_timeout_s: float = 600.0):
        self.root = Path(os.path.realpath(worktree))
        self.env = env
        self.command_timeout_s = command_timeout_s

    def run(self, name: str, args: dict[str, Any]) -> str:
        fn = getattr(self, f"tool_{name}", None)
        if fn is None or name not in TOOL_NAMES:
            raise ToolError(f"unknown tool {name!r}; tools: {', '.join(TOOL_NAMES)}")
        if not isinstance(args, dict):
            raise ToolError("tool arguments must be an object")
        try:
            return fn(**args)
        except TypeError as exc:
            raise ToolError(f"bad arguments for {name}: {exc}") from None
        except OSError as exc:
            raise ToolError(f"{name}: {exc.strerror or exc}") from None

    def _path(self, path: Any) -> Path:
        if not isinstance(path, str) or not path:
            raise ToolError("path must be a non-empty string")
        full = Path(os.path.realpath(self.root / path))
        if full != self.root and self.root not in full.parents:
            raise ToolError(f"{path} is outside the worktree")
        return full

    def tool_read_file(self, path: str) -> str:
        p = self._path(path)
        data = p.read_bytes()[: MAX_READ + 1]
        text = data[:MAX_READ].decode("utf-8", errors="replace")
        return text + ("\n[truncated at 256 KiB]" if len(data) > MAX_READ else "")

    def tool_write_file(self, path: str, content: str) -> str:
        if not isinstance(content, str):
            raise ToolError("content must be a string")
        p = self._path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
        return f"wrote {len(content.encode())} bytes to {path}"

    def tool_edit_file(self, path: str, old: str, new: str) -> str:
        p = self._path(path)
        text = p.read_text()
        count = text.count(old) if old else 0
        if count != 1:
            raise ToolError(f"`old` must occur exactly once in {path}; it occurs {count} times")
        p.write_text(text.replace(old, new, 1))
        return f"edited {path}"

    def tool_list_dir(self, path: str = ".") -> str:
        p = self._path(path)
        entries = sorted(e.name + ("/" if e.is_dir() else "") for e in p.iterdir() if e.name != ".git")
        return "\n".join(entries) or "(empty)"

    def tool_search(self, pattern: str, path: str = ".") -> str:
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise ToolError(f"bad pattern: {exc}") from None
        base = self._path(path)
        matches = []
        files = [base] if base.is_file() else sorted(f for f in base.rglob("*") if f.is_file() and ".git" not in f.relative_to(self.root).parts)
        for f in files:
            try:
                lines = f.read_text(errors="strict").splitlines()
            except (UnicodeDecodeError, OSError):
                continue  # binary or unreadable
            for n, line in enumerate(lines, 1):
                if regex.search(line):
                    matches.append(f"{f.relative_to(self.root)}:{n}: {line[:300]}")
                    if len(matches) >= MAX_MATCHES:
                        return "\n".join(matches) + f"\n[stopped at {MAX_MATCHES} matches]"
        return "\n".join(matches) or "no matches"

    def tool_run_command(self, command: str) -> str:
        if not isinstance(command, str) or not command.strip():
            raise ToolError("command must be a non-empty string")
        proc = subprocess.Popen(["/bin/sh", "-c", command], cwd=self.root, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        # The command stays in the agent's process group, so pausing or killing the agent
        # reaches it too.
        try:
            out, _ = proc.communicate(timeout=self.command_timeout_s)
        except subprocess.TimeoutExpired:
            for pid in [*descendants(proc.pid), proc.pid]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            out, _ = proc.communicate()
            text = out.decode(errors="replace")[-MAX_OUTPUT:]
            return f"{text}\n[command timed out after {self.command_timeout_s:g}s and was killed]\nexit code: -9"
        text = out.decode(errors="replace")
        if len(text) > MAX_OUTPUT:
            text = "[output cut to its last 64 KiB]\n" + text[-MAX_OUTPUT:]
        return f"{text}\nexit code: {proc.returncode}"


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, from /proc (deepest last)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out
