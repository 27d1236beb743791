"""`map-reduce`: split → map agents in parallel → one reduce agent combining their outputs.

The items are `options.items`, or come from a planner agent given the task: its answer's JSON list
(or bullet lines). Map agents get `{{item}}` (and `options.map_task`, default the task); the reduce
agent gets `{{results}}` (a JSON list of the map agents' answers) in `options.reduce_task`. The
swarm's results: `[reduce answer]`. A failed map agent fails the swarm unless
`options.require: any`."""

from __future__ import annotations

from typing import Any

from godeld import hookimpl
from godeld.swarms.context import SwarmFailed, SwarmRun, items_from_answer

DEFAULT_REDUCE = "Combine these results into one answer for the task '{{task}}':\n{{results}}"
MAX_ITEMS = 1000


class MapReduce:
    async def run(self, swarm: SwarmRun) -> list[Any]:
        opts = swarm.options
        items = opts.get("items")
        if items is None:
            planner = await swarm.spawn(opts.get("plan_task") or swarm.task, index=0, role="planner")
            (rec,) = await swarm.wait([planner])
            if rec["state"] != "completed":
                raise SwarmFailed(f"the planner agent {planner} {rec['state']}: {rec.get('error')}")
            items = items_from_answer(rec.get("final") or "")
            if not items:
                raise SwarmFailed(f"the planner agent {planner} gave no items (a JSON list or bullet lines)")
        if not isinstance(items, list) or not items:
            raise SwarmFailed("options.items must be a non-empty list")
        items = items[:MAX_ITEMS]
        maps = [await swarm.spawn(opts.get("map_task") or swarm.task, index=i, role="map", item=item) for i, item in enumerate(items)]
        records = await swarm.wait(maps)
        failed = [r for r in records if r["state"] != "completed"]
        if failed and ((opts.get("require") or "all") == "all" or len(failed) == len(records)):
            raise SwarmFailed(f"{len(failed)} of {len(records)} map agents did not complete: {failed[0]['id']} {failed[0]['state']}: {failed[0].get('error')}")
        results = [r.get("final") or "" for r in records if r["state"] == "completed"]
        reduce_id = await swarm.spawn(opts.get("reduce_task") or DEFAULT_REDUCE, index=len(items), role="reduce", results=results, extra={"task": swarm.task})
        (reduced,) = await swarm.wait([reduce_id])
        if reduced["state"] != "completed":
            raise SwarmFailed(f"the reduce agent {reduce_id} {reduced['state']}: {reduced.get('error')}")
        return [reduced.get("final") or ""]


@hookimpl
def register_strategies(register):
    register("map-reduce", MapReduce())
