"""`command`: any program as an agent.

Either provider_options.argv, a list whose items may hold {task} and {model}:
    {"argv": ["./my-agent", "--model", "{model}", "{task}"]}        runs it as given
or provider_options.command, a shell command line; the task and model are in its environment:
    {"command": "my-agent \"$GODEL_TASK\""}   runs  env GODEL_TASK=.. GODEL_MODEL=.. /bin/sh -c ..
(`executable` replaces argv[0], or the shell; `extra_args` are appended to argv, or become the
shell's $1, $2, ...).

Output is text, one event a line. With provider_options.format "jsonl" a line may instead be
one of these objects, so any script can report usage, tool calls and its answer:
  {"type": "usage", "input_tokens": N, "output_tokens": N, "cache_read_tokens": N,
   "cache_write_tokens": N, "cost_usd": X, "model": M}        a delta: this step's usage only
  {"type": "text", "text": ..}       {"type": "result", "text": .., "is_error": false}
  {"type": "tool_use", "name": .., "args": {..}, "id": ..}   {"type": "error", "text": ..}
  {"type": "session", "session_id": ..}
Anything else stays a text line. What agents.send sends arrives on stdin, one line each.
"""

from __future__ import annotations

from typing import Any

from godeld.agents.cli import CliEvent
from godeld.agents.llm import Usage
from godeld.default_plugins.cli_agents._common import (
    LineParser,
    as_dict,
    count,
    load_object,
    money,
    option_list,
    option_str,
    text_event,
    text_of,
)

NAME = "command"
FORMATS = ("text", "jsonl")


class TextParser(LineParser):
    def parse(self, line: str) -> list[CliEvent]:
        return text_event(line)


class JsonlParser(LineParser):
    def parse(self, line: str) -> list[CliEvent]:
        obj = load_object(line)
        kind = obj.get("type") if obj else None
        if obj is None or not isinstance(kind, str):
            return text_event(line)
        model = obj.get("model") if isinstance(obj.get("model"), str) else ""
        if kind == "usage":
            usage = Usage(
                input_tokens=count(obj.get("input_tokens")),
                output_tokens=count(obj.get("output_tokens")),
                cache_read_tokens=count(obj.get("cache_read_tokens")),
                cache_write_tokens=count(obj.get("cache_write_tokens")),
                cost_usd=money(obj.get("cost_usd")),
            )
            return [CliEvent("usage", usage=usage, model=model)]
        if kind == "text":
            return text_event(text_of(obj.get("text")), model)
        if kind == "result":
            return [CliEvent("result", text=text_of(obj.get("text")), is_error=bool(obj.get("is_error")), model=model)]
        if kind == "tool_use":
            args = obj.get("args")
            return [CliEvent("tool_use", name=str(obj.get("name") or ""), args=as_dict(args) if isinstance(args, dict) else {"input": args}, tool_id=str(obj.get("id") or ""))]
        if kind == "error":
            return [CliEvent("error", text=text_of(obj.get("text") or obj.get("message")))]
        if kind == "session" and isinstance(obj.get("session_id"), str):
            return [CliEvent("session", session_id=obj["session_id"], model=model)]
        return text_event(line)


class CommandPreset:
    kind = "cli"
    name = NAME
    executable = "/bin/sh"
    default_model = ""
    supports_resume = False
    accepts_input = True  # agents.send writes a line to the program's stdin

    def __init__(self) -> None:
        self.format = "text"

    def argv(self, *, task: str, model: str | None, session_id: str | None, options: dict[str, Any]) -> list[str]:
        # The worker calls argv(options=..) and then parser() on this object: the output format
        # is an option, so it is remembered here for the parser.
        self.format = self._format(options)
        extra = option_list(NAME, options, "extra_args")
        exe = option_str(NAME, options, "executable")
        if options.get("argv") is not None:
            items = option_list(NAME, options, "argv")
            if not items:
                raise ValueError(f"{NAME}: provider_options.argv must not be empty")
            # str.replace, not format(): the program's own arguments may contain braces
            argv = [item.replace("{task}", task).replace("{model}", model or "") for item in items]
            return [exe or argv[0], *argv[1:], *extra]
        command = option_str(NAME, options, "command")
        if not command:
            raise ValueError(f"{NAME}: give provider_options.argv (a list) or provider_options.command (a shell command)")
        # env(1) passes the task in the environment: no quoting of the task into the command line
        return ["env", f"GODEL_TASK={task}", f"GODEL_MODEL={model or ''}", exe or self.executable, "-c", command, NAME, *extra]

    @staticmethod
    def _format(options: dict[str, Any]) -> str:
        fmt = option_str(NAME, options, "format", "text") or "text"
        if fmt not in FORMATS:
            raise ValueError(f"{NAME}: provider_options.format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        return fmt

    def parser(self, options: dict[str, Any] | None = None) -> LineParser:
        """A parser for provider_options.format: from `options` when given, else from the last
        argv() call."""
        fmt = self._format(options) if options is not None else self.format
        return JsonlParser() if fmt == "jsonl" else TextParser()

    def input_line(self, text: str) -> bytes | None:
        return (text + "\n").encode()
