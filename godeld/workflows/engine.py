"""The workflow engine: runs validated definitions as DAGs, durably.

Every run is a trio task under the engine's nursery; each of its steps, when started, a task under
the run's nursery (the nursery tree is the cancellation tree: cancelling a run cancels its steps,
stopping godeld cancels every run). Each transition of a run or a step is written to storage
before it is published, so a restarted godeld finds every unfinished run as it was: completed
steps stay completed, a step that was running is retried as its next attempt (or re-entered, for a
resumable kind such as an approval), a step waiting out a retry delay waits the rest of it.

States — run: pending → running → completed | failed | cancelled; step: pending → running
(→ retrying → running …) → completed | failed | cancelled | skipped.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import trio

from godeld import ids
from godeld.errors import Conflict, InvalidParams, NotFound
from godeld.workflows.kinds import StepFailed, StepRun

log = logging.getLogger("godeld.workflows")

RUN_FINAL = ("completed", "failed", "cancelled")
STEP_FINAL = ("completed", "failed", "cancelled", "skipped")
SATISFIED = ("completed", "skipped")
UNFINISHED = ["pending", "running"]
HALTED = object()  # an attempt that did not start: its run is stopping


def now_ms() -> int:
    return int(time.time() * 1000)


def is_cancellation(exc: BaseException) -> bool:
    """trio.Cancelled, or a group of nothing but (a kind's nursery re-raises a cancel as a group)."""
    if isinstance(exc, trio.Cancelled):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return all(is_cancellation(e) for e in exc.exceptions)
    return False


def is_fatal(exc: BaseException) -> bool:
    """What must never be swallowed as a step's failure."""
    return is_cancellation(exc) or isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit))


def backoff_ms(retry: dict[str, Any], attempt: int) -> int:
    """Delay before attempt `attempt + 1`, after `attempt` failed (attempt counts from 1)."""
    base = int(retry.get("delay_ms") or 0)
    kind = retry.get("backoff") or "fixed"
    if kind == "linear":
        delay = base * attempt
    elif kind == "exponential":
        delay = base * (2 ** min(attempt - 1, 40))
    else:
        delay = base
    cap = retry.get("max_delay_ms")
    return int(min(delay, cap) if cap is not None else delay)


class Run:
    """A run in memory: its record, its steps' records, and what wakes its scheduler."""

    def __init__(self, rec: dict[str, Any], steps: dict[str, dict[str, Any]], default_parallel: int = 16):
        self.rec = rec
        self.steps = steps
        self.definition: dict[str, Any] = rec["definition"]
        self.step_defs = {s["id"]: s for s in self.definition["steps"]}
        self.wake = trio.Event()
        self.done = trio.Event()
        # Made now, entered by _drive: workflows.cancel right after workflows.run still lands.
        self.scope = trio.CancelScope()
        self.cancel_reason: str | None = None  # set by workflows.cancel: steps end as cancelled
        self.halted = False  # a step failed under onFailure stop: nothing more may start
        self.timed_out = False
        self.running: set[str] = set()
        self.limiter = trio.CapacityLimiter(max(1, int(self.definition.get("max_parallel") or default_parallel)))
        self.approvals: dict[str, trio.Event] = {}

    @property
    def id(self) -> str:
        return self.rec["id"]

    def poke(self) -> None:
        self.wake.set()

    def scope_vars(self) -> dict[str, Any]:
        return {
            "variables": self.rec["variables"],
            "steps": {sid: {"state": s["state"], "outputs": s.get("output") or {}, "error": s.get("error")} for sid, s in self.steps.items()},
            "workflow": {"id": self.id, "name": self.rec["name"]},
        }


class WorkflowEngine:
    def __init__(self, daemon: Any):
        self.daemon = daemon
        self.store = daemon.storage.workflows
        self.runs: dict[str, Run] = {}
        self.ready = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._pending: list[Run] = []
        self._resuming: set[str] = set()
        self.global_limiter = trio.CapacityLimiter(self.cfg("max_parallel_steps"))

    def cfg(self, key: str) -> Any:
        return self.daemon.config.get(f"workflows.{key}")

    @property
    def step_kinds(self) -> Any:
        return self.daemon.plugins.registries.step_kinds

    # -- life ----------------------------------------------------------------------------------
    async def load(self) -> None:
        """Find every unfinished run of an earlier godeld and get it ready to go on."""
        for rec, steps in await self.store.unfinished(UNFINISHED):
            run = Run(rec, {s["id"]: s for s in steps}, self.cfg("max_parallel_per_run"))
            for srec in run.steps.values():
                if srec["state"] == "running" and not getattr(self.step_kinds.get(run.step_defs[srec["id"]]["kind"]), "resumable", False):
                    await self._reap_orphan(run.id, srec)
                    srec["interrupted"] = srec.get("interrupted", 0) + 1
                    srec["history"] = [*srec.get("history", []), {"attempt": srec["attempts"], "state": "interrupted", "error": "godeld stopped while the step ran", "at": now_ms()}]
                    srec["state"] = "pending"
                    await self.store.save_step(run.id, srec)
            log.info("resuming workflow run %s (%s)", run.id, rec["name"])
            self.runs[run.id] = run
            self._pending.append(run)

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for run in self._pending:
                await self.daemon.bus.publish("workflow:resumed", {"workflowId": run.id, "name": run.rec["name"], "reason": "godeld restarted"}, source="workflows", metadata={"workflowId": run.id})
                nursery.start_soon(self._drive, run)
            self._pending.clear()
            self.ready.set()
            await trio.sleep_forever()

    async def _reap_orphan(self, run_id: str, srec: dict[str, Any]) -> None:
        """A step's process or agent that outlived the godeld that started it is stopped before
        the step runs again, so two attempts never run side by side. Commands are found by the
        GODEL_WORKFLOW_ID / GODEL_STEP_ID in their environment, so even one started just before
        the crash, whose pid was not stored yet, is found."""
        from godeld.agents import procs

        data = srec.get("data") or {}
        pids = set(await trio.to_thread.run_sync(procs.find_by_env, {"GODEL_WORKFLOW_ID": run_id, "GODEL_STEP_ID": srec["id"]}))
        if data.get("pid") and procs.alive(data["pid"], data.get("pid_start")):
            pids.add(data["pid"])
        for pid in pids:
            try:
                group = os.getpgid(pid)
            except ProcessLookupError:
                continue  # gone meanwhile
            if group != os.getpgid(0):  # never godeld's own group
                procs.signal_group(group, procs.signal.SIGCONT)
                procs.signal_group(group, procs.signal.SIGKILL)
        agent_id = data.get("agent_id")
        agents = getattr(self.daemon, "agents", None)
        if agent_id and agents is not None:
            handle = agents.agents.get(agent_id)
            if handle is not None and handle.rec["state"] not in ("completed", "failed", "killed", "interrupted"):
                try:
                    await agents.kill(agent_id, "its workflow step is being retried after a restart of godeld")
                except Exception as exc:  # noqa: BLE001 - best effort: the retry goes on
                    log.warning("could not stop agent %s of an interrupted step: %s", agent_id, exc)

    # -- starting ------------------------------------------------------------------------------
    async def start(self, definition: dict[str, Any], *, variables: dict[str, Any], cwd: str | None, repo: str | None,
                    parent: tuple[str, str] | None = None, run_id: str | None = None) -> Run:
        run_id = run_id or ids.uuid7()
        merged = {**(definition.get("variables") or {}), **(variables or {})}
        created = now_ms()
        timeout = definition.get("timeout_ms")
        rec = {
            "id": run_id, "name": definition["name"], "state": "pending", "created_at": created, "started_at": None, "finished_at": None,
            "variables": merged, "definition": definition, "file": definition.get("file"),
            "cwd": cwd or definition.get("base_dir") or str(Path.cwd()), "repo": repo or definition.get("repo"),
            "parent_id": parent[0] if parent else None, "parent_step": parent[1] if parent else None,
            "deadline_at": created + timeout if timeout else None, "error": None,
        }
        steps = {s["id"]: {"id": s["id"], "state": "pending", "attempts": 0, "started_at": None, "finished_at": None, "output": None, "error": None}
                 for s in definition["steps"]}
        run = Run(rec, steps, self.cfg("max_parallel_per_run"))
        await self.store.save_run(rec, list(steps.values()))
        self.runs[run_id] = run
        assert self._nursery is not None
        self._nursery.start_soon(self._drive, run)
        return run

    # -- driving a run -------------------------------------------------------------------------
    async def _drive(self, run: Run) -> None:
        rec = run.rec
        try:
            if rec["state"] == "pending":
                rec["state"], rec["started_at"] = "running", now_ms()
                await self.store.save_run(rec, events=[self._draft("workflow:start", run, {"name": rec["name"], "steps": len(run.steps), "variables": rec["variables"]})])
            if rec.get("deadline_at"):
                run.scope.deadline = trio.current_time() + max(0.0, (rec["deadline_at"] - now_ms()) / 1000)
            with run.scope as scope:
                async with trio.open_nursery() as nursery:
                    while await self._schedule(run, nursery):
                        await run.wake.wait()
                        run.wake = trio.Event()
            if scope.cancelled_caught and run.cancel_reason is None:
                run.timed_out = True
            await self._finish(run)
        except BaseException as exc:  # one run's trouble (a storage error) never takes the engine down
            if is_fatal(exc):
                raise
            log.exception("workflow run %s failed in the engine", run.id)
            rec.update(state="failed", error=f"internal error: {type(exc).__name__}: {exc}", finished_at=now_ms())
            try:
                await self.store.save_run(rec, events=[self._draft("workflow:complete", run, {"status": "failed", "error": rec["error"]})])
            except Exception:  # noqa: BLE001 - storage itself is failing: the log says why
                log.exception("could not record the failure of workflow run %s", run.id)
        finally:
            run.done.set()
            if rec["state"] in RUN_FINAL:
                self.runs.pop(run.id, None)

    async def _schedule(self, run: Run, nursery: trio.Nursery) -> bool:
        """Start what is ready, skip what cannot run; False once the run has nothing left to do."""
        on_failure = run.definition.get("on_failure") or "stop"
        failed = [sid for sid, s in run.steps.items() if s["state"] in ("failed", "cancelled")]
        if failed and on_failure == "stop":
            if run.running:
                nursery.cancel_scope.cancel()  # stop the steps still running; they end as cancelled
                run.cancel_reason = run.cancel_reason or f"step {failed[0]} failed"
            return False
        progressed = True
        while progressed:
            progressed = False
            for sid in run.definition["order"]:
                srec = run.steps[sid]
                if sid in run.running or srec["state"] not in ("pending", "retrying", "running"):
                    continue
                if srec["state"] == "running":  # a resumable step re-entered after a restart
                    run.running.add(sid)
                    nursery.start_soon(self._run_step, run, sid)
                    continue
                needs = run.step_defs[sid]["needs"]
                states = [run.steps[n]["state"] for n in needs]
                if any(s not in STEP_FINAL for s in states):
                    continue
                # A step skipped because something it needed failed passes that on; one skipped
                # because its condition was false does not.
                broken = [n for n in needs if run.steps[n]["state"] not in SATISFIED or run.steps[n].get("blocked")]
                if broken:
                    srec["blocked"] = True
                    why = "was skipped: " + run.steps[broken[0]].get("reason", "") if run.steps[broken[0]].get("blocked") else run.steps[broken[0]]["state"]
                    await self._skip(run, sid, f"needs {broken[0]}, which {why}")
                    progressed = True
                    continue
                step_def = run.step_defs[sid]
                if srec["state"] == "pending" and step_def.get("condition") is not None and not srec.get("condition_checked"):
                    from godeld.workflows import expr

                    try:
                        holds = expr.condition_holds(step_def["condition"], run.scope_vars())
                    except expr.ExprError as exc:
                        if on_failure == "stop":
                            run.halted = True
                        await self._step_final(run, sid, "failed", error=f"condition: {exc}")
                        if on_failure == "stop":
                            return await self._schedule(run, nursery)  # the check above stops the run
                        progressed = True
                        continue
                    if not holds:
                        await self._skip(run, sid, "condition is false")
                        progressed = True
                        continue
                    srec["condition_checked"] = True
                run.running.add(sid)
                nursery.start_soon(self._run_step, run, sid)
        # A step waiting out a retry delay is running too (its task sleeps), so nothing running
        # means nothing can start any more: every step is final.
        return bool(run.running)

    async def _skip(self, run: Run, sid: str, reason: str) -> None:
        await self._step_final(run, sid, "skipped", error=None, reason=reason)

    async def _step_final(self, run: Run, sid: str, state: str, *, error: str | None = None, reason: str | None = None, output: Any = None) -> None:
        srec = run.steps[sid]
        changes: dict[str, Any] = {"state": state, "finished_at": now_ms(), "error": error}
        if reason:
            changes["reason"] = reason
        if output is not None:
            changes["output"] = output
        if state == "skipped":
            event = self._draft("workflow:step:skipped", run, {"stepId": sid, "reason": reason})
        elif state == "failed":
            event = self._draft("workflow:step:failed", run, {"stepId": sid, "error": error, "attempt": srec["attempts"], "will_retry": False})
        else:
            event = self._draft("workflow:step:cancelled", run, {"stepId": sid, "reason": error})
        await self._commit_step(run, srec, changes, [event])
        run.poke()

    async def _commit_step(self, run: Run, srec: dict[str, Any], changes: dict[str, Any], events: list[Any]) -> None:
        """Stored (with its events) before it is shown: whoever sees the step's new state in
        workflows.get finds its events in the log."""
        await self.store.save_step(run.id, {**srec, **changes}, events=events)
        srec.update(changes)

    # -- one step ------------------------------------------------------------------------------
    async def _run_step(self, run: Run, sid: str) -> None:
        srec = run.steps[sid]
        step_def = run.step_defs[sid]
        retry = step_def.get("retry") or {"max_attempts": 1}
        try:
            while True:
                if srec["state"] == "retrying" and srec.get("next_attempt_at"):
                    await trio.sleep(max(0.0, (srec["next_attempt_at"] - now_ms()) / 1000))
                outcome = await self._attempt(run, sid)
                if outcome is None or outcome is HALTED:
                    return
                error, output, can_retry = outcome
                counted = srec["attempts"] - srec.get("interrupted", 0) - srec.get("attempt_base", 0)
                if can_retry and counted < int(retry.get("max_attempts") or 1):
                    delay = backoff_ms(retry, counted)
                    srec.update(state="retrying", error=error, next_attempt_at=now_ms() + delay, output=output)
                    await self.store.save_step(run.id, srec, events=[
                        self._draft("workflow:step:failed", run, {"stepId": sid, "error": error, "attempt": srec["attempts"], "will_retry": True}),
                        self._draft("workflow:step:retry", run, {"stepId": sid, "attempt": srec["attempts"] + 1, "delay_ms": delay}),
                    ])
                    continue
                if (run.definition.get("on_failure") or "stop") == "stop":
                    run.halted = True  # before any checkpoint: a step waiting for this slot must not start
                await self._step_final(run, sid, "failed", error=error, output=output)
                return
        except BaseException as exc:
            # Cancelled by workflows.cancel, by the workflow's timeout or by a failed step under
            # onFailure stop: the step ends as cancelled. Cancelled because godeld is stopping: it
            # stays as it is, to go on at the next start.
            if is_cancellation(exc) and not self._stopping() and srec["state"] not in STEP_FINAL:
                reason = run.cancel_reason or ("the workflow timed out" if run.scope.cancel_called else "cancelled")
                with trio.CancelScope(shield=True):
                    await self._step_final(run, sid, "cancelled", error=reason)
            raise
        finally:
            run.running.discard(sid)
            run.poke()

    def _stopping(self) -> bool:
        return self.daemon.state in ("stopping", "stopped")

    async def _attempt(self, run: Run, sid: str) -> tuple[str, Any, bool] | None:
        """Run one attempt: None when it completed, else (error, output, retry-may-help). The
        step counts against the run's and the global limit from when it starts — except kinds
        that only wait (an approval, a sub-workflow whose own steps take the slots: holding one
        there could deadlock nested runs)."""
        kind = self.step_kinds.get(run.step_defs[sid]["kind"])
        if getattr(kind, "uses_slot", True):
            async with run.limiter, self.global_limiter:
                return await self._attempt_in_slot(run, sid, kind)
        return await self._attempt_in_slot(run, sid, kind)

    async def _attempt_in_slot(self, run: Run, sid: str, kind: Any) -> tuple[str, Any, bool] | object | None:
        from godeld.workflows import expr

        if run.halted:
            return HALTED
        srec = run.steps[sid]
        step_def = run.step_defs[sid]
        resumed = srec["state"] == "running"  # only a resumable kind is still running after load()
        if not resumed:
            srec.update(state="running", attempts=srec["attempts"] + 1, started_at=now_ms(), finished_at=None, error=None, next_attempt_at=None, data={})
        if kind is None:
            await self.store.save_step(run.id, srec)
            return f"unknown step kind {step_def['kind']!r} (available: {', '.join(self.step_kinds.names())})", None, False
        scope = run.scope_vars()
        try:
            # An inline sub-workflow's templates belong to the child's scope: not rendered here.
            raw = getattr(kind, "raw_fields", ())
            spec = {k: v if k in raw and isinstance(v, dict) else expr.render_value(v, scope) for k, v in (step_def.get("spec") or {}).items()}
            env = {k: expr.render(str(v), scope) for k, v in {**(run.definition.get("env") or {}), **(step_def.get("env") or {})}.items()}
        except expr.ExprError as exc:
            await self.store.save_step(run.id, srec)
            return f"{exc}", None, False
        await self.store.save_step(run.id, srec, events=[self._draft("workflow:step:start", run, {"stepId": sid, "kind": step_def["kind"], "attempt": srec["attempts"], "resumed": resumed})])

        async def save() -> None:
            await self.store.save_step(run.id, srec)

        async def publish(type_: str, data: dict[str, Any]) -> None:
            await self._publish(type_, run, {"stepId": sid, **data})

        ctx = StepRun(
            daemon=self.daemon, run_id=run.id, workflow_name=run.rec["name"], step_id=sid, kind=step_def["kind"], attempt=srec["attempts"],
            spec=spec, outputs_declared=list(step_def.get("outputs") or []), env=env, cwd=Path(run.rec["cwd"]), repo=run.rec.get("repo"),
            variables=run.rec["variables"], data=srec.setdefault("data", {}), resumed=resumed, _save=save, _publish=publish,
            feedback=srec.get("feedback"),
        )
        timeout = step_def.get("timeout_ms")
        started = time.monotonic()
        try:
            with trio.move_on_after(timeout / 1000 if timeout else math.inf) as limit:
                output = await kind.run(ctx)
        except StepFailed as exc:
            return str(exc), exc.output, exc.retry
        except BaseException as exc:  # a kind's bug fails its step, never the engine
            if is_fatal(exc):
                raise
            log.exception("step %s of workflow run %s raised", sid, run.id)
            return f"{type(exc).__name__}: {exc}", None, True
        if limit.cancelled_caught:
            return f"timed out after {timeout / 1000:g}s", None, True
        if step_def.get("gates"):
            failed = await self._gates(run, sid, step_def["gates"], output if isinstance(output, dict) else {"result": output}, ctx)
            if failed is not None:
                return failed
        changes = {"state": "completed", "finished_at": now_ms(), "output": output if isinstance(output, dict) else {"result": output}, "error": None}
        await self._commit_step(run, srec, changes, [self._draft("workflow:step:complete", run, {
            "stepId": sid, "output": changes["output"], "attempt": srec["attempts"], "duration_ms": int((time.monotonic() - started) * 1000)})])
        return None

    async def _gates(self, run: Run, sid: str, gates: list[dict[str, Any]], output: dict[str, Any], ctx: StepRun) -> tuple[str, Any, bool] | None:
        """Run the step's quality gates on its outputs (commands in the agent's worktree, or the
        step's directory); a failure fails the attempt, and its report is the next attempt's
        `feedback` (an agent step's task carries it; a shell step gets $GODEL_FEEDBACK)."""
        from godeld.quality.gates import feedback, run_gate

        answer = output.get("result") if isinstance(output.get("result"), str) else output.get("stdout")
        if not isinstance(answer, str):
            answer = json.dumps(output, ensure_ascii=False, default=str)
        cwd = output.get("worktree") or str(ctx.cwd)
        results = []
        for gate in gates:
            result = await run_gate(gate, cwd=cwd, answer=answer, task=str(ctx.spec.get("task") or ctx.spec.get("run") or ""), daemon=self.daemon, env=ctx.env)
            results.append(result)
            await self._publish("workflow:step:gate", run, {"stepId": sid, "gate": result["name"], "kind": result["kind"], "passed": result["passed"], "output": result["output"][:4000], "attempt": ctx.attempt})
        if all(r["passed"] for r in results):
            run.steps[sid].pop("feedback", None)
            return None
        report = feedback(results)
        run.steps[sid]["feedback"] = report
        names = ", ".join(r["name"] for r in results if not r["passed"])
        return f"quality gates failed: {names}", {**output, "gates": [{k: r[k] for k in ("name", "passed", "output")} for r in results]}, True

    # -- finishing -----------------------------------------------------------------------------
    async def _finish(self, run: Run) -> None:
        if self._stopping() and run.cancel_reason is None and not run.timed_out:
            return  # godeld is stopping: the run stays unfinished and goes on at the next start
        rec = run.rec
        states = {s["state"] for s in run.steps.values()}
        if run.cancel_reason is not None and run.rec.get("cancel_requested"):
            state, error = "cancelled", run.cancel_reason
        elif run.timed_out:
            state, error = "failed", f"the workflow timed out after {run.definition['timeout_ms'] / 1000:g}s"
        elif "failed" in states or "cancelled" in states:
            order = run.definition["order"]
            first = next((sid for sid in order if run.steps[sid]["state"] == "failed"), None) or next(sid for sid in order if run.steps[sid]["state"] == "cancelled")
            state, error = "failed", f"step {first} {run.steps[first]['state']}: {run.steps[first].get('error')}"
        else:
            state, error = "completed", None
        for sid, srec in run.steps.items():
            if srec["state"] not in STEP_FINAL:
                srec.update(state="cancelled", finished_at=now_ms(), error=srec.get("error") or f"the workflow {state}")
                await self.store.save_step(run.id, srec)
        final = {"state": state, "error": error, "finished_at": now_ms()}
        outputs = {sid: s.get("output") for sid, s in run.steps.items() if s["state"] == "completed"}
        # Stored with its event before it is shown (see _commit_step).
        await self.store.save_run({**rec, **final}, events=[self._draft("workflow:complete", run, {
            "status": state, "error": error, "duration_ms": final["finished_at"] - (rec.get("started_at") or rec["created_at"]), "outputs": outputs,
        })])
        rec.update(final)

    @staticmethod
    def _draft(type_: str, run: Run, data: dict[str, Any]) -> Any:
        """An event about the run, written in the same transaction as the state it announces."""
        from godeld.events import make_draft

        meta = {"workflowId": run.id}
        if run.rec.get("parent_id"):
            meta["parentWorkflowId"] = run.rec["parent_id"]
        return make_draft(type_, {"workflowId": run.id, **data}, source="workflows", metadata=meta)

    async def _publish(self, type_: str, run: Run, data: dict[str, Any]) -> None:
        await self.daemon.bus.publish_many([self._draft(type_, run, data)])

    # -- control -------------------------------------------------------------------------------
    def live(self, run_id: str) -> Run:
        run = self.runs.get(run_id)
        if run is None:
            raise NotFound(f"no running workflow run {run_id!r}", {"id": run_id})
        return run

    async def get(self, run_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        run = self.runs.get(run_id)
        if run is not None:
            return run.rec, [run.steps[s["id"]] for s in run.definition["steps"]]
        found = await self.store.get_run(run_id)
        if found is None:
            raise NotFound(f"no workflow run {run_id!r}", {"id": run_id})
        rec, steps = found
        by_id = {s["id"]: s for s in steps}
        return rec, [by_id[s["id"]] for s in rec["definition"]["steps"] if s["id"] in by_id]

    async def cancel(self, run_id: str, reason: str = "cancelled by request") -> dict[str, Any]:
        run = self.runs.get(run_id)
        if run is None or run.rec["state"] in RUN_FINAL:
            rec, _ = await self.get(run_id)
            raise Conflict(f"workflow run {run_id} is already {rec['state']}", {"state": rec["state"]})
        run.cancel_reason = reason
        run.rec["cancel_requested"] = True
        for child in list(self.runs.values()):
            if child.rec.get("parent_id") == run_id:
                await self.cancel(child.id, f"its parent run {run_id} was cancelled")
        run.scope.cancel()
        with trio.move_on_after(30):
            await run.done.wait()
        return run.rec

    async def resume(self, run_id: str) -> dict[str, Any]:
        """Run a failed or cancelled run again from where it stopped: completed steps keep their
        outputs; failed, cancelled and skipped-because-of-them steps run again with a fresh
        retry budget."""
        if run_id in self.runs or run_id in self._resuming:
            state = self.runs[run_id].rec["state"] if run_id in self.runs else "running"
            raise Conflict(f"workflow run {run_id} is still {state}", {"state": state})
        self._resuming.add(run_id)  # before any checkpoint: a second resume is refused
        try:
            return await self._resume(run_id)
        finally:
            self._resuming.discard(run_id)

    async def _resume(self, run_id: str) -> dict[str, Any]:
        found = await self.store.get_run(run_id)
        if found is None:
            raise NotFound(f"no workflow run {run_id!r}", {"id": run_id})
        rec, steps = found
        if rec["state"] == "completed":
            raise Conflict(f"workflow run {run_id} completed: there is nothing to resume", {"state": "completed"})
        for srec in steps:
            if srec["state"] in ("failed", "cancelled") or srec["state"] == "skipped" and srec.get("blocked"):
                srec.update(state="pending", error=None, finished_at=None, attempt_base=srec["attempts"] - srec.get("interrupted", 0), reason=None, blocked=False)
                srec.pop("condition_checked", None)
        rec.update(state="running", error=None, finished_at=None, cancel_requested=False)
        if rec.get("deadline_at") and rec["definition"].get("timeout_ms"):
            rec["deadline_at"] = now_ms() + rec["definition"]["timeout_ms"]
        run = Run(rec, {s["id"]: s for s in steps}, self.cfg("max_parallel_per_run"))
        await self.store.save_run(rec, steps)
        self.runs[run_id] = run
        await self._publish("workflow:resumed", run, {"name": rec["name"], "reason": "workflows.resume"})
        assert self._nursery is not None
        self._nursery.start_soon(self._drive, run)
        return rec

    async def decide(self, run_id: str, step_id: str, approved: bool, *, by: str | None, comment: str | None) -> dict[str, Any]:
        run = self.runs.get(run_id)
        if run is None or run.rec["state"] in RUN_FINAL:
            rec, _ = await self.get(run_id)
            raise Conflict(f"workflow run {run_id} is {rec['state']}: no approval is waiting", {"state": rec["state"]})
        if step_id not in run.steps:
            raise NotFound(f"workflow run {run_id} has no step {step_id!r}", {"step": step_id})
        srec = run.steps[step_id]
        if run.step_defs[step_id]["kind"] != "approval":
            raise InvalidParams(f"step {step_id} is a {run.step_defs[step_id]['kind']} step, not an approval")
        if srec["state"] != "running" or "decision" in (srec.get("data") or {}):
            raise Conflict(f"step {step_id} is {srec['state']}: it is not waiting for an approval", {"state": srec["state"]})
        # Recorded in the step's data, which the approval reads when it (re-)enters, so a decision
        # given while a restarted godeld has not re-entered the step yet is not lost.
        srec.setdefault("data", {})["decision"] = {"approved": approved, "by": by or "someone", "comment": comment or "", "at": now_ms()}
        await self.store.save_step(run_id, srec)  # durable before it is acted on
        if step_id in run.approvals:
            run.approvals[step_id].set()
        return {"id": run_id, "step": step_id, "approved": approved}
