"""swarms.* methods, and the swarm service's place in the daemon."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from godeld import hookimpl
from godeld.dispatch import Context


@hookimpl
def startup(daemon):
    from godeld.swarms.service import SwarmService

    async def start() -> None:
        daemon.swarms = SwarmService(daemon)
        await daemon.swarms.load()

    return start()


@hookimpl
def background_tasks(daemon):
    async def run() -> None:
        await daemon.swarms.run()

    return [run]


@hookimpl
def register_rpc_methods(register):
    for name, fn in [
        ("swarms.create", create), ("swarms.get", get), ("swarms.list", list_swarms), ("swarms.stop", stop),
        ("swarms.scale", scale), ("swarms.merge", merge), ("swarms.message", message),
    ]:
        register(name, fn)


async def _service(ctx: Context):
    service = ctx.daemon.swarms
    await service.ready.wait()
    await ctx.daemon.agents.ready.wait()
    return service


async def create(
    ctx: Context, task: str | None = None, strategy: str | None = None, agents: int | None = None, repo: str | None = None,
    provider: str | None = None, model: str | None = None, script: list | dict | None = None, file: str | None = None,
    name: str | None = None, options: dict | None = None, base: str | None = None, max_agents: int | None = None,
    budget_usd: float | None = None, provider_options: dict | None = None, tools: list[str] | None = None,
) -> dict[str, Any]:
    """Start a swarm: {id, name, strategy, state}. From parameters, or a Godel team file (`file`)
    whose values the other parameters override."""
    from godeld.swarms.team import load_team

    params: dict[str, Any] = load_team(Path(file)) if file else {}
    given = {k: v for k, v in locals().items() if k not in ("ctx", "file", "params", "load_team") and v is not None}
    params.update(given)
    service = await _service(ctx)
    rec = await service.create(params)
    return {"id": rec["id"], "name": rec["name"], "strategy": rec["strategy"], "state": rec["state"]}


async def get(ctx: Context, id: str) -> dict[str, Any]:
    """One swarm: {id, name, strategy, state, agents, roles, results, merge, usage, error, ...}."""
    service = await _service(ctx)
    return await service.public(await service.get(id))


async def list_swarms(ctx: Context, state: str | list[str] | None = None, limit: int = 100) -> dict[str, Any]:
    """Swarms, newest first."""
    service = await _service(ctx)
    states = [state] if isinstance(state, str) else state
    keys = ("id", "name", "strategy", "state", "agents", "created_at", "finished_at", "error")
    return {"swarms": [{k: r.get(k) for k in keys} for r in await service.store.list_swarms(states=states, limit=limit)]}


async def stop(ctx: Context, id: str) -> dict[str, Any]:
    """Stop a running swarm: its agents are killed; it ends `stopped`."""
    service = await _service(ctx)
    return await service.public(await service.stop(id))


async def scale(ctx: Context, id: str, agents: int) -> dict[str, Any]:
    """Grow a running parallel swarm to `agents` agents (up to its max_agents)."""
    service = await _service(ctx)
    return await service.public(await service.scale(id, agents))


async def merge(ctx: Context, id: str, resolve: bool | None = None) -> dict[str, Any]:
    """Merge the completed agents' branches into a new integration branch godel/swarm-<id>:
    {branch, head, merged, conflicts: [{branch, files}], skipped, resolved?}. `resolve`: hand each
    conflict to an agent (default: the swarm's options.resolve_conflicts)."""
    service = await _service(ctx)
    return await service.merge(id, resolve)


async def message(ctx: Context, id: str, text: str, sender: str | None = None, to: str | None = None) -> dict[str, Any]:
    """Post a message to a swarm (to one agent with `to`), stored as a swarm:message event."""
    service = await _service(ctx)
    return await service.message(id, text, sender, to)
