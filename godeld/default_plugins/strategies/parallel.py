"""`parallel`: N agents on the same task, each in its own worktree; results in agent order.

`{{agent_index}}` tells the agents apart. With `options.require: any` the swarm completes when at
least one agent does (default `all`). With `options.select: [gates]` (quality gates: command, regex,
json_schema, judge — see docs/agents.md) the best agent is chosen: each completed agent's work is
gated in its worktree, the one passing the most gates wins (the first in agent order on a tie), and
the swarm's results are that agent's answer alone; `swarms.get` shows `best` and every agent's gate
results in `selection`."""

from __future__ import annotations

from typing import Any

from godeld import hookimpl
from godeld.swarms.context import SwarmFailed, SwarmRun


class Parallel:
    scalable = True  # swarms.scale adds agents to a running parallel swarm

    async def run(self, swarm: SwarmRun) -> list[Any]:
        from godeld.quality.gates import check_gates

        try:
            select = check_gates(swarm.options.get("select"))
        except ValueError as exc:
            raise SwarmFailed(f"options.select: {exc}") from None
        for i in range(swarm.size):
            await swarm.spawn(swarm.task, index=i)
        records = await swarm.wait_all()  # agents added by swarms.scale meanwhile included
        failed = [r for r in records if r["state"] != "completed"]
        if failed and ((swarm.options.get("require") or "all") == "all" and not select or len(failed) == len(records)):
            raise SwarmFailed(f"{len(failed)} of {len(records)} agents did not complete: {failed[0]['id']} {failed[0]['state']}: {failed[0].get('error')}")
        if not select:
            return [r.get("final") or "" for r in records]
        return [await self._best(swarm, [r for r in records if r["state"] == "completed"], select)]

    async def _best(self, swarm: SwarmRun, records: list[dict[str, Any]], gates: list[dict[str, Any]]) -> Any:
        from godeld.quality.gates import run_gate

        scored = []
        selection = []
        for rec in records:
            results = [await run_gate(g, cwd=rec["worktree"], answer=rec.get("final") or "", task=rec["task"], daemon=swarm.daemon) for g in gates]
            passed = sum(1 for r in results if r["passed"])
            scored.append((passed, rec))
            selection.append({"agent": rec["id"], "passed": passed, "gates": [{k: r[k] for k in ("name", "passed", "output")} for r in results]})
        best_score = max(score for score, _ in scored)
        best = next(rec for score, rec in scored if score == best_score)
        swarm.rec["best"] = best["id"]
        swarm.rec["selection"] = selection
        await swarm.daemon.swarms.save(swarm.rec)
        if best_score == 0:
            raise SwarmFailed(f"no agent passed any of the {len(gates)} selection gates")
        return best.get("final") or ""


@hookimpl
def register_strategies(register):
    register("parallel", Parallel())
