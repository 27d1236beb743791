"""godelctl events: show, follow, publish and wait for events."""

from __future__ import annotations

import json
import sys

import click

from godeld import protocol
from godelctl.output import emit_json, event_line

PAGE = 1000


def register_commands(cli):
    cli.add_command(events)


def _print(settings, event) -> None:
    if settings.json:
        emit_json(event, stream=True)
    else:
        click.echo(event_line(event))
        sys.stdout.flush()  # a follower piped into another program must not sit on its lines


@click.group(invoke_without_command=True)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new events as they happen.")
@click.option("--since", type=click.IntRange(min=0), help="Show events after this seq (instead of the newest few).")
@click.option("-t", "--type", "patterns", multiple=True, metavar="PATTERN", help="Only these types; globs allowed (workflow:*). Repeatable.")
@click.option("-n", "--lines", type=click.IntRange(min=0), default=20, show_default=True, help="How many of the newest events to show first.")
@click.option("--limit", type=click.IntRange(min=1), help="With --since: show at most this many.")
@click.pass_context
def events(ctx, follow, since, patterns, lines, limit):
    """Show the event log: the newest events, or those after --since; --follow streams.

    \b
    Examples:
      godelctl events                      the 20 newest events
      godelctl events -f -t 'workflow:*'   follow workflow events
      godelctl events --since 1200 --json  everything after seq 1200, one JSON per line
    """
    if ctx.invoked_subcommand is not None:
        return
    settings = ctx.obj
    pattern = list(patterns) or None
    with settings.client(timeout=None) as client:
        cursor = _show_history(settings, client, since, pattern, lines, limit)
        if follow:
            _follow(settings, client, cursor, pattern)


def _show_history(settings, client, since, pattern, lines, limit) -> int:
    """Print the requested history; return the seq to follow from (no gap, no repeat)."""
    if since is None:
        result = client.call("events.list", {"pattern": pattern, "limit": max(lines, 1), "tail": True})
        for event in result["events"][-lines:] if lines else []:
            _print(settings, event)
        return result["last_seq"]
    shown = 0
    cursor = since
    while True:
        page = min(PAGE, limit - shown) if limit else PAGE
        result = client.call("events.list", {"since": cursor, "pattern": pattern, "limit": page})
        for event in result["events"]:
            _print(settings, event)
        shown += len(result["events"])
        cursor = result["next_since"]
        # godeld may cap a page below what was asked: only the head (or the limit) ends it.
        if not result["events"] or cursor >= result["last_seq"] or (limit and shown >= limit):
            return cursor


def _follow(settings, client, since, pattern) -> None:
    subscription = client.call("events.subscribe", {"pattern": pattern, "since": since})["subscription"]
    try:
        for message in client.notifications():
            method, params = message.get("method"), message.get("params") or {}
            if method == protocol.EVENT_NOTIFICATION and params.get("subscription") == subscription:
                params.pop("subscription", None)
                _print(settings, params)
            elif method == protocol.LAGGED_NOTIFICATION:
                click.echo(f"godelctl: fell behind after seq {params.get('last_seq')}; catching up from the log", err=True)
            elif method == protocol.STOPPING_NOTIFICATION:
                click.echo("godelctl: godeld is stopping", err=True)
                return
    except BrokenPipeError:  # stdout closed (e.g. `| head`): a normal way to stop following
        sys.stderr.close()


@events.command()
@click.argument("type")
@click.option("--data", default=None, help="The event's data: a JSON object.")
@click.option("--metadata", default=None, help="Metadata: a JSON object (correlationId, agentId, …).")
@click.option("--source", default=None, help="Who publishes it [default: rpc].")
@click.pass_obj
def publish(settings, type, data, metadata, source):
    """Publish an event of TYPE; prints its seq once it is durable."""
    params = {"type": type, "data": _json_object(data, "--data"), "metadata": _json_object(metadata, "--metadata")}
    if source:
        params["source"] = source
    result = settings.call("events.publish", params)
    if settings.json:
        emit_json(result)
    else:
        click.echo(f"published {type} as seq {result['seq']} (id {result['id']})")


@events.command()
@click.argument("patterns", nargs=-1, required=True)
@click.option("--since", type=click.IntRange(min=0), help="Also accept events after this seq that already happened.")
@click.option("--timeout", type=float, help="Give up after this many seconds (exit status 1).")
@click.pass_obj
def wait(settings, patterns, since, timeout):
    """Wait for the next event matching PATTERNS and print it (handy in scripts)."""
    import socket

    with settings.client(timeout=None) as client:
        client.call("events.subscribe", {"pattern": list(patterns), "since": since, "once": True})
        try:
            for message in client.notifications(timeout=timeout):
                if message.get("method") == protocol.EVENT_NOTIFICATION:
                    message["params"].pop("subscription", None)
                    _print(settings, message["params"])
                    return
                if message.get("method") == protocol.STOPPING_NOTIFICATION:
                    click.echo(f"godelctl: godeld is stopping; no {' or '.join(patterns)} event came", err=True)
                    sys.exit(3)
        except socket.timeout:
            pass
    click.echo(f"godelctl: no {' or '.join(patterns)} event" + (f" within {timeout:g}s" if timeout else ""), err=True)
    sys.exit(1)


def _json_object(text, option):
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint=option) from None
    if not isinstance(value, dict):
        raise click.BadParameter("must be a JSON object", param_hint=option)
    return value
