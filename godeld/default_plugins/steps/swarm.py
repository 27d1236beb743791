"""The `swarm` step kind: `task` run by a swarm (docs/swarms.md), `swarm: {agents, strategy, ...}`.

The step starts a real swarm of any strategy — `swarm.strategy` (default parallel), `swarm.agents`,
the rest of `swarm` going to the strategy as its options — in the step's repository, named
`<workflow>/<step>`; swarms.get shows it. Cancelling the step stops the swarm. Outputs: `swarm_id`,
`results`, `agents` (ids), `branches`, `states`. A swarm that does not complete fails the attempt.
"""

from __future__ import annotations

from typing import Any

import trio

from godeld import hookimpl
from godeld.default_plugins.steps.agent import SPAWN_FIELDS
from godeld.workflows.kinds import StepFailed, StepRun


class SwarmKind:
    fields = frozenset({"swarm", "task", "repo", *SPAWN_FIELDS})
    resumable = False

    async def run(self, step: StepRun) -> dict[str, Any]:
        service = getattr(step.daemon, "swarms", None)
        if service is None:
            raise StepFailed("swarm steps need the swarm service, which is not loaded", retry=False)
        await service.ready.wait()
        spec = step.spec
        options = dict(spec.get("swarm") or {})
        repo = spec.get("repo") or step.repo
        if not repo:
            raise StepFailed("a swarm step needs a git repository: set repo in the step or the workflow, or run it with --repo", retry=False)
        params: dict[str, Any] = {
            "task": str(spec["task"]), "strategy": options.pop("strategy", None) or "parallel", "agents": options.pop("agents", None) or 2,
            "repo": str(step.cwd / repo), "name": f"{step.workflow_name}/{step.step_id}", "options": options,
        }
        params.update({k: spec[k] for k in SPAWN_FIELDS if spec.get(k) is not None and k != "budget"})
        try:
            rec = await service.create(params)
        except Exception as exc:  # noqa: BLE001 - a refused swarm (bad strategy, budget) is the step's error
            raise StepFailed(f"could not start the swarm: {exc}", retry=False) from None
        step.data["swarm_id"] = rec["id"]
        await step.save()
        live = service.live.get(rec["id"])
        try:
            if live is not None:
                await live[2].wait()
        except BaseException:
            if step.daemon.state not in ("stopping", "stopped") and rec["id"] in service.live:
                with trio.CancelScope(shield=True):
                    await service.stop(rec["id"])
            raise
        rec = await service.get(rec["id"])
        records = [await step.daemon.agents.get_record(a) for a in rec["agents"]]
        outputs = {"swarm_id": rec["id"], "results": rec.get("results") or [], "agents": rec["agents"],
                   "branches": [r.get("branch") for r in records], "states": [r["state"] for r in records]}
        if rec["state"] != "completed":
            raise StepFailed(f"swarm {rec['id']} {rec['state']}: {rec.get('error')}", output=outputs)
        return outputs


@hookimpl
def register_step_kinds(register):
    register("swarm", SwarmKind())
