"""Load, validate and normalize a workflow definition (the Godel YAML DAG format).

`validate(source)` takes YAML text or an already-parsed mapping and reports *every* problem at
once, each with the path of the offending value (``steps[3].dependsOn[0]``) and, for text, its
1-based line and column. `load()` / `load_file()` return the normalized definition the engine
runs and persists (plain JSON-able dicts), or raise `WorkflowInvalid`.

Checks: shape and types, unknown keys (with "did you mean"), step ids, kind inference, the
dependency graph (unknown targets, every independent cycle), and every ``{{...}}`` reference
(declared variables, existing step outputs of steps that run *before* the referencing step).
"""

from __future__ import annotations

import difflib
import graphlib
import heapq
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import yaml

from godeld.workflows import expr
from godeld.yamlsource import YamlSyntaxError, format_path, load_yaml

Path_ = tuple[Any, ...]

STEP_KINDS_BUILTIN = ("agent", "shell", "approval", "workflow", "notify", "swarm")

DEFAULT_OUTPUTS: dict[str, tuple[str, ...]] = {
    "shell": ("stdout", "stderr", "exit_code"),
    "agent": ("result", "agent_id", "branch", "files", "worktree"),
    "approval": ("approved", "by", "comment"),
    "workflow": ("run_id", "outputs"),
    "notify": ("message", "delivered", "failed"),
    "swarm": ("results", "agents", "branches", "states", "swarm_id"),
}

TOP_KEYS = ("name", "description", "version", "variables", "onFailure", "timeout", "maxParallel",
            "repo", "provider", "model", "env", "metadata", "steps")
COMMON_STEP_KEYS = ("id", "name", "description", "kind", "dependsOn", "next", "condition", "parallel",
                    "retry", "timeout", "outputs", "env", "gates")
KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "shell": ("run", "shell", "cwd"),
    "agent": ("task", "agent", "provider", "model", "script", "repo", "base", "tools", "budget", "provider_options"),
    "approval": ("approval",),
    "workflow": ("workflow", "variables"),
    "notify": ("notify",),
    "swarm": ("swarm", "task", "provider", "model", "script", "repo"),
}
# Inference order: the first of these present decides the kind of a step without `kind`.
KIND_MARKERS = (("run", "shell"), ("approval", "approval"), ("workflow", "workflow"),
                ("swarm", "swarm"), ("notify", "notify"), ("task", "agent"))
RETRY_KEYS = ("maxAttempts", "backoff", "delayMs", "maxDelayMs")
BACKOFFS = ("fixed", "linear", "exponential")
RESERVED_VARIABLES = ("steps", "vars", "variables", "workflow")
STEP_STATE_PARTS = ("outputs", "state", "error")
WORKFLOW_FIELDS = ("id", "name")
STEP_ID_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
DURATION_HINT = "a duration (ms or '30s')"
_MAX_CYCLES = 20  # bound on cycle hunting: each round removes one edge and sorts again


# --------------------------------------------------------------------------- public API


class WorkflowInvalid(Exception):
    """The definition has errors; `errors` holds all of them (dicts with path/line/column/message)."""

    def __init__(self, file: str | None, errors: list[dict]):
        self.file = file
        self.errors = errors
        super().__init__(self._summary())

    def _summary(self, limit: int = 5) -> str:
        lines = [format_error(self.file, e) for e in self.errors[:limit]]
        if len(self.errors) > limit:
            lines.append(f"(and {len(self.errors) - limit} more)")
        return "\n".join(lines) or "invalid workflow"


def format_error(file: str | None, error: Mapping[str, Any]) -> str:
    """One error as 'file:line:col: path: message' (parts that are unknown are left out)."""
    where = [file] if file else []
    if error.get("line") is not None:
        where += [str(error["line"]), str(error.get("column") or 1)]
    parts = [p for p in (":".join(where), error.get("path"), error.get("message")) if p]
    return ": ".join(parts)


def parse_duration(value: Any) -> int:
    """A duration in ms: an integer (already ms) or a string like '1500ms', '30s', '5m', '1h', '1h30m'."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}: expected milliseconds or a string like '30s'")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"invalid duration {value}: must not be negative")
        return value
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text.isdigit():
            return int(text)
        if text and _DURATION_RE.fullmatch(text):
            total = sum(float(num) * _UNIT_MS[unit] for num, unit in _DURATION_PART.findall(text))
            return int(round(total))
    raise ValueError(f"invalid duration {value!r}: use milliseconds (300000) or a number with a unit: "
                     "'1500ms', '30s', '5m', '1h'")


_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_DURATION_RE = re.compile(r"(?:\d+(?:\.\d+)?\s*(?:ms|s|m|h|d)\s*)+")


def validate(source: str | dict, *, file: str | None = None, step_kinds: Mapping[str, Any] | None = None,
             variables: Mapping[str, Any] | None = None) -> dict:
    """Check a definition; returns {"valid", "errors", "file", "definition" (normalized or None)}."""
    kinds = dict(step_kinds) if step_kinds is not None else {k: None for k in STEP_KINDS_BUILTIN}
    ctx = _Ctx(file=file)
    if isinstance(source, str):
        try:
            located = load_yaml(source, file or "<workflow>")
        except YamlSyntaxError as exc:
            p = exc.problem
            return _result(file, [_err("", p.line, p.column, p.message)], None)
        ctx.key_pos = dict(located.positions)
        ctx.value_pos = _value_positions(source)
        ctx.errors.extend(_err(p.path, p.line, p.column, p.message) for p in located.problems)
        value = located.value
    elif isinstance(source, Mapping):
        value = dict(source)
    else:
        ctx.error((), f"a workflow must be YAML text or a mapping, not {_type(source)}")
        return _result(file, ctx.errors, None)
    definition = _check_definition(ctx, value, (), kinds, set(variables or ()))
    errors = ctx.sorted_errors()
    if errors or definition is None:
        return _result(file, errors, None)
    definition["file"] = file
    definition["base_dir"] = str(Path(file).resolve().parent) if file else None
    return _result(file, errors, definition)


def load(source: str | dict, *, file: str | None = None, step_kinds: Mapping[str, Any] | None = None,
         variables: Mapping[str, Any] | None = None) -> dict:
    """The normalized definition, or raise WorkflowInvalid with every error."""
    result = validate(source, file=file, step_kinds=step_kinds, variables=variables)
    if not result["valid"]:
        raise WorkflowInvalid(file, result["errors"])
    return result["definition"]


def load_file(path: str | Path, *, step_kinds: Mapping[str, Any] | None = None,
              variables: Mapping[str, Any] | None = None) -> dict:
    """Read and load a workflow file; `file` and `base_dir` (for relative sub-workflows) are set."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise WorkflowInvalid(name, [_err("", None, None, f"cannot read workflow file {name}: {reason}")]) from None
    return load(text, file=name, step_kinds=step_kinds, variables=variables)


# --------------------------------------------------------------------------- error collection


def _err(path: str, line: int | None, column: int | None, message: str) -> dict:
    return {"path": path, "line": line, "column": column, "message": message}


def _result(file: str | None, errors: list[dict], definition: dict | None) -> dict:
    return {"valid": not errors, "errors": errors, "file": file, "definition": definition}


@dataclass
class _Ctx:
    file: str | None
    key_pos: dict[Path_, tuple[int, int]] | None = None  # from yamlsource: where each key is
    value_pos: dict[Path_, tuple[int, int]] | None = None  # where each value starts
    errors: list[dict] = field(default_factory=list)

    def position(self, path: Path_, *, at_key: bool = False) -> tuple[int | None, int | None]:
        table = self.key_pos if at_key else self.value_pos
        if table is None:
            return None, None
        # Missing entries (e.g. a required key that is absent) point at the nearest ancestor.
        while path and path not in table:
            path = path[:-1]
        return table.get(path, (1, 1))

    def error(self, path: Path_, message: str, *, at_key: bool = False) -> None:
        line, column = self.position(path, at_key=at_key)
        self.errors.append(_err(format_path(path), line, column, message))

    def where_text(self, path: Path_) -> str:
        """'line 7' for text input, else the path: used to point at an earlier definition."""
        line, _ = self.position(path)
        return f"line {line}" if line is not None else format_path(path)

    def sorted_errors(self) -> list[dict]:
        if self.value_pos is None:
            return list(self.errors)
        # Document order; errors without a position (none expected) go last, in order of discovery.
        big = float("inf")
        return sorted(self.errors, key=lambda e: (e["line"] if e["line"] is not None else big,
                                                  e["column"] if e["column"] is not None else big))


def _value_positions(text: str) -> dict[Path_, tuple[int, int]]:
    """Path -> 1-based (line, column) where each value starts (yamlsource records keys instead)."""
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    out: dict[Path_, tuple[int, int]] = {}
    stack: list[tuple[yaml.Node, Path_]] = [(node, ())] if node is not None else []
    while stack:
        node, path = stack.pop()
        out.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    # With a duplicate key the later value is popped first and so wins, as in the
                    # constructed value (yamlsource reports the duplicate itself).
                    stack.append((value_node, path + (key_node.value,)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, path + (i,)) for i, item in enumerate(node.value))
    return out


# --------------------------------------------------------------------------- small value checks


def _type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def _did_you_mean(word: Any, candidates: Iterable[str]) -> str:
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Bad:
    """Marks a value that failed its check (the error is already reported)."""


BAD = _Bad()
Checker = Callable[["_Ctx", Path_, Any], Any]


def _label(path: Path_) -> str:
    return next((str(p) for p in reversed(path) if isinstance(p, str)), "value")


def _expect(ctx: _Ctx, path: Path_, expected: str, value: Any) -> _Bad:
    ctx.error(path, f"{_label(path)} must be {expected}, not {_type(value)}")
    return BAD


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_str(ctx: _Ctx, path: Path_, value: Any) -> Any:
    return value if isinstance(value, str) else _expect(ctx, path, "a string", value)


def check_bool(ctx: _Ctx, path: Path_, value: Any) -> Any:
    return value if isinstance(value, bool) else _expect(ctx, path, "true or false", value)


def check_str_list(ctx: _Ctx, path: Path_, value: Any) -> Any:
    if not isinstance(value, list):
        return _expect(ctx, path, "a list of strings", value)
    bad = [i for i, item in enumerate(value) if not isinstance(item, str)]
    for i in bad:
        ctx.error(path + (i,), f"{_label(path)} entries must be strings, not {_type(value[i])}")
    return BAD if bad else list(value)


def check_mapping(ctx: _Ctx, path: Path_, value: Any) -> Any:
    if not isinstance(value, dict):
        return _expect(ctx, path, "a mapping", value)
    return _check_jsonable(ctx, path, value)


def check_list(ctx: _Ctx, path: Path_, value: Any) -> Any:
    if not isinstance(value, list):
        return _expect(ctx, path, "a list", value)
    return _check_jsonable(ctx, path, value)


def check_any(ctx: _Ctx, path: Path_, value: Any) -> Any:
    return _check_jsonable(ctx, path, value)


def _check_jsonable(ctx: _Ctx, path: Path_, value: Any) -> Any:
    """The engine persists definitions as JSON: reject YAML-only values (dates, sets, binary)."""
    ok = True
    stack = [(path, value)]
    while stack:
        here, v = stack.pop()
        if isinstance(v, dict):
            for k, item in v.items():
                if not isinstance(k, str):
                    ctx.error(here + (k,), f"keys must be strings, not {_type(k)}", at_key=True)
                    ok = False
                else:
                    stack.append((here + (k,), item))
        elif isinstance(v, list):
            stack.extend((here + (i,), item) for i, item in enumerate(v))
        elif not (v is None or isinstance(v, (str, int, float, bool))):
            ctx.error(here, f"{_label(here)} must be a string, number, boolean, list or mapping, not {_type(v)}")
            ok = False
    return value if ok else BAD


def check_env(ctx: _Ctx, path: Path_, value: Any) -> Any:
    if not isinstance(value, dict):
        return _expect(ctx, path, "a mapping of names to strings", value)
    out: dict[str, str] = {}
    ok = True
    for k, v in value.items():
        if not isinstance(k, str):
            ctx.error(path + (k,), f"env names must be strings, not {_type(k)}", at_key=True)
            ok = False
        elif isinstance(v, str) or (isinstance(v, (int, float)) and not isinstance(v, bool)):
            out[k] = str(v)  # `PORT: 8080` is common; numbers are taken as their text
        else:
            ctx.error(path + (k,), f"env value {k} must be a string, not {_type(v)}")
            ok = False
    return out if ok else BAD


def check_duration(ctx: _Ctx, path: Path_, value: Any) -> Any:
    if not isinstance(value, (int, float, str)) or isinstance(value, bool):
        return _expect(ctx, path, DURATION_HINT, value)
    try:
        ms = parse_duration(value)
    except ValueError as exc:
        ctx.error(path, f"{_label(path)}: {exc}")
        return BAD
    if ms <= 0:
        ctx.error(path, f"{_label(path)} must be greater than 0")
        return BAD
    return ms


def int_at_least(minimum: int) -> Checker:
    def check(ctx: _Ctx, path: Path_, value: Any) -> Any:
        if not _is_int(value):
            return _expect(ctx, path, f"an integer >= {minimum}", value)
        if value < minimum:
            ctx.error(path, f"{_label(path)} must be at least {minimum}, got {value}")
            return BAD
        return value
    return check


def one_of(choices: tuple[str, ...]) -> Checker:
    def check(ctx: _Ctx, path: Path_, value: Any) -> Any:
        if value not in choices or not isinstance(value, str):
            ctx.error(path, f"{_label(path)} must be one of {', '.join(choices)}, got {value!r}"
                            f"{_did_you_mean(value, choices)}")
            return BAD
        return value
    return check


def check_version(ctx: _Ctx, path: Path_, value: Any) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return _expect(ctx, path, "a string or number", value)


def _check_keys(ctx: _Ctx, mapping: dict, path: Path_, allowed: Iterable[str], where: str,
                elsewhere: Mapping[str, str] | None = None) -> None:
    """Report keys not in `allowed`: say which kind they belong to, or suggest the closest key."""
    allowed = tuple(allowed)
    for key in mapping:
        if key in allowed:
            continue
        if not isinstance(key, str):
            ctx.error(path + (key,), f"keys must be strings, not {_type(key)} ({key!r})", at_key=True)
        elif elsewhere and key in elsewhere:
            ctx.error(path + (key,), f"{key!r} is not a field of {where} (it belongs to {elsewhere[key]})", at_key=True)
        else:
            ctx.error(path + (key,), f"unknown key {key!r} in {format_path(path) or 'the workflow'}"
                                     f"{_did_you_mean(key, allowed)}", at_key=True)


def _get(ctx: _Ctx, mapping: dict, path: Path_, key: str, check: Checker, *, required: str | None = None) -> Any:
    """Check `mapping[key]` if present (null counts as absent); report `required` when missing."""
    value = mapping.get(key)
    if value is None:
        if required:
            ctx.error(path + (key,), required)
            return BAD
        return None
    return check(ctx, path + (key,), value)


def _ok(value: Any, default: Any = None) -> Any:
    return default if value is None or isinstance(value, _Bad) else value


# --------------------------------------------------------------------------- the definition


@dataclass
class _Step:
    """What the graph and reference checks need to know about one step."""

    index: int
    path: Path_
    id: str | None
    kind: str | None
    depends_on: list[tuple[str, Path_]] = field(default_factory=list)
    next: list[tuple[str, Path_]] = field(default_factory=list)
    outputs: list[str] | None = None
    templates: list[tuple[Path_, str]] = field(default_factory=list)  # strings that may hold {{...}}
    condition: Any = None
    norm: dict[str, Any] = field(default_factory=dict)


def _check_definition(ctx: _Ctx, doc: Any, base: Path_, kinds: dict[str, Any], extra_vars: set[str]) -> dict | None:
    if not isinstance(doc, dict):
        where = format_path(base) or "a workflow"
        ctx.error(base, f"{where} must be a mapping with name and steps, not {_type(doc)}")
        return None
    _check_keys(ctx, doc, base, TOP_KEYS, "a workflow")
    name = _get(ctx, doc, base, "name", check_str, required="name is required: give the workflow a name")
    if isinstance(name, str) and not name.strip():
        ctx.error(base + ("name",), "name must not be empty")
    variables = _check_variables(ctx, doc, base)
    env = _get(ctx, doc, base, "env", check_env)
    norm: dict[str, Any] = {
        "name": _ok(name),
        "description": _ok(_get(ctx, doc, base, "description", check_str)),
        "version": _ok(_get(ctx, doc, base, "version", check_version)),
        "variables": variables,
        "on_failure": _ok(_get(ctx, doc, base, "onFailure", one_of(("stop", "continue"))), "stop"),
        "timeout_ms": _ok(_get(ctx, doc, base, "timeout", check_duration)),
        "max_parallel": _ok(_get(ctx, doc, base, "maxParallel", int_at_least(1))),
        "repo": _ok(_get(ctx, doc, base, "repo", check_str)),
        "provider": _ok(_get(ctx, doc, base, "provider", check_str)),
        "model": _ok(_get(ctx, doc, base, "model", check_str)),
        "env": _ok(env, {}),
        "metadata": _ok(_get(ctx, doc, base, "metadata", check_mapping), {}),
        "file": None,
        "base_dir": None,
    }
    steps = _check_steps(ctx, doc, base, kinds, extra_vars)
    declared = set(variables) | extra_vars
    if isinstance(env, dict):
        _check_workflow_env_refs(ctx, env, base + ("env",), declared)
    if steps is None:
        return None
    graph = _Graph.build(ctx, steps)
    for step in steps:
        _check_step_refs(ctx, step, graph, declared)
    norm["order"] = graph.order()
    norm["steps"] = [dict(s.norm, needs=graph.needs(s)) for s in steps]
    return norm


def _check_variables(ctx: _Ctx, doc: dict, base: Path_) -> dict[str, Any]:
    path = base + ("variables",)
    raw = doc.get("variables")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        _expect(ctx, path, "a mapping of names to values", raw)
        return {}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if not isinstance(key, str):
            ctx.error(path + (key,), f"variable names must be strings, not {_type(key)}", at_key=True)
            continue
        if key in RESERVED_VARIABLES:
            ctx.error(path + (key,), f"variable name {key!r} is reserved: steps, vars, variables and workflow "
                                     "are roots of the expression scope", at_key=True)
        if not isinstance(_check_jsonable(ctx, path + (key,), value), _Bad):
            out[key] = value
    return out


def _check_steps(ctx: _Ctx, doc: dict, base: Path_, kinds: dict[str, Any], extra_vars: set[str]) -> list[_Step] | None:
    path = base + ("steps",)
    raw = doc.get("steps")
    if raw is None:
        ctx.error(path, "steps is required: a workflow needs at least one step")
        return None
    if not isinstance(raw, list):
        _expect(ctx, path, "a list of steps", raw)
        return None
    if not raw:
        ctx.error(path, "steps must not be empty: a workflow needs at least one step")
        return None
    steps = [_check_step(ctx, item, path + (i,), i, kinds, extra_vars) for i, item in enumerate(raw)]
    return [s for s in steps if s is not None]


# --------------------------------------------------------------------------- one step


def _kind_fields(kind: str, kinds: Mapping[str, Any]) -> tuple[str, ...]:
    extra = sorted(getattr(kinds.get(kind), "fields", None) or ())  # sorted: plugins often give sets
    return tuple(dict.fromkeys(KIND_FIELDS.get(kind, ()) + tuple(extra)))


def _field_owners(kinds: Mapping[str, Any]) -> dict[str, str]:
    """Field name -> 'shell steps' / 'agent or swarm steps': for 'not a field of X' messages."""
    owners: dict[str, list[str]] = {}
    for kind in list(STEP_KINDS_BUILTIN) + [k for k in kinds if k not in STEP_KINDS_BUILTIN]:
        for f in _kind_fields(kind, kinds):
            owners.setdefault(f, []).append(kind)
    return {f: " or ".join(ks) + " steps" for f, ks in owners.items()}


def _step_kind(ctx: _Ctx, raw: dict, path: Path_, kinds: Mapping[str, Any]) -> str | None:
    """The explicit kind, else the one inferred from its fields; None (reported) when unknown."""
    known = sorted(kinds)
    if raw.get("kind") is not None:
        kind = raw["kind"]
        if not isinstance(kind, str):
            _expect(ctx, path + ("kind",), "a string", kind)
            return None
        if kind not in kinds:
            ctx.error(path + ("kind",), f"unknown step kind {kind!r} (known: {', '.join(known)})"
                                        f"{_did_you_mean(kind, known)}")
            return None
        return kind
    present = [(f, k) for f, k in KIND_MARKERS if f in raw]
    if not present:
        ctx.error(path, "step has no kind: give it kind, run, task, approval, workflow, swarm or notify")
        return None
    marker, kind = present[0]
    clash = [f for f, _ in present[1:] if f not in KIND_FIELDS[kind]]
    if clash:
        ctx.error(path, f"step has both {marker!r} and {clash[0]!r}: set kind to say which kind of step it is")
        return None
    if kind not in kinds:
        ctx.error(path, f"step kind {kind!r} (from {marker!r}) is not available (known: {', '.join(known)})")
        return None
    return kind


def _check_step(ctx: _Ctx, raw: Any, path: Path_, index: int, kinds: dict[str, Any],
                extra_vars: set[str]) -> _Step | None:
    if not isinstance(raw, dict):
        ctx.error(path, f"{format_path(path)} must be a mapping (a step with an id), not {_type(raw)}")
        return None
    step_id = _check_step_id(ctx, raw, path)
    kind = _step_kind(ctx, raw, path, kinds)
    owners = _field_owners(kinds)
    if kind is not None:
        article = "an" if kind[0] in "aeiou" else "a"
        _check_keys(ctx, raw, path, COMMON_STEP_KEYS + _kind_fields(kind, kinds), f"{article} {kind} step", owners)
    elif raw.get("kind") is None:
        # No kind could be inferred (or two clash): still catch keys no kind knows, e.g. typos.
        _check_keys(ctx, raw, path, COMMON_STEP_KEYS + tuple(owners), "a step")
    step = _Step(index=index, path=path, id=step_id, kind=kind)
    step.depends_on = _check_targets(ctx, raw, path, "dependsOn")
    step.next = _check_targets(ctx, raw, path, "next")
    outputs = _get(ctx, raw, path, "outputs", check_str_list)
    step.outputs = outputs if isinstance(outputs, list) else None
    if raw.get("condition") is not None:
        step.condition = raw["condition"]
    env = _ok(_get(ctx, raw, path, "env", check_env), {})
    step.norm = {
        "id": step_id,
        "name": _ok(_get(ctx, raw, path, "name", check_str)),
        "description": _ok(_get(ctx, raw, path, "description", check_str)),
        "kind": kind,
        "depends_on": [t for t, _ in step.depends_on],
        "next": [t for t, _ in step.next],
        "condition": step.condition,
        "parallel": _ok(_get(ctx, raw, path, "parallel", check_bool), False),
        "timeout_ms": _ok(_get(ctx, raw, path, "timeout", check_duration)),
        "outputs": list(step.outputs or []),
        "retry": _check_retry(ctx, raw, path),
        "env": env,
        "gates": _check_step_gates(ctx, raw, path),
        "spec": _check_spec(ctx, raw, path, kind, kinds, extra_vars) if kind else {},
    }
    _collect_templates(step, raw, path)
    return step


def _check_step_gates(ctx: _Ctx, raw: dict, path: Path_) -> list[dict[str, Any]]:
    """Quality gates (godeld/quality/gates.py) run after the step; a failing one fails the attempt."""
    if raw.get("gates") is None:
        return []
    from godeld.quality.gates import check_gates

    try:
        return check_gates(raw["gates"])
    except ValueError as exc:
        ctx.error((*path, "gates"), str(exc))
        return []


def _check_step_id(ctx: _Ctx, raw: dict, path: Path_) -> str | None:
    value = raw.get("id")
    if value is None:
        ctx.error(path + ("id",), "step id is required")
        return None
    if not isinstance(value, str):
        _expect(ctx, path + ("id",), "a string", value)
        return None
    if not STEP_ID_RE.match(value):
        ctx.error(path + ("id",), f"invalid step id {value!r}: use letters, digits, '_' and '-', "
                                  "starting with a letter or '_'")
        return None
    return value


def _check_targets(ctx: _Ctx, raw: dict, path: Path_, key: str) -> list[tuple[str, Path_]]:
    """dependsOn / next: a list of step ids or a single id; returns (id, path of that id)."""
    value = raw.get(key)
    here = path + (key,)
    if value is None:
        return []
    if isinstance(value, str):
        return [(value, here)]
    if not isinstance(value, list):
        _expect(ctx, here, "a list of step ids", value)
        return []
    out = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            out.append((item, here + (i,)))
        else:
            ctx.error(here + (i,), f"{key} entries must be step ids (strings), not {_type(item)}")
    return out


def _check_retry(ctx: _Ctx, raw: dict, path: Path_) -> dict[str, Any]:
    out = {"max_attempts": 1, "backoff": "fixed", "delay_ms": 1000, "max_delay_ms": None}
    value = raw.get("retry")
    here = path + ("retry",)
    if value is None:
        return out
    if not isinstance(value, dict):
        _expect(ctx, here, "a mapping (maxAttempts, backoff, delayMs, maxDelayMs)", value)
        return out
    _check_keys(ctx, value, here, RETRY_KEYS, "retry")
    out["max_attempts"] = _ok(_get(ctx, value, here, "maxAttempts", int_at_least(1)), 1)
    out["backoff"] = _ok(_get(ctx, value, here, "backoff", one_of(BACKOFFS)), "fixed")
    out["delay_ms"] = _ok(_get(ctx, value, here, "delayMs", int_at_least(0)), 1000)
    out["max_delay_ms"] = _ok(_get(ctx, value, here, "maxDelayMs", int_at_least(0)))
    return out


# --------------------------------------------------------------------------- kind-specific fields


def check_run(ctx: _Ctx, path: Path_, value: Any) -> Any:
    if isinstance(value, str):
        if not value.strip():
            ctx.error(path, "run must not be empty")
            return BAD
        return value
    if isinstance(value, list):
        if not value:
            ctx.error(path, "run must not be an empty list")
            return BAD
        return check_str_list(ctx, path, value)
    return _expect(ctx, path, "a command string or a list of arguments", value)


def check_approval(ctx: _Ctx, path: Path_, value: Any) -> Any:
    out = {"message": None, "timeout_ms": None, "default": None}
    if value is True:
        return out
    if isinstance(value, str):
        return dict(out, message=value)
    if not isinstance(value, dict):
        return _expect(ctx, path, "true, a message, or a mapping (message, timeout, default)", value)
    _check_keys(ctx, value, path, ("message", "timeout", "default"), "approval")
    out["message"] = _ok(_get(ctx, value, path, "message", check_str))
    out["timeout_ms"] = _ok(_get(ctx, value, path, "timeout", check_duration))
    out["default"] = _ok(_get(ctx, value, path, "default", one_of(("approve", "reject"))))
    return out


def check_notify(ctx: _Ctx, path: Path_, value: Any) -> Any:
    if isinstance(value, str):
        return {"message": value, "level": "info", "channels": []}
    if not isinstance(value, dict):
        return _expect(ctx, path, "a message or a mapping (message, level, channels)", value)
    _check_keys(ctx, value, path, ("message", "level", "channels"), "notify")
    return {
        "message": _ok(_get(ctx, value, path, "message", check_str, required="notify needs a message")),
        "level": _ok(_get(ctx, value, path, "level", one_of(("info", "warning", "error"))), "info"),
        "channels": _ok(_get(ctx, value, path, "channels", check_str_list), []),
    }


def check_script(ctx: _Ctx, path: Path_, value: Any) -> Any:
    """Scripted-provider steps: a list, or (for a swarm) a mapping of lists by role."""
    if isinstance(value, dict):
        for role, steps in value.items():
            if not isinstance(steps, list):
                _expect(ctx, (*path, role), "a list of script steps", steps)
                return BAD
        return value
    return check_list(ctx, path, value)


def check_swarm(ctx: _Ctx, path: Path_, value: Any) -> Any:
    if not isinstance(value, dict):
        return _expect(ctx, path, "a mapping (agents, strategy, ...)", value)
    out = dict(value)  # other keys are the swarm's business: passed through
    agents = _get(ctx, value, path, "agents", int_at_least(1))
    strategy = _get(ctx, value, path, "strategy", check_str)
    rest = {k: v for k, v in value.items() if k not in ("agents", "strategy")}
    if isinstance(agents, _Bad) or isinstance(strategy, _Bad) or isinstance(_check_jsonable(ctx, path, rest), _Bad):
        return BAD
    return out


_SPEC_CHECKS: dict[str, Checker] = {
    "run": check_run, "shell": check_str, "cwd": check_str,
    "task": check_str, "agent": check_str, "provider": check_str, "model": check_str, "script": check_script,
    "repo": check_str, "base": check_str, "tools": check_str_list, "budget": check_mapping,
    "provider_options": check_mapping,
    "approval": check_approval, "notify": check_notify, "swarm": check_swarm,
    "variables": check_mapping,
}
_REQUIRED: dict[str, dict[str, str]] = {
    "shell": {"run": "a shell step needs run: the command to run"},
    "agent": {"task": "an agent step needs a task"},
    "workflow": {"workflow": "a workflow step needs workflow: a file path or an inline definition"},
    "notify": {"notify": "a notify step needs notify: a message"},
    "swarm": {"swarm": "a swarm step needs swarm: a mapping (agents, strategy)",
              "task": "a swarm step needs a task"},
}


def _check_spec(ctx: _Ctx, raw: dict, path: Path_, kind: str, kinds: dict[str, Any], extra_vars: set[str]) -> dict:
    """The kind-specific fields, checked and normalized (plugin fields pass through as given)."""
    spec: dict[str, Any] = {}
    required = _REQUIRED.get(kind, {})
    for name in _kind_fields(kind, kinds):
        if name == "workflow" and kind == "workflow":
            value = _check_sub_workflow(ctx, raw, path, kinds, extra_vars)
        else:
            check = _SPEC_CHECKS.get(name, check_any) if kind in STEP_KINDS_BUILTIN else check_any
            value = _get(ctx, raw, path, name, check, required=required.get(name))
        if value is not None and not isinstance(value, _Bad):
            spec[name] = value
    if kind == "approval" and "approval" not in spec:
        spec["approval"] = {"message": None, "timeout_ms": None, "default": None}
    if kind == "approval":
        spec = dict(spec.pop("approval"), **spec)  # flattened: {"message", "timeout_ms", "default"}
    if kind == "notify" and "notify" in spec:
        spec = dict(spec.pop("notify"), **spec)  # flattened: {"message", "level", "channels"}
    return spec


def _check_sub_workflow(ctx: _Ctx, raw: dict, path: Path_, kinds: dict[str, Any], extra_vars: set[str]) -> Any:
    value = raw.get("workflow")
    here = path + ("workflow",)
    if value is None:
        ctx.error(here, _REQUIRED["workflow"]["workflow"])
        return BAD
    if isinstance(value, str):
        return value if value.strip() else _expect(ctx, here, "a file path or an inline definition", value)
    if isinstance(value, dict):
        # An inline definition sees its own variables plus the ones the step passes in.
        passed = raw.get("variables") if isinstance(raw.get("variables"), dict) else {}
        inner = _check_definition(ctx, value, here, kinds, {k for k in passed if isinstance(k, str)})
        return inner if inner is not None else BAD
    return _expect(ctx, here, "a file path or an inline definition (a mapping)", value)


def _collect_templates(step: _Step, raw: dict, path: Path_) -> None:
    """Every string in the step that the engine may render; the inline sub-workflow checks its own."""
    skip = {"id", "kind", "dependsOn", "next", "outputs", "condition", "retry", "timeout", "parallel"}
    stack = [(path + (k,), v) for k, v in raw.items() if k not in skip and isinstance(k, str)]
    if step.kind == "workflow" and isinstance(raw.get("workflow"), dict):
        stack = [(p, v) for p, v in stack if p[-1] != "workflow"]
    stack.reverse()
    while stack:
        here, value = stack.pop()
        if isinstance(value, str):
            if "{{" in value:
                step.templates.append((here, value))
        elif isinstance(value, dict):
            stack.extend(reversed([(here + (k,), v) for k, v in value.items()]))
        elif isinstance(value, list):
            stack.extend(reversed([(here + (i,), v) for i, v in enumerate(value)]))


# --------------------------------------------------------------------------- the graph


@dataclass
class _Graph:
    steps: dict[str, _Step]  # id -> its (first) step
    preds: dict[str, set[str]]  # id -> ids that must finish before it
    edge_paths: dict[tuple[str, str], list[Path_]]  # (before, after) -> where that edge is written
    _edge_index: dict[Path_, int] = field(default_factory=dict)  # declaration order of edge paths

    @classmethod
    def build(cls, ctx: _Ctx, steps: list[_Step]) -> "_Graph":
        graph = cls(steps={}, preds={}, edge_paths={})
        for step in steps:
            if step.id is None:
                continue
            first = graph.steps.get(step.id)
            if first is not None:
                ctx.error(step.path + ("id",), f"duplicate step id {step.id!r} "
                                               f"(first defined at {ctx.where_text(first.path + ('id',))})")
                continue
            graph.steps[step.id] = step
            graph.preds[step.id] = set()
        for step in steps:
            if step.id is None or graph.steps.get(step.id) is not step:
                continue
            for target, path in step.depends_on:
                graph._edge(ctx, target, step.id, target, path, "dependsOn")
            for target, path in step.next:
                graph._edge(ctx, step.id, target, target, path, "next")
        graph._report_cycles(ctx)
        return graph

    def _edge(self, ctx: _Ctx, before: str, after: str, target: str, path: Path_, key: str) -> None:
        if target not in self.steps:
            ctx.error(path, f"unknown step {target!r} in {format_path(path)}{_did_you_mean(target, self.steps)}")
            return
        if before == after:
            verb = "depends on" if key == "dependsOn" else "lists as next"
            ctx.error(path, f"cycle: step {before!r} {verb} itself ({before} → {before})")
            return
        self.preds[after].add(before)
        self.edge_paths.setdefault((before, after), []).append(path)
        self._edge_index[path] = len(self._edge_index)

    def _decl(self, step_id: str) -> int:
        return self.steps[step_id].index

    def _report_cycles(self, ctx: _Ctx) -> None:
        """Report each independent cycle once: find one, drop its closing edge, sort again."""
        preds = {k: set(v) for k, v in self.preds.items()}
        for _ in range(_MAX_CYCLES):
            try:
                graphlib.TopologicalSorter(preds).prepare()
                return
            except graphlib.CycleError as exc:
                cycle = list(exc.args[1][:-1])  # [a, b, c, a]: each runs before the next
            # Start at the step declared first, so the closing edge is the one pointing back up.
            start = min(range(len(cycle)), key=lambda i: self._decl(cycle[i]))
            cycle = cycle[start:] + cycle[:start]
            before, after = cycle[-1], cycle[0]
            # Both `after.dependsOn` and `before.next` may declare the edge: name the first written.
            path = min(self.edge_paths[(before, after)], key=lambda p: self._path_order(ctx, p))
            ctx.error(path, "cycle: " + " → ".join(cycle + [cycle[0]]))
            preds[after].discard(before)

    def _path_order(self, ctx: _Ctx, path: Path_) -> tuple[int, int, int]:
        line, column = ctx.position(path)
        return (line or 0, column or 0, self._edge_index[path])

    def needs(self, step: _Step) -> list[str]:
        if step.id is None or self.steps.get(step.id) is not step:
            return []
        return sorted(self.preds[step.id], key=self._decl)

    def order(self) -> list[str]:
        """Topological order; among ready steps, the one declared first (Kahn with a heap)."""
        remaining = {k: len(v) for k, v in self.preds.items()}
        succs: dict[str, list[str]] = {k: [] for k in self.preds}
        for after, befores in self.preds.items():
            for before in befores:
                succs[before].append(after)
        ready = [(self._decl(k), k) for k, n in remaining.items() if n == 0]
        heapq.heapify(ready)
        out = []
        while ready:
            _, node = heapq.heappop(ready)
            out.append(node)
            for nxt in succs[node]:
                remaining[nxt] -= 1
                if remaining[nxt] == 0:
                    heapq.heappush(ready, (self._decl(nxt), nxt))
        return out

    def ancestors(self, step_id: str) -> set[str]:
        seen: set[str] = set()
        stack = list(self.preds.get(step_id, ()))
        while stack:
            node = stack.pop()
            if node not in seen:
                seen.add(node)
                stack.extend(self.preds.get(node, ()))
        return seen


# --------------------------------------------------------------------------- references


def _check_workflow_env_refs(ctx: _Ctx, env: dict[str, str], path: Path_, declared: set[str]) -> None:
    for key, value in env.items():
        here = path + (key,)
        for ref, optional in _template_refs(ctx, here, value):
            if ref[0] == "steps":
                ctx.error(here, f"workflow env cannot use {'.'.join(ref)}: step outputs exist only inside steps")
            else:
                _check_ref(ctx, here, ref, declared, None, None, optional=optional)


def _template_refs(ctx: _Ctx, path: Path_, text: str) -> list[tuple[tuple[str, ...], bool]]:
    """(path, optional) for every reference in the `{{...}}` placeholders of text."""
    try:
        return [(tuple(r.path), tuple(r.path) in _optional_paths(r.expr)) for r in expr.template_refs(text)]
    except expr.ExprError as exc:
        ctx.error(path, f"bad template: {getattr(exc, 'message', None) or exc}")
        return []


def _check_step_refs(ctx: _Ctx, step: _Step, graph: _Graph, declared: set[str]) -> None:
    for path, text in step.templates:
        for ref, optional in _template_refs(ctx, path, text):
            _check_ref(ctx, path, ref, declared, step, graph, optional=optional)
    if step.condition is None:
        return
    path = step.path + ("condition",)
    try:
        refs = expr.condition_references(step.condition)
    except expr.ExprError as exc:
        ctx.error(path, f"bad condition: {getattr(exc, 'message', None) or exc}")
        return
    optional = _condition_optional_paths(step.condition)
    for ref in refs:
        _check_ref(ctx, path, tuple(ref), declared, step, graph, optional=tuple(ref) in optional)


def _condition_optional_paths(cond: Any) -> set[tuple[str, ...]]:
    if isinstance(cond, str):
        return _optional_paths(cond)
    if isinstance(cond, dict):
        if "exists" in cond and isinstance(cond.get("variable"), str):
            return {tuple(r) for r in expr.references(cond["variable"])}
        text = cond.get("expression", cond.get("expr"))
        if isinstance(text, str):
            return _optional_paths(text)
    return set()


def _optional_paths(src: str) -> set[tuple[str, ...]]:
    """Paths that may be undefined at run time: inside exists(...) or left of `??`.

    expr raises on an undefined path except there, so these are checked only for the step
    they name. Walks the documented tuple AST of expr.parse().
    """
    out: set[tuple[str, ...]] = set()
    try:
        _walk_optional(expr.parse(src), False, out)
    except expr.ExprError:
        pass
    return out


_PATH_NODES = ("name", "attr", "index")
_ROOTS = {"steps": "steps", "workflow": "workflow", "vars": "variables", "variables": "variables"}


def _walk_optional(node: tuple, optional: bool, out: set[tuple[str, ...]]) -> None:
    kind = node[0]
    if kind in _PATH_NODES:
        path = _node_path(node)
        if optional and path:
            out.add(path)
        if kind == "index":
            _walk_optional(node[2], False, out)  # the index expression itself is a plain read
        return
    if kind == "coalesce":
        _walk_optional(node[1], True, out)
        _walk_optional(node[2], optional, out)
        return
    inner = optional or (kind == "call" and node[1] == "exists")
    for item in node[1:]:
        for child in _child_nodes(item):
            _walk_optional(child, inner, out)


def _child_nodes(item: Any) -> list[tuple]:
    """Sub-expressions in one slot of a node: a node, or a tuple of nodes (call args, list items)."""
    if not isinstance(item, tuple) or not item:
        return []
    if isinstance(item[0], str):
        return [] if item[0] == "lit" else [item]
    return [c for c in item if isinstance(c, tuple) and c and isinstance(c[0], str) and c[0] != "lit"]


def _node_path(node: tuple) -> tuple[str, ...] | None:
    """The canonical path a name/attr/index node reads (as expr.references spells it)."""
    kind = node[0]
    if kind == "name":
        return (_ROOTS[node[1]],) if node[1] in _ROOTS else ("variables", node[1])
    base = _node_path(node[1]) if node[1][0] in _PATH_NODES else None
    if base is None:
        return None
    if kind == "attr":
        return base + (node[2],)
    key = node[2]
    if key[0] == "lit" and isinstance(key[1], (str, int)) and not isinstance(key[1], bool):
        return base + (str(key[1]),)
    return base  # a dynamic index: the path stops here, as in expr


def _check_ref(ctx: _Ctx, path: Path_, ref: tuple[str, ...], declared: set[str], step: _Step | None,
               graph: _Graph | None, *, optional: bool = False) -> None:
    text = ".".join(str(p) for p in ref)
    root = ref[0] if ref else ""
    if root == "variables":
        if len(ref) >= 2 and ref[1] not in declared and not optional:
            ctx.error(path, f"undefined variable {ref[1]!r} in {format_path(path)}"
                            f"{_did_you_mean(ref[1], declared)}: declare it under variables")
    elif root == "workflow":
        if len(ref) >= 2 and ref[1] not in WORKFLOW_FIELDS:
            ctx.error(path, f"unknown reference {text!r}: workflow has {', '.join(WORKFLOW_FIELDS)}")
    elif root == "steps" and graph is not None and step is not None:
        _check_step_ref(ctx, path, ref, text, step, graph, optional)
    else:
        ctx.error(path, f"unknown reference {text!r}: "
                        "use a variable, vars.NAME, steps.ID.outputs.NAME or workflow.name")


def _check_step_ref(ctx: _Ctx, path: Path_, ref: tuple[str, ...], text: str, step: _Step, graph: _Graph,
                    optional: bool) -> None:
    if len(ref) < 2:
        return
    target_id = ref[1]
    target = graph.steps.get(target_id)
    if target is None:
        ctx.error(path, f"{text} refers to unknown step {target_id!r}{_did_you_mean(target_id, graph.steps)}")
        return
    if optional:
        return
    if len(ref) >= 3 and ref[2] not in STEP_STATE_PARTS:
        ctx.error(path, f"{text}: a step has {', '.join(STEP_STATE_PARTS)}, not {ref[2]!r}"
                        f"{_did_you_mean(ref[2], STEP_STATE_PARTS)}")
        return
    if len(ref) >= 4 and ref[2] == "outputs":
        # What a step declares, plus what its kind always produces (a shell step's stdout, an
        # agent's branch); a plugin kind without declared outputs is not checked.
        defaults = DEFAULT_OUTPUTS.get(target.kind or "")
        known = (tuple(target.outputs or ()) + tuple(o for o in defaults or () if o not in (target.outputs or ()))) if (target.outputs or defaults is not None) else None
        if known is not None and ref[3] not in known:
            ctx.error(path, f"step {target_id!r} has no output {ref[3]!r} (outputs: {', '.join(known)})"
                            f"{_did_you_mean(ref[3], known)}")
            return
    if step.id is not None and target_id not in graph.ancestors(step.id):
        ctx.error(path, f"{text} is used by {step.id!r} but {target_id!r} does not run before it: "
                        "add it to dependsOn")
