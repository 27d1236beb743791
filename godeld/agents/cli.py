"""CLI agents (claude, codex, aider, gemini, any command): the vocabulary between a preset, which
knows one program's flags and output format, and the worker, which runs the program.

A preset is registered with `register_providers` like any provider, with kind "cli". Kept
import-light (stdlib only): the agent worker process imports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from godeld.agents.llm import Usage

CliEventKind = Literal["text", "tool_use", "tool_result", "usage", "session", "result", "error"]


@dataclass
class CliEvent:
    """One thing a CLI agent said, parsed from its streamed output.

    - text: `text` (assistant text; a log line for plain-text programs)
    - tool_use: `name`, `args`, `tool_id`
    - tool_result: `tool_id`, `text`, `is_error`
    - usage: `usage` — tokens (and cost, when the program reports one) of this step only, as a
      delta; a parser that sees cumulative totals converts them
    - session: `session_id`, for resuming later
    - result: the run's final answer in `text`, `is_error` if the program says it failed
    - error: `text`
    """

    kind: CliEventKind
    text: str = ""
    name: str = ""
    args: dict[str, Any] = field(default_factory=dict)
    tool_id: str = ""
    is_error: bool = False
    usage: Usage | None = None
    session_id: str = ""
    model: str = ""


class CliParser(Protocol):
    def feed(self, line: str) -> list[CliEvent]:
        """Parse one line of the program's stdout (without the newline). Never raises on odd
        input: an unparseable line comes back as a "text" event."""

    def finish(self) -> list[CliEvent]:
        """Called at end of output: anything still buffered."""


class CliPreset(Protocol):
    """How to run one CLI agent. `kind` is "cli"."""

    kind: Literal["cli"]
    executable: str  # the default program name, looked up on PATH (options["executable"] overrides)
    supports_resume: bool
    # Optional: `accepts_input` (bool: stdin stays open for agents.send) and `scratch_files`
    # (glob pathspecs of the program's own files, e.g. aider's ".aider*", left out of the
    # end-of-run commit).

    def argv(self, *, task: str, model: str | None, session_id: str | None, options: dict[str, Any]) -> list[str]:
        """The full command line (argv[0] included). With `session_id`, resume that session
        using the program's own flag. `options` may carry `executable`, `extra_args`,
        `allowed_tools`."""

    def parser(self) -> CliParser:
        """A fresh parser for one run."""

    def input_line(self, text: str) -> bytes | None:
        """How to pass `text` sent by `agents.send` to the running program's stdin (None: this
        program takes no input while running)."""
