"""OpenAI Codex CLI (`codex exec`) with JSON Lines events.

    codex exec --json [--model M] [--sandbox MODE] [EXTRA...] TASK
    codex exec --json [--model M] [--sandbox MODE] [EXTRA...] resume SESSION_ID TASK

Events (codex-rs/exec/src/exec_events.rs), one JSON object a line:
  thread.started {thread_id}     turn.started     turn.completed {usage}     turn.failed {error}
  item.started / item.updated / item.completed {item: {id, type, ...}} with type agent_message,
    reasoning, command_execution, file_change, mcp_tool_call, web_search, todo_list, plan, error
  error {message}
The older `--json` output ({"id":..,"msg":{"type":"session_configured"|"agent_message"|
"exec_command_begin"|"token_count"|"task_complete"|..}}) is understood too, best effort.

Usage: turn.completed carries the thread's running total (input_tokens includes
cached_input_tokens), and a resumed thread starts from the total saved in its rollout file
($CODEX_HOME/sessions/YYYY/MM/DD/rollout-*-THREAD.jsonl), so a resumed run would otherwise count
the earlier runs again. The parser therefore reads the last total saved before it was created
from that file when the thread starts, and reports only what the thread grew by since. The events
never name the model; the rollout's turn_context does, and it is read for pricing. Codex prints
no usage before the turn ends, so the budget learns of a run's tokens at its end.
"""

from __future__ import annotations

import datetime as dt
import glob
import json
import os
from pathlib import Path
from typing import Any

from godeld.agents.cli import CliEvent
from godeld.agents.llm import Usage
from godeld.default_plugins.cli_agents._common import (
    LineParser,
    UsageMeter,
    as_dict,
    count,
    executable,
    load_object,
    option_list,
    option_str,
    positional,
    text_event,
    text_of,
    usage_event,
)

NAME = "codex"


def thread_usage(data: Any) -> Usage:
    """A codex usage object. input_tokens includes the cached part (and the cache writes, which
    newer versions count for some providers); godel counts them apart."""
    u = as_dict(data)
    cached, written = count(u.get("cached_input_tokens")), count(u.get("cache_write_input_tokens"))
    return Usage(
        input_tokens=max(0, count(u.get("input_tokens")) - cached - written),
        output_tokens=count(u.get("output_tokens")),
        cache_read_tokens=cached,
        cache_write_tokens=written,
    )


def parse_time(text: Any) -> dt.datetime | None:
    if not isinstance(text, str):
        return None
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def codex_home() -> Path:
    return Path(os.environ.get("CODEX_HOME") or Path.home() / ".codex")


def rollouts(thread_id: str, home: Path | None = None) -> list[str]:
    if not thread_id or any(c in thread_id for c in "/\\*?["):
        return []
    return glob.glob(str((home or codex_home()) / "sessions" / "*" / "*" / "*" / f"rollout-*-{thread_id}.jsonl"))


def read_rollout(thread_id: str, before: dt.datetime, home: Path | None = None) -> tuple[Usage | None, str]:
    """From the thread's rollout: its running total as last saved before `before` (what a resumed
    thread starts from; None for a new thread, --ephemeral, or another CODEX_HOME) and the model
    its last turn used ("" if none)."""
    found, model = None, ""
    for path in rollouts(thread_id, home):
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    if '"token_count"' not in line and '"turn_context"' not in line:
                        continue  # rollouts grow large: parse only the lines that matter
                    obj = load_object(line) or {}
                    payload = as_dict(obj.get("payload"))
                    if obj.get("type") == "turn_context" and isinstance(payload.get("model"), str):
                        model = payload["model"]
                    total = as_dict(payload.get("info")).get("total_token_usage")
                    at = parse_time(obj.get("timestamp"))
                    if payload.get("type") == "token_count" and isinstance(total, dict) and at is not None and at < before:
                        found = thread_usage(total)
        except OSError:
            continue
    return found, model


def failed_exit(code: Any) -> bool:
    return isinstance(code, int) and not isinstance(code, bool) and code != 0


def _command(value: Any) -> str:
    return " ".join(str(v) for v in value) if isinstance(value, list) else str(value or "")


class CodexParser(LineParser):
    def __init__(self) -> None:
        self.created = dt.datetime.now(dt.timezone.utc)
        self.meter = UsageMeter()
        self.thread_id = ""
        self.model = ""
        self.last_message = ""
        self.started: set[str] = set()  # item ids whose tool_use was already reported

    def parse(self, line: str) -> list[CliEvent]:
        obj = load_object(line)
        if obj is None:
            return text_event(line)
        if isinstance(obj.get("msg"), dict):
            return self._legacy(obj["msg"])
        kind = obj.get("type")
        if kind in ("thread.started", "session.created"):
            return self._thread(str(obj.get("thread_id") or obj.get("session_id") or ""))
        if kind in ("item.started", "item.updated", "item.completed"):
            return self._item(kind, as_dict(obj.get("item")))
        if kind == "turn.completed":
            return self._total(thread_usage(obj.get("usage"))) + [CliEvent("result", text=self.last_message, model=self.model)]
        if kind == "turn.failed":
            message = str(as_dict(obj.get("error")).get("message") or "turn failed")
            return [CliEvent("result", text=message, is_error=True, model=self.model)]
        if kind == "error":
            return [CliEvent("error", text=str(obj.get("message") or line))]
        return []  # turn.started, item.plan.delta, the legacy config summary: nothing to log

    def _thread(self, thread_id: str) -> list[CliEvent]:
        if not thread_id or thread_id == self.thread_id:
            return []
        self.thread_id = thread_id
        baseline, _ = read_rollout(thread_id, self.created)
        if baseline is not None:
            self.meter.add(baseline)  # the earlier runs of a resumed thread, already counted then
        return [CliEvent("session", session_id=thread_id, model=self.model)]

    def _total(self, total: Usage) -> list[CliEvent]:
        if not self.model:
            # the JSONL events never name the model; the rollout's turn_context does, and the
            # budget prices tokens by model
            self.model = read_rollout(self.thread_id, self.created)[1]
        return usage_event(self.meter.top_up(total), self.model)

    def _item(self, kind: str, item: dict[str, Any]) -> list[CliEvent]:
        itype, item_id = item.get("type"), str(item.get("id") or "")
        if itype in ("agent_message", "assistant_message", "plan"):
            if kind != "item.completed":
                return []
            self.last_message = str(item.get("text") or "")
            return text_event(self.last_message)
        if itype == "error":
            return [CliEvent("error", text=str(item.get("message") or ""))] if kind == "item.completed" else []
        if itype == "todo_list" and kind == "item.completed":
            steps = [f"[{'x' if as_dict(t).get('completed') else ' '}] {as_dict(t).get('text', '')}" for t in item.get("items") or []]
            return text_event("plan: " + "; ".join(steps)) if steps else []
        call = self._tool(itype, item)
        if call is None:
            return []  # reasoning summaries and item types this version does not know
        name, args, output, failed = call
        events = []
        if item_id not in self.started:
            self.started.add(item_id)
            events.append(CliEvent("tool_use", name=name, args=args, tool_id=item_id))
        if kind == "item.completed":
            events.append(CliEvent("tool_result", tool_id=item_id, text=output, is_error=failed))
        return events

    @staticmethod
    def _tool(itype: Any, item: dict[str, Any]) -> tuple[str, dict[str, Any], str, bool] | None:
        status = item.get("status")
        if itype == "command_execution":
            failed = status in ("failed", "declined") or failed_exit(item.get("exit_code"))
            return "shell", {"command": _command(item.get("command"))}, str(item.get("aggregated_output") or ""), failed
        if itype == "file_change":
            changes = [{"path": as_dict(c).get("path"), "kind": as_dict(c).get("kind")} for c in item.get("changes") or []]
            summary = "\n".join(f"{c['kind']} {c['path']}" for c in changes)
            return "apply_patch", {"changes": changes}, summary, status == "failed"
        if itype == "mcp_tool_call":
            args = item.get("arguments")
            error = as_dict(item.get("error")).get("message")
            output = str(error) if error else text_of(as_dict(item.get("result")).get("content"))
            return f"mcp:{item.get('server')}/{item.get('tool')}", args if isinstance(args, dict) else {"arguments": args}, output, status == "failed" or bool(error)
        if itype == "web_search":
            return "web_search", {"query": item.get("query")}, "", False
        if itype == "collab_tool_call":
            return f"collab:{item.get('tool')}", {"prompt": item.get("prompt"), "receivers": item.get("receiver_thread_ids")}, "", status == "failed"
        return None

    # -- the older `--json` output: {"id": .., "msg": {"type": ..}} ---------------------------
    def _legacy(self, msg: dict[str, Any]) -> list[CliEvent]:
        kind = msg.get("type")
        if kind == "session_configured":
            if isinstance(msg.get("model"), str):
                self.model = msg["model"]
            return self._thread(str(msg.get("session_id") or ""))
        if kind == "agent_message":
            self.last_message = str(msg.get("message") or "")
            return text_event(self.last_message)
        if kind == "exec_command_begin":
            return [CliEvent("tool_use", name="shell", args={"command": _command(msg.get("command"))}, tool_id=str(msg.get("call_id") or ""))]
        if kind == "exec_command_end":
            output = msg.get("aggregated_output") or "".join(str(msg.get(k) or "") for k in ("stdout", "stderr"))
            return [CliEvent("tool_result", tool_id=str(msg.get("call_id") or ""), text=str(output), is_error=failed_exit(msg.get("exit_code")))]
        if kind == "patch_apply_begin":
            return [CliEvent("tool_use", name="apply_patch", args={"changes": sorted(as_dict(msg.get("changes")))}, tool_id=str(msg.get("call_id") or ""))]
        if kind == "patch_apply_end":
            return [CliEvent("tool_result", tool_id=str(msg.get("call_id") or ""), text=str(msg.get("stdout") or msg.get("stderr") or ""), is_error=not msg.get("success", True))]
        if kind == "mcp_tool_call_begin":
            inv = as_dict(msg.get("invocation"))
            args = inv.get("arguments")
            return [CliEvent("tool_use", name=f"mcp:{inv.get('server')}/{inv.get('tool')}", args=args if isinstance(args, dict) else {}, tool_id=str(msg.get("call_id") or ""))]
        if kind == "mcp_tool_call_end":
            return [CliEvent("tool_result", tool_id=str(msg.get("call_id") or ""), text=json.dumps(msg.get("result"), ensure_ascii=False)[:10000])]
        if kind == "token_count":
            return self._legacy_tokens(msg)
        if kind == "task_complete":
            text = msg.get("last_agent_message")
            return [CliEvent("result", text=text if isinstance(text, str) else self.last_message, model=self.model)]
        if kind in ("error", "stream_error"):
            return [CliEvent("error", text=str(msg.get("message") or ""))]
        return []

    def _legacy_tokens(self, msg: dict[str, Any]) -> list[CliEvent]:
        info = msg.get("info")
        if isinstance(info, dict):
            if isinstance(info.get("total_token_usage"), dict):
                return self._total(thread_usage(info["total_token_usage"]))  # repeated with rate-limit updates: a total is safe
            if isinstance(info.get("last_token_usage"), dict):
                delta = thread_usage(info["last_token_usage"])
                self.meter.add(delta)
                return usage_event(delta, self.model)
            return []
        if info is None and "input_tokens" not in msg:
            return []  # a rate-limit-only update
        delta = thread_usage(msg)  # the oldest form: the usage of one model response
        self.meter.add(delta)
        return usage_event(delta, self.model)


class CodexPreset:
    kind = "cli"
    name = NAME
    executable = "codex"
    default_model = ""
    supports_resume = True
    accepts_input = False  # a piped stdin is read to its end and appended to the prompt: close it

    def argv(self, *, task: str, model: str | None, session_id: str | None, options: dict[str, Any]) -> list[str]:
        argv = [executable(self, options), "exec", "--json"]
        if model:
            argv += ["--model", model]
        sandbox = option_str(NAME, options, "sandbox", "workspace-write")
        if sandbox:
            argv += ["--sandbox", sandbox]  # codex exec is read-only by default
        argv += option_list(NAME, options, "extra_args")
        if session_id:
            argv += ["resume", session_id]
        return argv + [positional(task)]

    def parser(self) -> CodexParser:
        return CodexParser()

    def input_line(self, text: str) -> bytes | None:
        return None
