"""The `swarm` step kind: `task` run by several agents at once, `swarm: {agents: N}`.

Each agent works in its own worktree of the step's repository (as for an agent step), all under
one swarm id (`<run id>:<step id>`), so a swarm budget limit applies to them together. Outputs:
`results` (each agent's final answer, in agent order), `agents` (their ids), `branches`. The step
fails when any agent fails, unless `swarm.require: any` (then when all fail). With the swarm
service loaded (the default) the step is a real swarm of any strategy — `swarm: {agents, strategy,
items, stages, ...}`, the rest of `swarm` going to the strategy as its options — shown by
swarms.get, with its id in the step's outputs (`swarm_id`).
"""

from __future__ import annotations

from typing import Any

import trio

from godeld import hookimpl
from godeld.default_plugins.steps.agent import SPAWN_FIELDS
from godeld.workflows.kinds import StepFailed, StepRun

MAX_AGENTS = 64


class SwarmKind:
    fields = frozenset({"swarm", "task", "repo", *SPAWN_FIELDS})
    resumable = False

    async def run(self, step: StepRun) -> dict[str, Any]:
        manager = getattr(step.daemon, "agents", None)
        if manager is None:
            raise StepFailed("swarm steps need the agents service, which is not loaded", retry=False)
        await manager.ready.wait()
        spec = step.spec
        options = spec.get("swarm") or {}
        count = int(options.get("agents") or 2)
        strategy = options.get("strategy") or "parallel"
        if getattr(step.daemon, "swarms", None) is not None:
            return await self._with_service(step, count, strategy, options)
        if strategy != "parallel":
            raise StepFailed(f"swarm strategy {strategy!r} needs the swarm service, which is not loaded", retry=False)
        if not 1 <= count <= MAX_AGENTS:
            raise StepFailed(f"swarm.agents must be between 1 and {MAX_AGENTS}", retry=False)
        repo = spec.get("repo") or step.repo
        if not repo:
            raise StepFailed("a swarm step needs a git repository: set repo in the step or the workflow, or run it with --repo", retry=False)
        swarm_id = f"{step.run_id}:{step.step_id}"
        ids: list[str] = []
        handles = []
        try:
            for index in range(count):
                params: dict[str, Any] = {"repo": str(step.cwd / repo), "task": str(spec["task"]), "workflow_id": step.run_id, "swarm_id": swarm_id}
                params.update({k: spec[k] for k in SPAWN_FIELDS if spec.get(k) is not None})
                if step.env:
                    params["env"] = dict(step.env)
                try:
                    started = await manager.spawn(params)
                except Exception as exc:  # noqa: BLE001 - the refusal (budget, bad repo) is the step's error
                    raise StepFailed(f"could not start agent {index}: {exc}", retry=False) from None
                ids.append(started["id"])
                handles.append(manager.agents[started["id"]])  # before any await
                step.data["agents"] = ids
                await step.save()
            for handle in handles:
                await handle.done.wait()
                await manager.wait_final(handle.rec["id"])
        except BaseException:
            with trio.CancelScope(shield=True):
                for agent_id in ids:
                    handle = manager.agents.get(agent_id)
                    if handle is not None and handle.rec["state"] not in ("completed", "failed", "killed", "interrupted"):
                        try:
                            await manager.kill(agent_id, "its workflow step was cancelled")
                        except Exception:  # noqa: BLE001 - it ended meanwhile
                            pass
            raise
        records = [await manager.get_record(i) for i in ids]
        outputs = {"results": [r.get("final") or "" for r in records], "agents": ids, "branches": [r.get("branch") for r in records],
                   "states": [r["state"] for r in records]}
        failed = [r for r in records if r["state"] != "completed"]
        require = options.get("require") or "all"
        if failed and (require == "all" or len(failed) == len(records)):
            raise StepFailed(f"{len(failed)} of {len(records)} agents did not complete: {failed[0]['id']} {failed[0]['state']}: {failed[0].get('error')}", output=outputs)
        return outputs

    async def _with_service(self, step: StepRun, count: int, strategy: str, options: dict[str, Any]) -> dict[str, Any]:
        """A real swarm (swarms.get shows it), any strategy, tagged with the workflow's id."""
        service = step.daemon.swarms
        spec = step.spec
        repo = spec.get("repo") or step.repo
        if not repo:
            raise StepFailed("a swarm step needs a git repository: set repo in the step or the workflow, or run it with --repo", retry=False)
        params: dict[str, Any] = {
            "task": str(spec["task"]), "strategy": strategy, "agents": count, "repo": str(step.cwd / repo), "name": f"{step.workflow_name}/{step.step_id}",
            "options": {k: v for k, v in options.items() if k not in ("agents", "strategy")},
        }
        params.update({k: spec[k] for k in SPAWN_FIELDS if spec.get(k) is not None and k != "budget"})
        try:
            rec = await service.create(params)
        except Exception as exc:  # noqa: BLE001 - a refused swarm is the step's error
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
        agents = rec["agents"]
        records = [await step.daemon.agents.get_record(a) for a in agents]
        outputs = {"swarm_id": rec["id"], "results": rec.get("results") or [], "agents": agents,
                   "branches": [r.get("branch") for r in records], "states": [r["state"] for r in records]}
        if rec["state"] != "completed":
            raise StepFailed(f"swarm {rec['id']} {rec['state']}: {rec.get('error')}", output=outputs)
        return outputs


@hookimpl
def register_step_kinds(register):
    register("swarm", SwarmKind())
