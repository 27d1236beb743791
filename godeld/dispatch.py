"""JSON-RPC 2.0 semantics, apart from the transport: requests, params, errors, batches.

A method is a handler function; its signature is its contract. Params are bound by name (or by
position, in signature order) and checked against the annotations before the call. A plain `def`
handler runs inline (it must not block: that is what keeps simple calls at tens of thousands per
second); an `async def` handler runs in its own task.
"""

from __future__ import annotations

import difflib
import inspect
import json
import logging
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from godeld import protocol as p
from godeld.errors import GodelError, InternalError, InvalidParams, InvalidRequest, MethodNotFound, ParseError

log = logging.getLogger("godeld.rpc")

_encode_text = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
_encode_ascii = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode


def _wire(value: Any) -> bytes:
    """JSON as UTF-8 bytes. A lone surrogate (legal as a \\uXXXX escape in JSON, not in UTF-8) is
    written back escaped, so an id is still echoed exactly as it was given."""
    text = _encode_text(value)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return _encode_ascii(value).encode()


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


# -- type checking of params ----------------------------------------------------------------

@dataclass(frozen=True)
class Check:
    test: Callable[[Any], bool]
    describe: str


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


_SIMPLE: dict[Any, Check] = {
    str: Check(lambda v: isinstance(v, str), "string"),
    int: Check(_is_int, "integer"),
    float: Check(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "number"),
    bool: Check(lambda v: isinstance(v, bool), "boolean"),
    dict: Check(lambda v: isinstance(v, dict), "object"),
    list: Check(lambda v: isinstance(v, list), "array"),
    type(None): Check(lambda v: v is None, "null"),
    Any: Check(lambda v: True, "any"),
    object: Check(lambda v: True, "any"),
}


def compile_check(hint: Any) -> Check:
    if hint in _SIMPLE:
        return _SIMPLE[hint]
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Annotated:
        return compile_check(args[0])
    if origin in (typing.Union, types.UnionType):
        checks = [compile_check(a) for a in args]
        return Check(lambda v: any(c.test(v) for c in checks), " | ".join(c.describe for c in checks))
    if origin is Literal:
        allowed = args
        return Check(lambda v: any(v == a and type(v) is type(a) for a in allowed), " | ".join(json.dumps(a) for a in allowed))
    if origin is list:
        item = compile_check(args[0]) if args else _SIMPLE[Any]
        return Check(lambda v: isinstance(v, list) and all(item.test(i) for i in v), f"{item.describe}[]")
    if origin is dict:
        value = compile_check(args[1]) if len(args) == 2 else _SIMPLE[Any]
        return Check(lambda v: isinstance(v, dict) and all(value.test(i) for i in v.values()), "object" if value.describe == "any" else f"object of {value.describe}")
    raise TypeError(f"unsupported parameter annotation {hint!r}")


@dataclass(frozen=True)
class ParamSpec:
    name: str
    check: Check
    default: Any = MISSING

    @property
    def required(self) -> bool:
        return self.default is MISSING

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.check.describe, "required": self.required}
        if not self.required:
            out["default"] = self.default
        return out


@dataclass
class MethodSpec:
    name: str
    handler: Callable[..., Any]
    params: list[ParamSpec]
    summary: str
    is_async: bool
    plugin: str = ""
    by_name: dict[str, ParamSpec] = field(default_factory=dict)
    required: bool = False  # has at least one required param

    @classmethod
    def from_handler(cls, name: str, handler: Callable[..., Any], *, summary: str | None = None, plugin: str = "") -> "MethodSpec":
        if not isinstance(name, str) or "." not in name or name.startswith(".") or name.endswith("."):
            raise ValueError(f"rpc method names are 'noun.verb', got {name!r}")
        if not callable(handler):
            raise TypeError(f"handler for {name} is not callable")
        sig = inspect.signature(handler)
        try:
            hints = typing.get_type_hints(handler, include_extras=True)
        except Exception as exc:  # noqa: BLE001 - an annotation that cannot be resolved
            raise TypeError(f"cannot read the annotations of the handler for {name}: {exc}") from None
        parameters = list(sig.parameters.values())
        if not parameters or parameters[0].name != "ctx":
            raise TypeError(f"the handler for {name} must take `ctx` as its first parameter")
        params = []
        for param in parameters[1:]:
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
                raise TypeError(f"the handler for {name} must take named parameters only (got {param})")
            check = compile_check(hints.get(param.name, Any))
            default = MISSING if param.default is inspect.Parameter.empty else param.default
            params.append(ParamSpec(param.name, check, default))
        doc = inspect.getdoc(handler) or ""
        return cls(
            name=name,
            handler=handler,
            params=params,
            summary=summary or (doc.splitlines()[0] if doc else ""),
            is_async=inspect.iscoroutinefunction(handler),
            plugin=plugin,
            by_name={ps.name: ps for ps in params},
            required=any(ps.required for ps in params),
        )

    def bind(self, params: Any) -> dict[str, Any]:
        """Check `params` against the signature; raise InvalidParams naming each problem."""
        if not params and not self.required:  # the common call with nothing to check
            if params is MISSING or params is None or isinstance(params, (dict, list)):
                return {}
        if params is MISSING or params is None:
            given: dict[str, Any] = {}
        elif isinstance(params, dict):
            given = params
        elif isinstance(params, list):
            if len(params) > len(self.params):
                raise InvalidParams(f"{self.name} takes at most {len(self.params)} positional params, got {len(params)}")
            given = {spec.name: value for spec, value in zip(self.params, params)}
        else:
            raise InvalidParams("params must be an object or an array")
        problems = []
        for key in given:
            if key not in self.by_name:
                accepted = ", ".join(self.by_name) or "none"
                problems.append(f"unknown param {key!r}{_did_you_mean(key, self.by_name)} (accepted: {accepted})")
        kwargs = {}
        for spec in self.params:
            if spec.name in given:
                value = given[spec.name]
                if not spec.check.test(value):
                    problems.append(f"param {spec.name!r} must be {spec.check.describe}, got {_json_kind(value)}")
                kwargs[spec.name] = value
            elif spec.required:
                problems.append(f"missing required param {spec.name!r} ({spec.check.describe})")
        if problems:
            raise InvalidParams(f"{self.name}: " + "; ".join(problems), {"method": self.name, "problems": problems})
        return kwargs

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "params": [ps.describe() for ps in self.params], "summary": self.summary}


def _did_you_mean(word: str, candidates) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


# -- requests -------------------------------------------------------------------------------

class Context:
    """What a handler knows about its call. `connection` is None for in-process calls."""

    __slots__ = ("daemon", "connection", "request_id", "method", "deferred")

    def __init__(self, daemon: Any, connection: Any, request_id: Any, method: str):
        self.daemon = daemon
        self.connection = connection
        self.request_id = request_id
        self.method = method
        self.deferred: list[Callable[[], None]] | None = None

    def after_reply(self, fn: Callable[[], None]) -> None:
        """Run `fn` once the response has been written (e.g. start sending notifications)."""
        if self.deferred is None:
            self.deferred = []
        self.deferred.append(fn)

    def run_deferred(self) -> None:
        if self.deferred:
            for fn in self.deferred:
                fn()
            self.deferred = None


@dataclass(slots=True)
class Call:
    spec: MethodSpec
    kwargs: dict[str, Any]
    id: Any
    notification: bool


def valid_id(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)  # 1e999 decodes to inf, which cannot be echoed as JSON
    return value is None or isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


_MEMBERS = frozenset({"jsonrpc", "method", "params", "id"})


def prepare(message: Any, methods: Any) -> Call | bytes | None:
    """Turn one decoded request into a Call, or into its error response (None for a notification)."""
    if not isinstance(message, dict):
        return error_response(None, InvalidRequest("a request must be a JSON object"))
    has_id = "id" in message
    request_id = message.get("id")
    if has_id and not valid_id(request_id):
        return error_response(None, InvalidRequest("id must be a string, a number or null"))
    # Only a valid Request object without an id is a notification (JSON-RPC 2.0 §4.1); an invalid
    # one is answered with Invalid Request and id null, as the §7 examples show.
    notification = not has_id
    problem = None
    method = message.get("method")
    params = message.get("params", MISSING)
    if message.get("jsonrpc") != p.JSONRPC_VERSION:
        problem = '"jsonrpc" must be "2.0"'
    elif not isinstance(method, str):
        problem = '"method" must be a string'
    elif params is not MISSING and not isinstance(params, (dict, list)):
        problem = '"params" must be an object or an array'
    elif len(message) > 2 + has_id + (params is not MISSING):
        extra = sorted(str(k) for k in message if k not in _MEMBERS)
        problem = f"unknown member(s) in request: {', '.join(extra)}"
    if problem is not None:
        return error_response(request_id, InvalidRequest(problem))
    spec = methods.get(method)
    if spec is None:
        if notification:
            return None
        return error_response(request_id, MethodNotFound(f"method not found: {method}{_did_you_mean(method, methods)}", {"method": method}))
    try:
        kwargs = spec.bind(params)
    except GodelError as exc:
        return None if notification else error_response(request_id, exc)
    return Call(spec, kwargs, request_id, notification)


def run_sync(call: Call, ctx: Context) -> bytes | None:
    try:
        result = call.spec.handler(ctx, **call.kwargs)
    except GodelError as exc:
        return None if call.notification else error_response(call.id, exc)
    except Exception as exc:  # noqa: BLE001 - a handler bug is reported, never fatal
        return None if call.notification else internal_error(call, exc)
    return None if call.notification else result_response(call, result)


async def run_async(call: Call, ctx: Context) -> bytes | None:
    try:
        result = await call.spec.handler(ctx, **call.kwargs)
    except GodelError as exc:
        return None if call.notification else error_response(call.id, exc)
    except Exception as exc:  # noqa: BLE001
        return None if call.notification else internal_error(call, exc)
    return None if call.notification else result_response(call, result)


def internal_error(call: Call, exc: BaseException) -> bytes:
    log.exception("method %s failed", call.spec.name, exc_info=exc)
    return error_response(call.id, InternalError(f"internal error in {call.spec.name}: {type(exc).__name__}: {exc}", {"method": call.spec.name, "type": type(exc).__name__}))


def result_response(call: Call, result: Any) -> bytes:
    try:
        return _wire({"jsonrpc": "2.0", "id": call.id, "result": result})
    except (TypeError, ValueError) as exc:
        return internal_error(call, exc)


def error_response(request_id: Any, error: GodelError) -> bytes:
    payload = {"jsonrpc": "2.0", "id": request_id, "error": error.to_error()}
    try:
        return _wire(payload)
    except (TypeError, ValueError):
        # An error whose data cannot be encoded still reaches the client, without the data.
        payload["error"] = {"code": error.code, "message": error.message}
        return _wire(payload)


def notification(method: str, params: Any) -> bytes:
    return _wire({"jsonrpc": "2.0", "method": method, "params": params})


def encode(value: Any) -> str:
    return _encode_text(value)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# One decoder for all frames: json.loads(..., parse_constant=...) would build one per call.
_decode = json.JSONDecoder(parse_constant=_reject_constant).decode


def decode(line: bytes) -> Any:
    """Decode one frame; raises ParseError for invalid UTF-8, bad JSON, or NaN/Infinity."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(f"invalid UTF-8 at byte {exc.start}") from None
    try:
        return _decode(text)
    except ValueError as exc:  # JSONDecodeError, or an integer too long to convert
        raise ParseError(f"invalid JSON: {exc}") from None
    except RecursionError:
        raise ParseError("JSON nested too deeply") from None
