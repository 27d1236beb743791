"""tasks.* methods, and the task queue's place in the daemon: the service at startup, the
in-daemon runner (claims, executes, heartbeats, sweeps expired leases) as a background task."""

from __future__ import annotations

from typing import Any

from godeld import hookimpl
from godeld.dispatch import Context
from godeld.errors import InvalidParams


@hookimpl
def startup(daemon):
    from godeld.tasks.queue import TaskQueue

    async def start() -> None:
        daemon.tasks = TaskQueue(daemon)

    return start()


@hookimpl
def background_tasks(daemon):
    async def run() -> None:
        from godeld.tasks.runner import Runner

        await Runner(daemon.tasks).run()

    return [run]


@hookimpl
def register_rpc_methods(register):
    for name, fn in [
        ("tasks.submit", submit), ("tasks.get", get), ("tasks.list", list_tasks), ("tasks.cancel", cancel), ("tasks.retry", retry),
        ("tasks.log", log), ("tasks.groups", groups), ("tasks.set_group", set_group),
        ("tasks.claim", claim), ("tasks.heartbeat", heartbeat), ("tasks.complete", complete), ("tasks.fail", fail),
    ]:
        register(name, fn)


def _queue(ctx: Context):
    return ctx.daemon.tasks


async def submit(
    ctx: Context, task: str | None = None, command: str | None = None, priority: int = 0, group: str = "default", depends_on: list[str] | None = None,
    swarm: str | None = None, repo: str | None = None, cwd: str | None = None, env: dict[str, str] | None = None, provider: str | None = None,
    model: str | None = None, script: list | None = None, max_attempts: int = 1, label: str | None = None,
) -> dict[str, Any]:
    """Queue a shell command or an agent task: {id, state, seq}."""
    if not group.strip():
        raise InvalidParams("group must not be empty")
    params = {k: v for k, v in locals().items() if k != "ctx"}
    return await _queue(ctx).submit(params)


async def get(ctx: Context, id: str) -> dict[str, Any]:
    """One task: {id, state, priority, group, attempts, result, error, waiting_on, ...}."""
    return await _queue(ctx).get(id)


async def list_tasks(ctx: Context, state: str | list[str] | None = None, group: str | None = None, limit: int = 1000) -> dict[str, Any]:
    """Tasks in submission order, optionally only those in the given state(s) or group."""
    if limit < 1:
        raise InvalidParams("limit must be >= 1")
    states = [state] if isinstance(state, str) else state
    return {"tasks": await _queue(ctx).list(states, group, min(limit, 100_000))}


async def cancel(ctx: Context, id: str) -> dict[str, Any]:
    """Cancel a queued or running task (a running command's process group gets SIGTERM, then SIGKILL)."""
    return await _queue(ctx).cancel(id)


async def retry(ctx: Context, id: str) -> dict[str, Any]:
    """Put a failed or cancelled task back in the queue (its attempts are kept)."""
    return await _queue(ctx).retry(id)


async def log(ctx: Context, id: str, offset: int = 0, limit: int = 65536) -> dict[str, Any]:
    """A command task's output from byte `offset` (negative: the last bytes)."""
    if limit < 1:
        raise InvalidParams("limit must be >= 1")
    return await _queue(ctx).log(id, offset, min(limit, 1 << 20))


async def groups(ctx: Context) -> dict[str, Any]:
    """Groups with their parallel limit and running and queued counts."""
    return {"groups": await _queue(ctx).groups()}


async def set_group(ctx: Context, name: str, parallel: int) -> dict[str, Any]:
    """Create a group or change its parallel limit (0 pauses it)."""
    if not name.strip():
        raise InvalidParams("name must not be empty")
    return await _queue(ctx).set_group(name, parallel)


async def claim(ctx: Context, worker: str, groups: list[str] | None = None, swarm: str | None = None, lease_s: float | None = None) -> dict[str, Any] | None:
    """For workers: lease the best ready task (or null); keep it with tasks.heartbeat."""
    if not worker.strip():
        raise InvalidParams("worker must not be empty")
    from godeld.tasks.queue import public

    rec = await _queue(ctx).claim(worker, groups=groups, swarm=swarm, lease_s=lease_s)
    if rec is None:
        return None
    out = public(rec)
    out["spec"] = rec["spec"]  # what to run, env included: the worker needs it
    return out


async def heartbeat(ctx: Context, id: str, worker: str, lease_s: float | None = None) -> dict[str, Any]:
    """For workers: extend a lease. Conflict if the lease was lost (the task was requeued, cancelled or taken over)."""
    return await _queue(ctx).heartbeat(id, worker, lease_s)


async def complete(ctx: Context, id: str, worker: str, result: Any = None) -> dict[str, Any]:
    """For workers: the task succeeded. Conflict if the worker no longer holds the lease."""
    return await _queue(ctx).complete(id, worker, result)


async def fail(ctx: Context, id: str, worker: str, error: str, result: Any = None) -> dict[str, Any]:
    """For workers: the attempt failed; the task is requeued while attempts < max_attempts, else failed."""
    return await _queue(ctx).fail(id, worker, error, result)
