"""plugins.list."""

from __future__ import annotations

from typing import Any

from godeld import hookimpl
from godeld.dispatch import Context


@hookimpl
def register_rpc_methods(register):
    register("plugins.list", list_plugins)


def list_plugins(ctx: Context) -> dict[str, Any]:
    """Each plugin: where it came from, its hooks, what it registered, its errors."""
    return {"plugins": ctx.daemon.plugins.list()}
