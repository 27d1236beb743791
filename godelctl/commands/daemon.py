"""godelctl daemon start|stop|reload."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time

import click

from godelctl.client import DaemonNotRunning
from godelctl.output import emit_json


def register_commands(cli):
    cli.add_command(daemon)


@click.group()
def daemon():
    """Start, stop or reload godeld."""


@daemon.command()
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="Config file for godeld.")
@click.option("--timeout", type=float, default=30, show_default=True, help="Seconds to wait for godeld to be ready.")
@click.option("--log-file", type=click.Path(dir_okay=False), help="Where godeld's output goes [default: $GODEL_HOME/godeld.log].")
@click.pass_obj
def start(settings, config_file, timeout, log_file):
    """Start godeld in the background and wait until it is ready."""
    try:
        info = settings.call("daemon.status")
    except DaemonNotRunning:
        info = None
    if info is not None:
        _report(settings, info, "godeld is already running")
        return
    settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    log_path = log_file or str(settings.home / "godeld.log")
    cmd = [sys.executable, "-m", "godeld", "run", "--home", str(settings.home), "--socket", str(settings.socket)]
    if config_file:
        cmd += ["--config", config_file]
    # godeld reports readiness with sd_notify; we listen for it as systemd would (no polling).
    ready = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    address = f"godelctl-{os.getpid()}-{time.monotonic_ns()}"
    ready.bind("\0" + address)
    env = dict(os.environ, NOTIFY_SOCKET="@" + address)
    with open(log_path, "ab") as log:
        log_start = log.tell()  # show only what this attempt wrote, not an older run's lines
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True)
    exited = os.pidfd_open(proc.pid)
    deadline = time.monotonic() + timeout
    try:
        if not settings.json:
            click.echo(f"starting godeld (pid {proc.pid}) …", err=True)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                proc.terminate()  # do not leave behind a daemon we said did not start
                proc.wait()
                click.echo(f"godelctl: godeld did not become ready within {timeout:g}s and was stopped; see {log_path}", err=True)
                sys.exit(1)
            readable, _, _ = select.select([ready, exited], [], [], remaining)
            if exited in readable:
                code = proc.wait()
                try:  # another `daemon start` may have won the race: that is a success
                    info = settings.call("daemon.status")
                except DaemonNotRunning:
                    info = None
                if info is not None:
                    _report(settings, info, "godeld is already running")
                    return
                click.echo(f"godelctl: godeld exited with status {code} before it was ready:", err=True)
                click.echo(_tail(log_path, log_start), err=True)
                sys.exit(1)
            if ready in readable and b"READY=1" in ready.recv(4096):
                break
    finally:
        os.close(exited)
        ready.close()
    _report(settings, settings.call("daemon.status"), "godeld started")


@daemon.command()
@click.option("--timeout", type=float, default=30, show_default=True, help="Seconds to wait for godeld to exit.")
@click.pass_obj
def stop(settings, timeout):
    """Stop godeld: in-flight requests finish, storage is flushed; waits until it has exited."""
    result = settings.call("daemon.shutdown")
    pid = result.get("pid")
    exited = _wait_exit(pid, timeout)
    if settings.json:
        emit_json({"stopped": exited, "pid": pid})
    elif exited:
        click.echo(f"godeld stopped (pid {pid})")
    if not exited:
        click.echo(f"godelctl: godeld (pid {pid}) is still running after {timeout:g}s", err=True)
        sys.exit(1)


@daemon.command()
@click.pass_obj
def reload(settings):
    """Re-read the config and plugins (like SIGHUP); a config with errors is refused."""
    result = settings.call("daemon.reload")
    if settings.json:
        emit_json(result)
        return
    changes = [f"{key}: {', '.join(result[key])}" for key in ("loaded", "reloaded", "removed", "failed") if result.get(key)]
    click.echo("reloaded" + (f" ({'; '.join(changes)})" if changes else ""))
    if result.get("restart_required"):
        click.echo(f"these settings take effect only after a restart: {', '.join(result['restart_required'])}", err=True)


def _wait_exit(pid: int | None, timeout: float) -> bool:
    if pid is None:
        return True
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([fd], [], [], timeout)
        return bool(readable)
    finally:
        os.close(fd)


def _report(settings, info, message):
    if settings.json:
        emit_json(info)
    else:
        click.echo(f"{message} (pid {info['pid']}, socket {info['socket']})")


def _tail(path: str, start: int, lines: int = 20) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(start, fh.tell() - 8192))
            return "\n".join(fh.read().decode(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""

