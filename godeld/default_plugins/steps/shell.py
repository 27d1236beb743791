"""The `shell` step kind: `run: COMMAND` (a string for /bin/sh -c, or a list of argv).

The command runs in its own process group (so a timeout or a cancel stops everything it
started), in the workflow's directory or `cwd`, with the workflow's and the step's `env` and
GODEL_WORKFLOW_ID, GODEL_STEP_ID, GODEL_ATTEMPT and GODEL_OUTPUT. Outputs: `stdout`, `stderr`,
`exit_code`, and every `name=value` line the command writes to the file named by $GODEL_OUTPUT
(GitHub Actions style; `name<<EOF` … `EOF` for several lines). A declared output not written there
is taken from stdout when stdout is a JSON object that has it. A non-zero exit fails the attempt.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import trio

from godeld import hookimpl
from godeld.agents import procs
from godeld.workflows.kinds import StepFailed, StepRun

MAX_CAPTURE = 1 << 20  # bytes read from each pipe; the rest is drained and dropped
MAX_KEPT = 64 * 1024  # characters of stdout/stderr kept in the step's outputs
KILL_GRACE_S = 2.0


def parse_output_file(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, _, delim = line.partition("<<")
            body = []
            while i < len(lines) and lines[i] != delim:
                body.append(lines[i])
                i += 1
            i += 1
            out[name.strip()] = "\n".join(body)
        elif "=" in line:
            name, _, value = line.partition("=")
            out[name.strip()] = value
    return out


async def _read(stream: trio.abc.ReceiveStream, sink: bytearray) -> None:
    while True:
        chunk = await stream.receive_some(65536)
        if not chunk:
            return
        if len(sink) < MAX_CAPTURE:
            sink += chunk[: MAX_CAPTURE - len(sink)]


def _tail(data: bytearray) -> str:
    text = data.decode("utf-8", "replace")
    return text if len(text) <= MAX_KEPT else "…" + text[-MAX_KEPT:]


class ShellKind:
    fields = frozenset({"run", "shell", "cwd"})
    resumable = False

    async def run(self, step: StepRun) -> dict[str, Any]:
        spec = step.spec
        command = spec["run"]
        if isinstance(command, list):
            argv = [str(a) for a in command]
        else:
            argv = [spec.get("shell") or "/bin/sh", "-c", str(command)]
        cwd = (step.cwd / spec["cwd"]) if spec.get("cwd") else step.cwd
        if not cwd.is_dir():
            raise StepFailed(f"cwd {cwd} is not a directory", retry=False)
        outdir = Path(step.daemon.config.home) / "workflows" / step.run_id
        outdir.mkdir(parents=True, exist_ok=True)
        outfile = outdir / f"{step.step_id}.{step.attempt}.out"
        env = {**os.environ, **step.env, "GODEL_WORKFLOW_ID": step.run_id, "GODEL_STEP_ID": step.step_id, "GODEL_ATTEMPT": str(step.attempt), "GODEL_OUTPUT": str(outfile),
               **({"GODEL_FEEDBACK": step.feedback} if step.feedback else {})}
        try:
            proc = await trio.lowlevel.open_process(argv, cwd=str(cwd), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            raise StepFailed(f"cannot run {argv[0]}: {exc.strerror or exc}", retry=False) from None
        step.data.update(pid=proc.pid, pid_start=procs.start_time(proc.pid))
        stdout, stderr = bytearray(), bytearray()
        try:
            async with trio.open_nursery() as nursery:
                # Persisted beside the run, not before it: a godeld restarted after a crash finds
                # the process group and stops it before the step's next attempt.
                nursery.start_soon(step.save)
                nursery.start_soon(_read, proc.stdout, stdout)
                nursery.start_soon(_read, proc.stderr, stderr)
                await proc.wait()
        except BaseException:
            with trio.CancelScope(shield=True):
                await _stop(proc)
            raise
        finally:
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    with trio.CancelScope(shield=True):
                        await stream.aclose()
        procs.signal_group(proc.pid, signal.SIGKILL)  # anything the command left running in its group
        outputs: dict[str, Any] = {"stdout": _tail(stdout).rstrip("\n"), "stderr": _tail(stderr).rstrip("\n"), "exit_code": proc.returncode}
        try:
            outputs.update(parse_output_file(outfile.read_text(errors="replace")))
            outfile.unlink()
        except FileNotFoundError:
            pass
        missing = [name for name in step.outputs_declared if name not in outputs]
        if missing and outputs["stdout"].lstrip().startswith("{"):
            try:
                parsed = json.loads(outputs["stdout"])
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                outputs.update({k: parsed[k] for k in missing if k in parsed})
        if proc.returncode != 0:
            why = f"killed by signal {signal.Signals(-proc.returncode).name}" if proc.returncode < 0 else f"exit code {proc.returncode}"
            last = (outputs["stderr"] or outputs["stdout"]).strip().splitlines()[-1:] or [""]
            raise StepFailed(f"{why}" + (f": {last[0][:300]}" if last[0] else ""), output=outputs)
        return outputs


async def _stop(proc: trio.Process) -> None:
    """SIGTERM the command's process group, SIGKILL what is left after a grace period."""
    if proc.returncode is None:
        procs.signal_group(proc.pid, signal.SIGCONT)
        procs.signal_group(proc.pid, signal.SIGTERM)
        with trio.move_on_after(KILL_GRACE_S):
            await proc.wait()
    procs.signal_group(proc.pid, signal.SIGKILL)
    await proc.wait()


@hookimpl
def register_step_kinds(register):
    register("shell", ShellKind())
