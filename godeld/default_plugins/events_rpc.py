"""events.* methods: publish, list, subscribe, unsubscribe."""

from __future__ import annotations

from typing import Any, Literal

from godeld import hookimpl
from godeld.dispatch import Context
from godeld.errors import GodelError, InvalidParams


@hookimpl
def register_rpc_methods(register):
    register("events.publish", publish)
    register("events.list", list_events)
    register("events.subscribe", subscribe)
    register("events.unsubscribe", unsubscribe)


async def publish(ctx: Context, type: str, data: dict | None = None, source: str | None = None, metadata: dict | None = None) -> dict[str, Any]:
    """Append an event to the log; answers {id, seq} once it is durable."""
    event = await ctx.daemon.bus.publish(type, data, source=source or "rpc", metadata=metadata)
    return {"id": event.id, "seq": event.seq}


async def list_events(ctx: Context, since: int = 0, pattern: str | list[str] | None = None, limit: int = 100, tail: bool = False) -> dict[str, Any]:
    """Events with seq > since (matching pattern), in seq order; tail=true gives the newest `limit`."""
    if since < 0:
        raise InvalidParams("since must be 0 or more")
    if limit < 1:
        raise InvalidParams("limit must be at least 1")
    events, head = await ctx.daemon.bus.list(since=since, patterns=pattern, limit=limit, tail=tail)
    full = len(events) == min(limit, ctx.daemon.bus.list_max)
    # next_since: pass it as `since` to continue where this page ended.
    next_since = events[-1].seq if (full and not tail) else max(head, since)
    return {"events": [e.to_dict() for e in events], "last_seq": head, "next_since": next_since}


def subscribe(ctx: Context, pattern: str | list[str] | None = None, since: int | None = None, on_lag: Literal["catch_up", "close"] = "catch_up", once: bool = False) -> dict[str, Any]:
    """Stream matching events as events.event notifications: those after `since` first, then live."""
    if ctx.connection is None:
        raise GodelError("events.subscribe needs a client connection")
    if since is not None and since < 0:
        raise InvalidParams("since must be 0 or more")
    subscription = ctx.daemon.bus.subscribe(pattern, since=since, on_lag=on_lag)
    sub_id = ctx.connection.add_subscription(subscription, ctx, once=once)
    return {"subscription": sub_id, "since": subscription.cursor}


def unsubscribe(ctx: Context, subscription: str) -> dict[str, Any]:
    """End a subscription of this connection."""
    if ctx.connection is None:
        raise GodelError("events.unsubscribe needs a client connection")
    ctx.connection.remove_subscription(subscription)
    return {"unsubscribed": subscription}
