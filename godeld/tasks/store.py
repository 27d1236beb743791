"""What the task queue needs from storage. A backend exposes an object implementing TaskStore as
`storage.tasks`; SQL stays inside the backend plugin.

Every write method is one transaction and returns once it is durable. State changes are guarded
by the expected state and lease owner inside that transaction: a caller whose lease was lost gets
`Conflict`, an unknown id `NotFound` (both from godeld.errors).

Task records are dicts: {id, seq, state, priority, group, swarm, pending_deps, attempts,
max_attempts, requeues, lease_owner, lease_expires_at, created_at, updated_at, started_at,
finished_at, spec, run, result, error, depends_on}; `spec` and `run` are JSON-able dicts.
"""

from __future__ import annotations

from typing import Any, Protocol

STATES = ("queued", "running", "completed", "failed", "cancelled")
FINAL = ("completed", "failed", "cancelled")


class TaskStore(Protocol):
    async def insert(self, record: dict[str, Any], depends_on: list[str]) -> tuple[dict[str, Any], str | None]:
        """Store a new queued task (its `seq` assigned here) and its dependencies. Unknown
        dependency ids raise InvalidParams naming the id. Returns (record, failed_dep): if a
        dependency has already failed or been cancelled, the task is stored failed."""

    async def get(self, task_id: str) -> dict[str, Any] | None: ...
    async def waiting_on(self, task_id: str) -> list[str]:
        """Ids of the task's dependencies that are not completed."""
    async def list(self, *, states: list[str] | None = None, group: str | None = None, limit: int = 1000) -> list[dict[str, Any]]: ...

    async def claim(self, *, worker: str, now_ms: int, lease_ms: int, groups: list[str] | None, swarm: str | None, default_parallel: int,
                    announce: Any = None) -> dict[str, Any] | None:
        """Atomically take the best ready task (priority desc, seq asc) of a group below its
        limit, matching `swarm` exactly (None: only tasks of no swarm): running, leased to
        `worker` until now+lease, attempts + 1. None if there is nothing to take.
        `announce(rec)` returns the events (EventDrafts) written in the same transaction."""

    async def heartbeat(self, task_id: str, worker: str, expires_ms: int) -> dict[str, Any]: ...
    async def extend_leases(self, worker: str, expires_ms: int) -> int:
        """Extend every running task leased to `worker` (the in-daemon runner's heartbeat)."""
    async def set_run(self, task_id: str, worker: str, run: dict[str, Any]) -> None:
        """Remember how a running task is executed (pid and start time, agent id)."""

    async def finish(self, task_id: str, worker: str | None, *, ok: bool, result: Any, error: str | None, now_ms: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """End a running attempt. ok: completed (dependents' pending count drops). Not ok: back
        to queued while attempts < max_attempts, else failed and every queued dependent,
        transitively, fails too. Returns (record, dependents that failed)."""

    async def cancel(self, task_id: str, now_ms: int) -> tuple[dict[str, Any], str, list[dict[str, Any]]]:
        """Cancel a queued or running task: (record, state before, dependents that failed)."""

    async def retry(self, task_id: str, now_ms: int) -> dict[str, Any]:
        """A failed or cancelled task back to queued, attempts kept."""

    async def expire(self, now_ms: int, max_requeues: int) -> list[dict[str, Any]]:
        """Running tasks whose lease ended: back to queued (requeues + 1), or failed after
        max_requeues expiries. Returns the records as they were before, with `outcome`."""

    async def release(self, worker: str, task_ids: list[str], now_ms: int) -> list[dict[str, Any]]:
        """Put these tasks leased to `worker` back in the queue (a worker stopping cleanly),
        attempts kept. Returns the records released."""

    async def groups(self, default_parallel: int) -> list[dict[str, Any]]:
        """[{name, parallel, running, queued}], `parallel` resolved (None stored: the default)."""
    async def set_group(self, name: str, parallel: int | None, now_ms: int) -> None: ...
