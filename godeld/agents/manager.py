"""The agent manager: spawns agents as worker processes in their own worktrees, keeps their state
machine persisted and published, enforces the concurrency limit (spawns beyond it wait in
order), watches their health, and re-adopts or marks them interrupted after a restart.

States: pending → starting → running ⇄ paused → completed | failed | killed | interrupted.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import stat
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import trio

from godeld import ids
from godeld.agents import procs
from godeld.errors import BudgetExceeded, Conflict, GodelError, InvalidParams, NotFound

log = logging.getLogger("godeld.agents")

ACTIVE = ("starting", "running", "paused")
TERMINAL = ("completed", "failed", "killed", "interrupted")
STATES = ("pending", *ACTIVE, *TERMINAL)
USAGE_ZERO = {"input_tokens": 0, "output_tokens": 0, "cache_read_tokens": 0, "cache_write_tokens": 0, "cost_usd": 0.0}
PUBLIC = ("skills", "id", "state", "pid", "branch", "worktree", "exit_code", "error", "usage", "repo", "task", "provider", "model", "base", "base_commit", "created_at", "started_at", "finished_at", "final", "session_id", "stuck", "isolation", "artifacts", "swarm_id", "workflow_id", "task_id", "budget", "tools", "setup_output", "port")


def now_ms() -> int:
    return int(time.time() * 1000)


class Handle:
    """What godeld keeps in memory for one agent (a few hundred bytes)."""

    __slots__ = ("rec", "proc", "kill_reason", "last_output", "log_size", "started_mono", "done", "stuck_reported", "lock")

    def __init__(self, rec: dict[str, Any]):
        self.rec = rec
        self.proc: trio.Process | None = None
        self.kill_reason: str | None = None
        self.last_output = time.monotonic()
        self.log_size = 0
        self.started_mono = time.monotonic()
        self.done = trio.Event()
        self.stuck_reported = False
        self.lock = trio.Lock()  # one state transition at a time


class AgentManager:
    def __init__(self, daemon: Any):
        from godeld.agents.budget import Budget
        from godeld.agents.safety_service import SafetyService

        self.daemon = daemon
        self.store = daemon.storage.agents
        self.budget = Budget(daemon)
        self.safety = SafetyService(daemon)
        self.agents: dict[str, Handle] = {}
        self.queue: deque[str] = deque()
        self.active = 0
        self._wake = trio.Event()
        self._nursery: trio.Nursery | None = None
        self.ready = trio.Event()
        home = daemon.config.home
        self.agents_dir = home / "agents"
        self.agents_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    # -- config ------------------------------------------------------------------------------
    def cfg(self, key: str) -> Any:
        return self.daemon.config.get(f"agents.{key}")

    @property
    def worktrees_root(self) -> Path:
        d = self.daemon.config.get("worktrees.dir")
        return Path(d) if d else self.daemon.config.home / "worktrees"

    @property
    def runtime(self) -> Any:
        return self.daemon.plugins.registries.runtimes["worktree"]

    # -- start-up: re-adopt or mark interrupted -----------------------------------------------
    async def load(self) -> None:
        await self.budget.load()
        await self.safety.load()
        for rec in await self.store.list_agents(states=["pending", *ACTIVE], limit=1_000_000):
            handle = self.agents[rec["id"]] = Handle(rec)
            if rec["state"] == "pending":
                self.queue.append(rec["id"])
            elif rec.get("pid") and procs.alive(rec["pid"], rec.get("pid_start")):
                log.info("re-adopting agent %s (pid %d)", rec["id"], rec["pid"])
                self.active += 1
            else:
                await self._transition(handle, "interrupted", error=rec.get("error") or "godeld stopped while the agent was running, and the agent's process is gone",
                                       events=(("agent:interrupted", {"reason": "process gone after a restart of godeld"}),))

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for handle in list(self.agents.values()):
                if handle.rec["state"] in ACTIVE:
                    nursery.start_soon(self._watch_adopted, handle)
            nursery.start_soon(self._scheduler)
            nursery.start_soon(self._health)
            self.ready.set()
            try:
                await trio.sleep_forever()
            finally:
                if not self.cfg("keep_running_on_shutdown"):
                    self._stop_all_now()

    def _stop_all_now(self) -> None:
        """godeld is stopping and agents are not to outlive it: SIGTERM every agent's process
        group, SIGKILL what is left after a moment. Their records say interrupted at the next
        start, so `agents.resume` can carry on."""
        pids = [h.rec["pid"] for h in self.agents.values() if h.rec["state"] in ACTIVE and h.rec.get("pid")]
        for pid in pids:
            procs.signal_group(pid, signal.SIGCONT)
            procs.signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + min(self.cfg("kill_grace_s"), 2.0)
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if procs.alive(p, None)]
            time.sleep(0.02)
        for pid in pids:
            procs.signal_group(pid, signal.SIGKILL)

    # -- lookups -------------------------------------------------------------------------------
    async def get_record(self, agent_id: str) -> dict[str, Any]:
        handle = self.agents.get(agent_id)
        if handle is not None:
            return handle.rec
        rec = await self.store.get_agent(agent_id)
        if rec is None:
            raise NotFound(f"no agent with id {agent_id}", {"id": agent_id})
        return rec

    def handle(self, agent_id: str) -> Handle:
        handle = self.agents.get(agent_id)
        if handle is None:
            raise NotFound(f"agent {agent_id} is not running (it is finished or unknown)", {"id": agent_id})
        return handle

    @staticmethod
    def public(rec: dict[str, Any]) -> dict[str, Any]:
        out = {k: rec.get(k) for k in PUBLIC}
        out["usage"] = {**USAGE_ZERO, **(rec.get("usage") or {})}
        return out

    # -- spawn ---------------------------------------------------------------------------------
    async def spawn(self, params: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        from godeld.agents.git import toplevel

        registries = self.daemon.plugins.registries
        provider = params.get("provider") or self.cfg("default_provider")
        if provider not in registries.providers:
            raise InvalidParams(f"unknown provider {provider!r} (available: {', '.join(registries.providers.names())})", {"provider": provider})
        kind = getattr(registries.providers[provider], "kind", "api")
        script = params.get("script")
        if script is not None:
            from godeld.default_plugins.scripted import validate_script

            try:
                validate_script(script)
            except ValueError as exc:
                raise InvalidParams(f"bad script: {exc}", {"field": "script"}) from None
        tools = params.get("tools")
        from godeld.quality.gates import check_gates

        try:
            gates = check_gates(params.get("gates"))
        except ValueError as exc:
            raise InvalidParams(str(exc), {"field": "gates"}) from None
        budget = params.get("budget") or {}
        unknown = set(budget) - {"max_tokens", "max_cost_usd"}
        if unknown:
            raise InvalidParams(f"budget accepts max_tokens and max_cost_usd, not {', '.join(sorted(unknown))}")
        top, _common = await toplevel(params["repo"])
        agent_id = ids.uuid7()
        model = params.get("model") or self._provider_cfg(provider).get("model") or getattr(registries.providers[provider], "default_model", "") or ""
        rec: dict[str, Any] = {
            "id": agent_id, "state": "pending", "created_at": now_ms(), "repo": str(top), "task": params["task"], "provider": provider, "kind": kind,
            "model": model, "provider_options": {k: v for k, v in (params.get("provider_options") or {}).items() if k != "api_key"},
            "script": script, "budget": budget or None, "tools": tools, "base": params.get("base"), "setup": params.get("setup"),
            "env": params.get("env") or {}, "branch": params.get("branch") or f"godel/{agent_id}",
            "swarm_id": params.get("swarm_id"), "workflow_id": params.get("workflow_id"), "task_id": params.get("task_id"),
            "gates": gates or None, "retries": int(params.get("retries") or 0), "retry_model": params.get("retry_model"), "gate_attempts": 0,
            "token": secrets.token_hex(16), "report_n": 0, "usage": dict(USAGE_ZERO), "pid": None, "exit_code": None, "error": None,
        }
        rec["worktree"] = str(self.worktrees_root / _slug(top) / agent_id)
        self.budget.check_spawn(rec)
        if not dry_run:
            await self._skills(rec, params.get("skills") or [])
        if dry_run:
            projection = self.budget.project(model=model, script=script, task=params["task"], max_turns=self.cfg("max_turns"))
            return {"dry_run": True, "provider": provider, "model": model, "repo": str(top), "branch": rec["branch"], "projected": projection}
        await self._check_base(top, params.get("base"))
        if budget:
            await self.budget.set_limit("agent", agent_id, budget.get("max_cost_usd"), budget.get("max_tokens"), persist=True)
        secret_key = (params.get("provider_options") or {}).get("api_key")
        handle = Handle(rec)
        handle.kill_reason = None
        self.agents[agent_id] = handle
        if secret_key:
            _SPAWN_SECRETS[agent_id] = str(secret_key)  # memory only: never stored or logged
        await self.store.save_agent(rec)
        await self._publish("agent:state", handle, {"state": "pending", "previous": None})
        self.queue.append(agent_id)
        self._wake.set()
        return {"id": agent_id, "branch": rec["branch"], "worktree": rec["worktree"], "state": "pending"}

    async def _skills(self, rec: dict[str, Any], names: list[str]) -> None:
        """Activate the skills asked for; give the agent the skills' prompt text (every skill's
        name and description, the bodies of the active ones) and their allowed-tools."""
        service = getattr(self.daemon, "skills", None)
        if service is None:
            if names:
                raise InvalidParams("skills were asked for, but the skills service is not loaded")
            return
        for name in names:
            try:
                await service.activate(name, rec["id"], None, rec["repo"])
            except NotFound as exc:
                raise InvalidParams(exc.message, exc.data) from None
        prompt = await service.prompt(rec["id"], rec.get("swarm_id"), rec["task"], rec["repo"])
        rec["skills"] = prompt["active"]
        rec["skills_prompt"] = prompt["prompt"] if prompt["available"] else None
        allowed: dict[str, str] = {}
        for name in prompt["active"]:
            skill = await service.skill(name, rec["repo"])
            for tool in getattr(skill, "allowed_tools", None) or []:
                allowed.setdefault(str(tool), name)
        rec["skill_allowed_tools"] = allowed or None

    async def _check_base(self, top: Path, base: str | None) -> None:
        from godeld.agents.git import git

        out = (await git(top, "rev-parse", "--verify", "--quiet", f"{base or 'HEAD'}^{{commit}}", check=False)).strip()
        if not out:
            raise InvalidParams(f"base {base or 'HEAD'!r} is not a commit in {top}", {"repo": str(top), "base": base})

    def _provider_cfg(self, name: str) -> dict[str, Any]:
        providers = self.daemon.config.get("providers") or {}
        value = providers.get(name) or {}
        return value if isinstance(value, dict) else {}

    # -- scheduling ----------------------------------------------------------------------------
    async def _scheduler(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            while self.queue and self.active < self.cfg("max_concurrent"):
                agent_id = self.queue.popleft()
                handle = self.agents.get(agent_id)
                if handle is None or handle.rec["state"] != "pending":
                    continue
                self.active += 1
                assert self._nursery is not None
                self._nursery.start_soon(self._run_agent, handle)

    async def _run_agent(self, handle: Handle) -> None:
        rec = handle.rec
        try:
            await self._transition(handle, "starting")
            if not rec.get("workspace") and rec.get("resuming"):
                await self._clear_partial_worktree(rec)
            if not rec.get("workspace"):
                ws = await self.runtime.prepare(
                    agent_id=rec["id"], repo=rec["repo"], base=rec.get("base"), branch=rec["branch"], root=self.worktrees_root,
                    setup=rec.get("setup"), setup_timeout_s=self.daemon.config.get("worktrees.setup_timeout_s"),
                )
                rec["workspace"] = ws.to_dict()
                rec["worktree"], rec["base_commit"], rec["port"], rec["setup_output"] = ws.worktree, ws.base_commit, ws.port, ws.setup_output
            if handle.kill_reason:
                raise _Killed()
            proc = await self._launch(handle)
            handle.proc = proc
            handle.started_mono = handle.last_output = time.monotonic()
            rec["pid"], rec["pid_start"], rec["started_at"] = proc.pid, procs.start_time(proc.pid), now_ms()
            await self._transition(handle, "running", events=(("agent:start", {"task": rec["task"], "model": rec["model"], "provider": rec["provider"], "branch": rec["branch"], "worktree": rec["worktree"]}),))
            if handle.kill_reason:  # killed while starting: the process is up now, stop it
                self._nursery.start_soon(self._terminate, handle)
            await proc.wait()
            await self._finished(handle, proc.returncode)
        except _Killed:
            await self._finished(handle, None)
        except GodelError as exc:
            data = exc.data if isinstance(exc.data, dict) else {}
            await self._fail(handle, exc.message, output=data.get("output"))
        except Exception as exc:  # noqa: BLE001 - one agent's failure never takes godeld down
            log.exception("agent %s failed to run", rec["id"])
            await self._fail(handle, f"{type(exc).__name__}: {exc}")
        finally:
            self._release(handle)

    async def _clear_partial_worktree(self, rec: dict[str, Any]) -> None:
        """godeld stopped while this agent's worktree was being made: the agent never ran, so what
        `git worktree add` left (a directory, a branch at the base) goes, and it is made afresh."""
        from godeld.agents.git import git, repo_lock, toplevel

        top, common = await toplevel(rec["repo"])
        async with repo_lock(common):
            await git(top, "worktree", "remove", "--force", rec["worktree"], check=False)
            await git(top, "worktree", "prune", check=False)
            await git(top, "branch", "-D", rec["branch"], check=False)
        _rmtree(Path(rec["worktree"]))

    async def _watch_adopted(self, handle: Handle) -> None:
        """A worker that outlived a restart of godeld: wait for it with a pidfd."""
        try:
            await procs.wait_exit(handle.rec["pid"])
            await self._finished(handle, None)
        except Exception as exc:  # noqa: BLE001
            log.exception("agent %s: watching the re-adopted process failed", handle.rec["id"])
            await self._fail(handle, f"{type(exc).__name__}: {exc}")
        finally:
            self._release(handle)

    def _release(self, handle: Handle) -> None:
        self.active -= 1
        handle.done.set()
        if handle.rec["state"] in TERMINAL:
            self.agents.pop(handle.rec["id"], None)
            self.safety.forget(handle.rec["id"])
            _SPAWN_SECRETS.pop(handle.rec["id"], None)
        self._wake.set()

    async def _launch(self, handle: Handle) -> trio.Process:
        rec = handle.rec
        agent_dir = self.agents_dir / rec["id"]
        agent_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        (agent_dir / "result.json").unlink(missing_ok=True)
        fifo = agent_dir / "input"
        if not fifo.exists():
            os.mkfifo(fifo, 0o600)
        env = {**os.environ, **{str(k): str(v) for k, v in (rec.get("env") or {}).items()}}
        env.pop("NOTIFY_SOCKET", None)
        env.pop("LISTEN_FDS", None)
        env.pop("LISTEN_PID", None)
        spec = self._worker_spec(rec, env)
        spec_path = agent_dir / "spec.json"
        tmp = agent_dir / "spec.json.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(spec, f)
        os.replace(tmp, spec_path)
        log_fd = os.open(agent_dir / "output.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            return await trio.lowlevel.open_process(
                [sys.executable, "-m", "godeld.agents.worker", str(agent_dir)],
                stdin=subprocess.DEVNULL, stdout=log_fd, stderr=log_fd, cwd=rec["worktree"], env=env, start_new_session=True,
            )
        finally:
            os.close(log_fd)

    def _worker_spec(self, rec: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
        ws_env = dict((rec.get("workspace") or {}).get("env") or {})
        chain = [rec["provider"]] + ([n for n in self.cfg("fallback") if n != rec["provider"]] if rec.get("kind") == "api" else [])
        refs = []
        for i, name in enumerate(chain):
            if name not in self.daemon.plugins.registries.providers:
                continue
            options = {**self._provider_cfg(name), **(rec.get("provider_options") or {} if i == 0 else {})}
            key = _SPAWN_SECRETS.get(rec["id"]) if i == 0 else None
            key = key or options.pop("api_key", None)
            options.pop("api_key", None)
            if key:
                var = f"GODEL_SECRET_{i}_API_KEY"  # the worker hides *_API_KEY from tool commands
                env[var] = str(key)
                options["api_key_env"] = var
            refs.append({**self._provider_ref(name), "options": options, "model": rec["model"] if i == 0 else options.get("model")})
        for k, v in ws_env.items():
            env[k] = v
        return {
            "id": rec["id"], "token": rec["token"], "socket": str(self.daemon.socket_path), "worktree": rec["worktree"], "task": rec["task"],
            "mode": rec.get("kind", "api"), "provider": refs[0], "fallback": refs[1:], "model": rec["model"], "script": rec.get("script"),
            "tools": rec.get("tools"), "max_turns": self.cfg("max_turns"), "command_timeout_s": self.cfg("command_timeout_s"),
            "env": ws_env, "report_n": rec.get("report_n", 0), "session_id": rec.get("session_id"), "resume": bool(rec.get("resuming")),
            "messages": rec.get("resume_messages"), "agent_index": rec.get("agent_index", 0), "swarm_id": rec.get("swarm_id"),
            "skills_prompt": rec.get("skills_prompt"), "skills_project": rec["repo"],
        }

    def _provider_ref(self, name: str) -> dict[str, Any]:
        plugins = self.daemon.plugins
        owner = plugins.registries.providers.owner(name)
        record = plugins.records[owner]
        module = record.module
        file = getattr(module, "__file__", None) if record.source == "dropin" else None
        return {"name": name, "module": module.__name__, "file": file}

    # -- the end of a run ------------------------------------------------------------------------
    async def _finished(self, handle: Handle, returncode: int | None) -> None:
        rec = handle.rec
        agent_dir = self.agents_dir / rec["id"]
        result: dict[str, Any] = {}
        try:
            result = json.loads((agent_dir / "result.json").read_text())
        except (OSError, ValueError):
            pass
        if result.get("session_id"):
            rec["session_id"] = result["session_id"]
        rec["exit_code"] = result.get("exit_code", returncode) if returncode is None or returncode >= 0 else returncode
        rec["final"] = result.get("final") or rec.get("final")
        if handle.kill_reason:
            state, error = "killed", handle.kill_reason
        elif result.get("status") == "completed" and (returncode in (0, None)):
            state, error = "completed", None
        elif result:
            state, error = "failed", result.get("error") or f"exit code {rec['exit_code']}"
        elif returncode is not None and returncode < 0:
            state, error = "failed", f"the agent's process was killed by signal {signal.Signals(-returncode).name}"
        else:
            state, error = "failed", f"the agent's process ended (exit code {returncode}) without a result"
        ws = rec.get("workspace")
        if ws:
            try:
                from godeld.default_plugins.worktree.runtime import Workspace

                workspace = Workspace.from_dict(ws)
                if state == "completed" and self.cfg("commit_on_success") and Path(workspace.worktree).is_dir():
                    scratch = getattr(self.daemon.plugins.registries.providers.get(rec["provider"]), "scratch_files", ())
                    await self.runtime.commit_all(workspace, f"godel agent {rec['id']}: {rec['task'].splitlines()[0][:60] if rec['task'] else ''}", exclude=scratch)
                artifacts = await self.runtime.collect(workspace)
                (agent_dir / "diff.patch").write_text(artifacts.pop("diff"))
                rec["artifacts"] = {"commits": artifacts["commits"], "files": artifacts["files"], "stat": artifacts["stat"], "diff_truncated": artifacts["diff_truncated"]}
                rec["isolation"] = artifacts["isolation"]
            except Exception as exc:  # noqa: BLE001 - the run's state still gets recorded
                log.warning("agent %s: collecting artifacts failed: %s", rec["id"], exc)
                rec["artifacts_error"] = str(exc)
        if state == "completed" and rec.get("gates") and not handle.kill_reason:
            passed, results = await self._run_gates(handle)
            if not passed:
                if rec["gate_attempts"] < rec["retries"]:
                    await self._retry_after_gates(rec, results)
                    return
                state, error = "failed", "quality gates failed: " + ", ".join(r["name"] for r in results if not r["passed"])
        rec["finished_at"] = now_ms()
        duration = (rec["finished_at"] - (rec.get("started_at") or rec["finished_at"])) / 1000
        cost = (rec.get("usage") or {}).get("cost_usd", 0.0)
        events: list[tuple[str, dict[str, Any]]] = []
        if rec.get("isolation") and not rec["isolation"]["ok"]:
            events.append(("agent:error", {"error": "isolation violated: " + "; ".join(rec["isolation"]["problems"]), "isolation": rec["isolation"]}))
        if state == "completed":
            events.append(("agent:complete", {"duration": duration, "cost": cost, "usage": rec.get("usage"), "final": (rec.get("final") or "")[:2000]}))
        elif state == "killed":
            events.append(("agent:killed", {"reason": error, "duration": duration, "cost": cost}))
        else:
            events.append(("agent:error", {"error": error, "exit_code": rec["exit_code"]}))
        await self._transition(handle, state, error=error, events=tuple(events))

    async def _run_gates(self, handle: Handle) -> tuple[bool, list[dict[str, Any]]]:
        """Run the agent's quality gates in its worktree; publish agent:gate for each."""
        from godeld.quality.gates import run_gate

        rec = handle.rec
        results = []
        for gate in rec["gates"]:
            result = await run_gate(gate, cwd=rec["worktree"], answer=rec.get("final") or "", task=rec["task"], daemon=self.daemon, env=rec.get("env"))
            if result.get("usage"):
                exceeded = await self.budget.record(rec, [{**result["usage"], "duration_ms": 0}])
                for scope, scope_id in exceeded:
                    await self.kill_scope(scope, scope_id, f"budget exceeded: {scope} budget")
            results.append(result)
            await self._publish("agent:gate", handle, {"gate": result["name"], "kind": result["kind"], "passed": result["passed"], "output": result["output"][:4000], "attempt": rec["gate_attempts"] + 1})
        rec["gate_results"] = [{k: r[k] for k in ("name", "kind", "passed", "output")} for r in results]
        return all(r["passed"] for r in results), results

    async def _retry_after_gates(self, rec: dict[str, Any], results: list[dict[str, Any]]) -> None:
        """Agent-aware retry: the agent goes on in its worktree, told what the gates found (an API
        agent keeps its conversation; a CLI agent resumes its session, or starts again with the
        report in its task), with `retry_model` if one was given."""
        from godeld.quality.gates import feedback

        report = feedback(results)
        rec["gate_attempts"] += 1
        if rec.get("retry_model"):
            rec["model"] = rec["retry_model"]
        if rec.get("kind") == "api":
            messages = await self._messages_from_transcript(rec["id"]) or []
            rec["resume_messages"] = [*messages, {"role": "user", "content": report}]
            await self.store.append_transcript(rec["id"], [{"ts": now_ms(), "kind": "input", "data": {"content": report, "from": "quality gates"}}])
        else:
            rec["task"] = f"{rec['task']}\n\n{report}"
        rec["resuming"] = True
        rec["error"] = None
        handle = self.agents[rec["id"]] = Handle(rec)
        await self._transition(handle, "pending", events=(("agent:retry", {"attempt": rec["gate_attempts"] + 1, "feedback": report[:4000], "model": rec["model"]}),))
        self.queue.append(rec["id"])
        self._wake.set()

    async def wait_final(self, agent_id: str) -> dict[str, Any]:
        """Wait until the agent has ended for good (a retry after failed quality gates is not an
        end); its record."""
        while True:
            handle = self.agents.get(agent_id)
            if handle is None:
                return await self.get_record(agent_id)
            await handle.done.wait()
            if handle.rec["state"] in TERMINAL:
                return handle.rec

    async def _fail(self, handle: Handle, error: str, *, output: str | None = None) -> None:
        rec = handle.rec
        if output:
            rec["setup_output"] = output[-65536:]
        rec["finished_at"] = now_ms()
        if handle.kill_reason:
            await self._transition(handle, "killed", error=handle.kill_reason, events=(("agent:killed", {"reason": handle.kill_reason}),))
            return
        data: dict[str, Any] = {"error": error}
        if output:
            data["output"] = output[-8000:]
        await self._transition(handle, "failed", error=error, events=(("agent:error", data),))

    # -- transitions and events ----------------------------------------------------------------
    async def _transition(self, handle: Handle, state: str, *, error: str | None = None, events: tuple[tuple[str, dict[str, Any]], ...] = ()) -> None:
        """Store the new state together with agent:state and `events` (the named events that go
        with it: agent:complete, agent:error, ...) in one transaction, and only then show it: whoever
        sees the state in agents.get finds its events in the log, and a crash keeps both or
        neither."""
        rec = handle.rec
        previous = rec["state"]
        changed = {"state": state, **({"error": error} if error is not None else {})}
        drafts = [self._draft("agent:state", rec, {"state": state, "previous": previous, **({"error": error} if error else {})})]
        drafts += [self._draft(type_, rec, data) for type_, data in events]
        await self.store.save_agent({**rec, **changed}, events=drafts)
        rec.update(changed)

    @staticmethod
    def _draft(type_: str, rec: dict[str, Any], data: dict[str, Any]) -> Any:
        from godeld.events import make_draft

        meta = {"agentId": rec["id"]}
        for key, name in (("swarm_id", "swarmId"), ("workflow_id", "workflowId"), ("task_id", "taskId")):
            if rec.get(key):
                meta[name] = rec[key]
        return make_draft(type_, {"agentId": rec["id"], **data}, source="agents", metadata=meta)

    async def _publish(self, type_: str, handle: Handle, data: dict[str, Any]) -> None:
        await self.daemon.bus.publish_many([self._draft(type_, handle.rec, data)])

    # -- control -------------------------------------------------------------------------------
    async def pause(self, agent_id: str) -> dict[str, Any]:
        handle = self.handle(agent_id)
        async with handle.lock:
            if handle.rec["state"] != "running":
                raise Conflict(f"agent {agent_id} is {handle.rec['state']}, not running", {"state": handle.rec["state"]})
            procs.signal_group(handle.rec["pid"], signal.SIGSTOP)
            await self._transition(handle, "paused", events=(("agent:paused", {}),))
        return self.public(handle.rec)

    async def resume(self, agent_id: str) -> dict[str, Any]:
        handle = self.agents.get(agent_id)
        if handle is not None and handle.rec["state"] == "paused":
            async with handle.lock:
                procs.signal_group(handle.rec["pid"], signal.SIGCONT)
                handle.last_output = time.monotonic()
                await self._transition(handle, "running", events=(("agent:resumed", {}),))
            return self.public(handle.rec)
        rec = await self.get_record(agent_id)
        if rec["state"] != "interrupted":
            raise Conflict(f"agent {agent_id} is {rec['state']}: only a paused or an interrupted agent can be resumed", {"state": rec["state"]})
        return await self._restart(rec)

    async def _restart(self, rec: dict[str, Any]) -> dict[str, Any]:
        """Run an interrupted agent again in its worktree: a CLI agent with its own session-resume
        flag, an API agent with its conversation rebuilt from the stored transcript."""
        if rec.get("kind") == "api":
            rec["resume_messages"] = await self._messages_from_transcript(rec["id"])
        rec["resuming"] = True
        rec["error"] = None
        handle = self.agents[rec["id"]] = Handle(rec)
        await self._transition(handle, "pending", events=(("agent:resumed", {"restarted": True, "session_id": rec.get("session_id")}),))
        self.queue.append(rec["id"])
        self._wake.set()
        return self.public(rec)

    async def _messages_from_transcript(self, agent_id: str) -> list[dict[str, Any]] | None:
        entries = await self.store.read_transcript(agent_id, limit=1_000_000)
        messages: list[dict[str, Any]] = []
        for e in entries:
            d = e["data"] or {}
            if e["kind"] == "system":
                messages.append({"role": "system", "content": d.get("content", "")})
            elif e["kind"] in ("user", "input"):
                messages.append({"role": "user", "content": d.get("content", "")})
            elif e["kind"] == "assistant":
                messages.append({"role": "assistant", "content": d.get("content", ""), "tool_calls": d.get("tool_calls") or []})
            elif e["kind"] == "tool":
                messages.append({"role": "tool", "tool_call_id": d.get("id"), "name": d.get("name"), "content": d.get("result", ""), "is_error": d.get("is_error", False)})
        # A turn cut off between its tool calls and their results cannot be sent again as is.
        while messages and messages[-1]["role"] == "assistant" and messages[-1].get("tool_calls"):
            messages.pop()
        if messages:
            messages.append({"role": "user", "content": "godel was restarted and your run was interrupted; continue the task where you left off."})
        return messages or None

    async def kill(self, agent_id: str, reason: str = "killed by request") -> dict[str, Any]:
        handle = self.agents.get(agent_id)
        if handle is None:
            rec = await self.get_record(agent_id)
            raise Conflict(f"agent {agent_id} is already {rec['state']}", {"state": rec["state"]})
        if handle.rec["state"] == "pending":
            handle.kill_reason = reason
            try:
                self.queue.remove(agent_id)
            except ValueError:
                pass
            handle.rec["finished_at"] = now_ms()
            await self._transition(handle, "killed", error=reason, events=(("agent:killed", {"reason": reason}),))
            self.agents.pop(agent_id, None)
            handle.done.set()  # it never ran, but whoever waits on it must wake
            return self.public(handle.rec)
        if handle.kill_reason is None:
            handle.kill_reason = reason
            if handle.rec.get("pid"):
                assert self._nursery is not None
                self._nursery.start_soon(self._terminate, handle)
        return self.public(handle.rec)

    async def _terminate(self, handle: Handle) -> None:
        """SIGTERM to the whole process group (after SIGCONT, so a paused agent can act on it);
        SIGKILL after the grace period."""
        pid = handle.rec["pid"]
        procs.signal_group(pid, signal.SIGCONT)
        procs.signal_group(pid, signal.SIGTERM)
        with trio.move_on_after(self.cfg("kill_grace_s")):
            await handle.done.wait()
            return
        procs.signal_group(pid, signal.SIGKILL)

    async def kill_scope(self, scope: str, scope_id: str, reason: str) -> None:
        for handle in list(self.agents.values()):
            rec = handle.rec
            if rec["state"] not in ("pending", *ACTIVE):
                continue
            if scope in ("global", "day") or (scope == "agent" and rec["id"] == scope_id) or rec.get(f"{scope}_id") == scope_id:
                await self.kill(rec["id"], reason)

    # -- health --------------------------------------------------------------------------------
    async def _health(self) -> None:
        while True:
            await trio.sleep(1.0)
            idle_limit, run_limit = self.cfg("idle_timeout_s"), self.cfg("max_runtime_s")
            now = time.monotonic()
            for handle in list(self.agents.values()):
                rec = handle.rec
                if rec["state"] != "running":
                    continue
                try:
                    size = os.stat(self.agents_dir / rec["id"] / "output.log").st_size
                except OSError:
                    size = handle.log_size
                if size != handle.log_size:
                    handle.log_size, handle.last_output = size, now
                    handle.stuck_reported = False
                reason = None
                if run_limit and now - handle.started_mono > run_limit:
                    reason = f"running for more than {run_limit:g}s (agents.max_runtime_s)"
                elif idle_limit and now - handle.last_output > idle_limit:
                    reason = f"no output for {idle_limit:g}s (agents.idle_timeout_s)"
                if reason and not handle.stuck_reported:
                    handle.stuck_reported = True
                    rec["stuck"] = reason
                    kill = self.cfg("kill_when_stuck")
                    await self._publish("agent:stuck", handle, {"reason": reason, "killed": kill})
                    if kill:
                        await self.kill(rec["id"], f"stuck: {reason}")

    def touch(self, agent_id: str) -> None:
        handle = self.agents.get(agent_id)
        if handle is not None:
            handle.last_output = time.monotonic()
            handle.stuck_reported = False

    # -- the worker's calls ----------------------------------------------------------------------
    def _worker_handle(self, agent_id: str, token: str) -> Handle:
        handle = self.agents.get(agent_id)
        if handle is None or not secrets.compare_digest(handle.rec["token"], token):
            raise NotFound(f"no running agent {agent_id} with that token", {"id": agent_id})
        return handle

    async def worker_report(self, agent_id: str, token: str, n: int, entries: list, usage: list, session_id: str | None) -> dict[str, Any]:
        handle = self._worker_handle(agent_id, token)
        rec = handle.rec
        self.touch(agent_id)
        if n <= rec.get("report_n", 0):
            return {"duplicate": True}  # sent again after a reconnect: already stored
        if entries:
            await self.store.append_transcript(agent_id, [{"ts": e.get("ts"), "kind": e.get("kind", "note"), "data": e.get("data")} for e in entries if isinstance(e, dict)])
            await self._announce_steps(handle, entries)
        exceeded = await self.budget.record(rec, [u for u in usage if isinstance(u, dict)]) if usage else []
        if session_id:
            rec["session_id"] = session_id
        rec["report_n"] = n
        await self.store.save_agent(rec)
        for scope, scope_id in exceeded:
            reason = f"budget exceeded: {scope} budget{(' ' + scope_id) if scope_id else ''}"
            await self.kill_scope(scope, scope_id, reason)
        return {"stop": bool(handle.kill_reason)}

    async def _announce_steps(self, handle: Handle, entries: list) -> None:
        """`agent:step {agentId, step, plan, tools}` for each assistant message: the reasoning
        trace, live (agents.trace gives it whole, with outcomes, from the transcript)."""
        for entry in entries:
            if not isinstance(entry, dict) or entry.get("kind") != "assistant":
                continue
            data = entry.get("data") or {}
            handle.rec["steps"] = handle.rec.get("steps", 0) + 1
            tools = [c.get("name") for c in data.get("tool_calls") or []]
            await self._publish("agent:step", handle, {"step": handle.rec["steps"], "plan": (data.get("content") or "")[:2000], "tools": tools, "final": not tools and handle.rec.get("kind") == "api"})

    async def worker_authorize(self, agent_id: str, token: str, tool: str, args: Any, call_id: str) -> dict[str, Any]:
        handle = self._worker_handle(agent_id, token)
        self.touch(agent_id)
        decision = await self.safety.authorize(handle.rec, tool, args, call_id)
        self.touch(agent_id)
        return decision.to_dict()

    async def worker_message(self, agent_id: str, token: str, op: str, text: str | None, to: str | None, since: int, wait_s: float) -> dict[str, Any]:
        """The send_message / read_messages tools of an agent in a swarm: messages are
        `swarm:message` events, so they are durable and anyone can follow them."""
        handle = self._worker_handle(agent_id, token)
        self.touch(agent_id)
        swarm_id = handle.rec.get("swarm_id")
        if not swarm_id:
            raise Conflict(f"agent {agent_id} is not in a swarm: it has no one to message")
        bus = self.daemon.bus
        if op == "send":
            if not text:
                raise InvalidParams("send needs a text")
            event = await bus.publish("swarm:message", {"swarmId": swarm_id, "from": agent_id, "to": to, "text": text}, source="agents",
                                      metadata={"swarmId": swarm_id, "agentId": agent_id})
            return {"seq": event.seq}

        def mine(e: Any) -> bool:
            d = e.data
            return d.get("swarmId") == swarm_id and d.get("from") != agent_id and d.get("to") in (None, agent_id)

        events, head = await bus.list(since=since, patterns=["swarm:message"], limit=1000)
        found = [e for e in events if mine(e)]
        cursor = events[-1].seq if events else max(since, 0)
        if not found and wait_s > 0:
            with trio.move_on_after(min(wait_s, 300)):
                async with bus.subscribe(["swarm:message"], since=cursor) as subscription:
                    while not found:
                        e = await subscription.next()
                        cursor = e.seq
                        if mine(e):
                            found.append(e)
        self.touch(agent_id)
        return {"messages": [{"seq": e.seq, "from": e.data.get("from"), "to": e.data.get("to"), "text": e.data.get("text")} for e in found],
                "next_since": max([cursor, *(e.seq for e in found)])}

    # -- logs, input, removal --------------------------------------------------------------------
    async def logs(self, agent_id: str, offset: int, limit: int, wait_s: float) -> dict[str, Any]:
        rec = await self.get_record(agent_id)
        path = self.agents_dir / agent_id / "output.log"
        deadline = trio.current_time() + wait_s
        while True:
            try:
                size = path.stat().st_size
            except OSError:
                size = 0
            if offset < 0:
                offset = max(0, size + offset)  # negative: the last -offset bytes
            finished = rec["state"] in TERMINAL or (agent_id not in self.agents and rec["state"] != "pending")
            if size > offset or finished or trio.current_time() >= deadline:
                break
            await trio.sleep(0.1)
            rec = await self.get_record(agent_id)
        data = b""
        if size > offset:
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read(limit)
        text = data.decode("utf-8", errors="replace")
        return {"data": text, "offset": offset, "next_offset": offset + len(data), "size": size, "state": rec["state"], "eof": finished and offset + len(data) >= size}

    def send(self, agent_id: str, text: str) -> dict[str, Any]:
        handle = self.handle(agent_id)
        if handle.rec["state"] not in ("running", "paused"):
            raise Conflict(f"agent {agent_id} is {handle.rec['state']}, not running: input goes to a running agent", {"state": handle.rec["state"]})
        fifo = self.agents_dir / agent_id / "input"
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            raise Conflict(f"agent {agent_id} is not reading input", {"id": agent_id}) from None
        try:
            os.write(fd, text.replace("\n", " ").encode() + b"\n")
        finally:
            os.close(fd)
        return {"sent": True}

    async def remove(self, agent_id: str, force: bool) -> dict[str, Any]:
        rec = await self.get_record(agent_id)
        if agent_id in self.agents:
            if not force:
                raise Conflict(f"agent {agent_id} is {rec['state']}; kill it first or use force", {"state": rec["state"]})
            handle = self.agents[agent_id]
            await self.kill(agent_id, "removed")
            with trio.move_on_after(self.cfg("kill_grace_s") + 5):
                await handle.done.wait()
        result: dict[str, Any] = {"id": agent_id}
        if rec.get("workspace"):
            from godeld.default_plugins.worktree.runtime import Workspace

            result.update(await self.runtime.remove(Workspace.from_dict(rec["workspace"]), force=force))
        await self.store.delete_agent(agent_id)
        _rmtree(self.agents_dir / agent_id)
        await self.daemon.bus.publish("agent:removed", {"agentId": agent_id, **{k: v for k, v in result.items() if k != "id"}}, source="agents", metadata={"agentId": agent_id})
        return result


class _Killed(Exception):
    pass


_SPAWN_SECRETS: dict[str, str] = {}


def _slug(top: Path) -> str:
    from godeld.default_plugins.worktree.runtime import _repo_slug

    return _repo_slug(top)


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


__all__ = ["AgentManager", "STATES", "ACTIVE", "TERMINAL", "stat"]


async def gc(manager: AgentManager, *, max_age_h: float | None, quota_mb: int | None, orphans: str, dry_run: bool) -> dict[str, Any]:
    """Reclaim disk: worktrees of finished agents older than max_age_h; then, while all worktrees
    together use more than quota_mb, the oldest finished ones; and orphaned worktree folders left
    by a crash (reported, or removed with orphans="reclaim"). Branches with unmerged commits stay."""
    from godeld.agents.git import git
    from godeld.default_plugins.worktree.runtime import Workspace

    cfg = manager.daemon.config.get("worktrees")
    max_age_h = cfg["gc_max_age_h"] if max_age_h is None else max_age_h
    quota_mb = cfg["gc_quota_mb"] if quota_mb is None else quota_mb
    now = now_ms()
    finished = [r for r in await manager.store.list_agents(states=list(TERMINAL), limit=1_000_000) if r.get("workspace") and Path(r["workspace"]["worktree"]).exists()]
    finished.sort(key=lambda r: r.get("finished_at") or r["created_at"])
    removed, kept = [], []

    async def reclaim(rec: dict[str, Any], why: str) -> None:
        entry = {"id": rec["id"], "worktree": rec["workspace"]["worktree"], "reason": why}
        if not dry_run:
            result = await manager.runtime.remove(Workspace.from_dict(rec["workspace"]), force=False)
            entry.update(result)
            rec["workspace_removed"] = True
            rec["workspace"] = {**rec["workspace"], "removed_at": now}
            await manager.store.save_agent(rec)
        removed.append(entry)

    left = []
    for rec in finished:
        age_h = (now - (rec.get("finished_at") or rec["created_at"])) / 3_600_000
        if max_age_h and age_h > max_age_h:
            await reclaim(rec, f"finished {age_h:.1f}h ago (max age {max_age_h:g}h)")
        else:
            left.append(rec)
    sizes = {r["id"]: _du(Path(r["workspace"]["worktree"])) for r in left}
    total = sum(sizes.values()) + sum(_du(Path(h.rec["worktree"])) for h in manager.agents.values() if h.rec.get("worktree"))
    if quota_mb:
        for rec in left:
            if total <= quota_mb * 1024 * 1024:
                break
            await reclaim(rec, f"worktrees use {total / 1048576:.1f} MiB, over the {quota_mb} MiB quota")
            total -= sizes[rec["id"]]
        kept = [r["id"] for r in left if r["id"] not in {e["id"] for e in removed}]
    known = {r["id"] for r in await manager.store.list_agents(limit=1_000_000)}
    orphan_list = []
    root = manager.worktrees_root
    if root.is_dir():
        for repo_dir in sorted(root.iterdir()):
            if not repo_dir.is_dir():
                continue
            for wt in sorted(repo_dir.iterdir()):
                if wt.name in known:
                    continue
                entry = {"path": str(wt), "size_bytes": _du(wt), "reclaimed": False}
                if orphans == "reclaim" and not dry_run:
                    gitfile = wt / ".git"
                    main = None
                    if gitfile.is_file():  # "gitdir: <repo>/.git/worktrees/<name>"
                        main = gitfile.read_text().split(":", 1)[-1].strip().split("/.git/worktrees/")[0]
                    _rmtree(wt)
                    if main and Path(main).is_dir():
                        await git(main, "worktree", "prune", check=False)
                    entry["reclaimed"] = True
                orphan_list.append(entry)
    return {"removed": removed, "kept": kept, "orphans": orphan_list, "total_bytes": total, "dry_run": dry_run}


def _du(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
            except OSError:
                pass
    return total
