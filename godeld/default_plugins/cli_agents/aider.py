"""aider, run on one message and plain text output.

    aider --message=TASK --yes-always --no-pretty --no-stream --no-auto-commits --no-dirty-commits
          --no-gitignore --no-check-update --chat-history-file /dev/null
          --input-history-file /dev/null [--model M] [EXTRA...] [FILE...]

godel commits the worktree itself when the agent ends, so aider must not commit (nor commit a
dirty tree first), nor add `.aider*` to .gitignore, nor leave its history files in the worktree
where that commit would pick them up. Later flags win, so EXTRA can turn any of this back on.

Output is text. After each model call aider prints a usage report (aider/coders/base_coder.py),
counts formatted by format_tokens (156, 2.1k, 12k):
  Tokens: 2.1k sent, 156 received. Cost: $0.0076 message, $0.0076 session.
  Tokens: 12k sent, 1.2k cache write, 3.4k cache hit, 300 received.
  Cost: $0.05 message, $0.08 session.          (on its own line when both cache counts appear)
Older versions: "Tokens: 1,234 sent, 56 received. Cost: $0.01 request, $0.02 session."
Each report is one call's usage: reported at once as a delta ("sent" includes the cache hits and
writes, which godel counts apart). The cost is taken as the growth of the session total. Every
other line is text; "Main model: M ..." names the model the usage is priced as. No resume.
"""

from __future__ import annotations

import os
import re
from typing import Any

from godeld.agents.cli import CliEvent
from godeld.agents.llm import Usage
from godeld.default_plugins.cli_agents._common import LineParser, executable, option_list, text_event

NAME = "aider"

_N = r"[\d][\d.,]*[kKmM]?"
TOKENS = re.compile(
    rf"^Tokens: (?P<sent>{_N}) sent(?:, (?P<write>{_N}) cache write)?(?:, (?P<hit>{_N}) cache hit)?, (?P<recv>{_N}) received\.\s*(?P<rest>.*)$"
)
COST = re.compile(r"^Cost: \$(?P<message>[\d.,]+) (?:message|request), \$(?P<session>[\d.,]+) session\.")
MODEL = re.compile(r"^(?:Main model|Model): (?P<model>\S+)")
EDIT = re.compile(r"^Applied edit to (?P<path>.+?)\s*$")
ERROR = re.compile(r"^litellm\.\w*(?:Error|Exception)\b")


def tokens(text: str | None) -> int:
    """A count as format_tokens prints it: 156, 2.1k, 12k (1,234 in older versions)."""
    if not text:
        return 0
    text = text.replace(",", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1].lower(), 1)
    try:
        return int(round(float(text.rstrip("kKmM")) * scale))
    except ValueError:
        return 0


class AiderParser(LineParser):
    def __init__(self) -> None:
        self.model = ""
        self.cost = 0.0  # cost reported so far (aider's session total, as far as it has been seen)

    def parse(self, line: str) -> list[CliEvent]:
        s = line.strip()
        m = TOKENS.match(s)
        if m:
            hit, write = tokens(m["hit"]), tokens(m["write"])
            usage = Usage(input_tokens=max(0, tokens(m["sent"]) - hit - write), output_tokens=tokens(m["recv"]), cache_read_tokens=hit, cache_write_tokens=write)
            cost = COST.match(m["rest"] or "")
            usage.cost_usd = self._cost(cost) if cost else None
            return [CliEvent("usage", usage=usage, model=self.model)]
        m = COST.match(s)
        if m:
            cost = self._cost(m)
            return [CliEvent("usage", usage=Usage(cost_usd=cost), model=self.model)] if cost else []
        m = MODEL.match(s)
        if m:
            self.model = m["model"]
        m = EDIT.match(s)
        if m:
            return [CliEvent("tool_use", name="edit", args={"path": m["path"]}, model=self.model)]
        if ERROR.match(s):
            return [CliEvent("error", text=s)]
        return text_event(line, self.model)

    def _cost(self, m: re.Match[str]) -> float | None:
        """The cost not yet reported: growth of the session total, else this message's cost."""
        session = float(m["session"].replace(",", ""))
        delta = session - self.cost if session >= self.cost else float(m["message"].replace(",", ""))
        self.cost = max(self.cost, session)
        return round(delta, 10) if delta > 0 else None


class AiderPreset:
    kind = "cli"
    name = NAME
    executable = "aider"
    default_model = ""
    supports_resume = False
    accepts_input = False  # with --message aider answers once and exits
    scratch_files = (".aider*", ".aider*/**")  # chat history, input history, tags cache: not the agent's work

    def argv(self, *, task: str, model: str | None, session_id: str | None, options: dict[str, Any]) -> list[str]:
        argv = [
            executable(self, options),
            f"--message={task}",  # the "=" form: a task starting with "-" is not read as an option
            "--yes-always", "--no-pretty", "--no-stream",
            "--no-auto-commits", "--no-dirty-commits", "--no-gitignore", "--no-check-update",
            "--chat-history-file", os.devnull, "--input-history-file", os.devnull,
        ]
        if model:
            argv += ["--model", model]
        return argv + option_list(NAME, options, "extra_args") + option_list(NAME, options, "files")

    def parser(self) -> AiderParser:
        return AiderParser()

    def input_line(self, text: str) -> bytes | None:
        return None
