"""daemon.* and introspection methods (rpc.discover, system.listMethods)."""

from __future__ import annotations

from typing import Any

from godeld import __version__, hookimpl, protocol
from godeld.dispatch import Context


@hookimpl
def register_rpc_methods(register):
    register("daemon.status", status)
    register("daemon.shutdown", shutdown)
    register("daemon.reload", reload)
    register("rpc.discover", discover)
    register("system.listMethods", list_methods)


def status(ctx: Context) -> dict[str, Any]:
    """Version, pid, uptime, socket, home, storage, plugin counts and the last event seq."""
    return ctx.daemon.status()


def shutdown(ctx: Context) -> dict[str, Any]:
    """Stop godeld: in-flight requests finish (within the drain deadline), storage is flushed."""
    ctx.daemon.request_stop("daemon.shutdown")
    return {"stopping": True, "pid": ctx.daemon.status()["pid"]}


async def reload(ctx: Context) -> dict[str, Any]:
    """Re-read the config and the plugins; publishes extension:reload."""
    return await ctx.daemon.reload("daemon.reload")


def discover(ctx: Context) -> dict[str, Any]:
    """Every method with its params and a one-line summary."""
    methods = ctx.daemon.plugins.registries.rpc_methods
    return {
        "version": __version__,
        "protocol": protocol.PROTOCOL_VERSION,
        "methods": [methods[name].describe() for name in methods.names()],
    }


def list_methods(ctx: Context) -> list[str]:
    """The names of every method."""
    return ctx.daemon.plugins.registries.rpc_methods.names()
