"""`pipeline`: stages in order; each stage starts from the previous stage's branch and gets its
answer as `{{results}}`.

The stages are `options.stages` (a list of tasks), or the swarm's task `agents` times. The swarm's
results: every stage's answer, in order. A failed stage stops the pipeline."""

from __future__ import annotations

from typing import Any

from godeld import hookimpl
from godeld.swarms.context import SwarmFailed, SwarmRun


class Pipeline:
    async def run(self, swarm: SwarmRun) -> list[Any]:
        stages = swarm.options.get("stages") or [swarm.task] * swarm.size
        results: list[Any] = []
        previous: dict[str, Any] | None = None
        for index, task in enumerate(stages):
            agent_id = await swarm.spawn(str(task), index=index, role=f"stage-{index}", results=(previous or {}).get("final") or "",
                                         base=previous["branch"] if previous else None, extra={"task": swarm.task})
            (rec,) = await swarm.wait([agent_id])
            if rec["state"] != "completed":
                raise SwarmFailed(f"stage {index} (agent {agent_id}) {rec['state']}: {rec.get('error')}")
            results.append(rec.get("final") or "")
            previous = rec
        return results


@hookimpl
def register_strategies(register):
    register("pipeline", Pipeline())
