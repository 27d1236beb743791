"""`pool`: a swarm that serves the task queue, auto-scaled on the queue's depth.

Tasks submitted with `tasks.submit {task, swarm: NAME}` (the swarm's name or id) are claimed by the
swarm — with leases, like any worker — and each runs as a new agent of the swarm (the task's own
`script`/`repo` win over the swarm's). How many run at once follows the queue:

    target = clamp(ceil(depth / scaleUpThreshold), minAgents, maxAgents)

Up at once; down only after `scaleDownCooldown` seconds since the last change (`swarm:scaled
{agents, depth}`). Scaling settings come from the team file's `scaling` or `options.scaling`
(`minAgents` 1, `maxAgents` the swarm's max_agents, `scaleUpThreshold` 1 task per agent,
`scaleDownCooldown` 30 s). The pool runs until stopped, or with `options.until_empty` until the queue
has been empty and idle for a cooldown. Its results: each task's id, state and answer.
"""

from __future__ import annotations

import math
import time
from typing import Any

import trio

from godeld import hookimpl
from godeld.swarms.context import SwarmRun


class Pool:
    scalable = False  # it scales itself

    async def run(self, swarm: SwarmRun) -> list[Any]:
        rec = swarm.rec
        daemon = swarm.daemon
        tasks = daemon.tasks
        scaling = {**(rec.get("scaling") or {}), **(swarm.options.get("scaling") or {})}
        low = max(0, int(scaling.get("minAgents") or rec.get("min_agents") or 1))
        high = max(low, int(scaling.get("maxAgents") or rec.get("max_agents") or low))
        per_agent = max(1, int(scaling.get("scaleUpThreshold") or 1))
        cooldown = float(scaling.get("scaleDownCooldown") if scaling.get("scaleDownCooldown") is not None else 30)
        interval = float(swarm.options.get("interval_s") or 0.5)
        until_empty = bool(swarm.options.get("until_empty"))
        names = [rec["name"], rec["id"]]
        current, changed_at, idle_since = low, time.monotonic(), time.monotonic()
        running: set[str] = set()
        results: list[dict[str, Any]] = []
        await daemon.swarms._publish("swarm:scaled", rec, {"agents": current, "depth": 0, "reason": "start"})

        async def serve(task: dict[str, Any], worker: str) -> None:
            try:
                spec = task.get("spec") or {}
                agent_id = await swarm.spawn(spec.get("task") or rec["task"], index=len(rec["agents"]), role="worker", task_id=task["id"],
                                             script=spec.get("script"), repo=spec.get("repo"))
                await tasks.set_run(task["id"], worker, {"agent_id": agent_id})
                async with trio.open_nursery() as beat:
                    beat.start_soon(_heartbeat, tasks, task["id"], worker, beat.cancel_scope)
                    (agent,) = await swarm.wait([agent_id])
                    beat.cancel_scope.cancel()
                outcome = {"task": task["id"], "agent": agent_id, "state": agent["state"], "final": agent.get("final")}
                results.append(outcome)
                if agent["state"] == "completed":
                    await tasks.complete(task["id"], worker, {"agent_id": agent_id, "final": agent.get("final")})
                else:
                    await tasks.fail(task["id"], worker, agent.get("error") or f"agent {agent_id} {agent['state']}")
            except Exception as exc:  # noqa: BLE001 - one task's trouble is that task's failure
                try:
                    await tasks.fail(task["id"], worker, f"{type(exc).__name__}: {exc}")
                except Exception:  # noqa: BLE001 - the lease was lost meanwhile
                    pass
            finally:
                running.discard(task["id"])

        async with trio.open_nursery() as nursery:
            while True:
                wake = tasks.watch()
                depth = await _depth(tasks, names)
                target = min(high, max(low, math.ceil(depth / per_agent)))
                now = time.monotonic()
                if target > current or (target < current and now - changed_at >= cooldown):
                    current, changed_at = target, now
                    await daemon.swarms._publish("swarm:scaled", rec, {"agents": current, "depth": depth, "reason": "queue"})
                    rec["agents_wanted"] = current
                while len(running) < current:
                    task = None
                    for name in names:
                        worker = f"swarm:{rec['id']}"
                        task = await tasks.claim(worker, swarm=name)
                        if task is not None:
                            break
                    if task is None:
                        break
                    running.add(task["id"])
                    nursery.start_soon(serve, task, worker)
                if depth or running:
                    idle_since = now
                elif until_empty and now - idle_since >= max(cooldown, interval):
                    break
                with trio.move_on_after(interval):
                    await wake.wait()
        return results


async def _depth(tasks: Any, names: list[str]) -> int:
    queued = await tasks.list(["queued"], None, 100_000)
    return sum(1 for t in queued if t.get("swarm") in names and not t.get("blocked"))


async def _heartbeat(tasks: Any, task_id: str, worker: str, scope: trio.CancelScope) -> None:
    lease = float(tasks.cfg("lease_s"))
    while True:
        await trio.sleep(lease / 3)
        try:
            await tasks.heartbeat(task_id, worker)
        except Exception:  # noqa: BLE001 - the lease is gone (cancelled, expired): stop beating
            return


@hookimpl
def register_strategies(register):
    register("pool", Pool())
