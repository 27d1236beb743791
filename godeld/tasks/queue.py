"""The task queue service: submit, claim (a lease), heartbeat, complete, fail, cancel, retry and
the sweep that puts tasks with an expired lease back in the queue.

Every state change is one storage transaction guarded by state and lease owner (the store), then
its events. Whoever executes tasks — the in-daemon runner or an external worker over RPC — uses
the same claim/heartbeat/complete/fail protocol; a worker that lost its lease gets Conflict.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from typing import Any

import trio

from godeld import ids
from godeld.agents import procs
from godeld.errors import InvalidParams, NotFound
from godeld.events import make_draft
from godeld.tasks.store import STATES, TaskStore

log = logging.getLogger("godeld.tasks")

PUBLIC = ("id", "seq", "state", "priority", "group", "swarm", "attempts", "max_attempts", "requeues", "lease_owner", "lease_expires_at",
          "created_at", "updated_at", "started_at", "finished_at", "result", "error", "depends_on")
SPEC = ("kind", "command", "task", "repo", "cwd", "provider", "model", "label")


def now_ms() -> int:
    return int(time.time() * 1000)


def public(rec: dict[str, Any]) -> dict[str, Any]:
    out = {k: rec.get(k) for k in PUBLIC}
    spec = rec.get("spec") or {}
    out.update({k: spec.get(k) for k in SPEC})
    run = rec.get("run") or {}
    out["agent_id"] = run.get("agent_id")
    out["pid"] = run.get("pid")
    out["blocked"] = rec["state"] == "queued" and rec.get("pending_deps", 0) > 0
    return out


class TaskQueue:
    def __init__(self, daemon: Any):
        self.daemon = daemon
        self.store: TaskStore = daemon.storage.tasks
        self.logs_dir = daemon.config.home / "tasks"
        self.logs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.runner: Any = None  # the in-daemon runner, once it runs (it stops what it executes)
        self._changed = trio.Event()

    # -- config and wake-ups --------------------------------------------------------------------
    def cfg(self, key: str) -> Any:
        return self.daemon.config.get(f"tasks.{key}")

    def changed(self) -> None:
        """Something may now be claimable: wake whoever waits in `wait_changed`."""
        self._changed.set()
        self._changed = trio.Event()

    def watch(self) -> trio.Event:
        """The event the next `changed()` sets: take it before looking, then wait on it."""
        return self._changed

    async def emit(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        if events:
            await self.daemon.bus.publish_many(make_draft(t, d, source="tasks", metadata={"taskId": d["taskId"]}) for t, d in events)

    # -- submit and read ------------------------------------------------------------------------
    async def submit(self, params: dict[str, Any]) -> dict[str, Any]:
        task, command = params.get("task"), params.get("command")
        if (task is None) == (command is None):
            raise InvalidParams("give exactly one of task (an agent task) or command (a shell command)")
        if task is not None and not task.strip():
            raise InvalidParams("task must not be empty")
        if command is not None and not command.strip():
            raise InvalidParams("command must not be empty")
        if task is not None and not params.get("repo"):
            raise InvalidParams("an agent task needs repo (the git repository it works on)")
        if params.get("max_attempts", 1) < 1:
            raise InvalidParams("max_attempts must be at least 1")
        group = params.get("group") or "default"
        depends_on = list(dict.fromkeys(params.get("depends_on") or []))
        spec = {
            "kind": "agent" if task is not None else "command", "task": task, "command": command, "repo": params.get("repo"),
            "cwd": params.get("cwd"), "env": params.get("env") or {}, "provider": params.get("provider"), "model": params.get("model"),
            "script": params.get("script"), "label": params.get("label"),
        }
        record = {"id": ids.uuid7(), "priority": params.get("priority", 0), "group": group, "swarm": params.get("swarm"),
                  "max_attempts": params.get("max_attempts", 1), "created_at": now_ms(), "spec": spec}
        rec, failed_dep = await self.store.insert(record, depends_on)
        events = [("task:queued", {"taskId": rec["id"], "priority": rec["priority"], "group": group, "kind": spec["kind"], "depends_on": depends_on})]
        if failed_dep:
            events.append(("task:failed", {"taskId": rec["id"], "error": rec["error"]}))
        await self.emit(events)
        self.changed()
        return {"id": rec["id"], "state": rec["state"], "seq": rec["seq"]}

    async def get(self, task_id: str) -> dict[str, Any]:
        rec = await self.store.get(task_id)
        if rec is None:
            raise NotFound(f"no task with id {task_id}", {"id": task_id})
        out = public(rec)
        out["env"] = sorted((rec["spec"].get("env") or {}))  # names only: values may be secrets
        out["waiting_on"] = await self.store.waiting_on(task_id) if rec["state"] == "queued" and rec["pending_deps"] else []
        return out

    async def list(self, states: list[str] | None, group: str | None, limit: int) -> list[dict[str, Any]]:
        for s in states or []:
            if s not in STATES:
                raise InvalidParams(f"unknown state {s!r} (states: {', '.join(STATES)})")
        return [public(r) for r in await self.store.list(states=states, group=group, limit=limit)]

    async def groups(self) -> list[dict[str, Any]]:
        out = await self.store.groups(self.cfg("default_parallel"))
        if not any(g["name"] == "default" for g in out):
            out.insert(0, {"name": "default", "parallel": self.cfg("default_parallel"), "running": 0, "queued": 0})
        return out

    async def set_group(self, name: str, parallel: int) -> dict[str, Any]:
        if parallel < 0:
            raise InvalidParams("parallel must be >= 0 (0 pauses the group)")
        await self.store.set_group(name, parallel, now_ms())
        self.changed()
        return next(g for g in await self.groups() if g["name"] == name)

    # -- the lease protocol ---------------------------------------------------------------------
    def _lease_ms(self, lease_s: float | None) -> int:
        lease = self.cfg("lease_s") if lease_s is None else lease_s
        if lease <= 0 or lease > 86400:
            raise InvalidParams("lease_s must be between 0 and 86400")
        return int(lease * 1000)

    async def claim(self, worker: str, *, groups: list[str] | None = None, swarm: str | None = None, lease_s: float | None = None, announce: bool = True) -> dict[str, Any] | None:
        lease = self._lease_ms(lease_s)
        def assigned(rec: dict[str, Any]) -> list:
            # Durable with the claim itself: one commit per claim, and no claim without its event.
            data = {"taskId": rec["id"], "worker": worker, "attempt": rec["attempts"]}
            return [make_draft("task:assigned", data, source="tasks", metadata={"taskId": rec["id"]})]

        return await self.store.claim(worker=worker, now_ms=now_ms(), lease_ms=lease, groups=groups, swarm=swarm,
                                      default_parallel=self.cfg("default_parallel"), announce=assigned if announce else None)

    async def heartbeat(self, task_id: str, worker: str, lease_s: float | None = None) -> dict[str, Any]:
        rec = await self.store.heartbeat(task_id, worker, now_ms() + self._lease_ms(lease_s))
        return {"id": task_id, "lease_expires_at": rec["lease_expires_at"]}

    async def complete(self, task_id: str, worker: str | None, result: Any = None) -> dict[str, Any]:
        rec, _ = await self.store.finish(task_id, worker, ok=True, result=result, error=None, now_ms=now_ms())
        await self.emit([("task:complete", {"taskId": task_id, "result": result})])
        self.changed()
        return public(rec)

    async def fail(self, task_id: str, worker: str | None, error: str, result: Any = None) -> dict[str, Any]:
        rec, dependents = await self.store.finish(task_id, worker, ok=False, result=result, error=error, now_ms=now_ms())
        if rec["state"] == "queued":
            events = [("task:requeued", {"taskId": task_id, "reason": "attempt_failed", "error": error, "attempts": rec["attempts"]})]
        else:
            events = [("task:failed", {"taskId": task_id, "error": error, "result": result})]
        events += [("task:failed", {"taskId": d["id"], "error": d["error"]}) for d in dependents]
        await self.emit(events)
        self.changed()
        return public(rec)

    async def release(self, worker: str, task_ids: list[str]) -> None:
        released = await self.store.release(worker, task_ids, now_ms())
        await self.emit([("task:requeued", {"taskId": r["id"], "reason": "worker_stopped", "worker": worker, "attempts": r["attempts"]}) for r in released])

    async def set_run(self, task_id: str, worker: str, run: dict[str, Any]) -> None:
        await self.store.set_run(task_id, worker, run)

    # -- people's verbs -------------------------------------------------------------------------
    async def cancel(self, task_id: str) -> dict[str, Any]:
        rec, before, dependents = await self.store.cancel(task_id, now_ms())
        if before == "running":
            await self._stop(rec)
        events = [("task:cancelled", {"taskId": task_id, "previous": before})]
        events += [("task:failed", {"taskId": d["id"], "error": d["error"]}) for d in dependents]
        await self.emit(events)
        self.changed()
        return public(rec)

    async def retry(self, task_id: str) -> dict[str, Any]:
        rec = await self.store.retry(task_id, now_ms())
        await self.emit([("task:requeued", {"taskId": task_id, "reason": "retry", "attempts": rec["attempts"]})])
        self.changed()
        return public(rec)

    # -- leases that ended ----------------------------------------------------------------------
    async def sweep(self) -> int:
        """Requeue (or fail, past tasks.max_requeues) running tasks whose lease expired, and stop
        whatever their dead worker left running. Returns how many there were."""
        expired = await self.store.expire(now_ms(), self.cfg("max_requeues"))
        events = []
        for rec in expired:
            log.warning("task %s: lease of %s expired; %s", rec["id"], rec["lease_owner"], "requeued" if rec["outcome"] == "queued" else "failed")
            await self._stop(rec)
            if rec["outcome"] == "queued":
                events.append(("task:requeued", {"taskId": rec["id"], "reason": "lease_expired", "worker": rec["lease_owner"], "attempts": rec["attempts"]}))
            else:
                events.append(("task:failed", {"taskId": rec["id"], "error": rec["error"]}))
                events += [("task:failed", {"taskId": d["id"], "error": d["error"]}) for d in rec["dependents_failed"]]
        await self.emit(events)
        if expired:
            self.changed()
        return len(expired)

    async def _stop(self, rec: dict[str, Any]) -> None:
        """Stop what executes a task that is no longer running: our runner's process or agent, or
        what a previous godeld (kill -9'd) left behind, recognised by pid and start time."""
        if self.runner is not None and self.runner.stop(rec["id"]):
            return
        run = rec.get("run") or {}
        if run.get("pid") and procs.alive(run["pid"], run.get("pid_start")):
            log.info("task %s: killing process group %d left by a previous worker", rec["id"], run["pid"])
            procs.signal_group(run["pid"], signal.SIGKILL)
        agent_id = run.get("agent_id")
        agents = getattr(self.daemon, "agents", None)
        if agent_id and agents is not None and agent_id in agents.agents:
            try:
                await agents.kill(agent_id, f"task {rec['id']} is no longer running here")
            except Exception as exc:  # noqa: BLE001 - the agent may have ended meanwhile
                log.info("task %s: could not kill agent %s: %s", rec["id"], agent_id, exc)

    # -- output ---------------------------------------------------------------------------------
    async def log(self, task_id: str, offset: int, limit: int) -> dict[str, Any]:
        await self.get(task_id)
        path = self.logs_dir / f"{task_id}.log"

        def read() -> dict[str, Any]:
            try:
                with open(path, "rb") as f:
                    size = os.fstat(f.fileno()).st_size
                    start = max(0, size + offset) if offset < 0 else min(offset, size)
                    f.seek(start)
                    data = f.read(limit)
            except FileNotFoundError:
                return {"id": task_id, "data": "", "offset": 0, "next_offset": 0, "size": 0}
            return {"id": task_id, "data": data.decode(errors="replace"), "offset": start, "next_offset": start + len(data), "size": size}

        return await trio.to_thread.run_sync(read)
