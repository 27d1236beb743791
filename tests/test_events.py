"""The event bus on the real SQLite backend: publish, patterns, once, replay, lag, durability."""

from __future__ import annotations

import sqlite3

import pytest
import trio

from godeld.default_plugins.sqlite.backend import SqliteStorage
from godeld.default_plugins.sqlite.schema import core
from godeld.errors import InvalidParams
from godeld.events import EventBus, SubscriberLagged, make_draft, matches, normalize_patterns


@pytest.fixture
async def storage(home):
    store = SqliteStorage(path=home / "godel.db", migrations=[core])
    await store.open()
    yield store
    await store.aclose()


@pytest.fixture
def bus(storage):
    return EventBus(storage, buffer=10000, replay_page=50)


async def test_publish_returns_once_durable(bus, home):
    event = await bus.publish("agent:start", {"agentId": "a1", "task": "t", "model": "m"}, source="test", metadata={"agentId": "a1"})
    # A separate connection sees the row as soon as publish has returned.
    with sqlite3.connect(home / "godel.db") as conn:
        row = conn.execute("SELECT seq, id, type, source, data, metadata FROM events WHERE id = ?", (event.id,)).fetchone()
    assert row == (event.seq, event.id, "agent:start", "test", '{"agentId":"a1","task":"t","model":"m"}', '{"agentId":"a1"}')
    assert event.timestamp > 1_600_000_000_000  # Unix ms


async def test_seqs_strictly_increase_and_ids_are_time_ordered(bus):
    events = []

    async def publisher(n):
        for i in range(50):
            events.append(await bus.publish("test:seq", {"publisher": n, "i": i}))

    async with trio.open_nursery() as nursery:
        for n in range(8):
            nursery.start_soon(publisher, n)
    seqs = sorted(e.seq for e in events)
    assert seqs == list(range(seqs[0], seqs[0] + 400))
    by_seq = sorted(events, key=lambda e: e.seq)
    assert [e.id for e in by_seq] == sorted(e.id for e in events)


async def test_concurrent_publishes_share_commits(bus, storage):
    before = storage.stats["transactions"]
    async with trio.open_nursery() as nursery:
        for i in range(500):
            nursery.start_soon(bus.publish, "test:group", {"i": i})
    transactions = storage.stats["transactions"] - before
    assert storage.stats["events"] >= 500
    assert transactions < 500, "group commit should write many waiting events per transaction"
    assert storage.stats["largest_batch"] > 1


async def test_publish_many_is_one_write(bus, storage):
    before = storage.stats["transactions"]
    events = await bus.publish_many(make_draft("test:many", {"i": i}) for i in range(100))
    assert [e.seq for e in events] == list(range(events[0].seq, events[0].seq + 100))
    assert storage.stats["transactions"] == before + 1


@pytest.mark.parametrize(
    "pattern,type_,expected",
    [
        ("workflow:*", "workflow:step:start", True),
        ("workflow:*", "workflow:start", True),
        ("workflow:*", "agent:start", False),
        ("workflow:step:*", "workflow:start", False),
        ("agent:start", "agent:start", True),
        ("agent:start", "agent:started", False),
        ("agent:?tart", "agent:start", True),
        ("*:error", "agent:error", True),
        ("*", "anything:at:all", True),
        (["agent:*", "swarm:*"], "swarm:complete", True),
        (["agent:*", "swarm:*"], "workflow:start", False),
        ("a.b", "axb", False),  # '.' is literal, not a regex wildcard
    ],
)
def test_patterns(pattern, type_, expected):
    assert matches(pattern, type_) is expected


def test_bad_types_and_patterns_are_rejected():
    for bad in ["", "has space", "x" * 129, "bad*type", "ü:x"]:
        with pytest.raises(InvalidParams):
            make_draft(bad)
    for bad in ["", "a b", "a[bc]", "a;drop"]:
        with pytest.raises(InvalidParams):
            normalize_patterns(bad)
    with pytest.raises(InvalidParams):
        make_draft("ok:type", {"x": object()})
    with pytest.raises(InvalidParams):
        make_draft("ok:type", ["not", "an", "object"])  # type: ignore[arg-type]


async def test_subscribe_by_pattern_and_type_list(bus):
    async with bus.subscribe("workflow:*") as workflows, bus.subscribe(["agent:start", "agent:complete"]) as agents:
        for type_ in ["agent:start", "workflow:start", "agent:error", "workflow:step:start", "agent:complete"]:
            await bus.publish(type_)
        got_workflows = [(await workflows.next()).type for _ in range(2)]
        got_agents = [(await agents.next()).type for _ in range(2)]
    assert got_workflows == ["workflow:start", "workflow:step:start"]
    assert got_agents == ["agent:start", "agent:complete"]


async def test_once_waits_for_the_next_matching_event(bus):
    async def later():
        await bus.publish("agent:start")
        await bus.publish("workflow:complete", {"status": "completed"})

    async with trio.open_nursery() as nursery:
        nursery.start_soon(later)
        event = await bus.once("workflow:complete")
    assert event.data == {"status": "completed"}


async def test_once_with_since_sees_past_events(bus):
    first = await bus.publish("task:complete", {"n": 1})
    await bus.publish("task:complete", {"n": 2})
    event = await bus.once("task:complete", since=first.seq - 1)
    assert event.seq == first.seq


async def test_replay_then_live_has_no_gap_and_no_duplicate_under_concurrent_publishing(bus):
    total = 1500
    published: list[int] = []
    results: dict[int, list[int]] = {}

    async def publisher(n):
        for i in range(total // 5):
            event = await bus.publish("race:event" if i % 3 else "race:other", {"n": n, "i": i})
            published.append(event.seq)
            if i % 40 == 0:
                await trio.sleep(0)

    async def subscriber(key, since, pattern):
        seen = results.setdefault(key, [])
        async with bus.subscribe(pattern, since=since) as subscription:
            while True:
                event = await subscription.next()
                seen.append(event.seq)
                if event.type == "race:done":
                    return

    start = bus.last_seq
    async with trio.open_nursery() as subscribers:
        async with trio.open_nursery() as publishers:
            for n in range(5):
                publishers.start_soon(publisher, n)
            # Subscribers join at different moments, replaying from different points.
            for k, since in enumerate([start, start + 10, None, start + 700]):
                subscribers.start_soon(subscriber, k, since, ["race:*"])
                await trio.sleep(0)
                while len(published) < 300 * (k + 1) // 2:
                    await trio.sleep(0)
            subscribers.start_soon(subscriber, "filtered", start, ["race:event", "race:done"])
        done = await bus.publish("race:done")
    all_seqs = sorted(published) + [done.seq]
    for key, seen in results.items():
        assert seen == sorted(seen), f"subscriber {key} saw events out of order"
        assert len(seen) == len(set(seen)), f"subscriber {key} saw a duplicate"
        if key == "filtered":
            assert len(seen) == (total // 5 - len(range(0, total // 5, 3))) * 5 + 1
            continue
        first = seen[0]
        expected = [s for s in all_seqs if s >= first]
        assert seen == expected, f"subscriber {key} has a gap"
    # the ones with an explicit since start right after it
    assert results[0][0] == start + 1
    assert results[1][0] == start + 11


async def test_slow_subscriber_memory_is_bounded_and_it_catches_up(storage):
    bus = EventBus(storage, buffer=10, replay_page=25)
    async with bus.subscribe("slow:*") as subscription:
        start = subscription.cursor
        for _ in range(10):
            await bus.publish_many(make_draft("slow:event", {"i": i}) for i in range(100))
            assert len(subscription._buffer) <= 10, "the live buffer must stay bounded"
        assert subscription.lag_count >= 1
        seqs = [(await subscription.next()).seq for _ in range(1000)]
        assert seqs == list(range(start + 1, start + 1001)), "catching up from the log loses nothing"
        assert subscription.take_lag() == start
        assert subscription.take_lag() is None
        # caught up: live again
        live = await bus.publish("slow:live")
        assert (await subscription.next()).seq == live.seq


async def test_slow_subscriber_with_on_lag_close_is_told_where_to_resume(storage):
    bus = EventBus(storage, buffer=5)
    subscription = bus.subscribe("lag:*", on_lag="close")
    first = await bus.publish("lag:e", {"i": 0})
    assert (await subscription.next()).seq == first.seq
    await bus.publish_many(make_draft("lag:e", {"i": i}) for i in range(1, 50))
    with pytest.raises(SubscriberLagged) as lagged:
        await subscription.next()
    assert lagged.value.last_seq == first.seq
    assert subscription.closed and bus.subscriber_count == 0
    async with bus.subscribe("lag:*", since=lagged.value.last_seq) as resumed:
        assert [(await resumed.next()).data["i"] for _ in range(49)] == list(range(1, 50))


async def test_list_cursor_tail_and_head(bus):
    base = bus.last_seq
    for i in range(30):
        await bus.publish("list:a" if i % 2 else "list:b", {"i": i})
    events, head = await bus.list(since=base, limit=10)
    assert [e.seq for e in events] == list(range(base + 1, base + 11))
    assert head == base + 30
    events, _ = await bus.list(since=base, patterns="list:a", limit=100)
    assert [e.data["i"] for e in events] == list(range(1, 30, 2))
    events, _ = await bus.list(since=0, patterns=["list:*"], limit=3, tail=True)
    assert [e.data["i"] for e in events] == [27, 28, 29]


async def test_events_survive_a_restart_and_seqs_continue(home):
    store = SqliteStorage(path=home / "godel.db", migrations=[core])
    await store.open()
    bus = EventBus(store)
    published = [await bus.publish("restart:e", {"i": i}) for i in range(5)]
    await store.aclose()

    store = SqliteStorage(path=home / "godel.db", migrations=[core])
    await store.open()
    try:
        bus = EventBus(store)
        assert bus.last_seq == published[-1].seq
        events, _ = await bus.list(since=0)
        assert [(e.id, e.seq, e.data) for e in events] == [(e.id, e.seq, e.data) for e in published]
        new = await bus.publish("restart:e")
        assert new.seq == published[-1].seq + 1
    finally:
        await store.aclose()


async def test_seq_is_never_reused_after_the_newest_events_are_deleted(home):
    store = SqliteStorage(path=home / "godel.db", migrations=[core])
    await store.open()
    bus = EventBus(store)
    last = None
    for i in range(3):
        last = await bus.publish("reuse:e", {"i": i})
    await store.write(lambda conn: conn.execute("DELETE FROM events WHERE seq = ?", (last.seq,)))
    await store.aclose()
    store = SqliteStorage(path=home / "godel.db", migrations=[core])
    await store.open()
    try:
        assert (await EventBus(store).publish("reuse:e")).seq == last.seq + 1
    finally:
        await store.aclose()
