"""godelctl budget and godelctl safety."""

from __future__ import annotations

import json

import click

from godelctl.output import emit_json, event_line, table

SCOPES = click.Choice(["global", "day", "agent", "swarm", "workflow"])


def register_commands(cli):
    cli.add_command(budget)
    cli.add_command(safety)


@click.group(invoke_without_command=True)
@click.pass_context
def budget(ctx):
    """Spending: limits, what is spent, and the ledger."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(show)


def _row(b):
    limit = b["limit"] or {}
    lim = ", ".join(x for x in (f"${limit['max_cost_usd']:.2f}" if limit.get("max_cost_usd") else "", f"{limit['max_tokens']:,} tok" if limit.get("max_tokens") else "") if x) or "-"
    return (b["scope"], b["id"] or "", f"${b['spent_usd']:.4f}", f"{b['tokens']:,}", lim, f"{b['used_pct']}%" if b["used_pct"] is not None else "-")


@budget.command("show")
@click.pass_obj
def show(settings):
    """Limits and spending."""
    result = settings.call("budget.get")
    if settings.json:
        emit_json(result)
        return
    table(("scope", "id", "spent", "tokens", "limit", "used"), [_row(b) for b in result["budgets"]])


@budget.command("set")
@click.argument("scope", type=SCOPES)
@click.argument("scope_id", required=False)
@click.option("--usd", type=float, help="Limit in USD.")
@click.option("--tokens", type=int, help="Limit in tokens.")
@click.pass_obj
def set_(settings, scope, scope_id, usd, tokens):
    """Set a limit (neither --usd nor --tokens: clear it)."""
    params = {"scope": scope}
    if scope_id:
        params["id"] = scope_id
    if usd is not None:
        params["max_cost_usd"] = usd
    if tokens is not None:
        params["max_tokens"] = tokens
    result = settings.call("budget.set", params)
    if settings.json:
        emit_json(result)
    else:
        table(("scope", "id", "spent", "tokens", "limit", "used"), [_row(result)])


@budget.command("report")
@click.option("--by", "group_by", type=click.Choice(["agent", "swarm", "workflow", "task", "provider", "model", "day"]), default="model", show_default=True)
@click.option("--days", type=float, default=30, show_default=True, help="How far back (0: all).")
@click.pass_obj
def report(settings, group_by, days):
    """Usage from the ledger, summed."""
    result = settings.call("budget.report", {"group_by": group_by, "days": days})
    if settings.json:
        emit_json(result)
        return
    table((group_by, "calls", "input", "output", "cache read", "cost"), [(r[group_by] or "-", r["calls"], f"{r['input_tokens']:,}", f"{r['output_tokens']:,}", f"{r['cache_read_tokens']:,}", f"${r['cost_usd']:.4f}") for r in result["rows"]])
    click.echo(f"total ${result['total_cost_usd']:.4f} (prices {result['price_version']})")


@click.group()
def safety():
    """Safety rules: the security log, and dry-run checks."""


@safety.command("log")
@click.option("--agent", help="Only this agent's entries.")
@click.option("-n", "--lines", type=int, default=50, show_default=True)
@click.pass_obj
def log(settings, agent, lines):
    """Denials, approvals asked for, and decisions."""
    result = settings.call("safety.log", {"limit": lines, **({"agent": agent} if agent else {})})
    for event in result["events"]:
        if settings.json:
            emit_json(event, stream=True)
        else:
            click.echo(event_line(event))


@safety.command("check")
@click.argument("command", required=False)
@click.option("--tool", default="run_command", show_default=True)
@click.option("--args", "args_json", help="The tool's arguments as JSON (instead of COMMAND).")
@click.option("--agent", help="Check against this agent's policy (its worktree, tools).")
@click.pass_obj
def check(settings, command, tool, args_json, agent):
    """Would this action be allowed? Exit status 0 if allowed, 1 if denied or it would ask."""
    if args_json:
        args = json.loads(args_json)
    elif command is not None:
        args = {"command": command} if tool == "run_command" else {"path": command}
    else:
        raise click.UsageError("give a COMMAND or --args JSON")
    result = settings.call("safety.check", {"tool": tool, "args": args, **({"agent": agent} if agent else {})})
    if settings.json:
        emit_json(result)
    else:
        click.echo(f"{result['verdict']}" + (f" by {result['rule']}: {result['reason']}" if result["verdict"] != "allow" else ""))
    if result["verdict"] != "allow":
        raise SystemExit(1)
