"""godelctl rpc: a raw JSON-RPC call."""

from __future__ import annotations

import json

import click

from godelctl.output import emit_json


def register_commands(cli):
    cli.add_command(rpc)


@click.command()
@click.argument("method")
@click.argument("params", required=False)
@click.pass_obj
def rpc(settings, method, params):
    """Call METHOD with PARAMS (a JSON object or array) and print the result as JSON.

    \b
    Examples:
      godelctl rpc daemon.status
      godelctl rpc events.list '{"pattern": "agent:*", "limit": 5}'
      godelctl rpc rpc.discover
    """
    parsed = None
    if params is not None:
        try:
            parsed = json.loads(params)
        except ValueError as exc:
            raise click.BadParameter(f"not valid JSON: {exc}", param_hint="PARAMS") from None
        if not isinstance(parsed, (dict, list)):
            raise click.BadParameter("must be a JSON object or array", param_hint="PARAMS")
    emit_json(settings.call(method, parsed))
