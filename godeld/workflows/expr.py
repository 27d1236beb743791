"""Workflow expressions: conditions and ``{{ ... }}`` templates, evaluated without Python eval.

A workflow reads run state through a small, side-effect-free language. Sources are tokenized
and parsed by hand (precedence climbing) into a tuple AST, then walked by an evaluator that
only ever looks up mapping keys and list indexes -- never Python attributes -- so a workflow
file cannot reach into the daemon.

Names::

    steps.build.outputs.path      scope["steps"]["build"]["outputs"]["path"]
    workflow.name                 scope["workflow"]["name"]
    vars.x / variables.x / x      scope["variables"]["x"]
    a["key"], a[0], a[i]          indexing (mappings by key, lists by integer)

A step id may contain hyphens after a dot (``steps.run-tests.state``) when the hyphen is
followed by a letter; write ``a - b`` with spaces to subtract. A path that does not exist
raises :class:`UndefinedReference` -- never a silent null -- except inside ``exists(path)``
and on the left of ``??``.

Literals: ``42``, ``1.5``, ``'text'`` / ``"text"`` (escapes ``\\\\ \\' \\" \\n \\t``),
``true false null`` (also ``True False None``), lists ``[1, 'a']``.

Operators, lowest precedence first::

    ??                      a ?? b: b when a is undefined or null
    or  ||                  short-circuit, result is a boolean
    and &&
    not !                   unary
    == != < <= > >= in, not in   (not chained)
    + -                     numbers; + also joins strings or lists
    * / %
    -                       unary minus
    .name [expr] f(...)     postfix

Equality is strict: ``1 == "1"`` and ``true == 1`` are false; only ints and floats compare
across types. Ordering or arithmetic on mismatched types raises :class:`ExprError`.
Truthiness is Python-like (0, "", [], {}, null are false).

Functions (fixed whitelist): ``len lower upper trim contains startsWith endsWith int float
str bool exists matches``. ``str(x)`` formats like templates do (null -> "", true -> "true").

Templates: ``{{ expr }}`` inside text is replaced by the formatted value (:func:`render`);
``\\{{`` is a literal ``{{``. A string that is exactly one placeholder keeps the value's type
(:func:`render_value`).

Limits: 4096 characters of source, nesting depth 64, string results of 1 MiB.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

__all__ = [
    "ExprError",
    "UndefinedReference",
    "Ref",
    "parse",
    "evaluate",
    "references",
    "condition_holds",
    "condition_references",
    "template_refs",
    "render",
    "render_value",
]

MAX_SOURCE = 4096
MAX_DEPTH = 64
# Left-associative chains (a + b + c ..., a.b.c.d ...) deepen the tree without nesting; this
# bound keeps evaluation well clear of Python's recursion limit.
MAX_TREE_HEIGHT = 200
MAX_STRING = 1024 * 1024
MAX_REGEX = 1000

# A Node is a tuple whose first item is its kind:
#   ("lit", value)  ("list", items)  ("name", root)  ("attr", base, key)  ("index", base, node)
#   ("call", fname, args)  ("unary", op, operand)  ("binary", op, left, right)
#   ("and", l, r)  ("or", l, r)  ("coalesce", l, r)
Node = tuple


class ExprError(ValueError):
    """A syntax, type or limit error in an expression or template."""

    def __init__(self, message: str, offset: int | None = None):
        self.message = message
        self.offset = offset
        super().__init__(message)

    def __str__(self) -> str:
        if self.offset is None:
            return self.message
        return f"{self.message} at column {self.offset + 1}"


class UndefinedReference(ExprError):
    """A path that does not resolve in the scope."""

    def __init__(self, path: str):
        self.path = path
        super().__init__(f"{path} is not defined")


# ---------------------------------------------------------------------------------------------
# Tokenizer

class _Tok(NamedTuple):
    kind: str  # "num", "str", "name", "op", "end"
    value: Any
    pos: int


_OPS = ("??", "||", "&&", "==", "!=", "<=", ">=", "<", ">", "!", "+", "-", "*", "/", "%",
        "(", ")", "[", "]", ",", ".")
_NUM_RE = re.compile(r"\d+(\.\d+)?([eE][+-]?\d+)?")
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# After a '.', a key may carry hyphens (step ids like run-tests) when a letter follows.
_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z_][A-Za-z0-9_]*)*")
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t", "r": "\r"}
_KEYWORDS = {"and", "or", "not", "in", "true", "false", "null", "True", "False", "None"}
_CONSTANTS = {"true": True, "True": True, "false": False, "False": False, "null": None, "None": None}


def _tokenize(src: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if c.isspace():
            i += 1
            continue
        if c.isdigit():
            m = _NUM_RE.match(src, i)
            assert m is not None
            text = m.group()
            toks.append(_Tok("num", float(text) if (m.group(1) or m.group(2)) else int(text), i))
            i = m.end()
            continue
        if c.isalpha() or c == "_":
            after_dot = bool(toks) and toks[-1].kind == "op" and toks[-1].value == "."
            m = (_KEY_RE if after_dot else _NAME_RE).match(src, i)
            if m is None or not m.group().isascii():
                raise ExprError(f"unexpected character {c!r}", i)
            toks.append(_Tok("name", m.group(), i))
            i = m.end()
            continue
        if c in "'\"":
            i = _lex_string(src, i, toks)
            continue
        for op in _OPS:
            if src.startswith(op, i):
                toks.append(_Tok("op", op, i))
                i += len(op)
                break
        else:
            raise ExprError(f"unexpected character {c!r}", i)
    toks.append(_Tok("end", None, n))
    return toks


def _lex_string(src: str, start: int, toks: list[_Tok]) -> int:
    quote = src[start]
    out: list[str] = []
    i = start + 1
    while i < len(src):
        c = src[i]
        if c == quote:
            toks.append(_Tok("str", "".join(out), start))
            return i + 1
        if c == "\\":
            if i + 1 >= len(src):
                break
            esc = src[i + 1]
            if esc not in _ESCAPES:
                raise ExprError(f"unknown escape '\\{esc}' in string", i)
            out.append(_ESCAPES[esc])
            i += 2
            continue
        out.append(c)
        i += 1
    raise ExprError("unterminated string", start)


# ---------------------------------------------------------------------------------------------
# Parser

# name -> (min args, max args)
_ARITY: dict[str, tuple[int, int]] = {
    "len": (1, 1), "lower": (1, 1), "upper": (1, 1), "trim": (1, 1), "contains": (2, 2),
    "startsWith": (2, 2), "endsWith": (2, 2), "int": (1, 1), "float": (1, 1), "str": (1, 1),
    "bool": (1, 1), "exists": (1, 1), "matches": (2, 2),
}
_COMPARE = {"==", "!=", "<", "<=", ">", ">="}
_PATH_KINDS = ("name", "attr", "index")


def _describe(tok: _Tok) -> str:
    if tok.kind == "end":
        return "end of expression"
    if tok.kind == "str":
        return "string " + json.dumps(tok.value)
    return repr(str(tok.value))


class _Parser:
    def __init__(self, src: str):
        self.toks = _tokenize(src)
        self.i = 0
        self.depth = 0

    # -- token helpers
    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def at(self, kind: str, value: Any = None) -> bool:
        t = self.toks[self.i]
        return t.kind == kind and (value is None or t.value == value)

    def at_op(self, *ops: str) -> bool:
        t = self.toks[self.i]
        return t.kind == "op" and t.value in ops

    def at_word(self, *words: str) -> bool:
        t = self.toks[self.i]
        return t.kind == "name" and t.value in words

    def next(self) -> _Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def expect_op(self, op: str) -> _Tok:
        if not self.at_op(op):
            raise ExprError(f"expected '{op}' but found {_describe(self.tok)}", self.tok.pos)
        return self.next()

    def unexpected(self) -> ExprError:
        return ExprError(f"unexpected {_describe(self.tok)}", self.tok.pos)

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExprError(f"expression is nested too deeply (limit {MAX_DEPTH})", self.tok.pos)

    # -- grammar, lowest precedence first
    def parse(self) -> Node:
        if self.at("end"):
            raise ExprError("empty expression", 0)
        node = self.expr()
        if not self.at("end"):
            raise self.unexpected()
        return node

    def expr(self) -> Node:
        self.enter()
        node = self.or_()
        while self.at_op("??"):
            self.next()
            node = ("coalesce", node, self.or_())
        self.depth -= 1
        return node

    def or_(self) -> Node:
        node = self.and_()
        while self.at_op("||") or self.at_word("or"):
            self.next()
            node = ("or", node, self.and_())
        return node

    def and_(self) -> Node:
        node = self.not_()
        while self.at_op("&&") or self.at_word("and"):
            self.next()
            node = ("and", node, self.not_())
        return node

    def not_(self) -> Node:
        if self.at_op("!") or self.at_word("not"):
            self.next()
            self.enter()
            node = ("unary", "not", self.not_())
            self.depth -= 1
            return node
        return self.comparison()

    def compare_op(self) -> str | None:
        if self.at_op(*_COMPARE):
            return self.next().value
        if self.at_word("in"):
            self.next()
            return "in"
        if self.at_word("not") and self.toks[self.i + 1].kind == "name" and self.toks[self.i + 1].value == "in":
            self.i += 2
            return "not in"
        return None

    def comparison(self) -> Node:
        left = self.additive()
        op = self.compare_op()
        if op is None:
            return left
        node = ("binary", op, left, self.additive())
        pos = self.tok.pos
        if self.compare_op() is not None:
            raise ExprError("comparisons cannot be chained; combine them with 'and'", pos)
        return node

    def additive(self) -> Node:
        node = self.term()
        while self.at_op("+", "-"):
            op = self.next().value
            node = ("binary", op, node, self.term())
        return node

    def term(self) -> Node:
        node = self.unary()
        while self.at_op("*", "/", "%"):
            op = self.next().value
            node = ("binary", op, node, self.unary())
        return node

    def unary(self) -> Node:
        if self.at_op("-"):
            self.next()
            self.enter()
            operand = self.unary()
            self.depth -= 1
            # Fold negative number literals so a[-1] and references() see a constant.
            if operand[0] == "lit" and type(operand[1]) in (int, float):
                return ("lit", -operand[1])
            return ("unary", "-", operand)
        return self.postfix()

    def postfix(self) -> Node:
        node = self.primary()
        while True:
            if self.at_op("."):
                self.next()
                if not self.at("name"):
                    raise ExprError(f"expected a name after '.' but found {_describe(self.tok)}", self.tok.pos)
                node = ("attr", node, self.next().value)
            elif self.at_op("["):
                self.next()
                key = self.expr()
                self.expect_op("]")
                node = ("index", node, key)
            elif self.at_op("("):
                raise ExprError("only the built-in functions can be called, by name", self.tok.pos)
            else:
                return node

    def primary(self) -> Node:
        t = self.tok
        if t.kind in ("num", "str"):
            self.next()
            return ("lit", t.value)
        if t.kind == "name":
            if t.value in _CONSTANTS:
                self.next()
                return ("lit", _CONSTANTS[t.value])
            if t.value in _KEYWORDS:
                raise self.unexpected()
            self.next()
            if self.at_op("("):
                return self.call(t)
            return ("name", t.value)
        if self.at_op("("):
            self.next()
            node = self.expr()
            self.expect_op(")")
            return node
        if self.at_op("["):
            self.next()
            self.enter()
            items: list[Node] = []
            while not self.at_op("]"):
                items.append(self.expr())
                if not self.at_op(","):
                    break
                self.next()
            self.expect_op("]")
            self.depth -= 1
            return ("list", tuple(items))
        raise self.unexpected()

    def call(self, name_tok: _Tok) -> Node:
        name = name_tok.value
        if name not in _ARITY:
            known = ", ".join(sorted(_ARITY, key=str.lower))
            raise ExprError(f"unknown function {name!r} (known functions: {known})", name_tok.pos)
        self.expect_op("(")
        self.enter()
        args: list[Node] = []
        while not self.at_op(")"):
            args.append(self.expr())
            if not self.at_op(","):
                break
            self.next()
        self.expect_op(")")
        self.depth -= 1
        lo, hi = _ARITY[name]
        if not lo <= len(args) <= hi:
            want = str(lo) if lo == hi else f"{lo} to {hi}"
            raise ExprError(f"{name}() takes {want} argument{'s' if hi != 1 else ''}, got {len(args)}", name_tok.pos)
        if name == "exists" and args[0][0] not in _PATH_KINDS:
            raise ExprError("exists() takes a path, like exists(steps.build.outputs.file)", name_tok.pos)
        return ("call", name, tuple(args))


def _children(node: Node) -> tuple[Node, ...]:
    kind = node[0]
    if kind in ("lit", "name"):
        return ()
    if kind == "list":
        return node[1]
    if kind == "attr":
        return (node[1],)
    if kind == "index":
        return (node[1], node[2])
    if kind == "call":
        return node[2]
    if kind == "unary":
        return (node[2],)
    if kind == "binary":
        return (node[2], node[3])
    return (node[1], node[2])  # and / or / coalesce


def _tree_height(root: Node) -> int:
    # Iterative so that measuring a pathological tree cannot itself overflow the stack.
    best, stack = 0, [(root, 1)]
    while stack:
        node, h = stack.pop()
        best = max(best, h)
        stack.extend((c, h + 1) for c in _children(node))
    return best


@functools.lru_cache(maxsize=2048)
def _parse_cached(src: str) -> Node:
    node = _Parser(src).parse()
    if _tree_height(node) > MAX_TREE_HEIGHT:
        raise ExprError(f"expression is too long or nested too deeply (tree height limit {MAX_TREE_HEIGHT})")
    return node


def parse(src: str) -> Node:
    """Parse an expression into a tuple AST (cached by source). Raises ExprError."""
    if not isinstance(src, str):
        raise ExprError(f"expression must be a string, not {_tname(src)}")
    if len(src) > MAX_SOURCE:
        raise ExprError(f"expression is too long ({len(src)} characters, limit {MAX_SOURCE})")
    return _parse_cached(src)


# ---------------------------------------------------------------------------------------------
# Evaluator

def _tname(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, (list, tuple)):
        return "list"
    if isinstance(v, Mapping):
        return "mapping"
    return type(v).__name__


def _is_num(v: Any) -> bool:
    # bool is deliberately not a number in this language.
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _eq(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_num(a) and _is_num(b):
        return a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_eq(x, y) for x, y in zip(a, b))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_eq(a[k], b[k]) for k in a)
    if type(a) is not type(b) and not (isinstance(a, str) and isinstance(b, str)):
        return False
    return bool(a == b)


def _contains(container: Any, item: Any, what: str) -> bool:
    if isinstance(container, str):
        if not isinstance(item, str):
            raise ExprError(f"{what}: can only look for a string inside a string, not a {_tname(item)}")
        return item in container
    if isinstance(container, (list, tuple)):
        return any(_eq(item, x) for x in container)
    if isinstance(container, Mapping):
        return any(_eq(item, k) for k in container)
    raise ExprError(f"{what}: needs a string, list or mapping to look in, not a {_tname(container)}")


def _check_str(s: str) -> str:
    if len(s) > MAX_STRING:
        raise ExprError(f"string result is too long ({len(s)} characters, limit {MAX_STRING})")
    return s


def _show_key(key: Any) -> str:
    if isinstance(key, str) and _NAME_RE.fullmatch(key):
        return "." + key
    return f"[{json.dumps(key, default=str)}]"


def _show(node: Node) -> str:
    """Readable text for a path-ish node, used in UndefinedReference messages."""
    kind = node[0]
    if kind == "name":
        return node[1]
    if kind == "attr":
        return _show(node[1]) + _show_key(node[2])
    if kind == "index":
        key = node[2]
        return _show(node[1]) + (_show_key(key[1]) if key[0] == "lit" else "[...]")
    if kind == "lit":
        return json.dumps(node[1], default=str)
    if kind == "call":
        return f"{node[1]}(...)"
    if kind == "list":
        return "[...]"
    return "(...)"


_ROOTS = {"steps": "steps", "workflow": "workflow", "vars": "variables", "variables": "variables"}


def _lookup(container: Any, key: Any, shown: str) -> Any:
    """Key or index lookup only -- this is the one place values are taken apart."""
    if isinstance(container, Mapping):
        if isinstance(key, str) or _is_num(key):
            try:
                return container[key]
            except (KeyError, TypeError):
                pass
        raise UndefinedReference(shown)
    if isinstance(container, (list, tuple)) and _is_num(key) and isinstance(key, int):
        if -len(container) <= key < len(container):
            return container[key]
    raise UndefinedReference(shown)


def _resolve(node: Node, scope: Mapping) -> tuple[Any, str]:
    """Value of a path node, with its display text."""
    kind = node[0]
    if kind == "name":
        name = node[1]
        if name in _ROOTS:
            return _lookup(scope, _ROOTS[name], name), name
        return _lookup(_lookup(scope, "variables", name), name, name), name
    if kind == "attr":
        base, shown = _resolve(node[1], scope)
        shown += _show_key(node[2])
        return _lookup(base, node[2], shown), shown
    if kind == "index":
        base, shown = _resolve(node[1], scope)
        key = _eval(node[2], scope)
        shown += _show_key(key)
        return _lookup(base, key, shown), shown
    return _eval(node, scope), _show(node)


def _eval(node: Node, scope: Mapping) -> Any:
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind in _PATH_KINDS:
        return _resolve(node, scope)[0]
    if kind == "list":
        return [_eval(item, scope) for item in node[1]]
    if kind == "and":
        return bool(_eval(node[1], scope)) and bool(_eval(node[2], scope))
    if kind == "or":
        return bool(_eval(node[1], scope)) or bool(_eval(node[2], scope))
    if kind == "coalesce":
        try:
            value = _eval(node[1], scope)
        except UndefinedReference:
            value = None
        return _eval(node[2], scope) if value is None else value
    if kind == "unary":
        value = _eval(node[2], scope)
        if node[1] == "not":
            return not value
        if not _is_num(value):
            raise ExprError(f"cannot negate a {_tname(value)}")
        return -value
    if kind == "binary":
        return _binary(node[1], _eval(node[2], scope), _eval(node[3], scope))
    if kind == "call":
        return _call(node[1], node[2], scope)
    raise ExprError(f"internal error: unknown node {kind!r}")  # pragma: no cover


def _binary(op: str, a: Any, b: Any) -> Any:
    if op == "==":
        return _eq(a, b)
    if op == "!=":
        return not _eq(a, b)
    if op == "in":
        return _contains(b, a, "'in'")
    if op == "not in":
        return not _contains(b, a, "'not in'")
    if op in ("<", "<=", ">", ">="):
        if not ((_is_num(a) and _is_num(b)) or (isinstance(a, str) and isinstance(b, str))):
            raise ExprError(f"cannot compare {_tname(a)} {op} {_tname(b)}: only numbers with numbers or strings with strings")
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
    if op == "+":
        if _is_num(a) and _is_num(b):
            return a + b
        if isinstance(a, str) and isinstance(b, str):
            return _check_str(a + b)
        if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
            return list(a) + list(b)
        raise ExprError(f"cannot add {_tname(a)} and {_tname(b)}: '+' needs two numbers, two strings or two lists")
    if not (_is_num(a) and _is_num(b)):
        raise ExprError(f"'{op}' needs two numbers, not {_tname(a)} and {_tname(b)}")
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if b == 0:
        raise ExprError("division by zero" if op == "/" else "modulo by zero")
    return a / b if op == "/" else a % b


@functools.lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ExprError(f"matches(): invalid regular expression: {exc}") from None


def _want_str(fname: str, v: Any) -> str:
    if not isinstance(v, str):
        raise ExprError(f"{fname}() needs a string, not a {_tname(v)}")
    return v


def _call(name: str, arg_nodes: tuple[Node, ...], scope: Mapping) -> Any:
    if name == "exists":  # special form: its argument is a path, not a value
        try:
            _resolve(arg_nodes[0], scope)
        except UndefinedReference:
            return False
        return True
    args = [_eval(a, scope) for a in arg_nodes]
    x = args[0]
    if name == "len":
        if isinstance(x, (str, list, tuple, Mapping)):
            return len(x)
        raise ExprError(f"len() needs a string, list or mapping, not a {_tname(x)}")
    if name == "lower":
        return _want_str(name, x).lower()
    if name == "upper":
        return _check_str(_want_str(name, x).upper())
    if name == "trim":
        return _want_str(name, x).strip()
    if name == "contains":
        return _contains(x, args[1], "contains()")
    if name == "startsWith":
        return _want_str(name, x).startswith(_want_str(name, args[1]))
    if name == "endsWith":
        return _want_str(name, x).endswith(_want_str(name, args[1]))
    if name == "int":
        return _to_int(x)
    if name == "float":
        return _to_float(x)
    if name == "str":
        return _check_str(_format(x))
    if name == "bool":
        return bool(x)
    if name == "matches":
        pattern = _want_str(name, args[1])
        if len(pattern) > MAX_REGEX:
            raise ExprError(f"matches(): regular expression is too long (limit {MAX_REGEX} characters)")
        return _regex(pattern).search(_want_str(name, x)) is not None
    raise ExprError(f"internal error: unknown function {name!r}")  # pragma: no cover


def _to_int(x: Any) -> int:
    if isinstance(x, bool):
        return int(x)
    if isinstance(x, int):
        return x
    if isinstance(x, float):
        if not math.isfinite(x):
            raise ExprError(f"int(): cannot convert {x!r} to an integer")
        return int(x)
    if isinstance(x, str):
        try:
            return int(x.strip())
        except ValueError:
            raise ExprError(f"int(): {x!r} is not an integer") from None
    raise ExprError(f"int() needs a number or string, not a {_tname(x)}")


def _to_float(x: Any) -> float:
    if isinstance(x, (int, float)):
        return float(x)
    if isinstance(x, str):
        try:
            return float(x.strip())
        except ValueError:
            raise ExprError(f"float(): {x!r} is not a number") from None
    raise ExprError(f"float() needs a number or string, not a {_tname(x)}")


def _format(v: Any) -> str:
    """Text form of a value, as templates show it."""
    if isinstance(v, str):
        return v
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (list, tuple, Mapping)):
        return json.dumps(v, separators=(",", ":"), ensure_ascii=False, default=str)
    return str(v)


def evaluate(src: str, scope: Mapping) -> Any:
    """Evaluate an expression against a scope ({"variables", "steps", "workflow"})."""
    result = _eval(parse(src), scope)
    if isinstance(result, str):
        _check_str(result)
    return result


# ---------------------------------------------------------------------------------------------
# References (for validation)

def _path_parts(node: Node) -> tuple[list[str] | None, bool, list[Node]]:
    """(canonical parts or None, still-constant?, sub-expressions to scan separately)."""
    kind = node[0]
    if kind == "name":
        name = node[1]
        return ([_ROOTS[name]] if name in _ROOTS else ["variables", name]), True, []
    if kind == "attr":
        parts, whole, extra = _path_parts(node[1])
        if parts is not None and whole:
            parts.append(node[2])
        return parts, whole, extra
    if kind == "index":
        parts, whole, extra = _path_parts(node[1])
        key = node[2]
        if key[0] == "lit" and isinstance(key[1], (str, int)) and not isinstance(key[1], bool):
            if parts is not None and whole:
                parts.append(str(key[1]))
            return parts, whole, extra
        return parts, False, extra + [key]  # a dynamic index stops the path here
    return None, False, [node]


def _collect(node: Node, out: list[tuple[str, ...]]) -> None:
    if node[0] in _PATH_KINDS:
        parts, _, extra = _path_parts(node)
        if parts is not None:
            path = tuple(parts)
            if path not in out:
                out.append(path)
        for sub in extra:
            _collect(sub, out)
        return
    for child in _children(node):
        _collect(child, out)


def references(src: str) -> list[tuple[str, ...]]:
    """Every path the expression reads, rooted at "variables", "steps" or "workflow"."""
    out: list[tuple[str, ...]] = []
    _collect(parse(src), out)
    return out


# ---------------------------------------------------------------------------------------------
# Conditions

_CONDITION_FORMS = (
    "condition must be true/false, an expression string, {expression: ...}, or "
    "{variable: PATH, equals: V} / {variable: PATH, notEquals: V} / "
    "{variable: PATH, in: [...]} / {variable: PATH, exists: true|false}"
)
_VARIABLE_OPS = ("equals", "notEquals", "in", "exists")


def _condition_form(cond: Any) -> tuple[str, Any, Any]:
    """Validate a condition; returns (form, source or path node, operand)."""
    if isinstance(cond, bool):
        return "bool", cond, None
    if isinstance(cond, str):
        parse(cond)
        return "expr", cond, None
    if isinstance(cond, Mapping):
        keys = set(cond)
        if len(keys) == 1 and keys <= {"expression", "expr"}:
            src = cond.get("expression", cond.get("expr"))
            if not isinstance(src, str):
                raise ExprError(f"condition expression must be a string, not {_tname(src)}")
            parse(src)
            return "expr", src, None
        ops = [k for k in _VARIABLE_OPS if k in keys]
        if "variable" in keys and len(ops) == 1 and keys == {"variable", ops[0]}:
            path = cond["variable"]
            if not isinstance(path, str):
                raise ExprError(f"condition variable must be a path string, not {_tname(path)}")
            node = parse(path)
            if node[0] not in _PATH_KINDS:
                raise ExprError(f"condition variable must be a path like steps.build.outputs.ok, not {path!r}")
            op, operand = ops[0], cond[ops[0]]
            if op == "in" and not isinstance(operand, (list, tuple)):
                raise ExprError(f"condition 'in' needs a list, not {_tname(operand)}")
            if op == "exists" and not isinstance(operand, bool):
                raise ExprError(f"condition 'exists' must be true or false, not {_tname(operand)}")
            return op, node, operand
    raise ExprError(_CONDITION_FORMS)


def condition_holds(cond: Any, scope: Mapping) -> bool:
    """Whether a step condition (any accepted form) holds in scope."""
    form, what, operand = _condition_form(cond)
    if form == "bool":
        return what
    if form == "expr":
        return bool(evaluate(what, scope))
    if form == "exists":
        try:
            _resolve(what, scope)
        except UndefinedReference:
            return not operand
        return operand
    value = _resolve(what, scope)[0]  # UndefinedReference propagates on purpose
    if form == "equals":
        return _eq(value, operand)
    if form == "notEquals":
        return not _eq(value, operand)
    return any(_eq(value, x) for x in operand)  # "in"


def condition_references(cond: Any) -> list[tuple[str, ...]]:
    """Paths a condition reads. Raises ExprError for a malformed condition."""
    form, what, _ = _condition_form(cond)
    if form == "bool":
        return []
    out: list[tuple[str, ...]] = []
    _collect(parse(what) if form == "expr" else what, out)
    return out


# ---------------------------------------------------------------------------------------------
# Templates

class Ref(NamedTuple):
    path: tuple[str, ...]
    expr: str
    start: int  # offset of "{{" in the text
    end: int    # offset just past "}}"


def _scan(text: str) -> list[tuple[str, Any, int, int]]:
    """Split text into ("text", str, start, end) and ("expr", source, start, end) pieces."""
    if not isinstance(text, str):
        raise ExprError(f"template must be a string, not {_tname(text)}")
    pieces: list[tuple[str, Any, int, int]] = []
    buf: list[str] = []
    buf_start = 0
    i, n = 0, len(text)
    while i < n:
        if text.startswith("\\{{", i):  # escaped literal "{{"
            buf.append("{{")
            i += 3
            continue
        if not text.startswith("{{", i):
            buf.append(text[i])
            i += 1
            continue
        start = i
        j = i + 2
        quote = None
        # Find the closing "}}", skipping over quoted strings so '}}' inside one is fine.
        while j < n:
            c = text[j]
            if quote:
                if c == "\\":
                    j += 2
                    continue
                if c == quote:
                    quote = None
            elif c in "'\"":
                quote = c
            elif text.startswith("}}", j):
                break
            j += 1
        else:
            raise ExprError("unclosed '{{' in template", start)
        if buf:
            pieces.append(("text", "".join(buf), buf_start, start))
            buf = []
        pieces.append(("expr", text[start + 2:j].strip(), start, j + 2))
        i = buf_start = j + 2
    if buf:
        pieces.append(("text", "".join(buf), buf_start, n))
    return pieces


def _template_error(exc: ExprError, text: str, start: int) -> ExprError:
    """Re-anchor a placeholder's error offset onto the whole template text."""
    if isinstance(exc, UndefinedReference):
        return exc
    inner = text[start + 2:]
    lead = len(inner) - len(inner.lstrip())
    offset = None if exc.offset is None else start + 2 + lead + exc.offset
    return ExprError(f"in {{{{ }}}} placeholder: {exc.message}", offset)


def template_refs(text: str) -> list[Ref]:
    """One Ref per path read by each {{ expr }} in text."""
    refs: list[Ref] = []
    for kind, src, start, end in _scan(text):
        if kind != "expr":
            continue
        try:
            paths = references(src)
        except ExprError as exc:
            raise _template_error(exc, text, start) from None
        refs.extend(Ref(path, src, start, end) for path in paths)
    return refs


def render(text: str, scope: Mapping) -> str:
    """Replace each {{ expr }} in text with its formatted value."""
    out: list[str] = []
    size = 0
    for kind, value, start, _ in _scan(text):
        if kind == "expr":
            try:
                value = _format(evaluate(value, scope))
            except UndefinedReference:
                raise
            except ExprError as exc:
                raise _template_error(exc, text, start) from None
        size += len(value)
        if size > MAX_STRING:
            raise ExprError(f"rendered text is too long (limit {MAX_STRING} characters)")
        out.append(value)
    return "".join(out)


def render_value(value: Any, scope: Mapping) -> Any:
    """Render strings inside dicts/lists; a lone "{{ expr }}" string keeps the value's type."""
    if isinstance(value, str):
        pieces = _scan(value)
        if len(pieces) == 1 and pieces[0][0] == "expr" and pieces[0][2] == 0 and pieces[0][3] == len(value):
            try:
                return evaluate(pieces[0][1], scope)
            except UndefinedReference:
                raise
            except ExprError as exc:
                raise _template_error(exc, value, 0) from None
        return render(value, scope)
    if isinstance(value, Mapping):
        return {k: render_value(v, scope) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [render_value(v, scope) for v in value]
    return value
