"""The in-daemon runner: claims tasks (those of no swarm) and executes them, heartbeating while
they run, with the same lease protocol an external worker uses over RPC.

Commands run with /bin/sh -c in their own session (a process group we can signal as a whole),
output to $GODEL_HOME/tasks/<id>.log; agent tasks are agents spawned through the agent manager.
The runner wakes when the queue changes (submit, complete, group opened) and sweeps expired
leases on a timer, since a lease ends by the clock, not by an event.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from typing import Any

import trio

from godeld import ids
from godeld.agents import procs
from godeld.errors import Conflict, GodelError, NotFound
from godeld.tasks.queue import TaskQueue, now_ms

log = logging.getLogger("godeld.tasks.runner")
_ENV_DROP = ("NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")


class _Slot:
    """One task this runner executes."""

    __slots__ = ("proc", "agent_id", "stopped", "kind")

    def __init__(self, kind: str):
        self.kind = kind
        self.proc: trio.Process | None = None
        self.agent_id: str | None = None
        self.stopped = False  # cancelled, or the lease was lost: its outcome is no longer ours to report


class Runner:
    def __init__(self, queue: TaskQueue):
        self.queue = queue
        self.daemon = queue.daemon
        self.worker = f"godeld:{os.getpid()}:{ids.uuid7()[-12:]}"
        self.slots: dict[str, _Slot] = {}
        self._interrupted: list[tuple[str, _Slot]] = []  # commands cut off by godeld stopping
        self._nursery: trio.Nursery | None = None

    async def run(self) -> None:
        self.queue.runner = self
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._sweeper)
                nursery.start_soon(self._heartbeats)
                if self.queue.cfg("run_in_daemon"):
                    nursery.start_soon(self._claimer)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await self._shutdown()

    async def _shutdown(self) -> None:
        """godeld is stopping: kill our commands and give their tasks back to the queue now.
        Agent tasks keep their lease (agents may outlive godeld); it expires after a restart."""
        commands = [tid for tid, _ in self._interrupted]
        for _, slot in self._interrupted:
            slot.stopped = True
            if slot.proc is not None:
                procs.signal_group(slot.proc.pid, signal.SIGKILL)
        if commands:
            try:
                await self.queue.release(self.worker, commands)
            except Exception as exc:  # noqa: BLE001 - the leases will expire instead
                log.warning("could not release tasks at shutdown: %s", exc)

    # -- loops ----------------------------------------------------------------------------------
    async def _claimer(self) -> None:
        while True:
            changed = self.queue.watch()
            try:
                rec = await self.queue.claim(self.worker, announce=False)
            except Exception:  # noqa: BLE001 - e.g. storage trouble: retry at the next change or sweep
                log.exception("claiming a task failed")
                rec = None
            if rec is None:
                with trio.move_on_after(self.queue.cfg("sweep_interval_s") * 5):
                    await changed.wait()
                continue
            assert self._nursery is not None
            self.slots[rec["id"]] = _Slot(rec["spec"]["kind"])
            self._nursery.start_soon(self._execute, rec)

    async def _sweeper(self) -> None:
        while True:
            await trio.sleep(self.queue.cfg("sweep_interval_s"))
            try:
                await self.queue.sweep()
            except Exception:  # noqa: BLE001
                log.exception("sweeping expired task leases failed")

    async def _heartbeats(self) -> None:
        # One write extends every lease this runner holds, however many tasks run.
        while True:
            lease_s = self.queue.cfg("lease_s")
            await trio.sleep(lease_s / 3)
            if self.slots:
                try:
                    await self.queue.store.extend_leases(self.worker, now_ms() + int(lease_s * 1000))
                except Exception:  # noqa: BLE001
                    log.exception("extending task leases failed")

    # -- execution ------------------------------------------------------------------------------
    async def _execute(self, rec: dict[str, Any]) -> None:
        task_id = rec["id"]
        slot = self.slots[task_id]
        try:
            if slot.kind == "command":
                await self._command(rec, slot)
            else:
                await self._agent(rec, slot)
        except trio.Cancelled:
            if slot.kind == "command":
                self._interrupted.append((task_id, slot))
            raise
        except Conflict as exc:
            log.info("task %s: %s", task_id, exc.message)  # cancelled or lease lost meanwhile
        except Exception as exc:  # noqa: BLE001 - one task's failure never takes the runner down
            if not isinstance(exc, GodelError):
                log.exception("task %s failed to run", task_id)
            message = exc.message if isinstance(exc, GodelError) else f"{type(exc).__name__}: {exc}"
            if not slot.stopped:
                try:
                    await self.queue.fail(task_id, self.worker, message)
                except GodelError as again:
                    log.info("task %s: %s", task_id, again.message)
        finally:
            self.slots.pop(task_id, None)

    async def _report(self, task_id: str, slot: _Slot, ok: bool, result: dict[str, Any], error: str | None) -> None:
        if slot.stopped:
            return
        if ok:
            await self.queue.complete(task_id, self.worker, result)
        else:
            await self.queue.fail(task_id, self.worker, error or "failed", result)

    async def _command(self, rec: dict[str, Any], slot: _Slot) -> None:
        task_id, spec = rec["id"], rec["spec"]
        path = self.queue.logs_dir / f"{task_id}.log"
        env = {**os.environ, **{str(k): str(v) for k, v in (spec.get("env") or {}).items()}, "GODEL_TASK_ID": task_id}
        for name in _ENV_DROP:
            env.pop(name, None)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            start = os.fstat(fd).st_size  # this attempt's output begins here
            proc = await trio.lowlevel.open_process(
                ["/bin/sh", "-c", spec["command"]], stdin=subprocess.DEVNULL, stdout=fd, stderr=fd,
                cwd=spec.get("cwd") or str(self.daemon.config.home), env=env, start_new_session=True,
            )
        finally:
            os.close(fd)
        slot.proc = proc
        try:
            await self.queue.set_run(task_id, self.worker, {"pid": proc.pid, "pid_start": procs.start_time(proc.pid), "log": str(path)})
            await self.queue.emit([("task:assigned", {"taskId": task_id, "worker": self.worker, "pid": proc.pid, "attempt": rec["attempts"]})])
        except BaseException:
            if proc.returncode is None:
                procs.signal_group(proc.pid, signal.SIGKILL)
            with trio.CancelScope(shield=True):
                await proc.wait()
            raise
        await proc.wait()
        code = proc.returncode
        output = await trio.to_thread.run_sync(_tail, path, start, self.queue.cfg("log_tail_bytes"))
        result = {"exit_code": code, "output": output}
        error = None if code == 0 else (f"killed by signal {-code}" if code < 0 else f"exit code {code}")
        await self._report(task_id, slot, code == 0, result, error)

    async def _agent(self, rec: dict[str, Any], slot: _Slot) -> None:
        task_id, spec = rec["id"], rec["spec"]
        manager = self.daemon.agents
        await manager.ready.wait()
        params = {"repo": spec["repo"], "task": spec["task"], "provider": spec.get("provider"), "model": spec.get("model"),
                  "script": spec.get("script"), "env": spec.get("env") or None, "task_id": task_id}
        started = await manager.spawn({k: v for k, v in params.items() if v is not None})
        agent_id = started["id"]
        slot.agent_id = agent_id
        handle = manager.agents.get(agent_id)
        await self.queue.set_run(task_id, self.worker, {"agent_id": agent_id})
        await self.queue.emit([("task:assigned", {"taskId": task_id, "worker": self.worker, "agentId": agent_id, "attempt": rec["attempts"]})])
        if handle is not None:
            await handle.done.wait()
        agent = await manager.wait_final(agent_id)  # a retry after failed quality gates is not the end
        state = agent["state"]
        result = {"agent_id": agent_id, "state": state, "final": agent.get("final"), "branch": agent.get("branch"), "exit_code": agent.get("exit_code")}
        await self._report(task_id, slot, state == "completed", result, agent.get("error") or f"agent {agent_id} {state}")

    # -- stopping what runs ---------------------------------------------------------------------
    def stop(self, task_id: str) -> bool:
        """The task was cancelled or its lease is gone: stop executing it. False if not ours."""
        slot = self.slots.get(task_id)
        if slot is None or self._nursery is None:
            return False
        slot.stopped = True
        if slot.proc is not None and slot.proc.returncode is None:
            self._nursery.start_soon(self._terminate, slot.proc)
        if slot.agent_id is not None:
            self._nursery.start_soon(self._kill_agent, task_id, slot.agent_id)
        return True

    async def _terminate(self, proc: trio.Process) -> None:
        """SIGTERM to the command's process group; SIGKILL to what is left after the grace time."""
        procs.signal_group(proc.pid, signal.SIGTERM)
        with trio.move_on_after(self.queue.cfg("kill_grace_s")):
            await proc.wait()
        procs.signal_group(proc.pid, signal.SIGKILL)

    async def _kill_agent(self, task_id: str, agent_id: str) -> None:
        try:
            await self.daemon.agents.kill(agent_id, f"task {task_id} cancelled")
        except (Conflict, NotFound):
            pass  # it ended meanwhile


def _tail(path: Any, start: int, limit: int) -> str:
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(max(start, size - limit))
            return f.read().decode(errors="replace")
    except OSError:
        return ""
