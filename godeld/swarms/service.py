"""The swarm service: many agents on one job, coordinated by a strategy plugin.

A swarm is a record (persisted at each change) and, while it runs, a trio task running its
strategy under the service's nursery. States: running → completed | failed | stopped (or
interrupted, when its strategy is no longer loaded after a restart). A swarm running when godeld
stopped goes on at the next start: its strategy runs again and gets back the agents it had started
(SwarmRun.spawn).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import trio

from godeld import ids
from godeld.errors import Conflict, InvalidParams, NotFound
from godeld.swarms.context import SwarmFailed, SwarmRun

log = logging.getLogger("godeld.swarms")
FINAL = ("completed", "failed", "stopped", "interrupted")


def now_ms() -> int:
    return int(time.time() * 1000)


class SwarmService:
    def __init__(self, daemon: Any):
        self.daemon = daemon
        self.store = daemon.storage.swarms
        self.live: dict[str, tuple[SwarmRun, trio.CancelScope, trio.Event]] = {}
        self.ready = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._resuming: list[dict[str, Any]] = []

    async def load(self) -> None:
        """Swarms that were running when godeld stopped go on: their strategy runs again, and each
        spawn it repeats gets back the agent it started before (see SwarmRun.spawn)."""
        self._resuming = await self.store.list_swarms(states=["running"], limit=100_000)

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await self.daemon.agents.ready.wait()  # re-adoption and interruption are settled first
            for rec in self._resuming:
                log.info("resuming swarm %s (%s)", rec["id"], rec["name"])
                if rec["strategy"] not in self.daemon.plugins.registries.strategies:
                    rec.update(state="interrupted", error=f"strategy {rec['strategy']!r} is not loaded any more", finished_at=now_ms())
                    await self.store.save_swarm(rec)
                    continue
                swarm, scope, done = SwarmRun(self.daemon, rec), trio.CancelScope(), trio.Event()
                self.live[rec["id"]] = (swarm, scope, done)
                await self._publish("swarm:resumed", rec, {"name": rec["name"], "agents": len(rec["agents"])})
                nursery.start_soon(self._drive, swarm, scope, done, True)
            self._resuming = []
            self.ready.set()
            await trio.sleep_forever()

    async def save(self, rec: dict[str, Any]) -> None:
        await self.store.save_swarm(rec)

    # -- create --------------------------------------------------------------------------------
    async def create(self, params: dict[str, Any]) -> dict[str, Any]:
        from godeld.agents.git import git, toplevel

        strategies = self.daemon.plugins.registries.strategies
        strategy = params.get("strategy") or "parallel"
        if strategy not in strategies:
            raise InvalidParams(f"unknown strategy {strategy!r} (available: {', '.join(strategies.names())})", {"strategy": strategy})
        if not (params.get("task") or "").strip():
            raise InvalidParams("a swarm needs a task")
        if not params.get("repo"):
            raise InvalidParams("a swarm needs a repo (a git repository for its agents' worktrees)")
        agents = int(params.get("agents") or 3)
        max_agents = int(params.get("max_agents") or max(agents, 1))
        if not 1 <= agents <= max(max_agents, 1) or agents > self.daemon.config.get("swarms.max_agents"):
            raise InvalidParams(f"agents must be between 1 and {min(max_agents, self.daemon.config.get('swarms.max_agents'))}")
        top, _ = await toplevel(params["repo"])
        base = params.get("base") or "HEAD"
        base_commit = (await git(top, "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}", check=False)).strip()
        if not base_commit:
            raise InvalidParams(f"base {base!r} is not a commit in {top}")
        swarm_id = ids.uuid7()
        rec: dict[str, Any] = {
            "id": swarm_id, "name": params.get("name") or f"swarm-{swarm_id[-6:]}", "strategy": strategy, "state": "running",
            "task": params["task"], "repo": str(top), "base": base_commit, "provider": params.get("provider"), "model": params.get("model"),
            "script": params.get("script"), "options": params.get("options") or {}, "agents_wanted": agents, "max_agents": max_agents,
            "min_agents": params.get("min_agents"), "scaling": params.get("scaling"), "safety": params.get("safety"),
            "provider_options": params.get("provider_options"), "tools": params.get("tools"),
            "agents": [], "roles": {}, "results": None, "merge": None, "error": None, "created_at": now_ms(), "finished_at": None,
        }
        if params.get("budget_usd"):
            await self.daemon.agents.budget.set_limit("swarm", swarm_id, float(params["budget_usd"]), None)
            rec["budget_usd"] = float(params["budget_usd"])
        await self.store.save_swarm(rec)
        swarm = SwarmRun(self.daemon, rec)
        scope = trio.CancelScope()
        done = trio.Event()
        self.live[swarm_id] = (swarm, scope, done)
        assert self._nursery is not None
        self._nursery.start_soon(self._drive, swarm, scope, done)
        return rec

    async def _drive(self, swarm: SwarmRun, scope: trio.CancelScope, done: trio.Event, resumed: bool = False) -> None:
        rec = swarm.rec
        strategy = self.daemon.plugins.registries.strategies[rec["strategy"]]
        if not resumed:
            await self._publish("swarm:start", rec, {"name": rec["name"], "strategy": rec["strategy"], "agents": rec["agents_wanted"], "task": rec["task"]})
        try:
            with scope:
                results = await strategy.run(swarm)
                rec.update(state="completed", results=results)
            if scope.cancelled_caught:
                rec.update(state="stopped", error=rec.get("error") or "stopped by request")
        except SwarmFailed as exc:
            rec.update(state="failed", error=str(exc))
        except Exception as exc:  # noqa: BLE001 - a strategy's failure is the swarm's, never godeld's
            log.exception("swarm %s: strategy %s raised", rec["id"], rec["strategy"])
            rec.update(state="failed", error=f"{type(exc).__name__}: {exc}")
        finally:
            if rec["state"] == "running" and self.daemon.state in ("stopping", "stopped"):
                done.set()
                self.live.pop(rec["id"], None)
        if rec["state"] == "running":
            return
        if rec["state"] != "completed":
            await self.daemon.agents.kill_scope("swarm", rec["id"], f"swarm {rec['state']}: {rec.get('error')}")
            if rec.get("results") is None:
                rec["results"] = await self._partial_results(rec)
        rec["finished_at"] = now_ms()
        await self.store.save_swarm(rec)
        usage = await self._usage(rec)
        await self._publish("swarm:complete", rec, {"state": rec["state"], "results": rec["results"], "error": rec.get("error"), "cost": usage["cost_usd"]})
        self.live.pop(rec["id"], None)
        done.set()

    async def _partial_results(self, rec: dict[str, Any]) -> list[Any]:
        records = [await self.daemon.agents.get_record(a) for a in rec["agents"]]
        return [r.get("final") for r in records if r["state"] == "completed"]

    async def _usage(self, rec: dict[str, Any]) -> dict[str, Any]:
        totals = {"input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0}
        for agent_id in rec["agents"]:
            usage = (await self.daemon.agents.get_record(agent_id)).get("usage") or {}
            for key in totals:
                totals[key] += usage.get(key) or 0
        totals["cost_usd"] = round(totals["cost_usd"], 6)
        return totals

    async def _publish(self, type_: str, rec: dict[str, Any], data: dict[str, Any]) -> None:
        await self.daemon.bus.publish(type_, {"swarmId": rec["id"], **data}, source="swarms", metadata={"swarmId": rec["id"]})

    # -- reading -------------------------------------------------------------------------------
    async def get(self, swarm_id: str) -> dict[str, Any]:
        live = self.live.get(swarm_id)
        if live is not None:
            return live[0].rec
        rec = await self.store.get_swarm(swarm_id)
        if rec is None:
            raise NotFound(f"no swarm {swarm_id!r}", {"id": swarm_id})
        return rec

    async def public(self, rec: dict[str, Any]) -> dict[str, Any]:
        keys = ("id", "name", "strategy", "state", "task", "repo", "base", "provider", "model", "agents", "roles", "results", "merge", "error",
                "created_at", "finished_at", "agents_wanted", "max_agents", "options", "budget_usd", "best", "selection")
        out = {k: rec.get(k) for k in keys}
        out["usage"] = await self._usage(rec)
        return out

    # -- control -------------------------------------------------------------------------------
    async def stop(self, swarm_id: str) -> dict[str, Any]:
        live = self.live.get(swarm_id)
        if live is None:
            rec = await self.get(swarm_id)
            raise Conflict(f"swarm {swarm_id} is already {rec['state']}", {"state": rec["state"]})
        swarm, scope, done = live
        swarm.rec["error"] = "stopped by request"
        scope.cancel()
        with trio.move_on_after(30):
            await done.wait()
        return swarm.rec

    async def scale(self, swarm_id: str, agents: int) -> dict[str, Any]:
        live = self.live.get(swarm_id)
        if live is None:
            rec = await self.get(swarm_id)
            raise Conflict(f"swarm {swarm_id} is {rec['state']}: only a running swarm can be scaled", {"state": rec["state"]})
        swarm, _, _ = live
        rec = swarm.rec
        if not getattr(self.daemon.plugins.registries.strategies[rec["strategy"]], "scalable", False):
            raise Conflict(f"a {rec['strategy']} swarm cannot be scaled while it runs (its work is already divided)")
        if not 1 <= agents <= rec["max_agents"]:
            raise InvalidParams(f"agents must be between 1 and the swarm's max_agents ({rec['max_agents']})")
        current = len(rec["agents"])
        if agents < current:
            raise Conflict(f"the swarm already has {current} agents; a running agent is not taken away (stop it with agents.kill)")
        for index in range(current, agents):
            await swarm.spawn(rec["task"], index=index)
        rec["agents_wanted"] = agents
        await self.store.save_swarm(rec)
        await self._publish("swarm:scaled", rec, {"agents": agents})
        return rec

    async def merge(self, swarm_id: str, resolve: bool | None = None) -> dict[str, Any]:
        from godeld.swarms.merge import merge_branches

        rec = await self.get(swarm_id)
        if rec["state"] == "running":
            raise Conflict(f"swarm {swarm_id} is still running: merge it once it has ended", {"state": "running"})
        branches = []
        for agent_id in rec["agents"]:
            agent = await self.daemon.agents.get_record(agent_id)
            if agent["state"] == "completed" and agent.get("branch"):
                branches.append(agent["branch"])
        target = f"godel/swarm-{swarm_id}"
        workdir = self.daemon.config.home / "merges"
        workdir.mkdir(parents=True, exist_ok=True)
        result = await merge_branches(rec["repo"], rec["base"], branches, target, workdir)
        if result["conflicts"] and (resolve if resolve is not None else bool(rec["options"].get("resolve_conflicts"))):
            await self._resolve(rec, result)
        rec["merge"] = result
        await self.store.save_swarm(rec)
        await self._publish("swarm:merge", rec, {"branch": target, "merged": result["merged"], "conflicts": result["conflicts"]})
        return result

    async def _resolve(self, rec: dict[str, Any], result: dict[str, Any]) -> None:
        """Hand each conflict to an agent: it starts from the integration branch, merges the
        conflicting branch and resolves it; if its branch then holds both, the integration branch
        moves to it. Conflicts it could not settle stay in the report."""
        from godeld.agents.git import git, toplevel
        from godeld.swarms.merge import is_ancestor

        top, _ = await toplevel(rec["repo"])
        swarm = SwarmRun(self.daemon, rec)
        resolved, left = [], []
        for conflict in result["conflicts"]:
            branch, files = conflict["branch"], conflict.get("files") or []
            task = (f"Merge the branch {branch} into your current branch (`git merge {branch}`), resolve the conflicts in "
                    f"{', '.join(files) or 'the conflicting files'} keeping the intent of both sides, and commit the merge.")
            agent_id = await swarm.spawn(rec["options"].get("resolve_task") or task, index=len(rec["agents"]), role="resolver",
                                         base=result["head"], extra={"branch": branch, "files": ", ".join(files)})
            (agent,) = await swarm.wait([agent_id])
            ok = agent["state"] == "completed" and await is_ancestor(top, branch, agent["branch"]) and await is_ancestor(top, result["head"], agent["branch"])
            if ok:
                await git(top, "branch", "-f", result["branch"], agent["branch"])
                result["head"] = (await git(top, "rev-parse", agent["branch"])).strip()
                result["merged"].append(branch)
                resolved.append({"branch": branch, "files": files, "agent": agent_id})
            else:
                left.append({**conflict, "resolver": agent_id, "error": agent.get("error") or "the resolver's branch does not hold both sides"})
        result["conflicts"] = left
        result["resolved"] = resolved
        await self.store.save_swarm(rec)

    async def message(self, swarm_id: str, text: str, sender: str | None, to: str | None) -> dict[str, Any]:
        rec = await self.get(swarm_id)
        if to is not None and to not in rec["agents"]:
            raise InvalidParams(f"agent {to} is not in swarm {swarm_id}")
        event = await self.daemon.bus.publish("swarm:message", {"swarmId": swarm_id, "from": sender or "user", "to": to, "text": text},
                                              source="swarms", metadata={"swarmId": swarm_id})
        return {"seq": event.seq}
