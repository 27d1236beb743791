"""godelctl status."""

from __future__ import annotations

import click

from godelctl.output import duration, emit_json, size


def register_commands(cli):
    cli.add_command(status)


@click.command()
@click.pass_obj
def status(settings):
    """Show whether godeld runs, and its version, uptime, storage, plugins and event log."""
    info = settings.call("daemon.status")
    if settings.json:
        emit_json(info)
        return
    storage = info.get("storage") or {}
    plugins = info.get("plugins") or {}
    click.echo(f"godeld {info['version']} {info['state']} (pid {info['pid']}), up {duration(info['uptime_s'])}")
    click.echo(f"  socket:      {info['socket']}")
    click.echo(f"  home:        {info['home']}")
    click.echo(f"  config:      {info.get('config') or '(defaults)'}")
    details = ", ".join(f"{k}={storage[k]}" for k in ("synchronous",) if k in storage)
    click.echo(f"  storage:     {storage.get('backend')} {storage.get('path', '')} ({size(storage.get('size_bytes'))}{', ' + details if details else ''})")
    click.echo(f"  events:      last seq {info['last_seq']}")
    line = f"{plugins.get('loaded', 0)} loaded"
    if plugins.get("failed"):
        line += f", {plugins['failed']} failed"
    if plugins.get("disabled"):
        line += f", {plugins['disabled']} disabled"
    if plugins.get("with_errors"):
        line += f" ({plugins['with_errors']} with errors: godelctl plugins)"
    click.echo(f"  plugins:     {line}")
    click.echo(f"  clients:     {info.get('connections', 0)} connected, {info.get('subscribers', 0)} subscribed")
