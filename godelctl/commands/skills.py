"""godelctl skills: list, show, match, activate, deactivate, active, reload, prompt."""

from __future__ import annotations

from pathlib import Path

import click

from godelctl.output import emit_json, table


def register_commands(cli):
    cli.add_command(skills)


project_option = click.option(
    "--project", type=click.Path(file_okay=False), default=None,
    help="Project whose .godel/skills and .claude/skills come first [default: the current directory].",
)


def _project(project: str | None) -> str:
    return str(Path(project or ".").expanduser().absolute())


def _target(agent: str | None, swarm: str | None) -> dict:
    if (agent is None) == (swarm is None):
        raise click.UsageError("give exactly one of --agent ID or --swarm ID")
    return {"agent": agent} if agent is not None else {"swarm": swarm}


def _short(text: str, width: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


@click.group()
def skills():
    """Agent Skills: list, match to a task, activate for an agent or swarm."""


@skills.command("list")
@project_option
@click.option("--source", default=None, help="Only skills of this source (project, user, paths, builtin, or a plugin's).")
@click.pass_obj
def list_(settings, project, source):
    """Skills by name, their source, and what each shadows; then the malformed ones."""
    params = {"project": _project(project)}
    if source:
        params["source"] = source
    result = settings.call("skills.list", params)
    if settings.json:
        emit_json(result)
        return
    rows = []
    for s in result["skills"]:
        shadows = ", ".join(f"{x['source']}:{x['path']}" for x in s["shadows"])
        rows.append((s["name"], s["source"], _short(s["description"], 60), f"shadows {shadows}" if shadows else ""))
    table(("NAME", "SOURCE", "DESCRIPTION", ""), rows)
    for e in result["errors"]:
        where = f"{e['path']}:{e['line']}" if e.get("line") else e["path"]
        click.echo(f"error: {where}: {e['message']}", err=True)
    for w in result.get("warnings", []):
        where = f"{w['path']}:{w['line']}" if w.get("line") else w["path"]
        click.echo(f"warning: {where}: {w['message']}", err=True)


@skills.command("show")
@click.argument("name")
@project_option
@click.pass_obj
def show(settings, name, project):
    """A skill's front matter, files and instructions."""
    skill = settings.call("skills.get", {"name": name, "project": _project(project)})
    if settings.json:
        emit_json(skill)
        return
    click.echo(f"name:        {skill['name']}")
    click.echo(f"source:      {skill['source']}  ({skill['path']})")
    click.echo(f"description: {skill['description']}")
    for key in ("license", "compatibility"):
        if skill.get(key):
            click.echo(f"{key + ':':<13}{skill[key]}")
    if skill.get("allowed_tools"):
        click.echo(f"allowed:     {' '.join(skill['allowed_tools'])}")
    for shadow in skill.get("shadows", []):
        click.echo(f"shadows:     {shadow['source']}: {shadow['path']}")
    if skill.get("files"):
        click.echo("files:       " + ", ".join(skill["files"]))
    click.echo("")
    click.echo(skill["body"])


@skills.command("match")
@click.argument("task", nargs=-1, required=True)
@click.option("--limit", type=click.IntRange(min=0), default=5, show_default=True, help="Most skills to show.")
@project_option
@click.pass_obj
def match(settings, task, limit, project):
    """Skills ranked for TASK, with the reasons for each score."""
    result = settings.call("skills.match", {"text": " ".join(task), "limit": limit, "project": _project(project)})
    if settings.json:
        emit_json(result)
        return
    if not result["matches"]:
        click.echo("no skill matches")
    for m in result["matches"]:
        click.echo(f"{m['score']:>8.3f}  {m['name']}")
        for reason in m["reasons"]:
            click.echo(f"          {reason}")


@skills.command("activate")
@click.argument("name")
@click.option("--agent", default=None, help="Agent id.")
@click.option("--swarm", default=None, help="Swarm id.")
@project_option
@click.pass_obj
def activate(settings, name, agent, swarm, project):
    """Activate skill NAME for an agent or a swarm: its instructions join their prompt."""
    params = {"name": name, **_target(agent, swarm), "project": _project(project)}
    result = settings.call("skills.activate", params)
    if settings.json:
        emit_json(result)
    else:
        state = "activated" if result["changed"] else "already active"
        click.echo(f"{name}: {state} for {result['scope']} {result['target']}")


@skills.command("deactivate")
@click.argument("name")
@click.option("--agent", default=None, help="Agent id.")
@click.option("--swarm", default=None, help="Swarm id.")
@click.pass_obj
def deactivate(settings, name, agent, swarm):
    """Deactivate skill NAME for an agent or a swarm."""
    result = settings.call("skills.deactivate", {"name": name, **_target(agent, swarm)})
    if settings.json:
        emit_json(result)
    else:
        click.echo(f"{name}: deactivated for {result['scope']} {result['target']}")


@skills.command("active")
@click.option("--agent", default=None, help="Only this agent's activations.")
@click.option("--swarm", default=None, help="Only this swarm's activations.")
@project_option
@click.pass_obj
def active(settings, agent, swarm, project):
    """Which skills are active for which agents and swarms."""
    params = {"project": _project(project)}
    if agent:
        params["agent"] = agent
    if swarm:
        params["swarm"] = swarm
    result = settings.call("skills.active", params)
    if settings.json:
        emit_json(result)
        return
    table(("NAME", "SCOPE", "TARGET", ""), [(a["name"], a["scope"], a["target"], "missing" if a["missing"] else "") for a in result["active"]])


@skills.command("reload")
@click.pass_obj
def reload(settings):
    """Scan the skill directories again now (godeld also watches them)."""
    result = settings.call("skills.reload", {})
    if settings.json:
        emit_json(result)
        return
    click.echo(f"{result['skills']} skill(s), {len(result['errors'])} error(s)")
    for e in result["errors"]:
        where = f"{e['path']}:{e['line']}" if e.get("line") else e["path"]
        click.echo(f"error: {where}: {e['message']}", err=True)


@skills.command("prompt")
@click.option("--agent", default=None, help="Include the bodies of this agent's active skills.")
@click.option("--swarm", default=None, help="Include the bodies of this swarm's active skills.")
@click.option("--task", default=None, help="Also suggest the skills that match this task.")
@project_option
@click.pass_obj
def prompt(settings, agent, swarm, task, project):
    """The skills text an agent would get in its prompt."""
    params = {"project": _project(project)}
    for key, value in (("agent", agent), ("swarm", swarm), ("task", task)):
        if value:
            params[key] = value
    result = settings.call("skills.prompt", params)
    if settings.json:
        emit_json(result)
    else:
        click.echo(result["prompt"], nl=False)
