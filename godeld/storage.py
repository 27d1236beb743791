"""The storage interface every backend implements. SQL lives only inside backend plugins.

A backend is registered with `register_storage(register)` as a factory
`factory(config, migrations) -> Storage`; `storage.backend` in the config picks one.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, Sequence, runtime_checkable

from godeld.events import Event, EventDraft


@runtime_checkable
class Storage(Protocol):
    name: str

    async def open(self) -> None:
        """Connect, apply pending migrations, check that the database is writable.

        Raise godeld.errors.StorageError with a message a person can act on when it cannot.
        Must run inside trio (backends capture the trio token to report commits)."""

    async def aclose(self) -> None:
        """Write everything already accepted, then release connections and locks."""

    @property
    def last_seq(self) -> int:
        """The highest seq reported to the commit listener so far."""

    @property
    def applied_migrations(self) -> list[str]:
        """'set:name' of each migration this open() applied."""

    def migration_status(self) -> list[dict[str, Any]]:
        """Every registered migration: {set, name, applied_at} (applied_at None if pending)."""

    def set_commit_listener(self, listener: Callable[[Sequence[Event]], None]) -> None:
        """`listener(events)` is called on the trio thread after each commit, in seq order."""

    async def append_events(self, drafts: Sequence[EventDraft]) -> list[Event]:
        """Append events, assigning strictly increasing seqs; return once they are durable."""

    async def write(self, fn: Any, *, events: Sequence[EventDraft] = ()) -> Any:
        """Run a service's write `fn` (backend-specific: a sqlite3 connection for SQLite) in the
        next transaction; `events` are appended in that same transaction if `fn` succeeds."""

    async def write_with_events(self, fn: Any) -> tuple[Any, list[Event]]:
        """Run a service's write `fn` (backend-specific: a sqlite3 connection for SQLite) that
        returns (result, drafts); the drafts are appended as events in the same transaction, so a
        state change and its announcement are durable together. Returns (result, events)."""

    async def read_events(self, *, since: int = 0, patterns: tuple[str, ...] | None = None, limit: int = 100, tail: bool = False) -> tuple[list[Event], int]:
        """Events with seq > since whose type matches one of `patterns` (globs with * and ?),
        in seq order, at most `limit` (the newest ones if `tail`); and the head seq, read in the
        same snapshot."""

    def info(self) -> dict[str, Any]:
        """A summary for daemon.status: backend name, location, counters."""
