"""What the CLI presets share: reading options, building argv, turning JSON lines into events,
and the usage meter that converts running totals into deltas. Stdlib only: the agent worker
process imports it."""

from __future__ import annotations

import json
import shlex
from typing import Any, Callable

from godeld.agents.cli import CliEvent
from godeld.agents.llm import Usage

USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


# -- options and argv -------------------------------------------------------------------------
def option_list(name: str, options: dict[str, Any], key: str, *, split: Callable[[str], list[str]] = shlex.split) -> list[str]:
    """A list-of-strings option; a string is split (shell words by default). ValueError if neither."""
    value = options.get(key)
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return split(value)
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float)) for v in value):
        return [str(v) for v in value]
    raise ValueError(f"{name}: provider_options.{key} must be a list of strings or one string, not {type(value).__name__}")


def option_str(name: str, options: dict[str, Any], key: str, default: str = "") -> str:
    value = options.get(key, default)
    if value is None:
        return ""
    if not isinstance(value, (str, int, float)):
        raise ValueError(f"{name}: provider_options.{key} must be a string, not {type(value).__name__}")
    return str(value)


def comma_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def executable(preset: Any, options: dict[str, Any]) -> str:
    """options["executable"] (tests point it at the fake programs), else the preset's program."""
    return option_str(preset.name, options, "executable") or preset.executable


def positional(text: str) -> str:
    """A prompt passed as a positional argument: one starting with "-" would be read as an option
    by the program's argument parser, so it gets a leading space, which the model ignores."""
    return " " + text if text.startswith("-") else text


# -- parsing ----------------------------------------------------------------------------------
def load_object(line: str) -> dict[str, Any] | None:
    """The JSON object on this line, or None (not JSON, or JSON but not an object)."""
    s = line.strip()
    if not s.startswith("{"):
        return None
    try:
        value = json.loads(s)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def count(value: Any) -> int:
    """A token count from whatever the program printed: non-negative int, 0 when absent or odd."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, (int, float)):
        return max(0, int(value))
    if isinstance(value, str):
        try:
            return max(0, int(float(value)))
        except ValueError:
            return 0
    return 0


def money(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        amount = float(value)
    except ValueError:
        return None
    return amount if amount >= 0 else None


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def text_of(value: Any) -> str:
    """Text from a string, or from a list of content blocks ({"type": "text", "text": ...})."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = [text_of(v.get("text") if isinstance(v, dict) else v) for v in value]
        return "\n".join(p for p in parts if p)
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False)


def text_event(text: str, model: str = "") -> list[CliEvent]:
    return [CliEvent("text", text=text, model=model)] if text.strip() else []


class LineParser:
    """Base of the parsers: feed() never raises, whatever the line; a line that is not one of the
    program's events comes back as text so nothing the program said is lost."""

    def feed(self, line: str) -> list[CliEvent]:
        line = line.rstrip("\r\n")
        try:
            return self.parse(line)
        except Exception:  # a new or malformed event must not kill the run: keep it as text
            return text_event(line)

    def parse(self, line: str) -> list[CliEvent]:
        raise NotImplementedError

    def finish(self) -> list[CliEvent]:
        return []


# -- usage ------------------------------------------------------------------------------------
class UsageMeter:
    """What has been reported so far, per field. Programs print running totals, per-message
    snapshots or both; `top_up` turns any of them into the delta still owed, so the sum of the
    deltas is the largest total seen and nothing is counted twice."""

    def __init__(self) -> None:
        self.reported = Usage(cost_usd=0.0)

    def add(self, delta: Usage) -> None:
        self.reported.add(delta)

    def top_up(self, total: Usage) -> Usage | None:
        """The delta that brings the reported sums up to `total` (fields already past it stay);
        None when nothing is owed. Records what it returns."""
        delta = minus(total, self.reported)
        if not any(getattr(delta, f) for f in USAGE_FIELDS) and not delta.cost_usd:
            return None
        if not delta.cost_usd:
            delta.cost_usd = None
        self.add(delta)
        return delta


def usage_event(usage: Usage | None, model: str = "") -> list[CliEvent]:
    return [CliEvent("usage", usage=usage, model=model)] if usage is not None else []


def minus(a: Usage, b: Usage) -> Usage:
    """a − b per field, never below zero (cost too)."""
    out = Usage(**{f: max(0, getattr(a, f) - getattr(b, f)) for f in USAGE_FIELDS})
    if a.cost_usd is not None:
        # rounded: sums of float costs leave residues like 2e-19 that are not money
        out.cost_usd = round(max(0.0, a.cost_usd - (b.cost_usd or 0.0)), 10)
    return out
