"""The `notify` step kind: `notify: "message"` or `notify: {message, level, channels}`.

Publishes a `notification` event (what `godelctl events -f` and on_event plugins see) and hands
the notification to every notifier registered with register_notifiers — or only to those named
in `channels`. A notifier has `notify(notification: dict)` (sync or async); one that fails is
reported in the step's output, and fails the step only if every channel failed.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

from godeld import hookimpl
from godeld.workflows.kinds import StepFailed, StepRun

log = logging.getLogger("godeld.workflows")


class NotifyKind:
    fields = frozenset({"notify"})
    resumable = False

    async def run(self, step: StepRun) -> dict[str, Any]:
        spec = step.spec  # normalized by the validator: {message, level, channels}
        message = str(spec.get("message") or "")
        level = spec.get("level") or "info"
        notification = {"message": message, "level": level, "source": "workflow", "workflowId": step.run_id, "stepId": step.step_id, "workflow": step.workflow_name}
        await step.daemon.bus.publish("notification", notification, source="workflows", metadata=step.meta)
        notifiers = step.daemon.plugins.registries.notifiers
        wanted = spec.get("channels") or notifiers.names()
        unknown = [c for c in wanted if c not in notifiers]
        if unknown:
            raise StepFailed(f"unknown notifier(s) {', '.join(unknown)} (available: {', '.join(notifiers.names()) or 'none'})", retry=False)
        delivered, failed = [], {}
        for name in wanted:
            try:
                result = notifiers[name].notify(dict(notification))
                if inspect.isawaitable(result):
                    await result
                delivered.append(name)
            except Exception as exc:  # noqa: BLE001 - one channel's failure is reported, not fatal
                log.warning("notifier %s failed: %s", name, exc)
                failed[name] = str(exc)
        if failed and not delivered:
            raise StepFailed("every notifier failed: " + "; ".join(f"{k}: {v}" for k, v in failed.items()), output={"failed": failed})
        return {"message": message, "delivered": delivered, "failed": failed}


@hookimpl
def register_step_kinds(register):
    register("notify", NotifyKind())
