"""events.subscribe over real sockets: replay + live with no gap or duplicate, slow readers, once."""

from __future__ import annotations

import json

import trio

from godeld.events import make_draft
from tests.helpers import AsyncRpc


async def collect(client: AsyncRpc, subscription: str, until_type: str) -> list[dict]:
    events = []
    while True:
        message = await client.next_notification()
        if message["method"] != "events.event":
            continue
        assert message["params"]["subscription"] == subscription
        events.append(message["params"])
        if message["params"]["type"] == until_type:
            return events


async def test_replay_and_live_meet_without_gap_or_duplicate_while_others_publish(daemon):
    publishers = [await AsyncRpc.connect(daemon.socket_path) for _ in range(4)]
    published: list[int] = []
    halfway = trio.Event()

    async def publish(client: AsyncRpc, n: int) -> None:
        for i in range(0, 400, 20):  # batches of 20, as fast as the daemon takes them
            batch = [{"jsonrpc": "2.0", "id": i + k, "method": "events.publish", "params": {"type": "sub:e", "data": {"n": n, "i": i + k}}} for k in range(20)]
            await client.send_raw(json.dumps(batch).encode() + b"\n")
            replies = await client.read()
            published.extend(r["result"]["seq"] for r in replies)
            if len(published) >= 800:
                halfway.set()

    start = daemon.bus.last_seq
    results: dict[str, list[dict]] = {}

    async def subscriber(name: str, since: int | None, wait_first: bool) -> None:
        if wait_first:
            await halfway.wait()
        client = await AsyncRpc.connect(daemon.socket_path)
        reply = await client.result("events.subscribe", pattern="sub:*", since=since)
        results[name] = await collect(client, reply["subscription"], "sub:done")
        await client.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(subscriber, "from-start", start, False)
        nursery.start_soon(subscriber, "joins-late-replaying", start, True)
        nursery.start_soon(subscriber, "joins-late-from-100", start + 100, True)
        async with trio.open_nursery() as writers:
            for n, client in enumerate(publishers):
                writers.start_soon(publish, client, n)
        done = await daemon.bus.publish("sub:done")
    expected = sorted(published) + [done.seq]
    assert len(expected) == 1601
    assert [e["seq"] for e in results["from-start"]] == expected
    assert [e["seq"] for e in results["joins-late-replaying"]] == expected
    assert [e["seq"] for e in results["joins-late-from-100"]] == [s for s in expected if s > start + 100]
    for client in publishers:
        await client.aclose()


async def test_a_subscriber_that_stops_reading_is_bounded_and_loses_nothing(daemons):
    daemon = await daemons.start(overrides={"GODEL_EVENTS__SUBSCRIBER_BUFFER": "50"})
    reader = await AsyncRpc.connect(daemon.socket_path)
    subscription = (await reader.result("events.subscribe", pattern="flood:*"))["subscription"]
    first = daemon.bus.last_seq
    # The reader reads nothing while 20,000 events (about 2 MB of notifications) are published:
    # far more than the socket buffers hold, so its delivery blocks and its buffer overflows.
    for chunk in range(20):
        await daemon.bus.publish_many(make_draft("flood:e", {"i": chunk * 1000 + i, "pad": "x" * 40}) for i in range(1000))
        [(sub, _scope)] = [entry for conn in daemon.rpc.connections for entry in conn.subscriptions.values()]
        assert len(sub._buffer) <= 50, "the daemon buffers at most subscriber_buffer events per subscriber"
    assert sub.lag_count >= 1
    last = await daemon.bus.publish("flood:done")
    seqs, lagged = [], []
    while True:
        message = await reader.next_notification()
        if message["method"] == "events.lagged":
            lagged.append(message["params"])
            continue
        seqs.append(message["params"]["seq"])
        if message["params"]["type"] == "flood:done":
            break
    assert seqs == list(range(first + 1, last.seq + 1)), "caught up from the log: every event, in order, once"
    assert lagged and lagged[0]["subscription"] == subscription and lagged[0]["closed"] is False
    assert first <= lagged[0]["last_seq"] < last.seq
    await reader.aclose()


async def test_on_lag_close_ends_the_subscription_with_the_seq_to_resume_from(daemons):
    daemon = await daemons.start(overrides={"GODEL_EVENTS__SUBSCRIBER_BUFFER": "20"})
    reader = await AsyncRpc.connect(daemon.socket_path)
    subscription = (await reader.result("events.subscribe", pattern="flood:*", on_lag="close"))["subscription"]
    for _ in range(10):
        await daemon.bus.publish_many(make_draft("flood:e", {"pad": "y" * 200}) for _ in range(1000))
    received = []
    while True:
        message = await reader.next_notification()
        if message["method"] == "events.lagged":
            lagged = message["params"]
            break
        received.append(message["params"]["seq"])
    assert lagged["subscription"] == subscription and lagged["closed"] is True
    assert lagged["last_seq"] == (received[-1] if received else lagged["last_seq"])
    status = await reader.result("daemon.status")
    assert status["subscribers"] == 0, "the subscription is gone"
    resumed = (await reader.result("events.subscribe", pattern="flood:*", since=lagged["last_seq"], once=True))
    message = await reader.next_notification()
    assert message["params"]["seq"] == lagged["last_seq"] + 1 and message["params"]["subscription"] == resumed["subscription"]
    await reader.aclose()


async def test_once_and_type_lists(daemon, rpc):
    reply = await rpc.result("events.subscribe", pattern=["agent:complete", "agent:error"], once=True)
    await daemon.bus.publish("agent:start")
    await daemon.bus.publish("agent:error", {"agentId": "a1", "error": "boom"})
    await daemon.bus.publish("agent:complete")
    message = await rpc.next_notification()
    assert message["params"]["type"] == "agent:error" and message["params"]["subscription"] == reply["subscription"]
    status = await rpc.result("daemon.status")  # a barrier: anything else would have arrived first
    assert not rpc.notifications
    assert status["subscribers"] == 0


async def test_a_reset_connection_ends_its_subscriptions_at_once(daemon):
    import socket as stdlib_socket

    sock = stdlib_socket.socket(stdlib_socket.AF_UNIX)
    sock.connect(str(daemon.socket_path))
    sock.setblocking(False)
    sock.sendall(b'{"jsonrpc":"2.0","id":1,"method":"events.subscribe","params":{"pattern":"never:*"}}\n')
    with trio.fail_after(10):
        while daemon.bus.subscriber_count == 0:
            await trio.sleep(0)
        # Unread data in our receive queue makes close() reset the connection (ECONNRESET).
        await trio.lowlevel.wait_readable(sock)
        sock.close()
        while daemon.bus.subscriber_count or daemon.rpc.connections:
            await trio.sleep(0.01)
