"""The `agent` step kind: `task: TEXT` runs an agent on the task in its own worktree.

The repository is the step's `repo`, else the workflow's, else the one given to workflows.run
(godelctl passes the current directory). `provider`, `model`, `script`, `tools`, `budget`, `base`
and `provider_options` go to agents.spawn as they are. Outputs: `result` (the agent's final
answer), `agent_id`, `branch`, `files` (changed paths), and each declared output found in a JSON
object in the final answer (the whole answer, or the last ```json block). A failed or killed agent
fails the attempt; a cancelled step kills its agent.
"""

from __future__ import annotations

import json
import re
from typing import Any

import trio

from godeld import hookimpl
from godeld.workflows.kinds import StepFailed, StepRun

SPAWN_FIELDS = ("provider", "model", "script", "tools", "budget", "base", "provider_options")
_JSON_BLOCK = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.S)


def outputs_from_answer(answer: str, names: list[str]) -> dict[str, Any]:
    """Declared outputs from a JSON object in an agent's final answer."""
    candidates = [answer.strip()] + [m.group(1) for m in reversed(list(_JSON_BLOCK.finditer(answer)))]
    for text in candidates:
        if not text.startswith("{"):
            continue
        try:
            obj = json.loads(text)
        except ValueError:
            continue
        if isinstance(obj, dict):
            return {k: obj[k] for k in names if k in obj}
    return {}


class AgentKind:
    fields = frozenset({"task", "agent", "repo", *SPAWN_FIELDS})
    resumable = False

    async def run(self, step: StepRun) -> dict[str, Any]:
        manager = getattr(step.daemon, "agents", None)
        if manager is None:
            raise StepFailed("agent steps need the agents service, which is not loaded", retry=False)
        await manager.ready.wait()
        spec = step.spec
        repo = spec.get("repo") or step.repo
        if not repo:
            raise StepFailed("an agent step needs a git repository: set repo in the step or the workflow, or run it with --repo", retry=False)
        task = str(spec["task"]) + (f"\n\n{step.feedback}" if step.feedback else "")
        params: dict[str, Any] = {"repo": str(step.cwd / repo), "task": task, "workflow_id": step.run_id}
        params.update({k: spec[k] for k in SPAWN_FIELDS if spec.get(k) is not None})
        if step.env:
            params["env"] = dict(step.env)
        try:
            started = await manager.spawn(params)
        except Exception as exc:  # noqa: BLE001 - a refused spawn (budget, bad repo) fails the step with its reason
            raise StepFailed(f"could not start the agent: {exc}", retry=False) from None
        agent_id = started["id"]
        handle = manager.agents[agent_id]  # before any await: a finished agent leaves that table
        step.data["agent_id"] = agent_id
        await step.save()
        await step.publish("workflow:step:agent", {"agentId": agent_id, "branch": started["branch"], "label": spec.get("agent")})
        try:
            await handle.done.wait()
            await manager.wait_final(agent_id)  # a retry after failed quality gates is not the end
        except BaseException:
            with trio.CancelScope(shield=True):
                if handle.rec["state"] not in ("completed", "failed", "killed", "interrupted"):
                    try:
                        await manager.kill(agent_id, "its workflow step was cancelled")
                    except Exception:  # noqa: BLE001 - it ended meanwhile
                        pass
            raise
        rec = handle.rec
        answer = rec.get("final") or ""
        outputs: dict[str, Any] = {
            "result": answer, "agent_id": agent_id, "branch": rec.get("branch"), "worktree": rec.get("worktree"),
            "files": [f["path"] for f in (rec.get("artifacts") or {}).get("files", [])],
        }
        outputs.update(outputs_from_answer(answer, step.outputs_declared))
        if rec["state"] != "completed":
            raise StepFailed(f"agent {agent_id} {rec['state']}: {rec.get('error')}", output=outputs)
        return outputs


@hookimpl
def register_step_kinds(register):
    register("agent", AgentKind())
