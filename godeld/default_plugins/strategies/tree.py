"""`tree`: an agent decomposes its task into subtasks, recursively, within depth and width limits;
results roll up to the parent.

An agent decomposes by answering with a JSON object `{"subtasks": [...]}` (or a list); any other
answer is a leaf result. Below `options.max_depth` (default 2) levels no further decomposition is
asked for: the agent's answer is its result whatever it is. At most `options.max_width` (default 4)
subtasks per node are run. Each agent gets `{{depth}}` and `{{path}}` (e.g. "0.2"). The swarm's
result is the root node: `{task, agent, result | children: [...]}`."""

from __future__ import annotations

from typing import Any

import trio

from godeld import hookimpl
from godeld.swarms.context import SwarmFailed, SwarmRun, items_from_answer

MAX_NODES = 200


class Tree:
    async def run(self, swarm: SwarmRun) -> list[Any]:
        opts = swarm.options
        self_max_depth = int(opts.get("max_depth", 2))
        max_width = int(opts.get("max_width", 4))
        counter = {"n": 0}

        async def node(task: str, depth: int, path: str) -> dict[str, Any]:
            counter["n"] += 1
            if counter["n"] > MAX_NODES:
                raise SwarmFailed(f"the tree grew past {MAX_NODES} agents")
            agent_id = await swarm.spawn(task, index=counter["n"] - 1, role=f"node-{path}", extra={"depth": depth, "path": path})
            (rec,) = await swarm.wait([agent_id])
            if rec["state"] != "completed":
                raise SwarmFailed(f"node {path} (agent {agent_id}) {rec['state']}: {rec.get('error')}")
            answer = rec.get("final") or ""
            subtasks = items_from_answer(answer, key="subtasks") if depth < self_max_depth and answer.lstrip().startswith(("{", "[", "```")) else []
            if not subtasks:
                return {"task": task, "agent": agent_id, "result": answer}
            children: list[Any] = [None] * min(len(subtasks), max_width)

            async def child(i: int, sub: Any) -> None:
                children[i] = await node(str(sub), depth + 1, f"{path}.{i}")

            async with trio.open_nursery() as nursery:
                for i, sub in enumerate(subtasks[:max_width]):
                    nursery.start_soon(child, i, sub)
            return {"task": task, "agent": agent_id, "children": children}

        return [await node(swarm.task, 0, "0")]


@hookimpl
def register_strategies(register):
    register("tree", Tree())
