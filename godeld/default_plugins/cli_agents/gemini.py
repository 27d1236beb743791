"""Gemini CLI (`gemini`) in headless mode with streamed JSON events.

    gemini -p TASK --output-format stream-json [-m MODEL] [--resume SESSION]
           [--approval-mode MODE] [--allowed-tools=T ...] [EXTRA...]

Events (packages/core/src/output/types.ts), one JSON object a line, each with a timestamp:
  init {session_id, model}
  message {role: "user"|"assistant", content, delta?}   assistant text comes in delta chunks
  tool_use {tool_name, tool_id, parameters}      tool_result {tool_id, status, output?, error?}
  error {severity: "warning"|"error", message}
  result {status: "success"|"error", error?, stats: {total_tokens, input_tokens, output_tokens,
          cached, input, duration_ms, tool_calls}}

Usage: Gemini CLI prints tokens only in the final result, as the process's totals over all
models (input_tokens includes `cached`; `input` is the uncached part; thinking tokens are in
total_tokens only). They are reported then, as the delta beyond what was reported before.
The result carries no text: the final answer is the assistant text after the last tool call.
"""

from __future__ import annotations

from typing import Any

from godeld.agents.cli import CliEvent
from godeld.agents.llm import Usage
from godeld.default_plugins.cli_agents._common import (
    LineParser,
    UsageMeter,
    as_dict,
    comma_list,
    count,
    executable,
    load_object,
    option_list,
    option_str,
    positional,
    text_event,
    usage_event,
)

NAME = "gemini"


def stats_usage(data: Any) -> Usage:
    s = as_dict(data)
    prompt, cached, output = count(s.get("input_tokens")), count(s.get("cached")), count(s.get("output_tokens"))
    uncached = count(s.get("input")) if "input" in s else max(0, prompt - cached)
    # total_tokens also holds thinking (and tool-use prompt) tokens, billed like output
    extra = max(0, count(s.get("total_tokens")) - prompt - output)
    return Usage(input_tokens=uncached, output_tokens=output + extra, cache_read_tokens=cached)


class GeminiParser(LineParser):
    def __init__(self) -> None:
        self.meter = UsageMeter()
        self.session_id = ""
        self.model = ""
        self.pending = ""  # assistant delta text not yet ended by a newline
        self.answer: list[str] = []  # assistant text since the last tool call: the final answer

    def parse(self, line: str) -> list[CliEvent]:
        obj = load_object(line)
        if obj is None:
            return self._flush() + text_event(line)
        kind = obj.get("type")
        if kind == "message":
            return self._message(obj)
        events = self._flush()
        if kind == "init":
            if isinstance(obj.get("model"), str):
                self.model = obj["model"]
            sid = obj.get("session_id")
            if isinstance(sid, str) and sid and sid != self.session_id:
                self.session_id = sid
                events.append(CliEvent("session", session_id=sid, model=self.model))
        elif kind == "tool_use":
            self.answer = []
            params = obj.get("parameters")
            events.append(CliEvent("tool_use", name=str(obj.get("tool_name") or ""), args=params if isinstance(params, dict) else {}, tool_id=str(obj.get("tool_id") or ""), model=self.model))
        elif kind == "tool_result":
            self.answer = []
            failed = obj.get("status") == "error"
            text = obj.get("output") if isinstance(obj.get("output"), str) else str(as_dict(obj.get("error")).get("message") or "")
            events.append(CliEvent("tool_result", tool_id=str(obj.get("tool_id") or ""), text=text, is_error=failed))
        elif kind == "error":
            events.append(CliEvent("error", text=str(obj.get("message") or line)))
        elif kind == "result":
            events += usage_event(self.meter.top_up(stats_usage(obj.get("stats"))), self.model)
            failed = obj.get("status") == "error"
            text = "".join(self.answer).strip()
            if failed:
                error = as_dict(obj.get("error"))
                text = str(error.get("message") or error.get("type") or "gemini: error")
            events.append(CliEvent("result", text=text, is_error=failed, model=self.model))
        return events

    def _message(self, obj: dict[str, Any]) -> list[CliEvent]:
        if obj.get("role") != "assistant":
            return []  # the user's prompt, echoed
        content = obj.get("content") if isinstance(obj.get("content"), str) else ""
        self.answer.append(content)
        if not obj.get("delta"):
            return self._flush() + text_event(content, self.model)
        # deltas are arbitrary chunks: log whole lines as they complete
        self.pending += content
        if "\n" not in self.pending:
            return []
        done, self.pending = self.pending.rsplit("\n", 1)
        return text_event(done, self.model)

    def _flush(self) -> list[CliEvent]:
        text, self.pending = self.pending, ""
        return text_event(text, self.model)

    def finish(self) -> list[CliEvent]:
        return self._flush()


class GeminiPreset:
    kind = "cli"
    name = NAME
    executable = "gemini"
    default_model = ""
    supports_resume = True
    accepts_input = False  # a piped stdin is read (for 500 ms, or to its end) into the prompt

    def argv(self, *, task: str, model: str | None, session_id: str | None, options: dict[str, Any]) -> list[str]:
        argv = [executable(self, options), "-p", positional(task), "--output-format", "stream-json"]
        if model:
            argv += ["-m", model]
        if session_id:
            argv += ["--resume", session_id]
        mode = option_str(NAME, options, "approval_mode", "auto_edit")
        if mode:
            argv += ["--approval-mode", mode]  # headless, tools that need approval are refused
        tools = option_list(NAME, options, "allowed_tools", split=comma_list)
        # one --allowed-tools=T per tool: the option is an array, and the "=" form cannot swallow
        # a following argument
        argv += [f"--allowed-tools={tool}" for tool in tools]
        return argv + option_list(NAME, options, "extra_args")

    def parser(self) -> GeminiParser:
        return GeminiParser()

    def input_line(self, text: str) -> bytes | None:
        return None
