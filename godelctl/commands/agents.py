"""godelctl agents: spawn, list, show, logs, pause, resume, kill, send, diff, rm, approve, deny;
and godelctl gc."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from godelctl.output import duration, emit_json, table

FINAL = ("completed", "failed", "killed", "interrupted")


def register_commands(cli):
    cli.add_command(agents)
    cli.add_command(gc)


@click.group()
def agents():
    """Run and control agents, each in its own git worktree."""


def _load_script(path: str):
    text = Path(path).read_text()
    if path.endswith(".json"):
        return json.loads(text)
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise click.BadParameter(f"{path}: {exc}", param_hint="--script") from None


@agents.command("spawn")
@click.argument("task")
@click.option("--repo", default=".", show_default=True, help="The git repository to work on.")
@click.option("-p", "--provider", help="Provider (scripted, openai, anthropic, claude, codex, aider, gemini, command, ...).")
@click.option("-m", "--model", help="Model name for the provider.")
@click.option("--script", "script_file", type=click.Path(exists=True, dir_okay=False), help="A scripted-provider script (YAML or JSON list of steps).")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="provider_options entry (e.g. base_url=http://localhost:8000/v1). Repeatable.")
@click.option("--base", help="Branch or commit to start from [default: HEAD].")
@click.option("--budget-usd", type=float, help="Stop the agent when it has spent this much.")
@click.option("--budget-tokens", type=int, help="Stop the agent when it has used this many tokens.")
@click.option("--tool", "tools", multiple=True, help="Allow only these tools (repeatable).")
@click.option("--setup", help="A command run in the new worktree before the agent starts.")
@click.option("--dry-run", is_flag=True, help="Only show the projected cost.")
@click.option("-w", "--wait", is_flag=True, help="Wait for the agent to finish, showing its progress.")
@click.pass_obj
def spawn(settings, task, repo, provider, model, script_file, options, base, budget_usd, budget_tokens, tools, setup, dry_run, wait):
    """Start an agent on TASK."""
    params = {"repo": str(Path(repo).expanduser().absolute()), "task": task}
    for key, value in (("provider", provider), ("model", model), ("base", base), ("setup", setup)):
        if value:
            params[key] = value
    if script_file:
        params["script"] = _load_script(script_file)
    if options:
        opts = {}
        for item in options:
            key, sep, value = item.partition("=")
            if not sep:
                raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--option")
            opts[key] = value
        params["provider_options"] = opts
    budget = {k: v for k, v in (("max_cost_usd", budget_usd), ("max_tokens", budget_tokens)) if v is not None}
    if budget:
        params["budget"] = budget
    if tools:
        params["tools"] = list(tools)
    if dry_run:
        params["dry_run"] = True
    result = settings.call("agents.spawn", params)
    if dry_run:
        if settings.json:
            emit_json(result)
        else:
            p = result["projected"]
            click.echo(f"provider {result['provider']}, model {result['model'] or '-'}: about {p['input_tokens']:,} input + {p['output_tokens']:,} output tokens, ${p['cost_usd']:.4f} ({p['basis']})")
        return
    if not wait:
        if settings.json:
            emit_json(result)
        else:
            click.echo(f"{result['id']}  {result['state']}  branch {result['branch']}")
        return
    _wait(settings, result["id"])


def _wait(settings, agent_id: str) -> None:
    """Follow an agent's output until it ends; then its summary. Exit 1 unless it completed."""
    offset = 0
    with settings.client(timeout=None) as client:
        while True:
            chunk = client.call("agents.logs", {"id": agent_id, "offset": offset, "wait_s": 2.0})
            if chunk["data"] and not settings.json:
                sys.stdout.write(chunk["data"])
                sys.stdout.flush()
            offset = chunk["next_offset"]
            if chunk["eof"]:
                break
        rec = client.call("agents.get", {"id": agent_id})
    if settings.json:
        emit_json(rec)
    else:
        _summary(rec)
    if rec["state"] != "completed":
        sys.exit(1)


def _summary(rec) -> None:
    u = rec["usage"]
    took = ""
    if rec.get("started_at") and rec.get("finished_at"):
        took = f" in {duration((rec['finished_at'] - rec['started_at']) / 1000)}"
    click.echo(f"\nagent {rec['id']} {rec['state']}{took}: {u['input_tokens']:,} in / {u['output_tokens']:,} out tokens, ${u['cost_usd']:.4f}")
    if rec.get("error"):
        click.echo(f"error: {rec['error']}")
    art = rec.get("artifacts") or {}
    if art.get("stat"):
        click.echo(f"branch {rec['branch']}: {len(art.get('commits', []))} commit(s), {art['stat']}")


@agents.command("list")
@click.option("--state", "states", multiple=True, help="Only agents in this state (repeatable).")
@click.pass_obj
def list_(settings, states):
    """List agents."""
    result = settings.call("agents.list", {"state": list(states)} if states else {})
    if settings.json:
        emit_json(result)
        return
    rows = []
    for a in result["agents"]:
        u = a["usage"]
        rows.append((a["id"], a["state"], a["provider"], a["model"] or "-", f"{u['input_tokens'] + u['output_tokens']:,}", f"${u['cost_usd']:.4f}", (a["task"] or "").splitlines()[0][:50] if a["task"] else ""))
    table(("id", "state", "provider", "model", "tokens", "cost", "task"), rows)


@agents.command("show")
@click.argument("agent_id")
@click.pass_obj
def show(settings, agent_id):
    """Show one agent."""
    rec = settings.call("agents.get", {"id": agent_id})
    if settings.json:
        emit_json(rec)
        return
    for key in ("id", "state", "provider", "model", "repo", "branch", "worktree", "pid", "exit_code", "error", "stuck", "session_id"):
        if rec.get(key) is not None:
            click.echo(f"{key:<11} {rec[key]}")
    u = rec["usage"]
    click.echo(f"{'usage':<11} {u['input_tokens']:,} in, {u['output_tokens']:,} out, {u['cache_read_tokens']:,} cache read, ${u['cost_usd']:.4f}")
    click.echo(f"{'task':<11} {rec['task']}")
    if rec.get("isolation") and not rec["isolation"]["ok"]:
        click.echo("isolation   VIOLATED: " + "; ".join(rec["isolation"]["problems"]))
    if rec.get("final"):
        click.echo(f"\n{rec['final']}")


@agents.command("logs")
@click.argument("agent_id")
@click.option("-f", "--follow", is_flag=True, help="Keep printing output until the agent ends.")
@click.option("-n", "--bytes", "tail", type=int, default=0, help="Start with only the last N bytes.")
@click.pass_obj
def logs(settings, agent_id, follow, tail):
    """Print an agent's output."""
    offset = -tail if tail else 0
    with settings.client(timeout=None) as client:
        while True:
            chunk = client.call("agents.logs", {"id": agent_id, "offset": offset, "wait_s": 2.0 if follow else 0.0})
            if settings.json:
                if chunk["data"]:
                    emit_json({"offset": chunk["offset"], "data": chunk["data"]}, stream=True)
            else:
                sys.stdout.write(chunk["data"])
                sys.stdout.flush()
            offset = chunk["next_offset"]
            if chunk["eof"] or (not follow and chunk["next_offset"] >= chunk["size"]):
                break


def _simple(name: str, method: str, help_text: str, extra=None):
    @click.argument("agent_id")
    @click.pass_obj
    def command(settings, agent_id, **kwargs):
        params = {"id": agent_id, **{k: v for k, v in kwargs.items() if v not in (None, False)}}
        result = settings.call(method, params)
        if settings.json:
            emit_json(result)
        elif isinstance(result, dict) and "state" in result:
            click.echo(f"{agent_id}  {result['state']}")
        else:
            click.echo(json.dumps(result))

    command.__doc__ = help_text
    for option in extra or []:
        command = option(command)
    agents.command(name)(command)


_simple("pause", "agents.pause", "Pause a running agent (SIGSTOP to its process group).")
_simple("resume", "agents.resume", "Resume a paused agent, or restart an interrupted one.")
_simple("kill", "agents.kill", "Kill an agent (SIGTERM, then SIGKILL).", [click.option("--reason")])
_simple("approve", "agents.approve", "Allow an action the agent is waiting on.", [click.option("--approval"), click.option("--note")])
_simple("deny", "agents.deny", "Refuse an action the agent is waiting on.", [click.option("--approval"), click.option("--note")])


@agents.command("send")
@click.argument("agent_id")
@click.argument("text")
@click.pass_obj
def send(settings, agent_id, text):
    """Send a line of input to a running agent."""
    result = settings.call("agents.send", {"id": agent_id, "text": text})
    if settings.json:
        emit_json(result)


@agents.command("diff")
@click.argument("agent_id")
@click.option("--stat", "stat_only", is_flag=True, help="Only the changed files.")
@click.pass_obj
def diff(settings, agent_id, stat_only):
    """Show an agent's changes against its base."""
    result = settings.call("agents.diff", {"id": agent_id})
    if settings.json:
        emit_json(result)
    elif stat_only:
        for f in result["files"]:
            click.echo(f"{f['status']}\t{f['path']}")
    else:
        sys.stdout.write(result["diff"])


@agents.command("transcript")
@click.argument("agent_id")
@click.pass_obj
def transcript(settings, agent_id):
    """Show what the agent said and did, turn by turn."""
    result = settings.call("agents.transcript", {"id": agent_id})
    if settings.json:
        emit_json(result)
        return
    for e in result["entries"]:
        d = e["data"] or {}
        if e["kind"] == "tool":
            mark = "✗" if d.get("is_error") else "→"
            click.echo(f"{mark} {d.get('name')} {json.dumps(d.get('args'), ensure_ascii=False)[:200]}")
            if d.get("result"):
                click.echo("    " + str(d["result"])[:400].replace("\n", "\n    "))
        else:
            click.echo(f"[{e['kind']}] {str(d.get('content', d.get('error', '')))[:1000]}")


@agents.command("trace")
@click.argument("agent_id")
@click.pass_obj
def trace(settings, agent_id):
    """The agent's reasoning, step by step: plan, decision, outcomes."""
    result = settings.call("agents.trace", {"id": agent_id})
    if settings.json:
        emit_json(result)
        return
    click.echo(f"{result['id']}  {result['state']}  task: {(result.get('task') or '').splitlines()[0][:100] if result.get('task') else ''}")
    for s in result["steps"]:
        plan = (s["plan"] or "").strip().replace("\n", " ")
        click.echo(f"\n{s['step']}. plan: {plan[:300] or '(no text)'}")
        tools = s["decision"].get("tools")
        if tools:
            for t in tools:
                click.echo(f"   decision: {t['tool']} {json.dumps(t.get('args'), ensure_ascii=False)[:200]}")
        else:
            click.echo("   decision: final answer")
        for o in s["outcomes"]:
            if "error" in o:
                click.echo(f"   ✗ error: {o['error'][:200]}")
            else:
                mark = "✓" if o["ok"] else "✗"
                note = f" (blocked: {o['blocked']})" if o.get("blocked") else ""
                click.echo(f"   {mark} {o.get('tool')}{note}: {str(o.get('result') or '')[:200].replace(chr(10), ' ')}")


@agents.command("rm")
@click.argument("agent_ids", nargs=-1, required=True)
@click.option("--force", is_flag=True, help="Also kill a running agent and delete a branch with unmerged commits.")
@click.pass_obj
def rm(settings, agent_ids, force):
    """Remove agents: worktree, branch (unless it has unmerged commits) and record."""
    for agent_id in agent_ids:
        result = settings.call("agents.remove", {"id": agent_id, "force": force})
        if settings.json:
            emit_json(result, stream=True)
        else:
            note = f" ({result['branch_kept_reason']})" if result.get("branch_kept_reason") else ""
            click.echo(f"removed {agent_id}{note}")


@agents.command("approvals")
@click.argument("agent_id", required=False)
@click.pass_obj
def approvals(settings, agent_id):
    """Actions waiting for a person's decision."""
    result = settings.call("agents.approvals", {"id": agent_id} if agent_id else {})
    if settings.json:
        emit_json(result)
        return
    table(("approval", "tool", "args", "reason"), [(a["id"], a["action"]["tool"], json.dumps(a["action"]["args"])[:60], a["reason"]) for a in result["approvals"]])


@click.command()
@click.option("--max-age-h", type=float, help="Remove finished agents' worktrees older than this [default: worktrees.gc_max_age_h].")
@click.option("--quota-mb", type=int, help="Then remove the oldest until all worktrees fit [default: worktrees.gc_quota_mb].")
@click.option("--reclaim-orphans", is_flag=True, help="Delete orphaned worktree folders (default: only report them).")
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
@click.pass_obj
def gc(settings, max_age_h, quota_mb, reclaim_orphans, dry_run):
    """Reclaim disk from old worktrees; find orphaned ones."""
    params = {"orphans": "reclaim" if reclaim_orphans else "report", "dry_run": dry_run}
    if max_age_h is not None:
        params["max_age_h"] = max_age_h
    if quota_mb is not None:
        params["quota_mb"] = quota_mb
    result = settings.call("agents.gc", params)
    if settings.json:
        emit_json(result)
        return
    verb = "would remove" if dry_run else "removed"
    for r in result["removed"]:
        click.echo(f"{verb} {r['worktree']}: {r['reason']}")
    for o in result["orphans"]:
        click.echo(f"orphan {o['path']} ({o['size_bytes'] // 1024} KiB){' reclaimed' if o['reclaimed'] else ''}")
    click.echo(f"{len(result['removed'])} worktree(s) {verb}, {len(result['orphans'])} orphan(s); worktrees now use {result['total_bytes'] / 1048576:.1f} MiB")
