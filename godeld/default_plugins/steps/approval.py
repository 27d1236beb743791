"""The `approval` step kind: waits for a person — `workflows.approve` / `workflows.reject` (or
`godelctl workflow approve|reject RUN STEP`).

`approval: true`, `approval: "Deploy to production?"` or `approval: {message, timeout, default}`.
With a timeout, `default` (approve or reject; reject unless said) decides when it passes. The wait
survives a restart of godeld: the step is resumable, its start and any decision are persisted, and
the timeout counts from when the wait began. Outputs: `approved`, `by`, `comment`. A rejection
fails the step without retries.
"""

from __future__ import annotations

import time
from typing import Any

import trio

from godeld import hookimpl
from godeld.workflows.kinds import StepFailed, StepRun


class ApprovalKind:
    fields = frozenset({"approval"})
    resumable = True
    uses_slot = False  # it only waits

    async def run(self, step: StepRun) -> dict[str, Any]:
        spec = step.spec  # normalized by the validator: {message, timeout_ms, default}
        message = spec.get("message") or f"Approve step {step.step_id} of {step.workflow_name}?"
        run = step.daemon.workflows.runs[step.run_id]
        decided = run.approvals[step.step_id] = trio.Event()
        try:
            if "decision" not in step.data:
                if "waiting_since" not in step.data:
                    # Announced first: the step shows as waiting (workflows.get) only once the
                    # request is in the log. The wait, and its timeout, start from here.
                    await step.publish("workflow:step:approval", {"message": message, "timeout_ms": spec.get("timeout_ms"), "default": spec.get("default") or "reject"})
                    step.data["waiting_since"] = int(time.time() * 1000)
                    await step.save()
                timeout_ms = spec.get("timeout_ms")
                left = (step.data["waiting_since"] + timeout_ms - time.time() * 1000) / 1000 if timeout_ms else float("inf")
                with trio.move_on_after(max(0.0, left)):
                    await decided.wait()
            decision = step.data.get("decision")
            if decision is None:
                approved = (spec.get("default") or "reject") == "approve"
                decision = step.data["decision"] = {"approved": approved, "by": "timeout", "comment": f"no decision within {spec['timeout_ms'] / 1000:g}s"}
                await step.save()
        finally:
            run.approvals.pop(step.step_id, None)
        outputs = {"approved": bool(decision["approved"]), "by": decision.get("by"), "comment": decision.get("comment") or ""}
        await step.publish("workflow:step:decision", outputs)
        if not decision["approved"]:
            raise StepFailed(f"rejected by {decision.get('by')}" + (f": {decision['comment']}" if decision.get("comment") else ""), output=outputs, retry=False)
        return outputs


@hookimpl
def register_step_kinds(register):
    register("approval", ApprovalKind())
