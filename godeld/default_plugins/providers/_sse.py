"""A Server-Sent Events parser (the WHATWG event-stream format), fed one line at a time.

Both providers stream SSE: OpenAI sends bare `data:` lines, Anthropic names each event with an
`event:` line. Lines arrive without their terminator (httpx's iter_lines splits on \\n, \\r\\n, \\r).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator


@dataclass(frozen=True)
class Event:
    event: str  # "message" when the server named none, as the spec says
    data: str


class SSEParser:
    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> Event | None:
        """Take one line; return the event it completes (a blank line ends an event), if any."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment: servers send them as keep-alives
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]  # exactly one leading space belongs to the syntax
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        # "id" and "retry" matter only to reconnecting browsers; unknown fields are ignored
        return None

    def finish(self) -> Event | None:
        """The last event, when the stream ended without its blank line."""
        return self._dispatch()

    def _dispatch(self) -> Event | None:
        event, data = self._event, self._data
        self._event, self._data = "", []
        if not data:
            return None  # an event without data is not dispatched
        return Event(event or "message", "\n".join(data))


def parse_events(lines: Iterable[str]) -> Iterator[Event]:
    parser = SSEParser()
    for line in lines:
        event = parser.feed(line)
        if event is not None:
            yield event
    last = parser.finish()
    if last is not None:
        yield last
