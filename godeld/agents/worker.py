"""The agent worker: one process per agent (`python -m godeld.agents.worker AGENT_DIR`).

It runs in its own session and process group, in the agent's worktree, with stdout and stderr
going to AGENT_DIR/output.log, so it outlives a crash of godeld and is re-adopted afterwards.
For an API provider it runs the tool loop; for a CLI agent it runs the program and parses its
stream. Every tool call is put to godeld's safety rules first; every transcript entry and every
usage figure is reported to godeld, which stores them and enforces the budget (killing this
process group when it runs out). The result is written to AGENT_DIR/result.json at the end.

Stdlib only, besides the provider's own module: memory per agent is what the budget of 500
agents on one machine allows.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from godeld.agents.llm import ProviderError, ToolCall, Usage
from godeld.agents.rpcclient import DaemonGone, RemoteError, WorkerClient
from godeld.agents.context import context_window, count_tokens, fit
from godeld.agents.tools import MESSAGE_TOOL_SPECS, SKILL_TOOL_SPEC, TOOL_NAMES, TOOL_SPECS, ToolError, Tools

MESSAGE_TOOLS = {t.name for t in MESSAGE_TOOL_SPECS}

SYSTEM_PROMPT = (
    "You are a coding agent working in a git worktree of a repository. Use the tools to read, "
    "change and test the code; paths are relative to the repository root. When the task is done, "
    "answer with a short summary of what you changed and no tool call."
)


def _part_of(index: int, message: dict[str, Any]) -> str:
    """Which part of the prompt a message is, for the context record."""
    if index == 0 and message.get("role") == "system":
        return "system"
    if index == 1 and message.get("role") == "user":
        return "task"
    if message.get("role") == "tool" and message.get("name") in ("read_file", "read_skill_file"):
        return "files"  # what the agent read, apart from the rest of the history
    return "history"


def load_provider(ref: dict[str, Any]) -> Any:
    """The provider object registered as ref["name"] by the plugin module ref["module"] (or the
    drop-in file ref["file"]), found by calling the module's register_providers hook directly."""
    if ref.get("file"):
        spec = importlib.util.spec_from_file_location(ref["module"], ref["file"])
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(ref["module"])
    found: dict[str, Any] = {}
    module.register_providers(register=lambda name, obj: found.__setitem__(name, obj))
    return found[ref["name"]]


class Worker:
    def __init__(self, agent_dir: Path):
        self.dir = agent_dir
        self.spec = json.loads((agent_dir / "spec.json").read_text())
        self.id = self.spec["id"]
        self.client = WorkerClient(self.spec["socket"])
        self.report_n = int(self.spec.get("report_n", 0))
        self.message_cursor = 0  # read_messages: the last swarm:message seq seen
        self.session_id = self.spec.get("session_id") or ""
        self.inputs: list[str] = []
        self._input_lock = threading.Lock()

    # -- talking to godeld -----------------------------------------------------------------
    def report(self, entries: list[dict[str, Any]] = (), usage: list[dict[str, Any]] = (), session_id: str | None = None) -> None:
        self.report_n += 1  # godeld ignores a number it has seen: a repeat after a reconnect is harmless
        now = int(time.time() * 1000)
        for e in entries:
            e.setdefault("ts", now)
        self.client.call("agents.worker.report", id=self.id, token=self.spec["token"], n=self.report_n, entries=list(entries), usage=list(usage), session_id=session_id)

    def authorize(self, tool: str, args: dict[str, Any], call_id: str) -> dict[str, Any]:
        return self.client.call("agents.worker.authorize", id=self.id, token=self.spec["token"], tool=tool, args=args, call_id=call_id)

    # -- input from agents.send, through the FIFO AGENT_DIR/input ----------------------------
    def start_input_reader(self, on_line) -> None:
        fifo = self.dir / "input"

        def read() -> None:
            while True:
                try:
                    with open(fifo, "r") as f:  # blocks until a writer opens it
                        for line in f:
                            on_line(line.rstrip("\n"))
                except OSError:
                    return

        threading.Thread(target=read, daemon=True, name="input").start()

    def take_inputs(self) -> list[str]:
        with self._input_lock:
            out, self.inputs = self.inputs, []
            return out

    # -- the end ---------------------------------------------------------------------------
    def finish(self, status: str, *, final: str = "", error: str = "", exit_code: int = 0, turns: int = 0) -> int:
        result = {"status": status, "final": final, "error": error, "exit_code": exit_code, "turns": turns, "session_id": self.session_id}
        tmp = self.dir / "result.json.tmp"
        tmp.write_text(json.dumps(result))
        os.replace(tmp, self.dir / "result.json")
        return exit_code

    # -- API providers: godel's own tool loop ------------------------------------------------
    def run_api(self) -> int:
        spec = self.spec
        chain = [spec["provider"], *spec.get("fallback", [])]
        sessions: list[tuple[str, Any]] = []
        refs: list[dict[str, Any]] = []
        for ref in chain:
            try:
                provider = load_provider(ref)
                sessions.append((ref["name"], provider.open(model=ref.get("model") or spec.get("model"), options={**ref.get("options", {}), "script": spec.get("script"), "agent_index": spec.get("agent_index", 0)})))
                refs.append(ref)
            except ProviderError as exc:
                print(f"[godel] provider {ref['name']} unavailable: {exc.message}", flush=True)
        if not sessions:
            return self.finish("failed", error="no provider could be opened", exit_code=1)
        env = {k: v for k, v in os.environ.items() if not _secret_name(k)}
        env.update(spec.get("env") or {})
        tools = Tools(spec["worktree"], env=env, command_timeout_s=float(spec.get("command_timeout_s", 600)))
        allowed = spec.get("tools")
        extra = (MESSAGE_TOOL_SPECS if spec.get("swarm_id") else []) + ([SKILL_TOOL_SPEC] if spec.get("skills_prompt") else [])
        offered = [t for t in TOOL_SPECS + extra if allowed is None or t.name in allowed]
        system = spec.get("system") or SYSTEM_PROMPT
        if spec.get("skills_prompt"):
            system += "\n\n" + spec["skills_prompt"]
        messages: list[dict[str, Any]] = spec.get("messages") or [{"role": "system", "content": system}, {"role": "user", "content": spec["task"]}]
        if not spec.get("messages"):
            self.report([{"kind": "system", "data": {"content": messages[0]["content"]}}, {"kind": "user", "data": {"content": spec["task"]}}])
        self.start_input_reader(self._queue_input)
        max_turns = int(spec.get("max_turns", 50))
        for turn_no in range(1, max_turns + 1):
            for text in self.take_inputs():
                messages.append({"role": "user", "content": text})
                self.report([{"kind": "input", "data": {"content": text}}])
            started = time.monotonic()
            turn, used, errors, plan = None, "", [], None
            for (name, session), ref in zip(sessions, refs):
                # What is sent is fitted into this model's context window; `messages` keeps it all.
                plan = fit(messages, window=int(ref.get("options", {}).get("context_window") or context_window(ref.get("model") or spec.get("model") or "")),
                           reserve=int(ref.get("options", {}).get("max_tokens") or 4096), tools=offered, part_of=_part_of)
                if spec.get("skills_prompt") and "system" in plan.parts:
                    # The skills' text rides in the system message; the record shows it apart.
                    skills_tokens = min(plan.parts["system"], count_tokens(spec["skills_prompt"]))
                    plan.parts["skills"] = skills_tokens
                    plan.parts["system"] -= skills_tokens
                try:
                    turn = session.complete(plan.messages, offered, on_text=_print_text)
                    used = name
                    break
                except ProviderError as exc:
                    errors.append(f"{name}: {exc.message}")
                    self.report([{"kind": "error", "data": {"provider": name, "error": exc.message, "retryable": exc.retryable}}])
                    print(f"\n[godel] provider {name} failed: {exc.message}", flush=True)
            if turn is None:
                return self.finish("failed", error="; ".join(errors), exit_code=1, turns=turn_no - 1)
            duration = int((time.monotonic() - started) * 1000)
            if not _LINE_START[0]:
                print(flush=True)
                _LINE_START[0] = True
            calls = [{"id": c.id, "name": c.name, "args": c.args} for c in turn.tool_calls]
            self.report(
                [{"kind": "assistant", "data": {"content": turn.text, "tool_calls": calls, "provider": used, "model": turn.model, "stop_reason": turn.stop_reason, "usage": turn.usage.to_dict(),
                                                "context": plan.to_dict() if plan is not None else None}}],
                usage=[{"provider": used, "model": turn.model or spec.get("model") or "", "usage": turn.usage.to_dict(), "duration_ms": duration}],
            )
            messages.append({"role": "assistant", "content": turn.text, "tool_calls": calls})
            if not turn.tool_calls:
                return self.finish("completed", final=turn.text, turns=turn_no)
            for call in turn.tool_calls:
                messages.append(self._tool(tools, call, offered_names={t.name for t in offered}))
        return self.finish("failed", error=f"stopped after {max_turns} turns without a final answer", exit_code=1, turns=max_turns)

    def _queue_input(self, line: str) -> None:
        with self._input_lock:
            self.inputs.append(line)

    def _tool(self, tools: Tools, call: ToolCall, *, offered_names: set[str]) -> dict[str, Any]:
        print(f"→ {call.name} {json.dumps(call.args, ensure_ascii=False)[:300]}", flush=True)
        decision = self.authorize(call.name, call.args, call.id)
        if decision["verdict"] != "allow":
            content, is_error = f"blocked by safety rule {decision.get('rule')}: {decision.get('reason')}", True
        elif call.name not in offered_names and (call.name in TOOL_NAMES or call.name in MESSAGE_TOOLS or call.name == SKILL_TOOL_SPEC.name):
            content, is_error = f"tool {call.name} is not available to this agent", True
        elif call.name == SKILL_TOOL_SPEC.name:
            content, is_error = self._skill_file(call.args)
        elif call.name in MESSAGE_TOOLS:
            content, is_error = self._message_tool(call.name, call.args)
        else:
            try:
                content, is_error = tools.run(call.name, call.args), False
            except ToolError as exc:
                content, is_error = str(exc), True
        print(("  ✗ " if is_error else "  ") + content[:500].replace("\n", "\n  "), flush=True)
        self.report([{"kind": "tool", "data": {"id": call.id, "name": call.name, "args": call.args, "result": content, "is_error": is_error, "decision": decision}}])
        return {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": content, "is_error": is_error}

    def _skill_file(self, args: dict[str, Any]) -> tuple[str, bool]:
        """Progressive disclosure: a skill's file (SKILL.md, references/, scripts/), read on demand."""
        try:
            result = self.client.call("skills.read", name=str(args.get("skill") or ""), path=str(args.get("path") or "SKILL.md"), project=self.spec.get("skills_project"))
        except RemoteError as exc:
            return f"read_skill_file: {exc}", True
        return str(result.get("content", result)), False

    def _message_tool(self, name: str, args: dict[str, Any]) -> tuple[str, bool]:
        try:
            if name == "send_message":
                self.client.call("agents.worker.message", id=self.id, token=self.spec["token"], op="send", text=str(args.get("text") or ""), to=args.get("to"))
                return "sent", False
            wait_s = float(args.get("wait_s") or 0)
            result = self.client.call("agents.worker.message", id=self.id, token=self.spec["token"], op="read", since=self.message_cursor, wait_s=wait_s)
        except RemoteError as exc:
            return f"{name}: {exc}", True
        self.message_cursor = result["next_since"]
        if not result["messages"]:
            return "no new messages", False
        return "\n".join(f"[{m['from']}{' → you' if m.get('to') else ''}] {m['text']}" for m in result["messages"]), False

    # -- CLI agents ------------------------------------------------------------------------
    def run_cli(self) -> int:
        spec = self.spec
        ref = spec["provider"]
        preset = load_provider(ref)
        options = dict(ref.get("options", {}))
        resume = self.session_id if spec.get("resume") and preset.supports_resume else None
        argv = preset.argv(task=spec["task"], model=spec.get("model"), session_id=resume, options=options)
        env = dict(os.environ)
        env.update(spec.get("env") or {})
        print(f"[godel] $ {' '.join(argv)}", flush=True)
        try:
            proc = subprocess.Popen(argv, cwd=spec["worktree"], env=env, stdin=subprocess.PIPE if getattr(preset, "accepts_input", False) else subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=None)
        except OSError as exc:
            return self.finish("failed", error=f"cannot run {argv[0]}: {exc.strerror or exc}", exit_code=127)

        def send_input(line: str) -> None:
            data = preset.input_line(line)
            if data is not None and proc.stdin is not None:
                try:
                    proc.stdin.write(data)
                    proc.stdin.flush()
                except OSError:
                    pass

        self.start_input_reader(send_input)
        parser = preset.parser()
        final, failed_text, model = "", "", spec.get("model") or ""
        assert proc.stdout is not None
        started = time.monotonic()
        for raw in proc.stdout:
            events = parser.feed(raw.decode(errors="replace").rstrip("\n"))
            final, failed_text, model = self._cli_events(events, final, failed_text, model, ref["name"], started)
            started = time.monotonic()
        final, failed_text, model = self._cli_events(parser.finish(), final, failed_text, model, ref["name"], started)
        code = proc.wait()
        if code == 0 and not failed_text:
            return self.finish("completed", final=final, exit_code=0)
        return self.finish("failed", final=final, error=failed_text or f"{argv[0]} exited with code {code}", exit_code=code or 1)

    def _cli_events(self, events, final, failed_text, model, provider, started):
        entries, usage, session = [], [], None
        for ev in events:
            if ev.model:
                model = ev.model
            if ev.kind == "text":
                print(ev.text, flush=True)
                entries.append({"kind": "assistant", "data": {"content": ev.text}})
            elif ev.kind == "tool_use":
                print(f"→ {ev.name} {json.dumps(ev.args, ensure_ascii=False)[:300]}", flush=True)
                entries.append({"kind": "tool", "data": {"id": ev.tool_id, "name": ev.name, "args": ev.args}})
            elif ev.kind == "tool_result":
                entries.append({"kind": "tool_result", "data": {"id": ev.tool_id, "result": ev.text, "is_error": ev.is_error}})
            elif ev.kind == "usage" and ev.usage is not None:
                usage.append({"provider": provider, "model": model, "usage": ev.usage.to_dict(), "duration_ms": int((time.monotonic() - started) * 1000)})
            elif ev.kind == "session" and ev.session_id:
                self.session_id = session = ev.session_id
            elif ev.kind == "result":
                final = ev.text or final
                if ev.is_error:
                    failed_text = ev.text or "the agent reported an error"
                entries.append({"kind": "result", "data": {"content": ev.text, "is_error": ev.is_error}})
            elif ev.kind == "error":
                print(f"[error] {ev.text}", flush=True)
                entries.append({"kind": "error", "data": {"error": ev.text}})
        if entries or usage or session:
            self.report(entries, usage=usage, session_id=session)
        return final, failed_text, model


def _secret_name(name: str) -> bool:
    upper = name.upper()
    return upper.endswith(("_API_KEY", "_TOKEN", "_SECRET")) or upper in {"GODEL_WORKER_TOKEN"}


_LINE_START = [True]  # whether the log is at the start of a line (after streamed text)


def _print_text(delta: str) -> None:
    if delta:
        sys.stdout.write(delta)
        sys.stdout.flush()
        _LINE_START[0] = delta.endswith("\n")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    worker = Worker(Path(args[0]))
    try:
        if worker.spec.get("mode") == "cli":
            return worker.run_cli()
        return worker.run_api()
    except DaemonGone as exc:
        print(f"[godel] {exc}", flush=True)
        return worker.finish("failed", error=str(exc), exit_code=1)
    except RemoteError as exc:
        print(f"[godel] godeld refused: {exc}", flush=True)
        return worker.finish("failed", error=str(exc), exit_code=1)
    except KeyboardInterrupt:
        return worker.finish("killed", error="interrupted", exit_code=130)
    except Exception as exc:  # noqa: BLE001 - a bug here is reported as the agent's error
        import traceback

        traceback.print_exc()
        return worker.finish("failed", error=f"worker error: {type(exc).__name__}: {exc}", exit_code=1)


if __name__ == "__main__":
    sys.exit(main())
