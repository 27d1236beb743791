"""Shared by the fake CLI agents in this directory (each script imports it from its own folder).

The fakes print the real programs' output formats and are steered by environment variables:
  FAKE_CLI_STEPS       model calls ("steps") to make, default 2; all but the last use a tool
  FAKE_CLI_SLEEP       seconds to wait before each step (float), default 0
  FAKE_CLI_TOKENS_IN   input tokens per step, default 100
  FAKE_CLI_TOKENS_OUT  output tokens per step, default 50
  FAKE_CLI_FAIL        set (not "0"): fail the way the real program does, exit non-zero
  FAKE_CLI_WRITE       a relative file name: the first step writes it in the current directory
  FAKE_CLI_READ_STDIN  "1": echo each stdin line as assistant text "got: LINE" while running
Stdlib only.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import select
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable


class Fake:
    def __init__(self, program: str):
        env = os.environ
        self.program = program
        self.steps = max(1, int(env.get("FAKE_CLI_STEPS") or 2))
        self.sleep = float(env.get("FAKE_CLI_SLEEP") or 0)
        self.tokens_in = int(env.get("FAKE_CLI_TOKENS_IN") or 100)
        self.tokens_out = int(env.get("FAKE_CLI_TOKENS_OUT") or 50)
        self.fail = (env.get("FAKE_CLI_FAIL") or "0") != "0"
        self.write = env.get("FAKE_CLI_WRITE") or ""
        self.read_stdin = env.get("FAKE_CLI_READ_STDIN") == "1"
        self.lock = threading.Lock()

    # -- output ------------------------------------------------------------------------------
    def emit(self, event: dict[str, Any] | str) -> None:
        line = event if isinstance(event, str) else json.dumps(event, separators=(",", ":"), ensure_ascii=False)
        with self.lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def pause(self) -> None:
        if self.sleep > 0:
            time.sleep(self.sleep)

    def write_file(self) -> tuple[Path, str] | None:
        """Do the step's work: write FAKE_CLI_WRITE (relative to the current directory)."""
        if not self.write:
            return None
        path = Path.cwd() / self.write
        path.parent.mkdir(parents=True, exist_ok=True)
        content = f"written by fake {self.program}\n"
        path.write_text(content)
        return path, content

    # -- stdin -------------------------------------------------------------------------------
    def echo_stdin(self, say: Callable[[str], None]) -> None:
        """FAKE_CLI_READ_STDIN=1: a thread turns each stdin line into assistant text, without
        holding up the steps."""

        def run() -> None:
            for line in sys.stdin:
                say("got: " + line.rstrip("\n"))

        threading.Thread(target=run, daemon=True).start()

    @staticmethod
    def stdin_is_piped() -> bool:
        try:
            return not os.isatty(sys.stdin.fileno())
        except (ValueError, OSError):
            return False

    @staticmethod
    def read_stdin_within(seconds: float | None) -> str | None:
        """What the real programs do with a piped stdin: wait `seconds` for data or its end
        (None: forever), then read to its end. None when nothing came in time."""
        try:
            ready, _, _ = select.select([sys.stdin], [], [], seconds)
        except (ValueError, OSError):
            return ""
        return sys.stdin.read() if ready else None


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
