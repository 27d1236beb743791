"""The `workflow` step kind: runs a sub-workflow and waits for it.

`workflow: path/to/other.yaml` (relative to the parent file) or an inline definition, with
`variables` for the child. The child is a run of its own (workflows.get shows it, with
parent_id); a cancelled parent cancels it. The step is resumable: after a restart of godeld it
re-attaches to the child run, which resumes by itself. Outputs: `run_id`, and `outputs`: the
child's steps' outputs by step id. A failed child fails the attempt; a retry starts a new child.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

from godeld import hookimpl
from godeld.workflows.kinds import StepFailed, StepRun

MAX_DEPTH = 8


class WorkflowKind:
    fields = frozenset({"workflow", "variables"})
    resumable = True
    uses_slot = False  # it only waits
    raw_fields = frozenset({"workflow"})  # an inline definition is rendered in the child's scope

    async def run(self, step: StepRun) -> dict[str, Any]:
        from godeld.workflows import spec as wfspec

        engine = step.daemon.workflows
        parent = engine.runs[step.run_id]
        child_id = step.data.get("child_run")
        if child_id is not None and child_id not in engine.runs and await engine.store.get_run(child_id) is None:
            child_id = None  # godeld stopped between naming the child and starting it: start it now, with that id
        if child_id is None:
            depth, rec = 1, parent.rec
            while rec.get("parent_id"):
                depth += 1
                found = engine.runs.get(rec["parent_id"])
                rec = found.rec if found else {}
            if depth >= MAX_DEPTH:
                raise StepFailed(f"sub-workflows nest deeper than {MAX_DEPTH} levels (does a workflow run itself?)", retry=False)
            source = step.spec["workflow"]
            kinds = step.daemon.plugins.registries.step_kinds
            variables = step.spec.get("variables") or {}
            try:
                if isinstance(source, dict):
                    definition = source if "order" in source else wfspec.load(source, step_kinds=kinds, variables=variables)
                    definition = {**definition, "base_dir": definition.get("base_dir") or parent.definition.get("base_dir")}
                else:
                    base = Path(parent.definition.get("base_dir") or step.cwd)
                    definition = wfspec.load_file(base / source, step_kinds=kinds, variables=variables)
            except wfspec.WorkflowInvalid as exc:
                raise StepFailed(f"sub-workflow is invalid: {exc}", retry=False) from None
            # The child's id is persisted before the child exists, so a restart in between never
            # starts a second child.
            from godeld import ids

            child_id = step.data.setdefault("child_run", ids.uuid7())
            await step.save()
            await engine.start(definition, variables=variables, cwd=str(step.cwd), repo=step.repo, parent=(step.run_id, step.step_id), run_id=child_id)
            await step.publish("workflow:step:child", {"childWorkflowId": child_id, "name": definition["name"]})
        try:
            live = engine.runs.get(child_id)
            if live is not None:
                await live.done.wait()
        except trio.Cancelled:
            if step.daemon.state not in ("stopping", "stopped") and child_id in engine.runs:
                with trio.CancelScope(shield=True):
                    await engine.cancel(child_id, f"its parent step {step.step_id} was cancelled")
            raise
        rec, steps = await engine.get(child_id)
        outputs = {"run_id": child_id, "outputs": {s["id"]: s.get("output") for s in steps if s["state"] == "completed"}}
        if rec["state"] != "completed":
            raise StepFailed(f"sub-workflow {rec['name']} ({child_id}) {rec['state']}: {rec.get('error')}", output=outputs)
        return outputs


@hookimpl
def register_step_kinds(register):
    register("workflow", WorkflowKind())
