"""agents.*, budget.* and safety.* methods, and the agent manager's place in the daemon."""

from __future__ import annotations

from typing import Any, Literal

from godeld import hookimpl
from godeld.dispatch import Context
from godeld.errors import Conflict, InvalidParams

_DAY_MS = 86_400_000


@hookimpl
def startup(daemon):
    from godeld.agents.manager import AgentManager

    async def start() -> None:
        daemon.agents = AgentManager(daemon)
        await daemon.agents.load()

    return start()


@hookimpl
def background_tasks(daemon):
    async def run() -> None:
        await daemon.agents.run()

    return [run]


@hookimpl
def register_rpc_methods(register):
    for name, fn in [
        ("agents.spawn", spawn), ("agents.get", get), ("agents.list", list_agents), ("agents.pause", pause), ("agents.resume", resume),
        ("agents.kill", kill), ("agents.remove", remove), ("agents.diff", diff), ("agents.artifacts", artifacts), ("agents.logs", logs),
        ("agents.send", send), ("agents.transcript", transcript), ("agents.trace", trace), ("agents.approve", approve), ("agents.deny", deny),
        ("agents.approvals", approvals), ("agents.gc", gc),
        ("agents.worker.report", worker_report), ("agents.worker.authorize", worker_authorize), ("agents.worker.message", worker_message),
        ("budget.get", budget_get), ("budget.set", budget_set), ("budget.report", budget_report),
        ("safety.check", safety_check), ("safety.log", safety_log),
    ]:
        register(name, fn)


async def _manager(ctx: Context):
    manager = ctx.daemon.agents
    await manager.ready.wait()
    return manager


# -- agents ------------------------------------------------------------------------------------

async def spawn(
    ctx: Context, repo: str, task: str, provider: str | None = None, model: str | None = None, provider_options: dict | None = None,
    script: list | None = None, budget: dict | None = None, tools: list[str] | None = None, base: str | None = None, branch: str | None = None,
    setup: str | list[str] | None = None, env: dict[str, str] | None = None, skills: list[str] | None = None, dry_run: bool = False,
    swarm_id: str | None = None, workflow_id: str | None = None, task_id: str | None = None,
    gates: list | None = None, retries: int = 0, retry_model: str | None = None,
) -> dict[str, Any]:
    """Start an agent on `task` in a new worktree of `repo`: {id, branch, worktree} (dry_run: a projected cost)."""
    if not task.strip():
        raise InvalidParams("task must not be empty")
    manager = await _manager(ctx)
    params = {k: v for k, v in locals().items() if k not in ("ctx", "manager", "dry_run")}
    return await manager.spawn(params, dry_run=dry_run)


async def get(ctx: Context, id: str) -> dict[str, Any]:
    """One agent: {id, state, pid, branch, worktree, exit_code, error, usage, ...}."""
    manager = await _manager(ctx)
    return manager.public(await manager.get_record(id))


async def list_agents(ctx: Context, state: str | list[str] | None = None, limit: int = 1000) -> dict[str, Any]:
    """Agents, oldest first, optionally only those in the given state(s)."""
    manager = await _manager(ctx)
    states = [state] if isinstance(state, str) else state
    records = await manager.store.list_agents(states=states, limit=limit)
    live = manager.agents
    return {"agents": [manager.public(live[r["id"]].rec if r["id"] in live else r) for r in records]}


async def pause(ctx: Context, id: str) -> dict[str, Any]:
    """Pause a running agent (SIGSTOP to its whole process group)."""
    return await (await _manager(ctx)).pause(id)


async def resume(ctx: Context, id: str) -> dict[str, Any]:
    """Resume a paused agent (SIGCONT), or restart an interrupted one where it left off."""
    return await (await _manager(ctx)).resume(id)


async def kill(ctx: Context, id: str, reason: str | None = None) -> dict[str, Any]:
    """Kill an agent: SIGTERM to its process group, SIGKILL after agents.kill_grace_s."""
    return await (await _manager(ctx)).kill(id, reason or "killed by request")


async def remove(ctx: Context, id: str, force: bool = False) -> dict[str, Any]:
    """Remove a finished agent: its worktree, its branch (kept if it has unmerged commits, unless force) and its record."""
    return await (await _manager(ctx)).remove(id, force)


async def diff(ctx: Context, id: str) -> dict[str, Any]:
    """The agent's work against its base: {diff, stat, files, commits} (live from the worktree while it runs)."""
    manager = await _manager(ctx)
    rec = await manager.get_record(id)
    path = manager.agents_dir / id / "diff.patch"
    if rec["state"] in ("completed", "failed", "killed", "interrupted") and path.exists():
        art = rec.get("artifacts") or {}
        return {"id": id, "diff": path.read_text(), "stat": art.get("stat", ""), "files": art.get("files", []), "commits": art.get("commits", []), "live": False}
    if not rec.get("workspace"):
        raise Conflict(f"agent {id} has no worktree yet (state {rec['state']})", {"state": rec["state"]})
    from godeld.agents.git import git

    ws = rec["workspace"]
    text = await git(ws["worktree"], "diff", "--no-color", ws["base_commit"])  # committed and uncommitted changes
    names = await git(ws["worktree"], "diff", "--name-status", "--no-renames", ws["base_commit"])
    files = [{"status": s, "path": p} for s, _, p in (line.partition("\t") for line in names.splitlines())]
    return {"id": id, "diff": text, "stat": "", "files": files, "commits": [], "live": True}


async def artifacts(ctx: Context, id: str) -> dict[str, Any]:
    """What a finished run left: commits, changed files, exit status, isolation check, and where the logs and diff are."""
    manager = await _manager(ctx)
    rec = await manager.get_record(id)
    d = manager.agents_dir / id
    return {
        "id": id, "state": rec["state"], "exit_code": rec.get("exit_code"), "error": rec.get("error"), "final": rec.get("final"),
        "artifacts": rec.get("artifacts"), "isolation": rec.get("isolation"), "usage": manager.public(rec)["usage"],
        "files": {"log": str(d / "output.log"), "diff": str(d / "diff.patch")}, "setup_output": rec.get("setup_output"),
    }


async def logs(ctx: Context, id: str, offset: int = 0, limit: int = 65536, wait_s: float = 0.0) -> dict[str, Any]:
    """Output of the agent from byte `offset` (negative: the last bytes); with wait_s, waits for new output (a long poll)."""
    if limit < 1 or wait_s < 0 or wait_s > 60:
        raise InvalidParams("limit must be >= 1 and wait_s between 0 and 60")
    return await (await _manager(ctx)).logs(id, offset, min(limit, 1 << 20), wait_s)


async def send(ctx: Context, id: str, text: str) -> dict[str, Any]:
    """Send a line of input to a running agent (the next user message, or the CLI agent's stdin)."""
    return (await _manager(ctx)).send(id, text)


async def transcript(ctx: Context, id: str, after: int = 0, limit: int = 1000) -> dict[str, Any]:
    """The stored transcript: system and user messages, model turns, tool calls with results and decisions, usage."""
    manager = await _manager(ctx)
    await manager.get_record(id)
    entries = await manager.store.read_transcript(id, after=after, limit=limit)
    return {"id": id, "entries": entries, "next_after": entries[-1]["n"] if entries else after}


async def trace(ctx: Context, id: str) -> dict[str, Any]:
    """The reasoning trace: each step's plan (the model's text), decision (tools called, or the final
    answer) and outcomes (tool results, safety blocks), from the transcript."""
    from godeld.agents.trace import build_trace

    manager = await _manager(ctx)
    rec = await manager.get_record(id)
    entries: list[dict[str, Any]] = []
    after = 0
    while True:
        page = await manager.store.read_transcript(id, after=after, limit=5000)
        entries += page
        if len(page) < 5000:
            break
        after = page[-1]["n"]
    return {"id": id, "state": rec["state"], "task": rec.get("task"), "steps": build_trace(entries), "final": rec.get("final")}


async def approve(ctx: Context, id: str, approval: str | None = None, note: str | None = None) -> dict[str, Any]:
    """Allow an agent's action that a safety rule put to a person (all its pending ones if no approval id)."""
    done = await (await _manager(ctx)).safety.resolve(id, approval, True, note)
    return {"approved": [a["id"] for a in done]}


async def deny(ctx: Context, id: str, approval: str | None = None, note: str | None = None) -> dict[str, Any]:
    """Refuse an agent's action that a safety rule put to a person."""
    done = await (await _manager(ctx)).safety.resolve(id, approval, False, note)
    return {"denied": [a["id"] for a in done]}


async def approvals(ctx: Context, id: str | None = None) -> dict[str, Any]:
    """Actions waiting for a person's decision."""
    return {"approvals": (await _manager(ctx)).safety.pending(id)}


async def gc(ctx: Context, max_age_h: float | None = None, quota_mb: int | None = None, orphans: Literal["report", "reclaim"] = "report", dry_run: bool = False) -> dict[str, Any]:
    """Remove old finished agents' worktrees, enforce the disk quota, and find orphaned worktrees."""
    from godeld.agents.manager import gc as run_gc

    return await run_gc(await _manager(ctx), max_age_h=max_age_h, quota_mb=quota_mb, orphans=orphans, dry_run=dry_run)


async def worker_report(ctx: Context, id: str, token: str, n: int, entries: list = [], usage: list = [], session_id: str | None = None) -> dict[str, Any]:  # noqa: B006
    """Internal, for agent workers: transcript entries and usage, stored durably and metered."""
    return await (await _manager(ctx)).worker_report(id, token, n, entries, usage, session_id)


async def worker_authorize(ctx: Context, id: str, token: str, tool: str, args: dict, call_id: str) -> dict[str, Any]:
    """Internal, for agent workers: the safety decision for one tool call (waits while a person decides)."""
    return await (await _manager(ctx)).worker_authorize(id, token, tool, args, call_id)


async def worker_message(ctx: Context, id: str, token: str, op: Literal["send", "read"], text: str | None = None, to: str | None = None, since: int = 0, wait_s: float = 0.0) -> dict[str, Any]:
    """Internal, for agent workers: the send_message / read_messages tools of an agent in a swarm."""
    return await (await _manager(ctx)).worker_message(id, token, op, text, to, since, wait_s)


# -- budget ------------------------------------------------------------------------------------

async def budget_get(ctx: Context, scope: Literal["global", "day", "agent", "swarm", "workflow"] | None = None, id: str | None = None) -> dict[str, Any]:
    """Spending against limits: one scope, or every limit that is set and the global and daily totals."""
    manager = await _manager(ctx)
    b = manager.budget
    if scope:
        if scope in ("agent", "swarm", "workflow") and not id:
            raise InvalidParams(f"scope {scope} needs an id")
        return b.status(scope, id or "")
    keys = {("global", ""), ("day", "")} | set(b.limits)
    return {"budgets": [b.status(s, i) for s, i in sorted(keys)], "price_version": b.prices.version}


async def budget_set(ctx: Context, scope: Literal["global", "day", "agent", "swarm", "workflow"], id: str | None = None, max_cost_usd: float | None = None, max_tokens: int | None = None) -> dict[str, Any]:
    """Set (or, with neither limit, clear) a spending limit; it overrides the config's."""
    if scope in ("agent", "swarm", "workflow") and not id:
        raise InvalidParams(f"scope {scope} needs an id")
    if (max_cost_usd is not None and max_cost_usd <= 0) or (max_tokens is not None and max_tokens <= 0):
        raise InvalidParams("limits must be positive")
    manager = await _manager(ctx)
    await manager.budget.set_limit(scope, id or "", max_cost_usd, max_tokens)
    return manager.budget.status(scope, id or "")


async def budget_report(ctx: Context, group_by: Literal["agent", "swarm", "workflow", "task", "provider", "model", "day"] = "model", days: float = 30.0, limit: int = 100) -> dict[str, Any]:
    """Usage from the ledger, summed by agent, swarm, workflow, task, provider, model or day."""
    import time

    manager = await _manager(ctx)
    since = int(time.time() * 1000 - days * _DAY_MS) if days > 0 else 0
    rows = await manager.store.usage_report(group_by=group_by, since_ms=since, limit=limit)
    total = sum(r["cost_usd"] for r in rows)
    return {"group_by": group_by, "rows": rows, "total_cost_usd": round(total, 6), "price_version": manager.budget.prices.version}


# -- safety ------------------------------------------------------------------------------------

async def safety_check(ctx: Context, tool: str, args: dict | None = None, agent: str | None = None) -> dict[str, Any]:
    """Dry-run the safety rules on an action (for an agent's policy, if given): {verdict, reason, rule}."""
    from godeld.safety import Action

    manager = await _manager(ctx)
    rec = await manager.get_record(agent) if agent else None
    decision = await manager.safety.check(Action(tool, args or {}, agent), rec, publish=False)
    return {**decision.to_dict(), "rules": sorted(manager.safety.rules())}


async def safety_log(ctx: Context, since: int = 0, limit: int = 100, agent: str | None = None) -> dict[str, Any]:
    """The security log: safety:block, safety:ask and safety:decision events, newest last."""
    events, head = await ctx.daemon.bus.list(since=since, patterns=["safety:*"], limit=limit if not agent else 10000, tail=since == 0)
    out = [e.to_dict() for e in events if not agent or (e.data or {}).get("agentId") == agent]
    return {"events": out[-limit:], "last_seq": head}
