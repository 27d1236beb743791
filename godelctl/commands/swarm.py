"""godelctl swarm: create, list, show, stop, scale, merge, message; and godelctl do."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from godeld import protocol
from godelctl.output import duration, emit_json, table



def register_commands(cli):
    cli.add_command(swarm)
    cli.add_command(do)


@click.group()
def swarm():
    """Run many agents on one job with a strategy (parallel, map-reduce, pipeline, tree)."""


def _script(path: str | None):
    if not path:
        return None
    import yaml

    try:
        return yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise click.BadParameter(f"{path}: {exc}", param_hint="--script") from None


def _params(task, strategy, agents, repo, provider, model, script, team, name, items, options) -> dict:
    params: dict = {"repo": str(Path(repo).expanduser().absolute())}
    for key, value in (("task", task), ("strategy", strategy), ("agents", agents), ("provider", provider), ("model", model), ("name", name)):
        if value is not None:
            params[key] = value
    if script:
        params["script"] = _script(script)
    if team:
        params["file"] = str(Path(team).expanduser().absolute())
    opts: dict = {}
    for item in options:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--option")
        try:
            opts[key] = json.loads(value)
        except ValueError:
            opts[key] = value
    if items:
        opts["items"] = list(items)
    if opts:
        params["options"] = opts
    return params


def _common(f):
    for decorator in reversed([
        click.option("-s", "--strategy", default=None, help="parallel, map-reduce, pipeline, tree (or a plugin's)."),
        click.option("-n", "--agents", type=int, default=None, help="How many agents [default: 3; the team file's initialAgents]."),
        click.option("--repo", default=".", show_default=True, help="The git repository the agents work on."),
        click.option("-p", "--provider", help="Provider of the agents."),
        click.option("-m", "--model", help="Model of the agents."),
        click.option("--script", type=click.Path(exists=True, dir_okay=False), help="Scripted-provider script (YAML: a list, or a mapping by role)."),
        click.option("--item", "items", multiple=True, help="A map-reduce item (repeatable)."),
        click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="A strategy option (JSON value or text; repeatable)."),
    ]):
        f = decorator(f)
    return f


@swarm.command("create")
@click.argument("task", required=False)
@_common
@click.option("-f", "--file", "team", type=click.Path(exists=True, dir_okay=False), help="A Godel team file (kind: Team).")
@click.option("--name", help="A name for the swarm.")
@click.option("-w", "--wait", is_flag=True, help="Follow it until it ends (like godelctl do).")
@click.pass_obj
def create(settings, task, strategy, agents, repo, provider, model, script, items, options, team, name, wait):
    """Start a swarm on TASK (or the task of a team file)."""
    if not task and not team:
        raise click.UsageError("give a TASK or a team file (-f)")
    params = _params(task, strategy, agents, repo, provider, model, script, team, name, items, options)
    since = _head(settings)
    result = settings.call("swarms.create", params)
    if wait:
        _follow(settings, result["id"], since)
        return
    emit_json(result) if settings.json else click.echo(f"{result['id']}  {result['name']}  {result['strategy']}  {result['state']}")


@click.command("do")
@click.argument("task")
@_common
@click.pass_obj
def do(settings, task, strategy, agents, repo, provider, model, script, items, options):
    """Run a swarm on TASK in a repository: live progress per agent, then results, diffs and cost."""
    params = _params(task, strategy or "parallel", agents if agents is not None else 4, repo, provider, model, script, None, None, items, options)
    since = _head(settings)
    result = settings.call("swarms.create", params)
    _follow(settings, result["id"], since, diffs=True)


def _head(settings) -> int:
    """The event log's head now: following from here misses nothing the swarm does."""
    return settings.call("events.list", {"limit": 1, "tail": True})["last_seq"]


def _follow(settings, swarm_id: str, since: int, diffs: bool = False) -> None:
    """Print each agent's state changes as they happen (events, from `since`), then the summary.
    Exit 1 unless the swarm completed."""
    roles: dict[str, str] = {}
    with settings.client(timeout=None) as client:
        client.call("events.subscribe", {"pattern": ["agent:state", "swarm:complete"], "since": since})
        for message in client.notifications():
            if message.get("method") == protocol.STOPPING_NOTIFICATION:
                click.echo("godelctl: godeld is stopping; the swarm goes on when it starts again", err=True)
                sys.exit(1)
            event = message.get("params") or {}
            if message.get("method") != protocol.EVENT_NOTIFICATION or (event.get("metadata") or {}).get("swarmId") != swarm_id:
                continue
            data = event.get("data") or {}
            if event["type"] == "swarm:complete":
                break
            if settings.json:
                continue
            agent_id = data.get("agentId", "")
            if agent_id not in roles:
                roles.update(client.call("swarms.get", {"id": swarm_id})["roles"])
            extra = ""
            if data.get("state") == "completed":
                extra = f": {(client.call('agents.get', {'id': agent_id}).get('final') or '')[:100]}"
            elif data.get("error"):
                extra = f": {data['error']}"
            click.echo(f"{time.strftime('%H:%M:%S')}  {agent_id[-8:]}  {roles.get(agent_id, ''):<10} {data.get('state')}{extra}")
        rec = client.call("swarms.get", {"id": swarm_id})
        if settings.json:
            emit_json(rec)
        else:
            _summary(client, rec, diffs)
    if rec["state"] != "completed":
        sys.exit(1)


def _summary(client, rec: dict, diffs: bool) -> None:
    took = duration((rec["finished_at"] - rec["created_at"]) / 1000) if rec.get("finished_at") else "-"
    u = rec["usage"]
    click.echo(f"\nswarm {rec['id']}  {rec['name']}  {rec['strategy']}  {rec['state']}  in {took}  "
               f"{u['input_tokens']:,} in / {u['output_tokens']:,} out tokens  ${u['cost_usd']:.4f}")
    if rec.get("error"):
        click.echo(f"  error: {rec['error']}")
    for i, result in enumerate(rec.get("results") or []):
        text = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
        click.echo(f"  result {i}: {text[:500]}")
    if diffs:
        for agent_id in rec["agents"]:
            d = client.call("agents.diff", {"id": agent_id})
            if d.get("files"):
                click.echo(f"\n  {agent_id}  ({rec['roles'].get(agent_id, '')}) {len(d['files'])} file(s):")
                for f in d["files"]:
                    click.echo(f"    {f['status']}  {f['path']}")
        click.echo(f"\nmerge the branches: godelctl swarm merge {rec['id']}")


@swarm.command("list")
@click.option("--state", "states", multiple=True, help="Only swarms in this state (repeatable).")
@click.pass_obj
def list_swarms(settings, states):
    """Swarms, newest first."""
    params = {"state": list(states)} if states else {}
    swarms = settings.call("swarms.list", params)["swarms"]
    if settings.json:
        emit_json(swarms)
        return
    table(("ID", "NAME", "STRATEGY", "STATE", "AGENTS", "CREATED"),
          [(s["id"], s["name"], s["strategy"], s["state"], len(s["agents"]), time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s["created_at"] / 1000))) for s in swarms])


@swarm.command("show")
@click.argument("swarm_id")
@click.pass_obj
def show(settings, swarm_id):
    """A swarm: its agents with their roles and states, results, merge, cost."""
    rec = settings.call("swarms.get", {"id": swarm_id})
    if settings.json:
        emit_json(rec)
        return
    with settings.client() as client:
        rows = []
        for agent_id in rec["agents"]:
            a = client.call("agents.get", {"id": agent_id})
            rows.append((agent_id, rec["roles"].get(agent_id, ""), a["state"], a.get("branch") or "", f"${(a.get('usage') or {}).get('cost_usd', 0):.4f}"))
        table(("AGENT", "ROLE", "STATE", "BRANCH", "COST"), rows)
        _summary(client, rec, diffs=False)
    if rec.get("merge"):
        m = rec["merge"]
        click.echo(f"  merge: {m['branch']}: {len(m['merged'])} merged, {len(m['conflicts'])} conflict(s)")


@swarm.command("stop")
@click.argument("swarm_id")
@click.pass_obj
def stop(settings, swarm_id):
    """Stop a swarm and kill its agents."""
    rec = settings.call("swarms.stop", {"id": swarm_id})
    emit_json(rec) if settings.json else click.echo(f"{rec['id']}  {rec['state']}")


@swarm.command("scale")
@click.argument("swarm_id")
@click.argument("agents", type=int)
@click.pass_obj
def scale(settings, swarm_id, agents):
    """Grow a running parallel swarm to AGENTS agents."""
    rec = settings.call("swarms.scale", {"id": swarm_id, "agents": agents})
    emit_json(rec) if settings.json else click.echo(f"{rec['id']}  {len(rec['agents'])} agents")


@swarm.command("merge")
@click.argument("swarm_id")
@click.option("--resolve", is_flag=True, default=None, help="Hand each conflict to a resolver agent.")
@click.pass_obj
def merge(settings, swarm_id, resolve):
    """Merge the swarm's branches into godel/swarm-ID; conflicts are listed, never left open."""
    params = {"id": swarm_id, **({"resolve": True} if resolve else {})}
    result = settings.call("swarms.merge", params)
    if settings.json:
        emit_json(result)
    else:
        click.echo(f"{result['branch']}: merged {len(result['merged'])} branch(es), head {result['head'][:12]}")
        for r in result.get("resolved") or []:
            click.echo(f"  resolved by agent {r['agent']}: {r['branch']}: {', '.join(r['files'])}")
        for c in result["conflicts"]:
            click.echo(f"  conflict: {c['branch']}: {', '.join(c['files']) or c.get('error', '')}")
    if result["conflicts"]:
        sys.exit(1)


@swarm.command("message")
@click.argument("swarm_id")
@click.argument("text")
@click.option("--to", help="One agent of the swarm.")
@click.pass_obj
def message(settings, swarm_id, text, to):
    """Post a message to a swarm's agents."""
    params = {"id": swarm_id, "text": text}
    if to:
        params["to"] = to
    result = settings.call("swarms.message", params)
    emit_json(result) if settings.json else click.echo(f"sent (seq {result['seq']})")
