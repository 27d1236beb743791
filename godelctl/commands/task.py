"""godelctl task: add, list, show, cancel, retry, log, group — the persistent task queue."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import click

from godelctl.output import emit_json, table


def register_commands(cli):
    cli.add_command(task)


@click.group()
def task():
    """Queue shell commands and agent tasks: priorities, groups, dependencies (like pueue)."""


def _when(ms) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ms / 1000)) if ms else "-"


def _what(t) -> str:
    text = t.get("label") or (t["command"] if t["kind"] == "command" else f"agent: {t['task']}")
    return (text or "").splitlines()[0][:60] if text else ""


@task.command("add", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("-p", "--priority", type=int, default=0, show_default=True, help="Higher runs first; equal priorities run in the order added.")
@click.option("-g", "--group", default="default", show_default=True, help="The group it runs in (each group has its own parallel limit).")
@click.option("-a", "--after", "after", multiple=True, metavar="ID", help="Run only after this task completed (repeatable); fails if it fails.")
@click.option("--agent", "agent_task", metavar="TASK", help="Run TASK as an agent in a new worktree of --repo instead of a command.")
@click.option("--repo", default=".", show_default=True, help="The git repository of an agent task.")
@click.option("--provider", help="Provider of an agent task.")
@click.option("--model", help="Model of an agent task.")
@click.option("--script", "script_file", type=click.Path(exists=True, dir_okay=False), help="A scripted-provider script (YAML or JSON) for an agent task.")
@click.option("--swarm", help="Only an idle agent of this swarm may take it.")
@click.option("--max-attempts", type=int, default=1, show_default=True, help="Attempts before a failing task stays failed.")
@click.option("--label", help="A short name shown in lists.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def add(settings, priority, group, after, agent_task, repo, provider, model, script_file, swarm, max_attempts, label, command):
    """Queue COMMAND (run with /bin/sh -c in the current directory), or an agent task with --agent."""
    if bool(command) == bool(agent_task):
        raise click.UsageError("give either a COMMAND or --agent TASK")
    params = {"priority": priority, "group": group, "max_attempts": max_attempts}
    if after:
        params["depends_on"] = list(after)
    for key, value in (("swarm", swarm), ("label", label)):
        if value:
            params[key] = value
    if agent_task:
        params.update(task=agent_task, repo=str(Path(repo).expanduser().absolute()))
        for key, value in (("provider", provider), ("model", model)):
            if value:
                params[key] = value
        if script_file:
            from godelctl.commands.agents import _load_script

            params["script"] = _load_script(script_file)
    else:
        params.update(command=" ".join(command), cwd=os.getcwd())
    result = settings.call("tasks.submit", params)
    if settings.json:
        emit_json(result)
    else:
        click.echo(f"{result['id']}  {result['state']}")


@task.command("list")
@click.option("--state", "states", multiple=True, help="Only tasks in this state (repeatable): queued, running, completed, failed, cancelled.")
@click.option("-g", "--group", help="Only tasks of this group.")
@click.option("-n", "--limit", type=int, default=1000, show_default=True)
@click.pass_obj
def list_(settings, states, group, limit):
    """List tasks in the order they were added."""
    params = {"limit": limit}
    if states:
        params["state"] = list(states)
    if group:
        params["group"] = group
    result = settings.call("tasks.list", params)
    if settings.json:
        emit_json(result)
        return
    rows = []
    for t in result["tasks"]:
        state = "blocked" if t["blocked"] else t["state"]
        rows.append((t["id"], state, t["priority"], t["group"], t["attempts"], _when(t["started_at"]), _what(t)))
    table(("id", "state", "prio", "group", "tries", "started", "what"), rows)


@task.command("show")
@click.argument("task_id")
@click.pass_obj
def show(settings, task_id):
    """Show one task."""
    t = settings.call("tasks.get", {"id": task_id})
    if settings.json:
        emit_json(t)
        return
    for key in ("id", "state", "kind", "command", "task", "repo", "cwd", "priority", "group", "swarm", "label", "attempts", "max_attempts",
                "lease_owner", "agent_id", "pid", "error"):
        if t.get(key) not in (None, ""):
            click.echo(f"{key:<13} {t[key]}")
    if t["depends_on"]:
        click.echo(f"{'depends_on':<13} {', '.join(t['depends_on'])}")
    if t["waiting_on"]:
        click.echo(f"{'waiting_on':<13} {', '.join(t['waiting_on'])}")
    result = t.get("result")
    if isinstance(result, dict) and "exit_code" in result:
        click.echo(f"{'exit_code':<13} {result['exit_code']}")
        if result.get("output"):
            click.echo("\n" + result["output"].rstrip("\n"))
    elif result is not None:
        click.echo(f"{'result':<13} {json.dumps(result)}")


@task.command("cancel")
@click.argument("task_id")
@click.pass_obj
def cancel(settings, task_id):
    """Cancel a queued or running task (a running command is killed)."""
    t = settings.call("tasks.cancel", {"id": task_id})
    emit_json(t) if settings.json else click.echo(f"{task_id}  {t['state']}")


@task.command("retry")
@click.argument("task_id")
@click.pass_obj
def retry(settings, task_id):
    """Queue a failed or cancelled task again."""
    t = settings.call("tasks.retry", {"id": task_id})
    emit_json(t) if settings.json else click.echo(f"{task_id}  {t['state']}")


@task.command("log")
@click.argument("task_id")
@click.option("-n", "--bytes", "tail", type=int, default=0, help="Only the last N bytes.")
@click.pass_obj
def log(settings, task_id, tail):
    """Print a command task's output."""
    offset = -tail if tail else 0
    while True:
        chunk = settings.call("tasks.log", {"id": task_id, "offset": offset})
        if settings.json:
            emit_json({"offset": chunk["offset"], "data": chunk["data"]}, stream=True)
        else:
            sys.stdout.write(chunk["data"])
        offset = chunk["next_offset"]
        if not chunk["data"] or offset >= chunk["size"]:
            break


@task.command("group")
@click.argument("name", required=False)
@click.option("--parallel", type=int, help="Tasks of the group running at once (0 pauses it).")
@click.pass_obj
def group(settings, name, parallel):
    """List groups, or with NAME --parallel N create or change one."""
    if parallel is not None:
        if not name:
            raise click.UsageError("--parallel needs a group NAME")
        settings.call("tasks.set_group", {"name": name, "parallel": parallel})
    elif name:
        raise click.UsageError("give --parallel N to create or change a group")
    result = settings.call("tasks.groups")
    if settings.json:
        emit_json(result)
        return
    rows = [(g["name"], g["parallel"] if g["parallel"] else "paused", g["running"], g["queued"]) for g in result["groups"] if not name or g["name"] == name]
    table(("group", "parallel", "running", "queued"), rows)
