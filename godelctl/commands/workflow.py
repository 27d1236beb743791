"""godelctl workflow: validate, run (--follow), list, show, cancel, resume, approve, reject."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from godeld import protocol
from godelctl.client import DaemonNotRunning
from godelctl.output import duration, emit_json, table

FINAL = ("completed", "failed", "cancelled")


def register_commands(cli):
    cli.add_command(workflow)


@click.group()
def workflow():
    """Validate and run YAML workflows (DAGs of steps), durably."""


def _variables(pairs: tuple[str, ...]) -> dict:
    """--var k=v: the value is read as YAML, so numbers and booleans keep their type."""
    import yaml

    out = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="--var")
        try:
            out[key] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            out[key] = value
        if isinstance(out[key], (dict, list)) and not value.lstrip().startswith(("{", "[")):
            out[key] = value
    return out


def _print_errors(file: str | None, errors: list[dict]) -> None:
    for e in errors:
        where = ":".join(str(x) for x in (file or "<definition>", e.get("line"), e.get("column")) if x is not None)
        click.echo(f"{where}: {e['path'] or '(document)'}: {e['message']}", err=True)


@workflow.command("validate")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--var", "variables", multiple=True, metavar="NAME=VALUE", help="A variable given at run time (repeatable).")
@click.pass_obj
def validate(settings, file, variables):
    """Check FILE and report every error at once (file:line:column: path: message).

    Uses godeld's step kinds (plugins included) when it runs; otherwise the built-in ones."""
    path = str(Path(file).expanduser().absolute())
    params = {"file": path, "variables": _variables(variables)}
    try:
        result = settings.call("workflows.validate", params)
    except DaemonNotRunning:
        from godeld.workflows import spec

        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise click.ClickException(f"cannot read {path}: {exc.strerror or exc}") from None
        result = spec.validate(text, file=path, variables=params["variables"])
        result.pop("definition", None)
        click.echo("godelctl: godeld is not running; checked against the built-in step kinds", err=True)
    if settings.json:
        emit_json(result)
    elif result["valid"]:
        steps = (result.get("workflow") or {}).get("steps")
        click.echo(f"{file}: valid" + (f" ({len(steps)} steps)" if steps else ""))
    else:
        _print_errors(result.get("file") or path, result["errors"])
        click.echo(f"{file}: {len(result['errors'])} error(s)", err=True)
    if not result["valid"]:
        sys.exit(1)


@workflow.command("run")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--var", "variables", multiple=True, metavar="NAME=VALUE", help="Set a variable (repeatable); the value is read as YAML.")
@click.option("--repo", default=None, help="Repository for agent steps that name none [default: the current directory, if it is one].")
@click.option("-f", "--follow", is_flag=True, help="Show progress live and exit with the run's outcome (0: completed).")
@click.pass_obj
def run(settings, file, variables, repo, follow):
    """Start a run of the workflow in FILE."""
    cwd = Path.cwd()
    params = {"file": str(Path(file).expanduser().absolute()), "variables": _variables(variables), "cwd": str(cwd)}
    if repo:
        params["repo"] = str(Path(repo).expanduser().absolute())
    elif (cwd / ".git").exists():
        params["repo"] = str(cwd)
    if not follow:
        result = settings.call("workflows.run", params)
        if settings.json:
            emit_json(result)
        else:
            click.echo(f"{result['id']}  {result['name']}  {result['state']}")
        return
    with settings.client(timeout=None) as client:
        head = client.call("events.list", {"limit": 1, "tail": True})["last_seq"]
        result = client.call("workflows.run", params)
        if not settings.json:
            click.echo(f"{result['id']}  {result['name']}")
        _follow(settings, client, result["id"], head)


@workflow.command("resume")
@click.argument("run_id")
@click.option("-f", "--follow", is_flag=True, help="Show progress live and exit with the run's outcome.")
@click.pass_obj
def resume(settings, run_id, follow):
    """Run a failed or cancelled run again from where it stopped (completed steps are kept)."""
    with settings.client(timeout=None) as client:
        head = client.call("events.list", {"limit": 1, "tail": True})["last_seq"]
        result = client.call("workflows.resume", {"id": run_id})
        if not follow:
            emit_json(result) if settings.json else click.echo(f"{result['id']}  {result['name']}  {result['state']}")
            return
        _follow(settings, client, run_id, head)


def _follow(settings, client, run_id: str, since: int) -> None:
    """Print the run's events as they come; at the end its step table. Exit 1 unless completed."""
    client.call("events.subscribe", {"pattern": ["workflow:*"], "since": since})
    final = None
    try:
        for message in client.notifications():
            if message.get("method") == protocol.STOPPING_NOTIFICATION:
                click.echo("godelctl: godeld is stopping; the run goes on when it starts again", err=True)
                sys.exit(1)
            if message.get("method") != protocol.EVENT_NOTIFICATION:
                continue
            event = message.get("params") or {}
            data = event.get("data") or {}
            if data.get("workflowId") != run_id:
                continue
            if settings.json:
                emit_json({k: event.get(k) for k in ("seq", "type", "timestamp", "data")}, stream=True)
            else:
                line = _progress_line(event["type"], data)
                if line:
                    click.echo(line)
            if event["type"] == "workflow:complete":
                final = data["status"]
                break
    except BrokenPipeError:
        sys.stderr.close()
        return
    rec = client.call("workflows.get", {"id": run_id})
    if not settings.json:
        click.echo("")
        _show(rec)
    if (final or rec["state"]) != "completed":
        sys.exit(1)


def _progress_line(type_: str, d: dict) -> str | None:
    stamp = time.strftime("%H:%M:%S")
    step = d.get("stepId")
    if type_ == "workflow:start":
        return f"{stamp}  ▶ {d.get('name')}: {d.get('steps')} steps"
    if type_ == "workflow:step:start":
        return f"{stamp}  … {step} ({d.get('kind')}) attempt {d.get('attempt')}" + (" (resumed)" if d.get("resumed") else "")
    if type_ == "workflow:step:complete":
        return f"{stamp}  ✓ {step} in {duration((d.get('duration_ms') or 0) / 1000)}"
    if type_ == "workflow:step:failed":
        return f"{stamp}  ✗ {step}: {d.get('error')}" + (" — will retry" if d.get("will_retry") else "")
    if type_ == "workflow:step:retry":
        return f"{stamp}  ↻ {step}: attempt {d.get('attempt')} in {duration((d.get('delay_ms') or 0) / 1000)}"
    if type_ == "workflow:step:skipped":
        return f"{stamp}  - {step} skipped: {d.get('reason')}"
    if type_ == "workflow:step:cancelled":
        return f"{stamp}  ■ {step} cancelled: {d.get('reason')}"
    if type_ == "workflow:step:approval":
        return f"{stamp}  ? {step} waits for approval: {d.get('message')}  (godelctl workflow approve {d.get('workflowId')} {step})"
    if type_ == "workflow:complete":
        return f"{stamp}  ■ {d.get('status')}" + (f": {d.get('error')}" if d.get("error") else "")
    return None


@workflow.command("list")
@click.option("--state", "states", multiple=True, type=click.Choice(["pending", "running", "completed", "failed", "cancelled"]), help="Only runs in this state (repeatable).")
@click.option("-n", "--limit", default=50, show_default=True)
@click.pass_obj
def list_runs(settings, states, limit):
    """Runs, newest first."""
    params: dict = {"limit": limit}
    if states:
        params["state"] = list(states)
    runs = settings.call("workflows.list", params)["runs"]
    if settings.json:
        emit_json(runs)
        return
    rows = []
    for r in runs:
        took = duration((r["finished_at"] - r["started_at"]) / 1000) if r.get("finished_at") and r.get("started_at") else "-"
        rows.append((r["id"], r["name"], r["state"], time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["created_at"] / 1000)), took))
    table(("ID", "NAME", "STATE", "CREATED", "TOOK"), rows)


@workflow.command("show")
@click.argument("run_id")
@click.pass_obj
def show(settings, run_id):
    """A run and its step table: state, attempt, duration, error."""
    rec = settings.call("workflows.get", {"id": run_id})
    if settings.json:
        emit_json(rec)
        return
    _show(rec)


def _show(rec: dict) -> None:
    took = duration((rec["finished_at"] - rec["started_at"]) / 1000) if rec.get("finished_at") and rec.get("started_at") else "-"
    click.echo(f"{rec['id']}  {rec['name']}  {rec['state']}  took {took}" + (f"\n  error: {rec['error']}" if rec.get("error") else ""))
    rows = []
    for s in rec["steps"]:
        d = duration((s["finished_at"] - s["started_at"]) / 1000) if s.get("finished_at") and s.get("started_at") else "-"
        note = s.get("error") or s.get("reason") or ("waiting for approval" if s.get("waiting") else "")
        rows.append((s["id"], s.get("kind") or "", s["state"], s["attempts"], d, (note or "")[:80]))
    table(("STEP", "KIND", "STATE", "ATTEMPT", "DURATION", "NOTE"), rows)


@workflow.command("cancel")
@click.argument("run_id")
@click.pass_obj
def cancel(settings, run_id):
    """Cancel a run; its running steps are stopped."""
    rec = settings.call("workflows.cancel", {"id": run_id})
    emit_json(rec) if settings.json else click.echo(f"{rec['id']}  {rec['state']}")


def _decide(settings, method: str, run_id: str, step: str, comment: str | None) -> None:
    import getpass

    params = {"id": run_id, "step": step, "by": getpass.getuser()}
    if comment:
        params["comment"] = comment
    result = settings.call(method, params)
    emit_json(result) if settings.json else click.echo(f"{run_id} {step}: {'approved' if result['approved'] else 'rejected'}")


@workflow.command("approve")
@click.argument("run_id")
@click.argument("step")
@click.option("-m", "--comment", help="Why.")
@click.pass_obj
def approve(settings, run_id, step, comment):
    """Approve the approval step STEP of a run."""
    _decide(settings, "workflows.approve", run_id, step, comment)


@workflow.command("reject")
@click.argument("run_id")
@click.argument("step")
@click.option("-m", "--comment", help="Why.")
@click.pass_obj
def reject(settings, run_id, step, comment):
    """Reject the approval step STEP of a run (the step fails)."""
    _decide(settings, "workflows.reject", run_id, step, comment)
