"""Claude Code (`claude`) in print mode with streamed JSON events.

    claude -p TASK [--allowedTools T1 T2 ...] --output-format stream-json --verbose
           [--model M] [--resume SESSION] [--permission-mode MODE] [EXTRA...]

Events, one JSON object a line (see docs/cli-agents.md):
  {"type":"system","subtype":"init","session_id":..,"model":..}
  {"type":"assistant","message":{"id":"msg_..","model":..,"content":[text|tool_use|thinking..],"usage":{..}}}
  {"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":..,"content":..,"is_error":..}]}}
  {"type":"result","subtype":"success"|"error_..","is_error":..,"result":..,"session_id":..,
   "total_cost_usd":..,"usage":{..},"modelUsage":{MODEL:{inputTokens,..,costUSD}}}

Usage: each assistant message's usage is reported when it is printed. Claude Code prints one
assistant event per content block, all with the same message id and a usage snapshot that may
grow (the first can say output_tokens 1), so per message id only the growth is reported. The
result's totals (`modelUsage` per model, including side calls that never appear as messages, and
`total_cost_usd`) are the process's running totals: only what they exceed the reported sums by is
reported then, per model. Each `claude -p` run is a new process, so a resumed session starts its
totals at zero again (anthropics/claude-code#83239).
"""

from __future__ import annotations

from typing import Any

from godeld.agents.cli import CliEvent
from godeld.agents.llm import Usage
from godeld.default_plugins.cli_agents._common import (
    USAGE_FIELDS,
    LineParser,
    UsageMeter,
    as_dict,
    comma_list,
    count,
    executable,
    load_object,
    minus,
    money,
    option_list,
    option_str,
    positional,
    text_event,
    text_of,
    usage_event,
)

NAME = "claude"


def message_usage(data: Any) -> Usage:
    """An Anthropic usage object: input_tokens is already the uncached part."""
    u = as_dict(data)
    return Usage(
        input_tokens=count(u.get("input_tokens")),
        output_tokens=count(u.get("output_tokens")),
        cache_read_tokens=count(u.get("cache_read_input_tokens")),
        cache_write_tokens=count(u.get("cache_creation_input_tokens")),
    )


def model_usage(data: Any) -> Usage:
    """One entry of the result's modelUsage (camelCase, with the CLI's own cost)."""
    u = as_dict(data)
    return Usage(
        input_tokens=count(u.get("inputTokens")),
        output_tokens=count(u.get("outputTokens")),
        cache_read_tokens=count(u.get("cacheReadInputTokens")),
        cache_write_tokens=count(u.get("cacheCreationInputTokens")),
        cost_usd=money(u.get("costUSD")),
    )


def fieldwise_max(a: Usage, b: Usage) -> Usage:
    out = Usage(**{f: max(getattr(a, f), getattr(b, f)) for f in USAGE_FIELDS})
    costs = [c for c in (a.cost_usd, b.cost_usd) if c is not None]
    out.cost_usd = max(costs) if costs else None
    return out


def fieldwise_min(a: Usage, b: Usage) -> Usage:
    out = Usage(**{f: min(getattr(a, f), getattr(b, f)) for f in USAGE_FIELDS})
    if a.cost_usd is not None and b.cost_usd is not None:
        out.cost_usd = min(a.cost_usd, b.cost_usd)
    return out


def is_empty(u: Usage) -> bool:
    return not any(getattr(u, f) for f in USAGE_FIELDS) and not u.cost_usd


class ClaudeParser(LineParser):
    def __init__(self) -> None:
        self.session_id = ""
        self.model = ""
        self.meter = UsageMeter()
        self.by_message: dict[str, Usage] = {}  # largest usage snapshot seen per message id
        self.by_model: dict[str, Usage] = {}  # what has been reported per model

    def parse(self, line: str) -> list[CliEvent]:
        obj = load_object(line)
        if obj is None:
            return text_event(line)
        kind = obj.get("type")
        if kind == "system":
            return self._system(obj)
        if kind == "assistant":
            return self._assistant(obj)
        if kind == "user":
            return self._user(obj)
        if kind == "result":
            return self._result(obj)
        return []  # stream_event, rate-limit notices and future event types: nothing to log

    def _session(self, obj: dict[str, Any]) -> list[CliEvent]:
        sid = obj.get("session_id")
        if isinstance(sid, str) and sid and sid != self.session_id:
            self.session_id = sid
            return [CliEvent("session", session_id=sid, model=self.model)]
        return []

    def _system(self, obj: dict[str, Any]) -> list[CliEvent]:
        if obj.get("subtype") != "init":
            return []  # compact_boundary, hook responses, ...
        if isinstance(obj.get("model"), str):
            self.model = obj["model"]
        return self._session(obj)

    def _assistant(self, obj: dict[str, Any]) -> list[CliEvent]:
        msg = as_dict(obj.get("message"))
        model = msg.get("model") if isinstance(msg.get("model"), str) and msg.get("model") != "<synthetic>" else self.model
        events = self._session(obj)
        events += self._message_usage(str(msg.get("id") or obj.get("uuid") or ""), msg.get("usage"), model)
        content = msg.get("content")
        for block in content if isinstance(content, list) else [{"type": "text", "text": text_of(content)}]:
            block = as_dict(block)
            if block.get("type") == "text":
                events += text_event(str(block.get("text") or ""), model)
            elif block.get("type") in ("tool_use", "server_tool_use"):
                args = block.get("input")
                events.append(CliEvent("tool_use", name=str(block.get("name") or ""), args=args if isinstance(args, dict) else {"input": args}, tool_id=str(block.get("id") or ""), model=model))
        return events

    def _message_usage(self, message_id: str, data: Any, model: str) -> list[CliEvent]:
        if not isinstance(data, dict):
            return []
        seen = message_usage(data)
        before = self.by_message.get(message_id, Usage()) if message_id else Usage()
        now = fieldwise_max(before, seen)
        if message_id:
            self.by_message[message_id] = now
        delta = minus(now, before)
        delta.cost_usd = None
        if is_empty(delta):
            return []
        self._record(delta, model)
        return usage_event(delta, model)

    def _record(self, delta: Usage, model: str) -> None:
        self.meter.add(delta)
        self.by_model.setdefault(model, Usage()).add(delta)

    def _user(self, obj: dict[str, Any]) -> list[CliEvent]:
        content = as_dict(obj.get("message")).get("content")
        events = []
        for block in content if isinstance(content, list) else []:
            block = as_dict(block)
            if block.get("type") == "tool_result":
                events.append(CliEvent("tool_result", tool_id=str(block.get("tool_use_id") or ""), text=text_of(block.get("content")), is_error=bool(block.get("is_error"))))
        return events

    def _result(self, obj: dict[str, Any]) -> list[CliEvent]:
        events = self._session(obj)
        events += self._settle(obj)
        subtype = str(obj.get("subtype") or "")
        is_error = bool(obj.get("is_error")) or subtype not in ("", "success")
        text = obj.get("result") if isinstance(obj.get("result"), str) else ""
        if is_error and not text:
            errors = obj.get("errors") if isinstance(obj.get("errors"), list) else []
            text = "; ".join(str(e) for e in errors) or f"claude: {subtype or 'error'}"
        events.append(CliEvent("result", text=text, is_error=is_error, model=self.model))
        return events

    def _settle(self, obj: dict[str, Any]) -> list[CliEvent]:
        """Report what the result's running totals exceed the reported sums by: per model from
        modelUsage, the rest (usage beyond modelUsage, unknown model names) on the main model."""
        per_model = {str(m): model_usage(u) for m, u in as_dict(obj.get("modelUsage")).items()}
        total = Usage(cost_usd=0.0)
        for u in per_model.values():
            total.add(u)
        main = message_usage(obj.get("usage"))
        main.cost_usd = money(obj.get("total_cost_usd"))
        total = fieldwise_max(total, main)
        owed = minus(total, self.meter.reported)  # the most that may still be reported, per field
        events: list[CliEvent] = []
        for model, target in per_model.items():
            delta = fieldwise_min(minus(target, self.by_model.get(model, Usage())), owed)
            owed = minus(owed, delta)
            if not is_empty(delta):
                self._record(delta, model)
                events += usage_event(delta, model)
        if not is_empty(owed):
            self._record(owed, self.model)
            events += usage_event(owed, self.model)
        return events


class ClaudePreset:
    kind = "cli"
    name = NAME
    executable = "claude"
    default_model = ""
    supports_resume = True
    accepts_input = False  # print mode reads no messages while running: stdin should be closed

    def argv(self, *, task: str, model: str | None, session_id: str | None, options: dict[str, Any]) -> list[str]:
        argv = [executable(self, options), "-p", positional(task)]
        tools = option_list(NAME, options, "allowed_tools", split=comma_list)
        if tools:
            # --allowedTools takes several values: the fixed options after it end the list
            argv += ["--allowedTools", *tools]
        argv += ["--output-format", "stream-json", "--verbose"]
        if model:
            argv += ["--model", model]
        if session_id:
            argv += ["--resume", session_id]
        mode = option_str(NAME, options, "permission_mode", "acceptEdits")
        if mode:
            argv += ["--permission-mode", mode]
        max_turns = option_str(NAME, options, "max_turns")
        if max_turns:
            argv += ["--max-turns", max_turns]
        return argv + option_list(NAME, options, "extra_args")

    def parser(self) -> ClaudeParser:
        return ClaudeParser()

    def input_line(self, text: str) -> bytes | None:
        return None
