"""godelctl plugins."""

from __future__ import annotations

import click

from godelctl.output import emit_json, table


def register_commands(cli):
    cli.add_command(plugins)


@click.command()
@click.option("-v", "--verbose", is_flag=True, help="Show every registered name and every error.")
@click.pass_obj
def plugins(settings, verbose):
    """List plugins: where each came from, what it registered, and its errors."""
    result = settings.call("plugins.list")
    if settings.json:
        emit_json(result)
        return
    rows = []
    for plugin in result["plugins"]:
        registered = plugin["registered"]
        summary = ", ".join(f"{kind}: {', '.join(names) if verbose else len(names)}" for kind, names in registered.items())
        rows.append((plugin["name"], plugin["source"], plugin["state"], summary or "-", plugin["error"] or ""))
    table(("name", "source", "state", "registered", "error"), rows)
    if verbose:
        for plugin in result["plugins"]:
            for error in plugin["errors"]:
                click.echo(f"\n{plugin['name']} ({plugin['origin']}) {error['stage']}: {error['error']}")
