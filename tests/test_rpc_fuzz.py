"""Fuzzing the JSON-RPC server of a real godeld process.

More than a thousand malformed or unusual frames (bad JSON, wrong types, huge ids, invalid UTF-8,
oversized lines, batches, notifications) are sent from several connections at once. What each
frame must get back is computed by a reference classifier written here from the JSON-RPC 2.0
specification and the documented method signatures (it does not use godeld.dispatch). Meanwhile a
canary connection keeps calling daemon.status and checks every answer. A second test does the same
for clients that half-close, vanish mid-frame or vanish mid-reply.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import socket
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

CAP = 65536  # the daemons here run with rpc.max_line_bytes = CAP
ENV = {"GODEL_RPC__MAX_LINE_BYTES": str(CAP)}
SEED = 0x60DE1
WORKERS = 8
IO_TIMEOUT = 30.0  # a safety net against a hung daemon, never a measured quantity

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
NOT_FOUND = -32001


# -- the reference: what the JSON-RPC 2.0 spec and the method signatures say ----------------------

REQUIRED = object()


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _object_or_null(v: Any) -> bool:
    return v is None or isinstance(v, dict)


def _str_or_null(v: Any) -> bool:
    return v is None or isinstance(v, str)


def _int_or_null(v: Any) -> bool:
    return v is None or _is_int(v)


def _patterns(v: Any) -> bool:
    return v is None or isinstance(v, str) or (isinstance(v, list) and all(isinstance(i, str) for i in v))


# Every method of a default godeld, with its params in signature order: (name, type check, default).
REFERENCE_METHODS: dict[str, tuple[tuple[str, Callable[[Any], bool], Any], ...]] = {
    "daemon.status": (),
    "daemon.shutdown": (),
    "daemon.reload": (),
    "rpc.discover": (),
    "system.listMethods": (),
    "plugins.list": (),
    "events.publish": (("type", _is_str, REQUIRED), ("data", _object_or_null, None), ("source", _str_or_null, None), ("metadata", _object_or_null, None)),
    "events.list": (("since", _is_int, 0), ("pattern", _patterns, None), ("limit", _is_int, 100), ("tail", _is_bool, False)),
    "events.subscribe": (("pattern", _patterns, None), ("since", _int_or_null, None), ("on_lag", lambda v: v in ("catch_up", "close") and isinstance(v, str), "catch_up"), ("once", _is_bool, False)),
    "events.unsubscribe": (("subscription", _is_str, REQUIRED),),
}
# The fuzz never calls these (they stop the daemon, reload it, or start notifications).
NEVER_CALLED = {"daemon.shutdown", "daemon.reload", "events.subscribe"}

EVENT_TYPE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,127}")  # documented in the error message of events.publish
EVENT_PATTERN = re.compile(r"[A-Za-z0-9_.:/*?-]{1,128}")
JSON_WHITESPACE = b" \t\r\n"
MEMBERS = {"jsonrpc", "method", "params", "id"}


def canonical_id(value: Any) -> str:
    """The id as JSON: 1, 1.0, "1" and null stay distinct, so an echo must keep the type."""
    return json.dumps(value)


@dataclass(frozen=True)
class Expect:
    key: tuple  # ("one", canonical id, outcome) or ("batch", sorted keys of the items)
    rule: str  # why: for the failure report


def one(request_id: Any, outcome: int | str, rule: str) -> Expect:
    return Expect(("one", canonical_id(request_id), str(outcome)), rule)


def valid_id(value: Any) -> bool:
    # JSON-RPC 2.0 §4: a String, a Number or Null. 1e400 is a number godeld cannot echo (it reads inf).
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, (str, int))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def handler_outcome(method: str, kwargs: dict[str, Any]) -> int | str:
    """The documented checks of the handlers, after the params have bound."""
    if method == "events.publish":
        if not EVENT_TYPE.fullmatch(kwargs["type"]):
            return INVALID_PARAMS
        source = kwargs["source"]
        if source and len(source) > 128:  # an empty source means the default, "rpc"
            return INVALID_PARAMS
        for value in (kwargs["data"], kwargs["metadata"]):
            try:
                json.dumps(value, allow_nan=False)  # 1e400 in data reads as inf: not storable as JSON
            except ValueError:
                return INVALID_PARAMS
        return "ok"
    if method == "events.list":
        if kwargs["since"] < 0 or kwargs["limit"] < 1:
            return INVALID_PARAMS
        pattern = kwargs["pattern"]
        if pattern is not None:
            patterns = [pattern] if isinstance(pattern, str) else pattern
            if not patterns or not all(EVENT_PATTERN.fullmatch(p) for p in patterns):
                return INVALID_PARAMS
        return "ok"
    if method == "events.unsubscribe":
        return NOT_FOUND  # the fuzz connections never subscribe
    return "ok"


def bind_outcome(method: str, params: Any) -> int | str:
    spec = REFERENCE_METHODS[method]
    names = [name for name, _, _ in spec]
    if params is None:
        given: dict[str, Any] = {}
    elif isinstance(params, list):  # by position, in signature order
        if len(params) > len(spec):
            return INVALID_PARAMS
        given = dict(zip(names, params))
    else:
        given = params
    if any(key not in names for key in given):
        return INVALID_PARAMS
    kwargs = {}
    for name, check, default in spec:
        if name in given:
            if not check(given[name]):
                return INVALID_PARAMS
            kwargs[name] = given[name]
        elif default is REQUIRED:
            return INVALID_PARAMS
        else:
            kwargs[name] = default
    return handler_outcome(method, kwargs)


def classify_request(message: Any) -> Expect | None:
    """The response one request (or batch item) must get; None for none."""
    if not isinstance(message, dict):
        return one(None, INVALID_REQUEST, "not a request object")
    has_id = "id" in message
    request_id = message.get("id")
    if has_id and not valid_id(request_id):
        return one(None, INVALID_REQUEST, "invalid id: answered with id null")
    jsonrpc = message.get("jsonrpc")
    params = message.get("params")
    problem = None
    if not (isinstance(jsonrpc, str) and jsonrpc == "2.0"):
        problem = '"jsonrpc" is not exactly "2.0"'
    elif not isinstance(message.get("method"), str):
        problem = '"method" is not a string'
    elif "params" in message and not isinstance(params, (dict, list)):
        problem = '"params" is neither an object nor an array'
    elif set(message) - MEMBERS:
        problem = "members other than jsonrpc/method/params/id"
    if problem:
        if not has_id:
            # Not a valid Request object, so not a Notification either: JSON-RPC 2.0 §5 and the
            # §7 examples ({"jsonrpc": "2.0", "method": 1, "params": "bar"} and {"foo": "boo"} in
            # a batch) answer it with Invalid Request and id null.
            return one(None, INVALID_REQUEST, f"invalid request without an id ({problem}): spec §7 answers it with id null")
        return one(request_id, INVALID_REQUEST, f"invalid request ({problem})")
    if not has_id:
        return None  # a notification: never answered, whatever its method or params
    method = message["method"]
    if method not in REFERENCE_METHODS:
        return one(request_id, METHOD_NOT_FOUND, "unknown method")
    assert method not in NEVER_CALLED, f"the fuzz must not call {method}"
    outcome = bind_outcome(method, params)
    return one(request_id, outcome, "ok" if outcome == "ok" else f"{method} answers {outcome}")


def classify(frame: bytes) -> list[Expect]:
    """Every response that `frame` (one line, without its newline) must get."""
    if len(frame) > CAP:
        return [one(None, INVALID_REQUEST, "line longer than max_line_bytes")]
    if not frame.strip(JSON_WHITESPACE):
        return []  # blank lines are ignored
    try:
        text = frame.decode("utf-8")
    except UnicodeDecodeError:
        return [one(None, PARSE_ERROR, "invalid UTF-8")]
    try:
        message = json.loads(text, parse_constant=_reject_constant)
    except ValueError:  # bad JSON, NaN/Infinity, an integer of more than 4300 digits
        return [one(None, PARSE_ERROR, "not JSON")]
    if isinstance(message, list):
        if not message:
            return [one(None, INVALID_REQUEST, "empty batch: one error object, not an array")]
        items = [e for e in map(classify_request, message) if e is not None]
        if not items:
            return []  # only notifications: no response at all
        rules = sorted({e.rule for e in items if e.rule != "ok"})
        return [Expect(("batch", tuple(sorted(e.key for e in items))), "batch: " + ("; ".join(rules) or "ok"))]
    expected = classify_request(message)
    return [expected] if expected else []


def response_key(message: Any) -> tuple:
    """The key of a received response; raises AssertionError if it is not a JSON-RPC response."""
    if isinstance(message, list):
        assert message, "an empty array is never a response"
        return ("batch", tuple(sorted(response_key(item) for item in message)))
    assert isinstance(message, dict), message
    assert message.get("jsonrpc") == "2.0", message
    assert "id" in message, message
    assert set(message) in ({"jsonrpc", "id", "result"}, {"jsonrpc", "id", "error"}), message
    if "error" in message:
        error = message["error"]
        assert isinstance(error, dict) and set(error) <= {"code", "message", "data"}, error
        assert _is_int(error.get("code")) and isinstance(error.get("message"), str) and error["message"], error
        return ("one", canonical_id(message["id"]), str(error["code"]))
    return ("one", canonical_id(message["id"]), "ok")


def contains_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, list):
        return any(contains_surrogate(v) for v in value)
    if isinstance(value, dict):
        return any(contains_surrogate(k) or contains_surrogate(v) for k, v in value.items())
    return False


def test_reference_classifier_follows_the_spec_examples():
    """The reference itself, on the examples of JSON-RPC 2.0 §7 (adapted to godeld's methods)."""
    def keys(frame: bytes) -> list[tuple]:
        return [e.key for e in classify(frame)]

    assert keys(b'{"jsonrpc": "2.0", "method": "events.list", "params": [0, null, 5], "id": 1}') == [("one", "1", "ok")]
    assert keys(b'{"jsonrpc": "2.0", "method": "events.list", "params": {"limit": 5}, "id": 3}') == [("one", "3", "ok")]
    assert keys(b'{"jsonrpc": "2.0", "method": "events.list", "params": [1, 2, 3, 4, 5]}') == []
    assert keys(b'{"jsonrpc": "2.0", "method": "foobar"}') == []
    assert keys(b'{"jsonrpc": "2.0", "method": "foobar", "id": "1"}') == [("one", '"1"', "-32601")]
    assert keys(b'{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]') == [("one", "null", "-32700")]
    assert keys(b'{"jsonrpc": "2.0", "method": 1, "params": "bar"}') == [("one", "null", "-32600")]
    assert keys(b'[{"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},{"jsonrpc": "2.0", "method"]') == [("one", "null", "-32700")]
    assert keys(b"[]") == [("one", "null", "-32600")]
    assert keys(b"[1]") == [("batch", (("one", "null", "-32600"),))]
    assert keys(b"[1,2,3]") == [("batch", (("one", "null", "-32600"),) * 3)]
    mixed = b"""[{"jsonrpc": "2.0", "method": "daemon.status", "id": "1"},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
        {"jsonrpc": "2.0", "method": "events.list", "params": [0, null, 2], "id": "2"},
        {"foo": "boo"},
        {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
        {"jsonrpc": "2.0", "method": "system.listMethods", "id": "9"}]""".replace(b"\n", b"")
    assert keys(mixed) == [("batch", tuple(sorted([("one", '"1"', "ok"), ("one", '"2"', "ok"), ("one", "null", "-32600"), ("one", '"5"', "-32601"), ("one", '"9"', "ok")])))]
    assert keys(b'[{"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]}, {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}]') == []
    # godeld's own rules on top of the spec.
    assert keys(b'{"jsonrpc": "2.0", "method": "daemon.status", "id": 1e400}') == [("one", "null", "-32600")]
    assert keys(b'{"jsonrpc": "2.0", "method": "daemon.status", "id": true}') == [("one", "null", "-32600")]
    assert keys(b'{"jsonrpc": "2.0", "method": "daemon.status", "id": 1, "x": 0}') == [("one", "1", "-32600")]
    assert keys(b'{"jsonrpc": "2.0", "method": "events.publish", "params": {"type": 5}, "id": 1}') == [("one", "1", "-32602")]
    assert keys(b"1" * 4301) == [("one", "null", "-32700")]
    assert keys(b'{"a": NaN}') == [("one", "null", "-32700")]
    assert keys(b'"\xff"') == [("one", "null", "-32700")]
    assert keys(b" \t\r") == []
    assert keys(b" " * (CAP + 1)) == [("one", "null", "-32600")]


# -- the frames ------------------------------------------------------------------------------------

HUGE = "\x00HUGE\x00"  # placeholders replaced in the encoded bytes
BAD = "\x00BAD\x00"
INVALID_UTF8 = [b"\xff", b"\xfe\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\xf8\x88\x80\x80\x80", b"\x80", b"\xf4\x90\x80\x80", b"a\xc3"]
TEXT = "abcXYZ019 _-:./\"\\\t\x00\x1f\u00e9\u4e2d\u2028\U0001F600"


class FrameGen:
    """Deterministic frames: each generator returns the frame's bytes (no newline)."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.n = 0

    def uid(self) -> int:
        self.n += 1
        return self.n

    def text(self, lo: int = 0, hi: int = 12) -> str:
        return "".join(self.rng.choice(TEXT) for _ in range(self.rng.randint(lo, hi)))

    def encode(self, obj: Any, *, huge: bytes = b"1e400", bad: bytes = b"\xff") -> bytes:
        ensure_ascii = self.rng.random() < 0.5
        if self.rng.random() < 0.3:
            data = json.dumps(obj, ensure_ascii=ensure_ascii)  # spaces after , and :
        else:
            data = json.dumps(obj, ensure_ascii=ensure_ascii, separators=(",", ":"))
        raw = data.encode("utf-8")
        raw = raw.replace(json.dumps(HUGE).encode(), huge)
        return raw.replace(json.dumps(BAD).encode()[1:-1], bad)

    # values

    def good_id(self) -> Any:
        n = self.uid()
        kind = self.rng.randrange(9)
        if kind == 0:
            return n
        if kind == 1:
            return -n * 7919
        if kind == 2:
            return 10 ** self.rng.randint(19, 80) + n  # beyond 64 bits
        if kind == 3:
            return -(10 ** self.rng.randint(300, 4299)) - n  # up to 4300 digits: still legal
        if kind == 4:
            return self.rng.choice([n + 0.5, -n / 8, n * 1e15 + 0.25, 1e300, -2.5e-300])
        if kind == 5:
            return f"s{n}-{self.text()}"
        if kind == 6:
            return f"L{n}-" + "l" * self.rng.randint(10_000, 50_000)
        if kind == 7:
            return ""
        return None

    def event_type(self) -> str:
        return self.rng.choice(["fuzz:ok", "fuzz/a.b-c", "f_" + str(self.uid()), "x" * 128, "0:0"])

    def good_call(self) -> tuple[str, Any]:
        """A method and params that succeed (or, for events.unsubscribe, fail with -32001)."""
        r = self.rng
        kind = r.randrange(8)
        if kind == 0:
            return "daemon.status", r.choice([None, {}, []])
        if kind == 1:
            return "system.listMethods", r.choice([None, {}])
        if kind == 2:
            return "plugins.list", None
        if kind == 3:
            return "rpc.discover", r.choice([None, []])
        if kind == 4:
            params = {"since": r.randint(0, 5000), "limit": r.randint(1, 5), "tail": r.random() < 0.5, "pattern": r.choice([None, "fuzz:*", ["fuzz:*", "daemon:*"], "*", "no-such-type"])}
            if r.random() < 0.5:
                return "events.list", [params["since"], params["pattern"], params["limit"], params["tail"]][: r.randint(0, 4)]
            return "events.list", {k: v for k, v in params.items() if r.random() < 0.7}
        if kind in (5, 6):
            data = r.choice([None, {}, {"n": self.uid(), "s": self.text(), "f": 1.5, "l": [1, None, True]}])
            meta = r.choice([None, {}, {"k": "v"}])
            source = r.choice([None, "", "fuzzer", "s" * 128])
            if r.random() < 0.5:
                return "events.publish", [self.event_type(), data, source, meta][: r.randint(1, 4)]
            params = {"type": self.event_type()}
            params.update({k: v for k, v in (("data", data), ("source", source), ("metadata", meta)) if r.random() < 0.6})
            return "events.publish", params
        return "events.unsubscribe", r.choice([{"subscription": f"{self.uid()}.1"}, ["nope"]])

    def wrong_call(self) -> tuple[str, Any]:
        """A real method with params it must refuse (-32602)."""
        ok = self.event_type()
        return self.rng.choice([
            ("events.publish", {"type": self.rng.choice([123, None, ["a"], {"t": 1}, True, 1.5])}),
            ("events.publish", {}),
            ("events.publish", []),
            ("events.publish", {"typ": ok}),
            ("events.publish", {"type": ok, "dat": {}}),
            ("events.publish", {"type": ok, "data": self.rng.choice(["str", [1], 3, True])}),
            ("events.publish", {"type": self.rng.choice(["has space", "", "x" * 129, "-start", "\u00e9t\u00e9", "a\nb"])}),
            ("events.publish", {"type": ok, "source": self.rng.choice([5, ["s"], "s" * 129])}),
            ("events.publish", {"type": ok, "metadata": self.rng.choice([1, "m", []])}),
            ("events.publish", {"type": ok, "data": {"x": HUGE}}),
            ("events.publish", [ok, {}, "s", {}, "one too many"]),
            ("events.publish", [1]),
            ("events.list", {"limit": self.rng.choice(["10", True, 1.5, 0, -3, None, [5]])}),
            ("events.list", {"since": self.rng.choice([-1, "0", 2.0, False, {}])}),
            ("events.list", {"pattern": self.rng.choice([5, [1], [], "a b", ["ok", "no way"], {"p": 1}, "x" * 129])}),
            ("events.list", {"tail": self.rng.choice([1, "yes", None])}),
            ("events.list", {"limt": 5}),
            ("events.list", {"bogus": 1, "limit": 2}),
            ("events.list", [0, None, 100, False, "extra"]),
            ("events.list", ["x"]),
            ("daemon.status", self.rng.choice([{"x": 1}, [1], [None]])),
            ("system.listMethods", {"verbose": True}),
            ("plugins.list", [0]),
            ("events.unsubscribe", self.rng.choice([{}, [], {"subscription": 5}, {"subscription": None}, {"sub": "1.1"}])),
        ])

    def unknown_method(self) -> str:
        return self.rng.choice([
            f"nope.x{self.uid()}", "events.publsh", "daemon.stats", "Daemon.status", "daemon.status ", "", "rpc.", "events",
            "system.listmethods", "\u00e9v\u00e9nements.list", "events.list.all", "rpc.discover2", "x" * 300,
        ])

    def request(self, method: Any, params: Any = None, *, with_id: bool = True, request_id: Any = None) -> dict:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        if with_id:
            message["id"] = self.good_id() if request_id is None else request_id
        keys = list(message)
        self.rng.shuffle(keys)  # member order carries no meaning
        return {k: message[k] for k in keys}

    def invalid_structure(self, with_id: bool) -> dict:
        """A request object that breaks the envelope rules (-32600)."""
        method, params = self.good_call()
        message = self.request(method, params, with_id=with_id)
        kind = self.rng.randrange(4)
        if kind == 0:
            choice = self.rng.choice(["1.0", 2.0, 2, "2", "2.0 ", None, ["2.0"], "missing"])
            if choice == "missing":
                del message["jsonrpc"]
            else:
                message["jsonrpc"] = choice
        elif kind == 1:
            choice = self.rng.choice([1, None, True, ["daemon.status"], {"name": "daemon.status"}, "missing"])
            if choice == "missing":
                del message["method"]
            else:
                message["method"] = choice
        elif kind == 2:
            message["params"] = self.rng.choice(["bar", 1, 0, True, False, None, 2.5])
        else:
            message[self.rng.choice(["foo", "Id", "ID", "result", "error", "params ", "version"])] = self.rng.choice([1, None, "x", {}])
        return message

    def batch_item(self, *, allow_invalid_without_id: bool) -> Any:
        r = self.rng.randrange(10)
        if r == 0:
            return self.rng.choice([1, "x", None, True, [], [1], 2.5])
        if r == 1:
            return self.invalid_structure(with_id=True)
        if r == 2 and allow_invalid_without_id:
            return self.invalid_structure(with_id=False)
        if r == 3:
            return self.request(*self.wrong_call())
        if r == 4:
            return self.request(self.unknown_method())
        if r == 5:
            return self.request("daemon.status", request_id=self.rng.choice([True, {}, [1], False]))
        if r in (6, 7):
            return self.request(*self.good_call(), with_id=False)
        return self.request(*self.good_call(), request_id=self.uid())

    # frame generators: name -> (weight, function)

    def f_random_bytes(self) -> bytes:
        while True:
            data = bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 200))).replace(b"\n", b"#")
            if data.strip():
                return data

    def f_truncated(self) -> bytes:
        data = self.encode(self.request(*self.good_call()))
        return data[: self.rng.randrange(1, len(data))]

    def f_mutated(self) -> bytes:
        method, params = self.good_call()
        data = bytearray(json.dumps(self.request(method, params, request_id=self.uid())).encode())
        for _ in range(self.rng.randint(1, 3)):
            pos = self.rng.randrange(len(data))
            op = self.rng.randrange(3)
            byte = self.rng.choice(b'{}[]",:0123456789 aeiltnrux\\\x00\xff-.')
            if op == 0:
                data[pos] = byte
            elif op == 1:
                data.insert(pos, byte)
            elif len(data) > 1:
                del data[pos]
        return bytes(data)

    def f_nan_infinity(self) -> bytes:
        literal = self.rng.choice([b"NaN", b"Infinity", b"-Infinity"])
        message = self.request(*self.rng.choice([("events.list", {"limit": HUGE}), ("events.publish", {"type": "fuzz:x", "data": {"v": HUGE}}), ("daemon.status", None)]))
        if self.rng.random() < 0.4:
            message["id"] = HUGE
        if self.rng.random() < 0.2:
            message.pop("id", None)
        if "params" not in message and "id" not in message:
            message["id"] = HUGE
        return self.encode(message, huge=literal)

    def f_invalid_utf8(self) -> bytes:
        where = self.rng.randrange(3)
        bad = self.rng.choice(INVALID_UTF8)
        if where == 0:
            message = self.request("events.publish", {"type": "fuzz:x", "data": {"s": "ok" + BAD + "ok"}})
        elif where == 1:
            message = self.request("daemon.status", request_id="id" + BAD)
        else:
            message = self.request("daemon" + BAD + ".status", with_id=self.rng.random() < 0.7)
        return self.encode(message, bad=bad)

    def f_huge_integer(self) -> bytes:
        digits = b"9" * self.rng.randint(4301, 20000)
        if self.rng.random() < 0.3:
            digits = b"-" + digits
        message = self.rng.choice([self.request("daemon.status", request_id=HUGE), self.request("events.list", {"since": HUGE}), self.request("events.list", {"since": HUGE}, with_id=False)])
        return self.encode(message, huge=digits)

    def f_non_object(self) -> bytes:
        return self.rng.choice([b"1", b"-0", b"3.5e2", b'"daemon.status"', b'""', b"null", b"true", b"false", b"  42  ", b'"' + b"s" * 1000 + b'"'])

    def f_invalid_request_with_id(self) -> bytes:
        return self.encode(self.invalid_structure(with_id=True))

    def f_invalid_request_without_id(self) -> bytes:
        return self.encode(self.invalid_structure(with_id=False))

    def f_bad_id(self) -> bytes:
        message = self.request(*self.good_call(), request_id=0)
        message["id"] = self.rng.choice([True, False, {}, {"id": 1}, [], [1, 2], HUGE])
        return self.encode(message, huge=self.rng.choice([b"1e400", b"-1e400", b"1E999"]))

    def f_unknown_method(self) -> bytes:
        return self.encode(self.request(self.unknown_method(), self.rng.choice([None, {}, [], {"a": 1}])))

    def f_wrong_params(self) -> bytes:
        return self.encode(self.request(*self.wrong_call()))

    def f_good(self) -> bytes:
        return self.encode(self.request(*self.good_call()))

    def f_big_but_legal_id(self) -> bytes:
        request_id = self.rng.choice([10 ** self.rng.randint(100, 4299) + self.uid(), "big-" + "\u00e9" * self.rng.randint(1000, 9000), 2**63, -(2**63) - 1, 2**64 + self.uid()])
        return self.encode(self.request(*self.good_call(), request_id=request_id))

    def f_notification(self) -> bytes:
        call = self.rng.choice([self.good_call, self.wrong_call, lambda: (self.unknown_method(), None)])()
        return self.encode(self.request(*call, with_id=False))

    def f_empty_batch(self) -> bytes:
        return self.rng.choice([b"[]", b"[ ]", b" [\t] "])

    def f_batch_of_non_requests(self) -> bytes:
        return self.encode([self.rng.choice([1, 2, "x", None, True, [], [[]], 0.5]) for _ in range(self.rng.randint(1, 6))])

    def f_batch_mixed(self) -> bytes:
        return self.encode([self.batch_item(allow_invalid_without_id=False) for _ in range(self.rng.randint(2, 12))])

    def f_batch_with_invalid_request_without_id(self) -> bytes:
        items = [self.batch_item(allow_invalid_without_id=False) for _ in range(self.rng.randint(0, 5))]
        items.insert(self.rng.randint(0, len(items)), self.rng.choice([{}, {"foo": "boo"}, self.invalid_structure(with_id=False)]))
        return self.encode(items)

    def f_batch_of_notifications(self) -> bytes:
        return self.encode([self.request(*self.rng.choice([self.good_call, self.wrong_call, lambda: (self.unknown_method(), None)])(), with_id=False) for _ in range(self.rng.randint(1, 8))])

    def f_oversized(self) -> bytes:
        kind = self.rng.randrange(4)
        if kind == 0:
            return b"x" * self.rng.randint(CAP + 1, CAP + 40000)
        if kind == 1:  # a valid request, just too long: never executed
            message = self.request("events.publish", {"type": "fuzz:oversized", "data": {"pad": "p" * (CAP + self.rng.randint(0, 20000))}})
            return self.encode(message)
        if kind == 2:  # one byte over
            return self.padded_status(CAP + 1)
        return self.padded_status(CAP)  # exactly at the cap: accepted

    def padded_status(self, size: int) -> bytes:
        head = b'{"jsonrpc":"2.0","method":"daemon.status","id":"pad-' + str(self.uid()).encode() + b"-"
        return head + b"p" * (size - len(head) - 2) + b'"}'

    def f_blank(self) -> bytes:
        return self.rng.choice([b"", b" ", b"\t", b"  \t \r", b"\r"])

    WEIGHTS = {
        "random_bytes": 60, "truncated": 60, "mutated": 60, "nan_infinity": 30, "invalid_utf8": 60, "huge_integer": 30,
        "non_object": 30, "invalid_request_with_id": 80, "invalid_request_without_id": 40, "bad_id": 60, "unknown_method": 60,
        "wrong_params": 130, "good": 170, "big_but_legal_id": 40, "notification": 80, "empty_batch": 15, "batch_of_non_requests": 20,
        "batch_mixed": 80, "batch_with_invalid_request_without_id": 20, "batch_of_notifications": 30, "oversized": 30, "blank": 25,
    }

    def frames(self) -> list[tuple[str, bytes]]:
        out = []
        for name, weight in self.WEIGHTS.items():
            for _ in range(weight):
                while True:
                    frame = getattr(self, "f_" + name)()
                    assert b"\n" not in frame
                    if not self._has_surrogate(frame):  # lone surrogates: see test_frames_python_cannot_echo...
                        break
                out.append((name, frame))
        self.rng.shuffle(out)
        return out

    @staticmethod
    def _has_surrogate(frame: bytes) -> bool:
        if len(frame) > CAP:
            return False
        try:
            return contains_surrogate(json.loads(frame.decode("utf-8"), parse_constant=_reject_constant))
        except ValueError:
            return False


# -- clients ---------------------------------------------------------------------------------------

def request_line(request_id: Any, method: str, params: Any = None) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return json.dumps(message).encode() + b"\n"


class LineSocket:
    """A blocking newline-delimited client; read_line() returns None at EOF."""

    def __init__(self, path: Path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(IO_TIMEOUT)
        self.sock.connect(os.fspath(path))
        self.buffer = bytearray()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_line(self) -> bytes | None:
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                line = bytes(self.buffer[:end])
                del self.buffer[: end + 1]
                return line
            try:
                chunk = self.sock.recv(1 << 20)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                assert not self.buffer, f"the connection ended inside a line: {bytes(self.buffer[:200])!r}"
                return None
            self.buffer += chunk

    def read_message(self) -> Any:
        line = self.read_line()
        assert line is not None, "the daemon closed the connection"
        return json.loads(line)

    def read_to_eof(self) -> list[Any]:
        messages = []
        while (line := self.read_line()) is not None:
            messages.append(json.loads(line))
        return messages

    def close(self) -> None:
        self.sock.close()


class Canary(threading.Thread):
    """Calls daemon.status in a loop on its own connection and checks every answer."""

    def __init__(self, path: Path, pid: int):
        super().__init__(daemon=True)
        self.path = path
        self.pid = pid
        self.answers = 0
        self.errors: list[str] = []
        self.finished = False
        self.stopping = threading.Event()
        self.changed = threading.Condition()

    def run(self) -> None:
        try:
            conn = LineSocket(self.path)
            n = 0
            while not self.stopping.is_set():
                n += 1
                conn.send(request_line(n, "daemon.status"))
                message = conn.read_message()
                result = message.get("result") or {}
                if message.get("id") != n or result.get("pid") != self.pid or result.get("state") != "running":
                    self.errors.append(f"canary call {n} got {str(message)[:300]}")
                    return
                with self.changed:
                    self.answers += 1
                    self.changed.notify_all()
            conn.close()
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.errors.append(f"canary failed: {exc!r}")
        finally:
            with self.changed:
                self.finished = True
                self.changed.notify_all()

    def answered_since(self, count: int) -> bool:
        """Wait until the canary has had an answer after its `count`-th."""
        with self.changed:
            self.changed.wait_for(lambda: self.answers > count or self.finished, IO_TIMEOUT)
            return self.answers > count

    def next_answer(self) -> bool:
        with self.changed:
            count = self.answers
        return self.answered_since(count)

    def stop(self) -> None:
        self.stopping.set()
        self.join(IO_TIMEOUT)


@dataclass
class Report:
    missing: list[tuple[str, str, bytes, str]]  # (rule, generator, frame, detail): expected, never received
    unexpected: list[tuple[str, str, bytes, str]]  # (rule of the frame being sent, generator, frame, what came)
    errors: list[str]


class FuzzWorker(threading.Thread):
    """Sends its share of frames on one connection, each followed by a daemon.status ping."""

    def __init__(self, index: int, path: Path, pid: int, frames: list[tuple[str, bytes]], canary: Canary):
        super().__init__(daemon=True)
        self.index = index
        self.path = path
        self.pid = pid
        self.frames = frames
        self.canary = canary
        self.report = Report([], [], [])
        self.pending: Counter = Counter()  # keys of the responses still to come
        self.origins: dict[tuple, list] = defaultdict(list)  # key -> [(frame index, rule, label, frame)]
        self.current = -1

    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.report.errors.append(f"worker {self.index} failed: {exc!r}")

    def _expect(self, expects: list[Expect], label: str, frame: bytes) -> None:
        for e in expects:
            self.pending[e.key] += 1
            self.origins[e.key].append((self.current, e.rule, label, frame))

    def _received(self, message: Any, label: str, frame: bytes, rule: str) -> tuple:
        try:
            key = response_key(message)
        except AssertionError as exc:
            self.report.errors.append(f"not a JSON-RPC response after a {label} frame {frame[:120]!r}: {exc}")
            return ("malformed",)
        if self.pending[key] > 0:
            self.pending[key] -= 1
            # Credit the frame being sent if it expects this key, else the latest that does. This is
            # for the report only: responses may come late, and what is checked is the multiset.
            origins = self.origins[key]
            index = next((n for n, o in enumerate(origins) if o[0] == self.current), -1)
            origins.pop(index)
        else:
            self.report.unexpected.append((rule, label, frame, f"got {str(key)[:400]}"))
        return key

    def _give_up_connection(self, conn: LineSocket, label: str, frame: bytes) -> LineSocket:
        self.report.errors.append(f"the daemon closed worker {self.index}'s connection after a {label} frame {frame[:120]!r}")
        self._flush_missing()
        conn.close()
        return LineSocket(self.path)

    def _flush_missing(self) -> None:
        for key, count in self.pending.items():
            for _, rule, label, frame in self.origins[key][:count]:
                self.report.missing.append((rule, label, frame, f"expected {str(key)[:400]}"))
        self.pending.clear()
        self.origins.clear()

    def _run(self) -> None:
        conn = LineSocket(self.path)
        for i, (label, frame) in enumerate(self.frames):
            self.current = i
            expects = classify(frame)
            rule = "; ".join(e.rule for e in expects) or "no response"
            self._expect(expects, label, frame)
            # Responses that carry a usable id are awaited here; the others (id null) are settled
            # at the end, when the half-closed connection has delivered everything it ever will.
            wait_for = Counter(t for t in map(wait_token, (e.key for e in expects)) if t)
            ping_id = f"~ping~{self.index}~{i}"
            conn.send(frame + b"\n" + request_line(ping_id, "daemon.status"))
            pinged = False
            while not pinged or +wait_for:
                line = conn.read_line()
                if line is None:
                    conn = self._give_up_connection(conn, label, frame)
                    break
                message = json.loads(line)
                if isinstance(message, dict) and message.get("id") == ping_id:
                    result = message.get("result") or {}
                    if result.get("pid") != self.pid:
                        self.report.errors.append(f"ping after a {label} frame {frame[:120]!r} got {str(message)[:300]}")
                    pinged = True
                    continue
                self._received(message, label, frame, rule)
                for token in arrival_tokens(message):
                    if wait_for[token] > 0:
                        wait_for[token] -= 1
            if i % 40 == 20 and not self.canary.next_answer():
                self.report.errors.append(f"the canary got no answer while worker {self.index} was at frame {i}")
        # Half-close: the daemon answers everything already sent, then closes; all that is still
        # pending after EOF never came.
        conn.sock.shutdown(socket.SHUT_WR)
        while (line := conn.read_line()) is not None:
            self._received(json.loads(line), "(after the last frame)", b"", "(after the last frame)")
        conn.close()
        self._flush_missing()


def wait_token(key: tuple) -> tuple | None:
    """What to wait for before the next frame: the arrival of a response carrying this id (its
    content is checked separately); None for responses with no usable id."""
    if key[0] == "batch":
        ids = [item[1] for item in key[1] if item[1] != "null"]
        return ("batch", ids[0]) if ids else None
    return ("one", key[1]) if key[1] != "null" else None


def arrival_tokens(message: Any) -> list[tuple]:
    if isinstance(message, list):
        return [("batch", canonical_id(item.get("id"))) for item in message if isinstance(item, dict)]
    if isinstance(message, dict):
        return [("one", canonical_id(message.get("id")))]
    return []


def request_roundtrip(path: Path, method: str, params: Any = None) -> bytes:
    conn = LineSocket(path)
    try:
        conn.send(request_line("rt", method, params))
        line = conn.read_line()
        assert line is not None
        return line
    finally:
        conn.close()


def summarize(entries: list[tuple[str, str, bytes, str]]) -> str:
    groups: dict[str, list[tuple[str, bytes, str]]] = defaultdict(list)
    for rule, label, frame, detail in entries:
        groups[rule].append((label, frame, detail))
    lines = []
    for rule, items in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        lines.append(f"  {len(items)} x {rule}; e.g.")
        for label, frame, detail in items[:2]:
            lines.append(f"      [{label}] {frame[:200]!r}{' ...' if len(frame) > 200 else ''}")
            lines.append(f"          {detail}")
    return "\n".join(lines)


def test_fuzzed_frames_get_the_right_answers_and_the_daemon_keeps_answering(godeld):
    proc = godeld(env=ENV)
    proc.start()
    pid = proc.proc.pid

    frames = FrameGen(SEED).frames()
    expectations = Counter()
    for _, frame in frames:
        expects = classify(frame)
        if not expects:
            expectations["no response"] += 1
        for e in expects:
            expectations["batch" if e.key[0] == "batch" else f"{e.key[2]}, id {'null' if e.key[1] == 'null' else 'echoed'}"] += 1
    # The fuzz covers every kind of answer the issue asks about.
    assert len(frames) >= 1000
    for kind in ("-32700, id null", "-32600, id null", "-32600, id echoed", "-32601, id echoed", "-32602, id echoed", "-32001, id echoed", "ok, id echoed", "no response", "batch"):
        assert expectations[kind] >= 15, (kind, expectations)

    live = set(json.loads(request_roundtrip(proc.socket, "system.listMethods"))["result"])
    assert set(REFERENCE_METHODS) <= live, "the reference lists a method godeld does not have"

    canary = Canary(proc.socket, pid)
    canary.start()
    assert canary.next_answer(), canary.errors  # answers before the first frame
    workers = [FuzzWorker(w, proc.socket, pid, frames[w::WORKERS], canary) for w in range(WORKERS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert not worker.is_alive(), f"worker {worker.index} hung"
    assert canary.next_answer(), canary.errors  # and after the last
    canary.stop()
    assert not canary.errors, canary.errors
    assert canary.answers >= 3 + len(frames) // 40 // WORKERS

    # Still answering on a new connection, and stops cleanly.
    assert json.loads(request_roundtrip(proc.socket, "daemon.status"))["result"]["pid"] == pid
    assert proc.stop() == 0
    assert "Traceback" not in proc.output(), proc.output()[-5000:]

    errors = [e for w in workers for e in w.report.errors]
    missing = [m for w in workers for m in w.report.missing]
    unexpected = [u for w in workers for u in w.report.unexpected]
    assert not errors, "\n".join(errors[:20])
    assert not missing and not unexpected, (
        f"{len(frames)} frames: {len(missing)} expected response(s) never came, {len(unexpected)} unexpected response(s).\n"
        f"Missing, by rule:\n{summarize(missing)}\nUnexpected, by the rule of the frame being sent:\n{summarize(unexpected)}"
    )


# -- clients that half-close or vanish ------------------------------------------------------------

def publish_bulk(path: Path, count: int, per_batch: int = 400) -> None:
    """Publish `count` small events in batches (each line well under the cap)."""
    conn = LineSocket(path)
    seqs = set()
    for start in range(0, count, per_batch):
        batch = [{"jsonrpc": "2.0", "id": n, "method": "events.publish", "params": {"type": "chaos:bulk", "data": {"n": n, "pad": "b" * 40}}} for n in range(start, min(count, start + per_batch))]
        line = json.dumps(batch, separators=(",", ":")).encode()
        assert len(line) < CAP
        conn.send(line + b"\n")
        replies = conn.read_message()
        assert sorted(r["id"] for r in replies) == [b["id"] for b in batch], str(replies)[:500]
        seqs.update(r["result"]["seq"] for r in replies)
    conn.close()
    assert len(seqs) == count


def check_answer(message: Any, request_id: Any, pid: int) -> None:
    assert isinstance(message, dict) and message.get("id") == request_id and "result" in message, str(message)[:500]
    result = message["result"]
    if isinstance(result, dict) and "pid" in result:
        assert result["pid"] == pid


def half_closed_requests(path: Path, pid: int, rounds: int) -> None:
    """Requests then shutdown(SHUT_WR): every answer still comes, then EOF."""
    for i in range(rounds):
        conn = LineSocket(path)
        ids = [f"h{i}-status", f"h{i}-list", f"h{i}-publish", f"h{i}-batch"]
        conn.send(
            request_line(ids[0], "daemon.status")
            + request_line(ids[1], "events.list", {"limit": 3, "tail": True})
            + request_line(ids[2], "events.publish", {"type": "chaos:half-closed", "data": {"i": i}})
            + json.dumps([{"jsonrpc": "2.0", "id": ids[3], "method": "system.listMethods"}]).encode() + b"\n"
        )
        conn.sock.shutdown(socket.SHUT_WR)
        messages = conn.read_to_eof()  # returns only at EOF: the daemon closed its side
        conn.close()
        assert len(messages) == 4, messages
        by_id = {m["id"]: m for m in messages if isinstance(m, dict)}
        batch = [m for m in messages if isinstance(m, list)]
        assert set(by_id) == set(ids[:3]) and len(batch) == 1, messages
        check_answer(by_id[ids[0]], ids[0], pid)
        assert len(by_id[ids[1]]["result"]["events"]) == 3
        assert by_id[ids[2]]["result"]["seq"] > 0
        check_answer(batch[0][0], ids[3], pid)
        assert "daemon.status" in batch[0][0]["result"]


def half_frames(path: Path, rng: random.Random, rounds: int) -> None:
    """Half a frame, then close; or half a frame, then SHUT_WR: the daemon closes its side too."""
    for i in range(rounds):
        frame = request_line(f"half{i}", "events.publish", {"type": "chaos:never", "data": {"i": i}})
        conn = LineSocket(path)
        conn.send(frame[: rng.randrange(1, len(frame) - 1)])
        if i % 2:
            conn.close()
            continue
        conn.sock.shutdown(socket.SHUT_WR)
        messages = conn.read_to_eof()
        conn.close()
        # An unterminated line is not a frame; if anything is said about it, it is an error.
        for message in messages:
            assert "error" in message and message["id"] is None, message


def vanishing_readers(path: Path, rounds: int) -> None:
    """Ask for a large answer (about a megabyte) and leave: before it starts, or in the middle."""
    for i in range(rounds):
        conn = LineSocket(path)
        conn.send(request_line(f"big{i}", "events.list", {"limit": 10000}))
        if i % 2:
            assert conn.sock.recv(1)  # the answer has started, and cannot fit in the socket buffers
        conn.close()


def garbage_then_requests(path: Path, pid: int, rounds: int) -> None:
    """Garbage, then valid requests, on the same connection: each gets its answer."""
    garbage = [b"\xff\xfe\xfd", b"}{", b"x" * (CAP + 100), b'{"jsonrpc":"2.0","id":"g","method":1}', b"[]", b"[1]", b'{"jsonrpc":"2.0","id":true,"method":"daemon.status"}']
    conn = LineSocket(path)
    for i in range(rounds):
        for junk in garbage:
            conn.send(junk + b"\n")
            assert response_key(conn.read_message()) == classify(junk)[0].key, junk[:100]
        for k in range(3):
            conn.send(request_line(f"g{i}-{k}", "daemon.status"))
            check_answer(conn.read_message(), f"g{i}-{k}", pid)
    conn.close()


def test_half_closed_and_vanishing_clients_do_not_disturb_the_daemon(godeld):
    proc = godeld(env=ENV)
    proc.start()
    pid = proc.proc.pid
    publish_bulk(proc.socket, 4000)  # events.list with limit 10000 now answers about a megabyte

    canary = Canary(proc.socket, pid)
    canary.start()
    assert canary.next_answer(), canary.errors
    failures: list[str] = []

    def run(name: str, fn: Callable[..., None], *args: Any) -> threading.Thread:
        def target() -> None:
            try:
                fn(*args)
                if not canary.next_answer():  # and the canary was answered while this went on
                    failures.append(f"{name}: no canary answer")
            except Exception as exc:  # noqa: BLE001
                failures.append(f"{name}: {exc!r}")

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        return thread

    rng = random.Random(SEED)
    threads = [
        run("half-closed", half_closed_requests, proc.socket, pid, 30),
        run("half-closed 2", half_closed_requests, proc.socket, pid, 30),
        run("half frames", half_frames, proc.socket, rng, 40),
        run("vanishing readers", vanishing_readers, proc.socket, 12),
        run("garbage then requests", garbage_then_requests, proc.socket, pid, 5),
    ]
    for thread in threads:
        thread.join(120)
        assert not thread.is_alive(), "a client thread hung"
    assert not failures, failures
    assert canary.next_answer(), canary.errors  # still answering after all that
    canary.stop()
    assert not canary.errors, canary.errors

    # Every one of those connections ends on the daemon's side too (only this one is left).
    conn = LineSocket(proc.socket)
    for n in range(100_000):
        conn.send(request_line(n, "daemon.status"))
        status = conn.read_message()
        check_answer(status, n, pid)
        if status["result"]["connections"] == 1:
            break
    assert status["result"]["connections"] == 1, status
    # Nothing half-sent was executed.
    conn.send(request_line("never", "events.list", {"pattern": "chaos:never"}))
    assert conn.read_message()["result"]["events"] == []
    conn.close()
    assert proc.stop() == 0
    assert "Traceback" not in proc.output(), proc.output()[-5000:]


# -- frames Python's json reads but cannot answer as-is ---------------------------------------------

SURROGATE_CASES = {
    # JSON-valid: the grammar allows any \uXXXX escape. The id cannot be written back as UTF-8.
    "lone surrogate id": (b'{"jsonrpc":"2.0","id":"\\ud800","method":"daemon.status"}', {("one", json.dumps("\ud800"), "ok"), ("one", "null", "-32600"), ("one", "null", "-32700")}),
    "lone surrogate method": (b'{"jsonrpc":"2.0","id":7,"method":"\\udc00x"}', {("one", "7", "-32601"), ("one", "null", "-32600"), ("one", "null", "-32700")}),
    "lone surrogate id in a batch": (
        b'[{"jsonrpc":"2.0","id":"\\ud800","method":"daemon.status"},{"jsonrpc":"2.0","id":8,"method":"daemon.status"}]',
        {("batch", tuple(sorted([("one", json.dumps("\ud800"), "ok"), ("one", "8", "ok")]))), ("batch", tuple(sorted([("one", "null", "-32600"), ("one", "8", "ok")]))), ("one", "null", "-32700")},
    ),
    # Nesting deeper than Python's recursion limit: valid JSON (an implementation may limit depth).
    "deeply nested arrays": (b"[" * 5000 + b"]" * 5000, {("one", "null", "-32700"), ("one", "null", "-32600"), ("batch", (("one", "null", "-32600"),))}),
    "deeply nested objects, truncated": (b'{"a":' * 3000, {("one", "null", "-32700")}),
}


@pytest.mark.parametrize("case", list(SURROGATE_CASES))
def test_frames_python_cannot_echo_still_get_an_answer_and_keep_the_connection(godeld, case):
    frame, acceptable = SURROGATE_CASES[case]
    assert len(frame) <= CAP
    proc = godeld(env=ENV)
    proc.start()
    conn = LineSocket(proc.socket)
    conn.send(frame + b"\n" + request_line("after", "daemon.status"))
    answers = []
    after = False
    while not (after and answers):  # the frame's answer and the next request's, in any order
        line = conn.read_line()
        assert line is not None, f"the daemon closed the connection instead of answering {case}; it had sent {answers}"
        message = json.loads(line)
        if isinstance(message, dict) and message.get("id") == "after":
            check_answer(message, "after", proc.proc.pid)
            after = True
        else:
            answers.append(response_key(message))
    assert answers[0] in acceptable, answers
    conn.send(request_line("later", "daemon.status"))  # and the connection goes on
    check_answer(conn.read_message(), "later", proc.proc.pid)
    conn.close()
    assert proc.stop() == 0
