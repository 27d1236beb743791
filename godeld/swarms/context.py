"""What a swarm strategy works with: spawning the swarm's agents and waiting for them.

A strategy is registered with `register_strategies(register)` as `register(name, strategy)`:

    class MyStrategy:
        async def run(self, swarm: SwarmRun) -> list:   # the swarm's results
            a = await swarm.spawn(swarm.task, index=0)
            (rec,) = await swarm.wait([a])
            return [rec["final"]]

`swarm.spawn` templates the task and the scripted-provider script with `{{agent_index}}`,
`{{item}}` and `{{results}}` (and any extra names given), and records the agent with its role.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

TERMINAL = ("completed", "failed", "killed", "interrupted")


class SwarmFailed(Exception):
    """The strategy cannot go on (a planner gave nothing usable, every agent failed)."""


@dataclass
class SwarmRun:
    daemon: Any
    rec: dict[str, Any]
    handles: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.rec["id"]

    @property
    def task(self) -> str:
        return self.rec["task"]

    @property
    def options(self) -> dict[str, Any]:
        return self.rec.get("options") or {}

    @property
    def size(self) -> int:
        return int(self.rec.get("agents_wanted") or 1)

    async def spawn(self, task: str, *, index: int, role: str = "worker", item: Any = None, results: Any = None,
                    base: str | None = None, extra: dict[str, Any] | None = None, task_id: str | None = None,
                    script: Any = None, repo: str | None = None) -> str:
        """Start one agent of the swarm; its id.

        Durable like a replayed workflow: each spawn has a key (role, index, item, task), and a
        strategy run again after a restart of godeld gets back the agent it started the first
        time — still running (re-adopted), finished, or, if interrupted, resumed — instead of a
        second one."""
        import json

        from godeld.workflows import expr

        spawn_key = json.dumps([role, index, item, task_id], ensure_ascii=False, default=str)
        spawned = self.rec.setdefault("spawned", {})
        if spawn_key in spawned:
            return await self._reattach(spawned[spawn_key])

        scope = {"variables": {"agent_index": index, "item": _text(item), "results": _text(results), **(extra or {})}, "steps": {}, "workflow": {"id": self.id, "name": self.rec["name"]}}
        params: dict[str, Any] = {
            "repo": repo or self.rec["repo"], "task": expr.render(task, scope), "swarm_id": self.id, "task_id": task_id,
            "provider": self.rec.get("provider"), "model": self.rec.get("model"),
        }
        script = script if script is not None else self.rec.get("script")
        if isinstance(script, dict):  # per role: {planner: [...], map: [...], reduce: [...], worker: [...]}; else "worker"
            script = script.get(role, script.get("worker"))
        if script is not None:
            params["script"] = expr.render_value(script, scope)
        if base or self.rec.get("base"):
            params["base"] = base or self.rec.get("base")
        for key in ("provider_options", "tools", "env"):
            if self.rec.get(key):
                params[key] = self.rec[key]
        manager = self.daemon.agents
        started = await manager.spawn({k: v for k, v in params.items() if v is not None})
        agent_id = started["id"]
        self.handles[agent_id] = manager.agents[agent_id]  # before any await: a finished agent leaves that table
        self.rec["agents"].append(agent_id)
        self.rec["roles"][agent_id] = role
        spawned[spawn_key] = agent_id
        await self.daemon.swarms.save(self.rec)
        return agent_id

    async def _reattach(self, agent_id: str) -> str:
        manager = self.daemon.agents
        rec = await manager.get_record(agent_id)
        if rec["state"] == "interrupted":
            await manager.resume(agent_id)  # its process died with godeld: it goes on from its transcript or session
        handle = manager.agents.get(agent_id)
        if handle is not None:
            self.handles[agent_id] = handle
        return agent_id

    async def wait(self, agent_ids: list[str]) -> list[dict[str, Any]]:
        """Wait for the agents to end; their records, in the order given."""
        manager = self.daemon.agents
        for agent_id in agent_ids:
            handle = self.handles.get(agent_id)
            if handle is not None:
                await handle.done.wait()
            await manager.wait_final(agent_id)  # a retry after failed quality gates is not the end
        return [await manager.get_record(a) for a in agent_ids]


    async def wait_all(self) -> list[dict[str, Any]]:
        """Wait for every agent of the swarm, including any added while waiting."""
        done = 0
        while done < len(self.rec["agents"]):
            batch = self.rec["agents"][done:]
            await self.wait(batch)
            done += len(batch)
        return [await self.daemon.agents.get_record(a) for a in self.rec["agents"]]


def _text(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


_FENCE = re.compile(r"```(?:json)?\s*(\[.*?\]|\{.*?\})\s*```", re.S)
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+(.+?)\s*$")


def items_from_answer(answer: str, key: str = "items") -> list[Any]:
    """A planner's items: a JSON list (the whole answer, a ```json block, or {key: [...]}) or, failing
    that, the bullet / numbered lines of the answer."""
    candidates = [answer.strip()] + [m.group(1) for m in _FENCE.finditer(answer)]
    for text in candidates:
        if not text.startswith(("[", "{")):
            continue
        try:
            value = json.loads(text)
        except ValueError:
            continue
        if isinstance(value, dict):
            value = value.get(key) or value.get("subtasks")
        if isinstance(value, list) and value:
            return value
    return [m.group(1) for line in answer.splitlines() if (m := _BULLET.match(line))]
