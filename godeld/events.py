"""The event model and the event bus.

Every event is appended to the durable log (storage) and gets `seq`, the log's cursor: strictly
increasing, never reused. A publish returns once its event is durable. Storage reports each
committed batch, in seq order, to `EventBus._deliver`, which fans it out to live subscribers.

A subscription attaches to the live fan-out *before* it replays from the log, and skips any seq it
has already passed, so replay-then-live has no gap and no duplicate. Its live buffer is bounded:
when a slow subscriber overflows it, the buffer is dropped and the subscriber is told it fell
behind (`lagged`) and either catches up from the log by itself (the default) or is closed with
the seq to resume from. Memory therefore never grows with a subscriber's backlog.
"""

from __future__ import annotations

import json
import re
import time
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Iterable, Literal, Sequence

import trio

from godeld.errors import InvalidParams
from godeld.ids import uuid7

if TYPE_CHECKING:
    from godeld.storage import Storage

TYPE_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,127}")
PATTERN_RE = re.compile(r"[A-Za-z0-9_.:/*?-]{1,128}")
MAX_SOURCE = 128
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode

SEQ_MAX = 2**63 - 1  # the largest seq any storage backend can hold (a signed 64-bit integer)


class Event:
    """One entry of the event log. Treat `data` and `metadata` as read-only: subscribers share them."""

    __slots__ = ("id", "seq", "type", "timestamp", "source", "data", "metadata", "size", "wire")

    def __init__(self, id: str, seq: int, type: str, timestamp: int, source: str, data: dict, metadata: dict, size: int):
        self.id = id
        self.seq = seq
        self.type = type
        self.timestamp = timestamp
        self.source = source
        self.data = data
        self.metadata = metadata
        self.size = size
        self.wire: bytes | None = None  # the encoded notification, shared by all RPC subscribers

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "seq": self.seq,
            "type": self.type,
            "timestamp": self.timestamp,
            "source": self.source,
            "data": self.data,
            "metadata": self.metadata,
        }

    def __repr__(self) -> str:
        return f"<Event #{self.seq} {self.type} from {self.source}>"


@dataclass(slots=True)
class EventDraft:
    """An event before it has a seq: validated and serialized, ready for the log."""

    id: str
    type: str
    timestamp: int
    source: str
    data: dict
    metadata: dict
    data_json: str
    metadata_json: str

    def to_event(self, seq: int) -> Event:
        return Event(self.id, seq, self.type, self.timestamp, self.source, self.data, self.metadata, len(self.data_json) + len(self.metadata_json) + 160)


def make_draft(type: str, data: dict | None = None, *, source: str = "godeld", metadata: dict | None = None) -> EventDraft:
    if not isinstance(type, str) or not TYPE_RE.fullmatch(type):
        raise InvalidParams(f"invalid event type {type!r}: use 1-128 characters of letters, digits and _ . : / - (for example 'agent:start')")
    if not isinstance(source, str) or not source or len(source) > MAX_SOURCE:
        raise InvalidParams(f"invalid event source {source!r}: a non-empty string of at most {MAX_SOURCE} characters")
    data = {} if data is None else data
    metadata = {} if metadata is None else metadata
    if not isinstance(data, dict):
        raise InvalidParams("event data must be an object")
    if not isinstance(metadata, dict):
        raise InvalidParams("event metadata must be an object")
    try:
        data_json = _dumps(data) if data else "{}"
        metadata_json = _dumps(metadata) if metadata else "{}"
    except (TypeError, ValueError) as exc:
        raise InvalidParams(f"event data is not JSON-serializable: {exc}") from None
    return EventDraft(uuid7(), type, time.time_ns() // 1_000_000, source, data, metadata, data_json, metadata_json)


# -- patterns --------------------------------------------------------------------------------

def normalize_patterns(patterns: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """None (match everything) or a tuple of validated glob patterns over the event type."""
    if patterns is None:
        return None
    if isinstance(patterns, str):
        patterns = [patterns]
    out = []
    for pattern in patterns:
        if not isinstance(pattern, str) or not PATTERN_RE.fullmatch(pattern):
            raise InvalidParams(f"invalid event pattern {pattern!r}: a type, or a glob with * and ? (for example 'workflow:*')")
        out.append(pattern)
    if not out:
        raise InvalidParams("give at least one event pattern, or none to match every event")
    return None if "*" in out else tuple(dict.fromkeys(out))


@lru_cache(maxsize=1024)
def _compile(patterns: tuple[str, ...]) -> re.Pattern[str]:
    parts = ["".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in p) for p in patterns]
    return re.compile("(?:" + "|".join(parts) + r")\Z")


class Matcher:
    """Does an event type match these patterns? Answers are cached per type."""

    __slots__ = ("patterns", "_regex", "_cache")

    def __init__(self, patterns: tuple[str, ...] | None):
        self.patterns = patterns
        self._regex = _compile(patterns) if patterns is not None else None
        self._cache: dict[str, bool] = {}

    def __call__(self, type: str) -> bool:
        if self._regex is None:
            return True
        hit = self._cache.get(type)
        if hit is None:
            if len(self._cache) > 4096:
                self._cache.clear()
            hit = self._cache[type] = self._regex.match(type) is not None
        return hit


def matches(patterns: str | Sequence[str] | None, type: str) -> bool:
    return Matcher(normalize_patterns(patterns))(type)


# -- subscriptions ---------------------------------------------------------------------------

class SubscriberLagged(Exception):
    """The subscriber fell behind its buffer and was closed; resume with since=last_seq."""

    def __init__(self, last_seq: int):
        super().__init__(f"subscriber fell behind; resume from seq {last_seq}")
        self.last_seq = last_seq


OnLag = Literal["catch_up", "close"]


class Subscription:
    """An async iterator of events matching `patterns`, from `since` (exclusive) or from now."""

    def __init__(self, bus: "EventBus", patterns: tuple[str, ...] | None, since: int | None, on_lag: OnLag, max_events: int, max_bytes: int):
        self.bus = bus
        self.matcher = Matcher(patterns)
        self.on_lag = on_lag
        self.cursor = bus.last_seq if since is None else max(0, since)  # the last seq passed
        self.lag_count = 0
        self._lagged_at: int | None = None
        self.closed = False
        self._max_events = max_events
        self._max_bytes = max_bytes
        self._buffer: deque[Event] = deque()
        self._bytes = 0
        self._replayed: deque[Event] = deque()
        self._catching_up = self.cursor < bus.last_seq
        self._attached = False
        self._attach_epoch = 0
        self._wakeup = trio.Event()
        self._attach()

    # called by the bus, on the trio thread, in seq order
    def _offer(self, events: Sequence[Event]) -> None:
        matcher = self.matcher
        buffered = False
        for event in events:
            if not matcher(event.type):
                continue
            if len(self._buffer) >= self._max_events or self._bytes + event.size > self._max_bytes:
                if self._catching_up:
                    self._drop_buffer()  # already reading the log: not a lag, just stop buffering
                else:
                    self._fell_behind()
                return
            self._buffer.append(event)
            self._bytes += event.size
            buffered = True
        if buffered:
            self._wakeup.set()

    def _drop_buffer(self) -> None:
        self._detach()
        self._buffer.clear()
        self._bytes = 0

    def _fell_behind(self) -> None:
        self._drop_buffer()
        self._catching_up = True
        self.lag_count += 1
        if self._lagged_at is None:
            self._lagged_at = self.cursor
        self._wakeup.set()

    def _attach(self) -> None:
        if not self._attached and not self.closed:
            self._attached = True
            self._attach_epoch += 1
            self.bus._subscribers.add(self)

    def _detach(self) -> None:
        if self._attached:
            self._attached = False
            self.bus._subscribers.discard(self)

    @property
    def idle(self) -> bool:
        """Nothing committed so far is waiting to be handed to the consumer."""
        return self.closed or not (self._catching_up or self._buffer or self._replayed)

    def take_lag(self) -> int | None:
        """The seq delivered last before the subscriber fell behind, once per lag; else None."""
        lagged_at, self._lagged_at = self._lagged_at, None
        return lagged_at

    async def next(self) -> Event:
        while True:
            if self.closed:
                raise trio.EndOfChannel
            if self._replayed:
                event = self._replayed.popleft()
                if event.seq > self.cursor:
                    self.cursor = event.seq
                    return event
                continue
            if self._catching_up:
                if self.on_lag == "close" and self._lagged_at is not None:
                    self.close()
                    raise SubscriberLagged(self.cursor)
                await self._read_page()
                continue
            if self._buffer:
                event = self._buffer.popleft()
                self._bytes -= event.size
                if event.seq > self.cursor:
                    self.cursor = event.seq
                    return event
                continue
            await self._wakeup.wait()
            self._wakeup = trio.Event()

    async def _read_page(self) -> None:
        # Attached before reading: whatever commits after the read's snapshot arrives live.
        self._attach()
        epoch = self._attach_epoch
        page_size = self.bus.replay_page
        events, _head = await self.bus.storage.read_events(since=self.cursor, patterns=self.matcher.patterns, limit=page_size)
        self._replayed.extend(events)
        if len(events) < page_size and self._attached and self._attach_epoch == epoch:
            self._catching_up = False

    def __aiter__(self) -> "Subscription":
        return self

    async def __anext__(self) -> Event:
        try:
            return await self.next()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    def close(self) -> None:
        self.closed = True
        self._detach()
        self._buffer.clear()
        self._replayed.clear()
        self._wakeup.set()

    async def __aenter__(self) -> "Subscription":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


# -- the bus ---------------------------------------------------------------------------------

class EventBus:
    def __init__(self, storage: "Storage", *, buffer: int = 10000, buffer_bytes: int = 16 << 20, replay_page: int = 500, list_max: int = 10000):
        self.storage = storage
        self.buffer = buffer
        self.buffer_bytes = buffer_bytes
        self.replay_page = replay_page
        self.list_max = list_max
        # The highest seq fanned out: a subscription that starts "now" starts here.
        self.last_seq = storage.last_seq
        self._subscribers: set[Subscription] = set()
        storage.set_commit_listener(self._deliver)

    def _deliver(self, events: Sequence[Event]) -> None:
        self.last_seq = events[-1].seq
        for subscriber in list(self._subscribers):
            subscriber._offer(events)

    async def publish(self, type: str, data: dict | None = None, *, source: str = "godeld", metadata: dict | None = None) -> Event:
        """Append one event; returns it (with its seq) once it is durable."""
        (event,) = await self.storage.append_events([make_draft(type, data, source=source, metadata=metadata)])
        return event

    async def publish_many(self, drafts: Iterable[EventDraft]) -> list[Event]:
        """Append several events in one write; returns them once all are durable."""
        return await self.storage.append_events(list(drafts))

    def subscribe(self, patterns: str | Sequence[str] | None = None, *, since: int | None = None, on_lag: OnLag = "catch_up", buffer: int | None = None) -> Subscription:
        """Events matching `patterns` with seq > `since` (default: from now), replayed then live."""
        if on_lag not in ("catch_up", "close"):
            raise InvalidParams("on_lag must be 'catch_up' or 'close'")
        if since is not None:
            since = min(since, SEQ_MAX)
        return Subscription(self, normalize_patterns(patterns), since, on_lag, buffer or self.buffer, self.buffer_bytes)

    async def once(self, patterns: str | Sequence[str] | None = None, *, since: int | None = None) -> Event:
        """The next event matching `patterns` (after `since`, if given)."""
        async with self.subscribe(patterns, since=since) as subscription:
            return await subscription.next()

    async def list(self, *, since: int = 0, patterns: str | Sequence[str] | None = None, limit: int = 100, tail: bool = False) -> tuple[list[Event], int]:
        """Matching events with seq > since in seq order (the newest `limit` of them if `tail`),
        and the log's head seq at the time of reading."""
        limit = max(1, min(limit, self.list_max))
        since = min(since, SEQ_MAX)  # no event lies beyond it; storage integers are 64-bit
        return await self.storage.read_events(since=since, patterns=normalize_patterns(patterns), limit=limit, tail=tail)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)
