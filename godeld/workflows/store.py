"""What the workflow engine needs from storage (SQLite: default_plugins/sqlite/workflows_store.py)."""

from __future__ import annotations

from typing import Any, Protocol, Sequence


class WorkflowStore(Protocol):
    async def save_run(self, run: dict[str, Any], steps: list[dict[str, Any]] | None = None, *, events: Sequence[Any] = ()) -> None:
        """Write a run record (and step records); `events` (EventDrafts) are appended in the same
        transaction, so a transition and its announcement are durable together."""

    async def save_step(self, run_id: str, step: dict[str, Any], *, events: Sequence[Any] = ()) -> None:
        """Write one step record, with its events in the same transaction."""

    async def get_run(self, run_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """A run and its steps, or None."""

    async def list_runs(self, *, states: list[str] | None = None, limit: int = 100, parent_id: str | None = None) -> list[dict[str, Any]]:
        """Run records, newest first."""

    async def unfinished(self, states: list[str]) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
        """Every run in one of `states`, oldest first, with its steps (for resuming after a restart)."""
