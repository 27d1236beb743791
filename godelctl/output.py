"""Output for people (tables, short lines) and for machines (--json: stable keys, NDJSON streams)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Iterable, Sequence

import click


def emit_json(value: Any, *, stream: bool = False) -> None:
    """A document (indented) or, for streams, one compact JSON text per line."""
    if stream:
        click.echo(json.dumps(value, separators=(",", ":"), ensure_ascii=False))
    else:
        click.echo(json.dumps(value, indent=2, ensure_ascii=False))
    sys.stdout.flush()


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    rows = [["" if cell is None else str(cell) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    line = "  ".join(h.upper().ljust(w) for h, w in zip(headers, widths))
    click.echo(line.rstrip())
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


def duration(seconds: float) -> str:
    if seconds < 10:  # short things (a step, a request) deserve more than "0s"
        return f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:.1f}s"
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    if hours or days:
        parts.append(f"{hours}h")
    if minutes or hours or days:
        parts.append(f"{minutes}m")
    parts.append(f"{secs}s")
    return " ".join(parts)


def size(num: float | None) -> str:
    if num is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if num < 1024 or unit == "GiB":
            return f"{num:.0f} {unit}" if unit == "B" else f"{num:.1f} {unit}"
        num /= 1024
    return f"{num} B"


def event_line(event: dict[str, Any]) -> str:
    ts = event.get("timestamp", 0) / 1000
    clock = time.strftime("%H:%M:%S", time.localtime(ts)) + f".{int(ts * 1000) % 1000:03d}"
    data = json.dumps(event.get("data", {}), separators=(",", ":"), ensure_ascii=False)
    if len(data) > 160:
        data = data[:157] + "..."
    return f"{event.get('seq'):>7}  {clock}  {event.get('type')}  [{event.get('source')}]  {data}"
