"""`parallel`: N agents on the same task, each in its own worktree; results in agent order.

`{{agent_index}}` tells the agents apart. With `options.require: any` the swarm completes when at
least one agent does (default `all`)."""

from __future__ import annotations

from typing import Any

from godeld import hookimpl
from godeld.swarms.context import SwarmFailed, SwarmRun


class Parallel:
    scalable = True  # swarms.scale adds agents to a running parallel swarm

    async def run(self, swarm: SwarmRun) -> list[Any]:
        for i in range(swarm.size):
            await swarm.spawn(swarm.task, index=i)
        records = await swarm.wait_all()  # agents added by swarms.scale meanwhile included
        failed = [r for r in records if r["state"] != "completed"]
        if failed and ((swarm.options.get("require") or "all") == "all" or len(failed) == len(records)):
            raise SwarmFailed(f"{len(failed)} of {len(records)} agents did not complete: {failed[0]['id']} {failed[0]['state']}: {failed[0].get('error')}")
        return [r.get("final") or "" for r in records]


@hookimpl
def register_strategies(register):
    register("parallel", Parallel())
