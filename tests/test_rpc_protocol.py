"""JSON-RPC 2.0 conformance of godeld over a real Unix socket (in-process daemon).

Where a test needs to know that nothing (more) is answered, it half-closes its connection: godeld
answers everything it has read, then closes its side, so what arrives before EOF is all there is.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import trio

from godeld.events import make_draft
from tests.helpers import AsyncRpc

SAFETY = 30  # seconds: a safety net against a hung daemon, never a measured quantity


def frame(message: Any) -> bytes:
    return json.dumps(message).encode() + b"\n"


def req(method: str, params: Any = None, request_id: Any = None, *, notification: bool = False) -> dict:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    if not notification:
        message["id"] = request_id
    return message


async def exchange(path, *frames: bytes | Any) -> list[Any]:
    """Send the frames on a new connection, half-close it, and return every message received until
    the daemon closes its side: all the answers there will ever be."""
    data = b"".join(f if isinstance(f, bytes) else frame(f) for f in frames)
    stream = await trio.open_unix_socket(os.fspath(path))
    received = bytearray()
    async with stream:
        await stream.send_all(data)
        await stream.send_eof()
        with trio.fail_after(SAFETY):
            while chunk := await stream.receive_some(65536):
                received += chunk
    assert not received or received.endswith(b"\n"), received[-200:]
    return [json.loads(line) for line in received.split(b"\n") if line]


def assert_error(message: Any, code: int, request_id: Any) -> dict:
    assert isinstance(message, dict), message
    assert message.get("jsonrpc") == "2.0", message
    assert set(message) == {"jsonrpc", "id", "error"}, message
    assert message["id"] == request_id and type(message["id"]) is type(request_id), message
    error = message["error"]
    assert isinstance(error["code"], int) and error["code"] == code, message
    assert isinstance(error["message"], str) and error["message"], message
    assert set(error) <= {"code", "message", "data"}, message
    return error


def assert_result(message: Any, request_id: Any) -> Any:
    assert isinstance(message, dict), message
    assert message.get("jsonrpc") == "2.0", message
    assert set(message) == {"jsonrpc", "id", "result"}, message
    assert message["id"] == request_id and type(message["id"]) is type(request_id), message
    return message["result"]


async def events_of_type(rpc: AsyncRpc, event_type: str) -> list[dict]:
    return (await rpc.result("events.list", pattern=event_type, limit=10000))["events"]


# -- the examples of JSON-RPC 2.0 §7, with godeld's methods ---------------------------------------

async def test_spec_call_with_params_by_name_and_by_position(daemon, rpc):
    by_name = await exchange(daemon.socket_path, req("events.publish", {"type": "spec:named", "data": {"k": 1}, "source": "src", "metadata": {"m": 1}}, 1))
    by_position = await exchange(daemon.socket_path, req("events.publish", ["spec:positional", {"k": 2}, "src", {"m": 2}], 2))
    named = assert_result(by_name[0], 1)
    positional = assert_result(by_position[0], 2)
    assert len(by_name) == len(by_position) == 1
    assert positional["seq"] > named["seq"] > 0
    # The positional params went to type, data, source, metadata: in signature order.
    [event] = await events_of_type(rpc, "spec:positional")
    assert (event["seq"], event["data"], event["source"], event["metadata"]) == (positional["seq"], {"k": 2}, "src", {"m": 2})
    [event] = await events_of_type(rpc, "spec:named")
    assert (event["seq"], event["data"], event["source"], event["metadata"]) == (named["seq"], {"k": 1}, "src", {"m": 1})
    # events.list by position: since, pattern, limit, tail.
    [listed] = await exchange(daemon.socket_path, req("events.list", [named["seq"] - 1, "spec:*", 1], 3))
    assert [e["seq"] for e in assert_result(listed, 3)["events"]] == [named["seq"]]
    [listed] = await exchange(daemon.socket_path, req("events.list", [0, "spec:*", 1, True], 4))
    assert [e["seq"] for e in assert_result(listed, 4)["events"]] == [positional["seq"]]


async def test_spec_notifications_are_never_answered(daemon, rpc):
    answers = await exchange(
        daemon.socket_path,
        req("events.publish", ["spec:notified", {"n": 1}], notification=True),
        req("events.publish", {"type": "spec:notified", "data": {"n": 2}}, notification=True),
        req("foobar", notification=True),  # unknown method
        req("events.list", {"limit": "ten"}, notification=True),  # invalid params
        req("events.publish", {"type": "not a type"}, notification=True),  # refused by the handler
        req("daemon.status", notification=True),
        req("events.unsubscribe", {"subscription": "nope"}, notification=True),  # an application error
    )
    assert answers == []
    # ... but they were run.
    assert sorted(e["data"]["n"] for e in await events_of_type(rpc, "spec:notified")) == [1, 2]


async def test_spec_call_of_a_non_existent_method(daemon):
    [answer] = await exchange(daemon.socket_path, b'{"jsonrpc": "2.0", "method": "foobar", "id": "1"}\n')
    error = assert_error(answer, -32601, "1")
    assert error["data"] == {"method": "foobar"}


async def test_spec_call_with_invalid_json(daemon):
    [answer] = await exchange(daemon.socket_path, b'{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]\n')
    assert_error(answer, -32700, None)


async def test_spec_call_with_invalid_request_object(daemon):
    # JSON-RPC 2.0 §7: this is answered, although it has no id: it is not a valid Request, so it is
    # not a Notification either (§5: the id is null when it could not be determined).
    answers = await exchange(daemon.socket_path, b'{"jsonrpc": "2.0", "method": 1, "params": "bar"}\n')
    assert len(answers) == 1, f"expected one Invalid Request error with id null, got {answers}"
    assert_error(answers[0], -32600, None)


async def test_invalid_request_objects_with_an_id(daemon):
    answers = await exchange(
        daemon.socket_path,
        {"jsonrpc": "2.0", "method": 1, "params": "bar", "id": 1},
        {"jsonrpc": "1.0", "method": "daemon.status", "id": 2},
        {"method": "daemon.status", "id": 3},
        {"jsonrpc": "2.0", "id": 4},
        {"jsonrpc": "2.0", "method": "daemon.status", "params": "bar", "id": 5},
        {"jsonrpc": "2.0", "method": "daemon.status", "params": None, "id": 6},
        {"jsonrpc": "2.0", "method": "daemon.status", "id": 7, "extra": True},
        {"jsonrpc": "2.0", "method": "daemon.status", "id": True},
        {"jsonrpc": "2.0", "method": "daemon.status", "id": {"a": 1}},
        {"jsonrpc": "2.0", "method": "daemon.status", "id": [8]},
        b'{"jsonrpc": "2.0", "method": "daemon.status", "id": 1e400}\n',  # reads as inf: not echoable
        [],
        1,
        "daemon.status",
        None,
    )
    assert len(answers) == 15, answers
    for request_id, answer in zip([1, 2, 3, 4, 5, 6, 7], answers):
        assert_error(answer, -32600, request_id)
    for answer in answers[7:]:
        assert_error(answer, -32600, None)  # an invalid id, or no request object at all


async def test_spec_batch_with_invalid_json(daemon):
    answers = await exchange(daemon.socket_path, b'[{"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},{"jsonrpc": "2.0", "method"]\n')
    assert len(answers) == 1 and isinstance(answers[0], dict), answers  # one error object, not an array
    assert_error(answers[0], -32700, None)


async def test_spec_empty_batch(daemon):
    answers = await exchange(daemon.socket_path, b"[]\n")
    assert len(answers) == 1 and isinstance(answers[0], dict), answers
    assert_error(answers[0], -32600, None)


async def test_spec_invalid_batch_of_one(daemon):
    [answer] = await exchange(daemon.socket_path, b"[1]\n")
    assert isinstance(answer, list) and len(answer) == 1, answer
    assert_error(answer[0], -32600, None)


async def test_spec_invalid_batch_of_three(daemon):
    [answer] = await exchange(daemon.socket_path, b"[1,2,3]\n")
    assert isinstance(answer, list) and len(answer) == 3, answer
    for item in answer:
        assert_error(item, -32600, None)


SPEC_BATCH = [
    # Not "spec:*": the calls of a batch run concurrently, so it could see spec:batched below.
    {"jsonrpc": "2.0", "method": "events.list", "params": [0, "spec:unpublished*", 1], "id": "1"},
    {"jsonrpc": "2.0", "method": "events.publish", "params": ["spec:batched"]},
    {"jsonrpc": "2.0", "method": "system.listMethods", "params": [], "id": "2"},
    {"foo": "boo"},
    {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
    {"jsonrpc": "2.0", "method": "daemon.status", "id": "9"},
]


async def check_mixed_batch(daemon, rpc, items: list, foo_boo: bool) -> None:
    [answer] = await exchange(daemon.socket_path, items)
    assert isinstance(answer, list), answer
    by_id = {item.get("id"): item for item in answer}
    assert assert_result(by_id["1"], "1")["events"] == []
    assert "daemon.status" in assert_result(by_id["2"], "2")
    assert_error(by_id["5"], -32601, "5")
    assert assert_result(by_id["9"], "9")["pid"] == os.getpid()
    assert len(await events_of_type(rpc, "spec:batched")) == 1  # the notification ran
    nulls = [item for item in answer if item.get("id") is None]
    # {"foo": "boo"} is answered with an Invalid Request error, id null (JSON-RPC 2.0 §7).
    assert len(nulls) == (1 if foo_boo else 0), f"expected {int(foo_boo)} error(s) with id null in {answer}"
    for item in nulls:
        assert_error(item, -32600, None)
    assert len(answer) == 4 + foo_boo


async def test_spec_batch_of_mixed_items(daemon, rpc):
    await check_mixed_batch(daemon, rpc, SPEC_BATCH, foo_boo=True)


async def test_batch_of_requests_and_notifications(daemon, rpc):
    await check_mixed_batch(daemon, rpc, [item for item in SPEC_BATCH if "foo" not in item], foo_boo=False)


async def test_spec_batch_of_notifications_only(daemon, rpc):
    answers = await exchange(
        daemon.socket_path,
        [req("events.publish", ["spec:quiet", {"n": 1}], notification=True), req("notify_hello", [7], notification=True), req("events.list", {"limit": 0}, notification=True)],
        [req("events.publish", ["spec:quiet", {"n": 2}], notification=True)],
    )
    assert answers == []
    assert sorted(e["data"]["n"] for e in await events_of_type(rpc, "spec:quiet")) == [1, 2]


# -- ids ---------------------------------------------------------------------------------------------

IDS = ["abc", "", "\u00fcn\u00efc\u00f8d\u00e9 \u4e2d \U0001F600", "with \"quotes\" and \\ and \n", 0, 1, -5, 2**70, -(2**63) - 1, 1.5, -0.25, 1e300, None, "x" * 10_000]


@pytest.mark.parametrize("request_id", IDS, ids=lambda v: repr(v)[:20])
async def test_id_is_echoed_exactly(daemon, rpc, request_id):
    await rpc.send(req("daemon.status", request_id=request_id))
    assert assert_result(await rpc.read(), request_id)["pid"] == os.getpid()
    await rpc.send(req("no.such.method", request_id=request_id))  # and on errors
    assert_error(await rpc.read(), -32601, request_id)
    await rpc.send_raw(json.dumps(req("events.list", {"limit": "x"}, request_id), ensure_ascii=False).encode() + b"\n")
    assert_error(await rpc.read(), -32602, request_id)


# -- error objects ------------------------------------------------------------------------------------

async def test_error_objects_have_code_message_and_data(daemon):
    answers = await exchange(
        daemon.socket_path,
        b"{oops\n",
        {"jsonrpc": "2.0", "id": 1},
        req("events.publsh", {"type": "x"}, 2),
        req("events.publish", {"type": 5}, 3),
        req("events.unsubscribe", {"subscription": "42.42"}, 4),
    )
    assert_error(answers[0], -32700, None)
    assert_error(answers[1], -32600, 1)
    assert assert_error(answers[2], -32601, 2)["data"] == {"method": "events.publsh"}
    assert assert_error(answers[3], -32602, 3)["data"]["method"] == "events.publish"
    # An application error (-32000..-32099) carries data.
    error = assert_error(answers[4], -32001, 4)
    assert error["data"] == {"subscription": "42.42"}


@pytest.mark.parametrize(
    ("method", "params", "needles"),
    [
        ("events.list", {"limit": "ten"}, ["'limit'", "integer", "string"]),
        ("events.list", {"tail": 1}, ["'tail'", "boolean"]),
        ("events.list", {"limt": 3}, ["'limt'", "did you mean 'limit'"]),
        ("events.publish", {}, ["'type'", "missing"]),
        ("events.publish", {"type": 5}, ["'type'", "string", "integer"]),
        ("events.publish", {"type": "spec:x", "dat": {}}, ["'dat'", "did you mean 'data'"]),
        ("events.publish", {"type": "spec:x", "metadata": []}, ["'metadata'", "array"]),
        ("events.publish", ["spec:x", {}, "s", {}, "extra"], ["at most 4"]),
        ("events.unsubscribe", {"subscription": 5}, ["'subscription'", "string"]),
        ("daemon.status", {"verbose": True}, ["'verbose'"]),
    ],
)
async def test_invalid_params_messages_name_the_param(rpc, method, params, needles):
    await rpc.send(req(method, params, "p"))
    error = assert_error(await rpc.read(), -32602, "p")
    for needle in needles:
        assert needle in error["message"], (needle, error)


@pytest.mark.parametrize(("wrong", "right"), [("events.publsh", "events.publish"), ("daemon.stats", "daemon.status"), ("system.listmethods", "system.listMethods"), ("event.list", "events.list")])
async def test_method_not_found_suggests_a_near_name(rpc, wrong, right):
    error = assert_error(await rpc.call(wrong), -32601, rpc._ids)
    assert wrong in error["message"] and f"did you mean {right!r}" in error["message"], error


async def test_method_not_found_without_a_near_name_suggests_nothing(rpc):
    error = assert_error(await rpc.call("zzzz.qqqq"), -32601, rpc._ids)
    assert "did you mean" not in error["message"], error


async def test_out_of_range_integers_in_params_are_not_internal_errors(rpc):
    # `since` is an integer, and 2**63 is one: there are no events after it. It must not be a
    # -32603 (an SQLite OverflowError reaching the client); an empty page or -32602 are both fine.
    for since in (2**63, 2**64, 10**30):
        response = await rpc.call("events.list", since=since)
        if "error" in response:
            assert_error(response, -32602, rpc._ids)
        else:
            assert assert_result(response, rpc._ids)["events"] == []


# -- introspection ----------------------------------------------------------------------------------

async def test_rpc_discover_describes_every_method(rpc):
    names = await rpc.result("system.listMethods")
    discovered = await rpc.result("rpc.discover")
    methods = {m["name"]: m for m in discovered["methods"]}
    assert len(methods) == len(discovered["methods"]) == len(names)
    assert set(methods) == set(names)
    for name, method in methods.items():
        assert isinstance(method["summary"], str) and method["summary"].strip(), name
        for param in method["params"]:
            assert isinstance(param["name"], str) and param["name"], (name, param)
            assert isinstance(param["type"], str) and param["type"], (name, param)
            assert isinstance(param["required"], bool), (name, param)
            assert ("default" in param) == (not param["required"]), (name, param)
    publish = methods["events.publish"]["params"]
    assert [p["name"] for p in publish] == ["type", "data", "source", "metadata"]
    assert publish[0] == {"name": "type", "type": "string", "required": True}
    assert all(p["required"] is False and p["default"] is None for p in publish[1:])
    assert {p["name"]: p["default"] for p in methods["events.list"]["params"]} == {"since": 0, "pattern": None, "limit": 100, "tail": False}
    assert methods["daemon.status"]["params"] == []


# -- concurrency -----------------------------------------------------------------------------------

class MuxClient:
    """Concurrent calls on one connection; answers are routed by id."""

    def __init__(self, stream: trio.SocketStream):
        self.stream = stream
        self.send_lock = trio.Lock()
        self.waiting: dict[Any, tuple[trio.Event, list]] = {}
        self.stray: list[Any] = []

    async def reader(self) -> None:
        buffer = bytearray()
        while chunk := await self.stream.receive_some(65536):
            buffer += chunk
            while (end := buffer.find(b"\n")) >= 0:
                message = json.loads(buffer[:end])
                del buffer[: end + 1]
                entry = self.waiting.get(message.get("id")) if isinstance(message, dict) else None
                if entry is None or entry[1]:
                    self.stray.append(message)
                    continue
                entry[1].append(message)
                entry[0].set()

    async def call(self, request_id: str, method: str, params: Any = None) -> Any:
        event, slot = self.waiting[request_id] = (trio.Event(), [])
        async with self.send_lock:
            await self.stream.send_all(frame(req(method, params, request_id)))
        await event.wait()
        return slot[0]


async def test_many_connections_with_concurrent_calls_get_their_own_answers(daemon, rpc):
    connections, calls = 50, 20
    published: dict[tuple[int, int], int] = {}
    strays: list[Any] = []

    async def client(c: int) -> None:
        stream = await trio.open_unix_socket(os.fspath(daemon.socket_path))
        async with stream:
            mux = MuxClient(stream)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(mux.reader)

                async def one_call(k: int) -> None:
                    request_id = f"{c}-{k}"
                    kind = k % 4
                    if kind == 0:
                        result = assert_result(await mux.call(request_id, "events.publish", {"type": "conc:e", "data": {"c": c, "k": k}}), request_id)
                        published[(c, k)] = result["seq"]
                    elif kind == 1:
                        assert assert_result(await mux.call(request_id, "daemon.status"), request_id)["pid"] == os.getpid()
                    elif kind == 2:
                        result = assert_result(await mux.call(request_id, "events.list", {"pattern": "conc:*", "limit": 5}), request_id)
                        assert all(e["type"] == "conc:e" for e in result["events"]) and len(result["events"]) <= 5
                    else:
                        assert_error(await mux.call(request_id, "events.list", {"limit": f"{c}-{k}"}), -32602, request_id)

                async with trio.open_nursery() as calls_nursery:
                    for k in range(calls):
                        calls_nursery.start_soon(one_call, k)
                nursery.cancel_scope.cancel()
            strays.extend(mux.stray)

    with trio.fail_after(SAFETY):
        async with trio.open_nursery() as nursery:
            for c in range(connections):
                nursery.start_soon(client, c)
    assert strays == []
    assert len(published) == connections * calls // 4
    assert len(set(published.values())) == len(published)
    # Every publish answer named the seq of that very event.
    stored = {e["seq"]: (e["data"]["c"], e["data"]["k"]) for e in await events_of_type(rpc, "conc:e")}
    assert {seq: key for key, seq in published.items()} == stored


async def test_pipelined_requests_are_all_answered(daemon, rpc):
    published = await rpc.result("events.publish", type="pipe:e")
    requests = []
    for n in range(100):
        kind = n % 4
        if kind == 0:
            requests.append(req("daemon.status", request_id=n))
        elif kind == 1:
            requests.append(req("events.list", {"pattern": "pipe:e"}, n))
        elif kind == 2:
            requests.append(req("no.such", request_id=n))
        else:
            requests.append([req("system.listMethods", request_id=n), req("events.publish", {"type": "pipe:quiet"}, notification=True)])
    await rpc.send_raw(b"".join(frame(r) for r in requests))  # all 100 before reading any
    answers = {}
    with trio.fail_after(SAFETY):
        while len(answers) < 100:
            message = await rpc.read()
            if isinstance(message, list):
                assert len(message) == 1, message
                message = message[0]
            assert message["id"] not in answers, message
            answers[message["id"]] = message
    assert sorted(answers) == list(range(100))
    for n, answer in answers.items():
        kind = n % 4
        if kind == 0:
            assert assert_result(answer, n)["pid"] == os.getpid()
        elif kind == 1:
            assert [e["seq"] for e in assert_result(answer, n)["events"]] == [published["seq"]]
        elif kind == 2:
            assert_error(answer, -32601, n)
        else:
            assert "events.publish" in assert_result(answer, n)
    assert await rpc.result("daemon.status")  # nothing else was in the stream
    assert len(await events_of_type(rpc, "pipe:quiet")) == 25


# -- isolation --------------------------------------------------------------------------------------

async def test_a_bad_client_and_a_vanishing_client_do_not_disturb_others(daemons):
    daemon = await daemons.start(overrides={"GODEL_RPC__MAX_LINE_BYTES": "4096"})
    # events.list with limit 10000 will answer about 1.5 MB: more than the socket buffers hold.
    await daemon.bus.publish_many(make_draft("iso:bulk", {"i": i, "pad": "p" * 400}) for i in range(3000))
    good = await AsyncRpc.connect(daemon.socket_path)
    bad = await AsyncRpc.connect(daemon.socket_path)
    checks = 0

    async def check() -> None:
        nonlocal checks
        response = await good.call("daemon.status")
        assert assert_result(response, good._ids)["pid"] == os.getpid()
        response = await good.call("events.list", pattern="iso:bulk", limit=2, tail=True)
        assert [e["data"]["i"] for e in assert_result(response, good._ids)["events"]] == [2998, 2999]
        checks += 1

    with trio.fail_after(SAFETY):
        await check()
        # Invalid UTF-8.
        await bad.send_raw(b'{"jsonrpc":"2.0","id":1,"method":"daemon.status","params":{"x":"\xff\xfe"}}\n')
        assert_error(await bad.read(), -32700, None)
        await check()
        # An oversized line, sent in pieces: refused as soon as it passes the cap ...
        await bad.send_raw(b'{"jsonrpc":"2.0","id":2,"method":"daemon.status","params":{"x":"' + b"A" * 3000)
        await check()
        await bad.send_raw(b"A" * 3000)
        error = assert_error(await bad.read(), -32600, None)
        assert error["data"] == {"max_line_bytes": 4096}
        await check()  # while bad is in the middle of the line being discarded
        await bad.send_raw(b"A" * 100_000 + b'"}}')
        await check()
        # ... and the rest of the line is discarded, up to its newline; the next line is a request.
        await bad.send_raw(b"\n" + frame(req("daemon.status", request_id=3)))
        assert assert_result(await bad.read(), 3)["pid"] == os.getpid()

        # A client that asks for a large answer, reads one byte of it, and vanishes.
        vanishing = await trio.open_unix_socket(os.fspath(daemon.socket_path))
        await vanishing.send_all(frame(req("events.list", {"limit": 10000}, "big")))
        assert await vanishing.receive_some(1)
        await check()  # while godeld is blocked writing to it
        await trio.aclose_forcefully(vanishing)
        await check()
        # And one that vanishes before its answer starts.
        vanishing = await trio.open_unix_socket(os.fspath(daemon.socket_path))
        await vanishing.send_all(frame(req("events.list", {"limit": 10000}, "big2")))
        await trio.aclose_forcefully(vanishing)
        await check()

        # Both connections end on godeld's side; good and bad stay.
        while daemon.status()["connections"] != 2:
            await check()
        await bad.send(req("daemon.status", request_id=4))
        assert assert_result(await bad.read(), 4)["pid"] == os.getpid()
    assert good.notifications == [] and bad.notifications == []
    assert checks >= 8
    await good.aclose()
    await bad.aclose()


# -- subscriptions ----------------------------------------------------------------------------------

async def test_subscribe_reply_comes_before_its_first_notification(daemon, rpc):
    for n in range(3):
        await rpc.result("events.publish", type="sub:pre", data={"n": n})
    subscriber = await AsyncRpc.connect(daemon.socket_path)
    with trio.fail_after(SAFETY):
        # Replayed events are ready at once: still, the reply is the first line.
        await subscriber.send(req("events.subscribe", {"pattern": "sub:*", "since": 0}, "s1"))
        reply = assert_result(await subscriber.read(), "s1")
        sub_id = reply["subscription"]
        for n in range(3):
            message = await subscriber.read()
            assert message["method"] == "events.event" and "id" not in message, message
            assert message["params"]["subscription"] == sub_id
            assert (message["params"]["type"], message["params"]["data"]) == ("sub:pre", {"n": n})
        # In a batch with a publish that the new subscription sees: the batch's answer comes before
        # the new subscription's notification (the first subscription may see the event earlier).
        since = daemon.bus.last_seq
        await subscriber.send([req("events.subscribe", {"pattern": "sub:live", "since": since}, "s2"), req("events.publish", {"type": "sub:live"}, "p")])
        before = []
        while not isinstance(answer := await subscriber.read(), list):
            assert answer["method"] == "events.event", answer
            before.append(answer["params"]["subscription"])
        by_id = {item["id"]: item for item in answer}
        live_id = assert_result(by_id["s2"], "s2")["subscription"]
        seq = assert_result(by_id["p"], "p")["seq"]
        assert live_id != sub_id and live_id not in before, before
        seen = {s: seq for s in before}
        while len(seen) < 2:  # the event, once for each subscription
            message = await subscriber.read()
            assert message["method"] == "events.event", message
            seen[message["params"]["subscription"]] = message["params"]["seq"]
        assert seen == {sub_id: seq, live_id: seq}
    await subscriber.aclose()


async def test_unsubscribe_of_an_unknown_subscription(rpc):
    response = await rpc.call("events.unsubscribe", subscription="77.77")
    error = assert_error(response, -32001, rpc._ids)
    assert "77.77" in error["message"]
    assert error["data"] == {"subscription": "77.77"}


async def test_no_notifications_after_unsubscribe(daemon, rpc):
    subscriber = await AsyncRpc.connect(daemon.socket_path)
    with trio.fail_after(SAFETY):
        gone = (await subscriber.result("events.subscribe", pattern="unsub:*"))["subscription"]
        kept = (await subscriber.result("events.subscribe", pattern="unsub:*"))["subscription"]
        first = await rpc.result("events.publish", type="unsub:a")
        got = {}
        while len(got) < 2:
            message = await subscriber.next_notification()
            got[message["params"]["subscription"]] = message["params"]["seq"]
        assert got == {gone: first["seq"], kept: first["seq"]}
        subscribers = daemon.status()["subscribers"]

        assert await subscriber.result("events.unsubscribe", subscription=gone) == {"unsubscribed": gone}
        assert daemon.status()["subscribers"] == subscribers - 1
        later = [(await rpc.result("events.publish", type="unsub:b"))["seq"] for _ in range(3)]
        # The subscription that stays gets them all; then a call on the same connection is the
        # barrier: nothing for the one that went may come before or after.
        seen = []
        while len(seen) < 3:
            message = await subscriber.next_notification()
            assert message["params"]["subscription"] == kept, message
            seen.append(message["params"]["seq"])
        assert seen == later
        status = await subscriber.call("daemon.status")
        assert status["result"]["pid"] == os.getpid()
        assert subscriber.notifications == []
        error = assert_error(await subscriber.call("events.unsubscribe", subscription=gone), -32001, subscriber._ids)  # twice: unknown now
        assert gone in error["message"]
        assert subscriber.notifications == []
    await subscriber.aclose()
