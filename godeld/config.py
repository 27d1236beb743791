"""Configuration: defaults < YAML file < GODEL_SECTION__KEY environment variables < command-line flags.

Every key is declared once in SCHEMA with its type, default and a comment; config/godel.example.yaml
is checked against it by a test. All problems in a file are reported at once, each with file, line,
column and path, and a "did you mean" for misspelt keys. A value written as {"$env": "NAME"} is read
from the environment, so secrets need not be stored in the file (and are masked when shown).
"""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from godeld import protocol
from godeld.errors import ConfigError
from godeld.yamlsource import Located, YamlProblem, YamlSyntaxError, format_path, load_yaml

LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class Key:
    type: str  # str | int | float | bool | path | list | dict
    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    nullable: bool = False
    reload: bool = True  # False: a change takes effect only after a restart


SCHEMA: dict[str, Any] = {
    "socket": Key("path", None, "Unix socket of the JSON-RPC server (default: $GODEL_HOME/godeld.sock).", nullable=True, reload=False),
    "project": Key("path", None, "Project directory whose .godel/plugins/ is loaded (default: godeld's working directory).", nullable=True, reload=False),
    "log": {
        "level": Key("str", "info", "Log level.", choices=LOG_LEVELS),
        "file": Key("path", None, "Also append logs to this file (stderr is always used).", nullable=True, reload=False),
    },
    "rpc": {
        "max_line_bytes": Key("int", protocol.DEFAULT_MAX_LINE_BYTES, "Longest accepted request line; longer lines get an error and are discarded.", minimum=1024),
        "max_connections": Key("int", 1024, "Concurrent client connections; more are refused with an error.", minimum=1),
        "max_inflight_per_connection": Key("int", 256, "Requests one connection may have running at once; its reading pauses beyond that.", minimum=1),
        "drain_timeout_s": Key("float", 10.0, "On shutdown, how long in-flight requests may take to finish before they are cancelled.", minimum=0),
    },
    "events": {
        "subscriber_buffer": Key("int", 10000, "Live events buffered per subscriber; past it the subscriber catches up from the log.", minimum=1),
        "subscriber_buffer_bytes": Key("int", 16 << 20, "Bytes of live events buffered per subscriber (the same rule).", minimum=1024),
        "list_max_limit": Key("int", 10000, "Most events one events.list call returns.", minimum=1),
        "replay_page": Key("int", 500, "Events read from the log per page when a subscriber replays or catches up.", minimum=1),
    },
    "storage": {
        "backend": Key("str", "sqlite", "Storage backend, by the name its plugin registered.", reload=False),
        "sqlite": {
            "path": Key("path", None, "Database file (default: $GODEL_HOME/godel.db).", nullable=True, reload=False),
            "synchronous": Key("str", "full", "full: a commit survives power loss (one fsync per group commit); normal: survives a crash of godeld.", choices=("full", "normal"), reload=False),
            "readers": Key("int", 4, "Read connections (queries run on threads, beside the single writer).", minimum=1, reload=False),
            "busy_timeout_ms": Key("int", 5000, "How long a connection waits on a lock held by another process.", minimum=0, reload=False),
            "max_batch": Key("int", 10000, "Most writes committed in one group-commit transaction.", minimum=1, reload=False),
        },
    },
    "plugins": {
        "entry_points": Key("bool", True, "Load plugins installed as Python packages (entry-point group 'godel').", reload=False),
        "dirs": Key("list", [], "More drop-in directories of *.py plugins, besides $GODEL_HOME/plugins and <project>/.godel/plugins."),
        "disabled": Key("list", [], "Names of plugins not to load (built-ins included)."),
        "watch": Key("bool", True, "Reload a drop-in plugin when its file changes."),
        "reload_debounce_ms": Key("int", 200, "Quiet time after a file change before plugins are reloaded.", minimum=0),
        "config": Key("dict", {}, "Per-plugin settings: plugins.config.<plugin-name> is handed to that plugin."),
    },
    "agents": {
        "max_concurrent": Key("int", 32, "Agents running at once; further spawns wait in order (state pending).", minimum=1),
        "default_provider": Key("str", "scripted", "Provider used when agents.spawn names none."),
        "fallback": Key("list", [], "Providers tried in order when an API provider fails (a fallback chain), e.g. [openai, anthropic]."),
        "max_turns": Key("int", 50, "Most model turns of an API agent's tool loop.", minimum=1),
        "max_runtime_s": Key("float", 3600.0, "Longest an agent may run before agent:stuck (0: no limit).", minimum=0),
        "idle_timeout_s": Key("float", 600.0, "Longest an agent may go without output before agent:stuck (0: no limit).", minimum=0),
        "kill_when_stuck": Key("bool", False, "Kill an agent that is stuck, besides reporting it."),
        "kill_grace_s": Key("float", 5.0, "Between SIGTERM and SIGKILL when an agent is killed.", minimum=0),
        "command_timeout_s": Key("float", 600.0, "Longest one run_command tool call may take.", minimum=1),
        "commit_on_success": Key("bool", True, "Commit uncommitted changes on the agent's branch when a run succeeds."),
        "keep_running_on_shutdown": Key("bool", True, "Leave agents running when godeld stops; they are re-adopted at the next start."),
    },
    "worktrees": {
        "dir": Key("path", None, "Where agent worktrees are made (default: $GODEL_HOME/worktrees).", nullable=True),
        "setup_timeout_s": Key("float", 300.0, "Longest a .godel/worktree.yaml setup command may take.", minimum=1),
        "gc_max_age_h": Key("float", 168.0, "godelctl gc removes finished agents' worktrees older than this (hours).", minimum=0),
        "gc_quota_mb": Key("int", 0, "godelctl gc also removes the oldest finished worktrees while all together use more than this (0: no quota).", minimum=0),
    },
    "budget": {
        "global_usd": Key("float", 0.0, "Spending limit for everything, all time (0: none).", minimum=0),
        "daily_usd": Key("float", 0.0, "Spending limit per UTC day (0: none).", minimum=0),
        "agent_usd": Key("float", 0.0, "Default limit per agent when agents.spawn gives none (0: none).", minimum=0),
        "prices_version": Key("str", "2026-11", "Version label of the price table, stored with every ledger entry."),
        "prices": Key("dict", {}, "USD per million tokens by model: {MODEL: {input, output, cache_read, cache_write}}; merged over the built-in table. A model matches its longest listed prefix."),
    },
    "tasks": {
        "default_parallel": Key("int", 4, "Tasks of the 'default' group running at once (tasks.set_group overrides it; 0 pauses the group).", minimum=0),
        "lease_s": Key("float", 30.0, "How long a claim lasts without a heartbeat; an expired lease puts the task back in the queue.", minimum=0.1),
        "sweep_interval_s": Key("float", 1.0, "How often expired leases are looked for.", minimum=0.05),
        "run_in_daemon": Key("bool", True, "Run queued tasks (commands and agent tasks) in godeld itself; off: only external workers claim them."),
        "max_requeues": Key("int", 20, "A task whose lease expired this many times fails instead of going back to the queue (a crash loop guard).", minimum=1),
        "kill_grace_s": Key("float", 5.0, "Between SIGTERM and SIGKILL when a running command task is cancelled.", minimum=0),
        "log_tail_bytes": Key("int", 4096, "How much of a command's output its result keeps (the whole output stays in tasks/<id>.log).", minimum=0),
    },
    "workflows": {
        "max_parallel_steps": Key("int", 64, "Workflow steps running at once, all runs together.", minimum=1, reload=False),
        "max_parallel_per_run": Key("int", 16, "Steps of one run running at once, when the workflow gives no maxParallel.", minimum=1),
    },
    "skills": {
        "user_dirs": Key("list", None, "User skill directories (default: $GODEL_HOME/skills and ~/.claude/skills).", nullable=True),
        "paths": Key("list", [], "More skill directories (also $GODEL_SKILLS_PATH, colon-separated); below user, above built-in."),
        "builtin": Key("bool", True, "Offer the skills shipped with godel (godeld/builtin_skills)."),
        "watch": Key("bool", True, "Reload the skills when a file in a skill directory changes."),
        "reload_debounce_ms": Key("int", 200, "Quiet time after a change before the skills are reloaded.", minimum=0),
    },
    "swarms": {
        "max_agents": Key("int", 100, "Most agents one swarm may have (map-reduce: its items, plus planner and reducer).", minimum=1),
    },
    "safety": {
        "denied_tools": Key("list", [], "Tools no agent may use."),
        "ask_tools": Key("list", [], "Tools that wait for a person's approval (agents.approve / agents.deny)."),
        "network_allow": Key("list", [], "Hosts commands may reach (*.example.com allowed); empty: any host."),
        "protected_branches": Key("list", ["main", "master"], "Branches no agent may force-push to."),
        "disabled_rules": Key("list", [], "Safety rules to switch off, by name."),
    },
    "providers": Key("dict", {}, "Settings per provider: providers.<name>.{base_url, api_key, api_key_env, model, ...}; api_key may be {\"$env\": NAME}."),
}


def example_yaml() -> str:
    """config/godel.example.yaml: every key with its default and what it does."""
    import yaml

    lines = [
        "# godel configuration: $GODEL_HOME/config.yaml (or godeld --config FILE, or $GODEL_CONFIG).",
        "# Every key is shown with its default. Environment variables override the file:",
        "# GODEL_RPC__DRAIN_TIMEOUT_S=5 sets rpc.drain_timeout_s. A value written {\"$env\": NAME}",
        "# is read from the environment (and masked by `godeld check-config`).",
        "# Keys marked (restart) take effect on restart; the others on `godelctl daemon reload` / SIGHUP.",
        "",
    ]

    def render(schema: Mapping[str, Any], indent: int) -> None:
        pad = "  " * indent
        for name, spec in schema.items():
            if isinstance(spec, dict):
                lines.append(f"{pad}{name}:")
                render(spec, indent + 1)
                continue
            note = "" if spec.reload else " (restart)"
            lines.append(f"{pad}# {spec.help}{note}")
            value = yaml.safe_dump(spec.default, default_flow_style=True).strip().removesuffix("...").strip()
            lines.append(f"{pad}{name}: {value}")

    render(SCHEMA, 0)
    return "\n".join(lines) + "\n"


def defaults(schema: Mapping[str, Any] = SCHEMA) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, spec in schema.items():
        out[name] = defaults(spec) if isinstance(spec, dict) else _copy(spec.default)
    return out


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value))


def iter_keys(schema: Mapping[str, Any] = SCHEMA, prefix: tuple[str, ...] = ()):
    """Yield (path, Key) for every leaf of the schema."""
    for name, spec in schema.items():
        if isinstance(spec, dict):
            yield from iter_keys(spec, prefix + (name,))
        else:
            yield prefix + (name,), spec


def key_at(path: tuple[str, ...]) -> Key | dict | None:
    node: Any = SCHEMA
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


@dataclass
class Config:
    """The effective configuration. `data` mirrors SCHEMA; paths are already resolved."""

    data: dict[str, Any]
    home: Path
    file: Path | None = None
    secrets: set[tuple[Any, ...]] = field(default_factory=set)

    def get(self, dotted: str) -> Any:
        node: Any = self.data
        for part in dotted.split("."):
            node = node[part]
        return node

    @property
    def socket_path(self) -> Path:
        return Path(self.data["socket"]) if self.data["socket"] else self.home / "godeld.sock"

    @property
    def project_dir(self) -> Path:
        return Path(self.data["project"]) if self.data["project"] else Path.cwd()

    def plugin_config(self, plugin_name: str) -> dict[str, Any]:
        return dict(self.data["plugins"]["config"].get(plugin_name) or {})

    def public(self) -> dict[str, Any]:
        """The configuration with values read from {"$env": ...} masked."""
        data = _copy(self.data)
        for path in self.secrets:
            node = data
            for part in path[:-1]:
                node = node[part]
            node[path[-1]] = "***"
        return data

    def restart_required(self, other: "Config") -> list[str]:
        """Keys that differ from `other` but only take effect after a restart."""
        changed = []
        for path, key in iter_keys():
            if not key.reload and _dig(self.data, path) != _dig(other.data, path):
                changed.append(".".join(path))
        if self.home != other.home:
            changed.append("home")
        return changed


def _dig(data: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


def default_config_file(home: Path) -> Path:
    return home / "config.yaml"


def load_config(
    file: str | Path | None = None,
    *,
    home: str | Path | None = None,
    socket: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Build the effective configuration, or raise ConfigError listing every problem."""
    env = os.environ if environ is None else environ
    home_path = Path(home).expanduser() if home else (Path(env["GODEL_HOME"]).expanduser() if env.get("GODEL_HOME") else Path.home() / ".godel")
    home_path = home_path.absolute()
    explicit = file or env.get("GODEL_CONFIG")
    config_file = Path(explicit).expanduser().absolute() if explicit else default_config_file(home_path)
    if explicit and not config_file.is_file():
        raise ConfigError(f"config file not found: {config_file}", {"errors": [{"file": str(config_file), "line": 0, "column": 0, "path": "", "message": "no such file"}]})

    data = defaults()
    problems: list[YamlProblem] = []
    secrets: set[tuple[Any, ...]] = set()
    used_file: Path | None = None
    if config_file.is_file():
        used_file = config_file
        try:
            text = config_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config file {config_file}: {exc}") from None
        try:
            doc = load_yaml(text, str(config_file))
        except YamlSyntaxError as exc:
            raise ConfigError(str(exc.problem), {"errors": [exc.problem.to_dict()]}) from None
        problems.extend(doc.problems)
        if doc.value is not None:
            if not isinstance(doc.value, dict):
                problems.append(doc.problem((), "the config file must be a mapping of sections"))
            else:
                _merge(doc, doc.value, SCHEMA, data, (), problems, secrets, env)

    _apply_env(env, data, problems, secrets, str(config_file))
    if socket:
        data["socket"] = str(Path(socket).expanduser().absolute())
    elif env.get("GODEL_SOCKET"):
        data["socket"] = str(Path(env["GODEL_SOCKET"]).expanduser().absolute())

    if problems:
        lines = "\n".join(f"  {p}" for p in problems)
        raise ConfigError(f"invalid configuration ({len(problems)} problem{'s' if len(problems) > 1 else ''}):\n{lines}", {"errors": [p.to_dict() for p in problems]})
    _resolve_paths(data, used_file.parent if used_file else home_path)
    return Config(data=data, home=home_path, file=used_file, secrets=secrets)


def _merge(doc: Located, given: dict, schema: dict, out: dict, path: tuple, problems: list, secrets: set, env: Mapping[str, str]) -> None:
    for name, value in given.items():
        here = path + (name,)
        spec = schema.get(name) if isinstance(name, str) else None
        if spec is None:
            problems.append(doc.problem(here, f"unknown key {name!r}{_did_you_mean(name, schema)}"))
            continue
        if isinstance(spec, dict):
            if value is None:
                continue
            if not isinstance(value, dict):
                problems.append(doc.problem(here, f"expected a mapping, got {_kind(value)}"))
                continue
            _merge(doc, value, spec, out[name], here, problems, secrets, env)
            continue
        value, secret = _resolve_env_refs(doc, here, value, problems, env)
        if secret:
            secrets.add(here)
        checked = _check(spec, value)
        if isinstance(checked, _Bad):
            problems.append(doc.problem(here, checked.message))
        else:
            out[name] = checked


def _resolve_env_refs(doc: Located, path: tuple, value: Any, problems: list, env: Mapping[str, str]) -> tuple[Any, bool]:
    """Replace {"$env": NAME[, "default": X]} with the environment's value, anywhere in `value`."""
    if isinstance(value, dict) and "$env" in value:
        extra = set(value) - {"$env", "default"}
        name = value["$env"]
        if extra or not isinstance(name, str):
            problems.append(doc.problem(path, 'an environment reference is written {"$env": "NAME"} (optionally with "default")'))
            return None, True
        if name in env:
            return env[name], True
        if "default" in value:
            return value["default"], True
        problems.append(doc.problem(path, f"environment variable {name} is not set"))
        return None, True
    if isinstance(value, dict):
        any_secret = False
        out = {}
        for k, v in value.items():
            out[k], secret = _resolve_env_refs(doc, path + (k,), v, problems, env)
            any_secret |= secret
        return out, any_secret
    if isinstance(value, list):
        items = [_resolve_env_refs(doc, path + (i,), v, problems, env) for i, v in enumerate(value)]
        return [v for v, _ in items], any(s for _, s in items)
    return value, False


@dataclass
class _Bad:
    message: str


def _check(key: Key, value: Any) -> Any:
    if value is None:
        return None if key.nullable else _Bad(f"must not be empty (expected {_type_name(key)})")
    t = key.type
    if t in ("str", "path"):
        if not isinstance(value, str):
            return _Bad(f"expected {_type_name(key)}, got {_kind(value)}")
        if key.choices and value not in key.choices:
            return _Bad(f"must be one of {', '.join(key.choices)}, got {value!r}{_did_you_mean(value, key.choices)}")
        return value
    if t == "bool":
        return value if isinstance(value, bool) else _Bad(f"expected true or false, got {_kind(value)}")
    if t in ("int", "float"):
        ok = isinstance(value, int) and not isinstance(value, bool)
        if t == "float":
            ok = ok or isinstance(value, float)
        if not ok:
            return _Bad(f"expected {_type_name(key)}, got {_kind(value)}")
        if key.minimum is not None and value < key.minimum:
            return _Bad(f"must be at least {key.minimum:g}, got {value}")
        return float(value) if t == "float" else value
    if t == "list":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return _Bad(f"expected a list of strings, got {_kind(value)}")
        return value
    if t == "dict":
        return value if isinstance(value, dict) else _Bad(f"expected a mapping, got {_kind(value)}")
    raise AssertionError(f"unknown schema type {t}")


def _type_name(key: Key) -> str:
    return {"str": "a string", "path": "a path", "int": "an integer", "float": "a number", "bool": "true or false", "list": "a list of strings", "dict": "a mapping"}[key.type]


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {bool: "a boolean", int: "an integer", float: "a number", str: f"the string {value!r}" if isinstance(value, str) and len(value) < 40 else "a string", list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)


def _did_you_mean(word: Any, candidates) -> str:
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


ENV_PREFIX = "GODEL_"
_RESERVED_ENV = {"GODEL_HOME", "GODEL_SOCKET", "GODEL_CONFIG"}


def _apply_env(env: Mapping[str, str], data: dict, problems: list, secrets: set, file: str) -> None:
    """GODEL_RPC__DRAIN_TIMEOUT_S=5 sets rpc.drain_timeout_s; GODEL_STORAGE__SQLITE__PATH=… nests."""
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name or name in _RESERVED_ENV:
            continue
        path = tuple(part.lower() for part in name[len(ENV_PREFIX):].split("__"))
        key = key_at(path)
        if not isinstance(key, Key):
            problems.append(YamlProblem(f"${name}", 0, 0, ".".join(path), "unknown config key set from the environment"))
            continue
        value: Any = raw
        if key.type in ("int", "float", "bool", "list", "dict") or (key.nullable and raw == ""):
            try:
                value = json.loads(raw) if raw else None
            except ValueError:
                value = raw.split(",") if key.type == "list" else raw
        checked = _check(key, value)
        if isinstance(checked, _Bad):
            problems.append(YamlProblem(f"${name}", 0, 0, ".".join(path), checked.message))
            continue
        node = data
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = checked


def _resolve_paths(data: dict, base: Path) -> None:
    """Relative paths in the file are relative to the file's directory; ~ is expanded."""
    for path, key in iter_keys():
        if key.type != "path":
            continue
        node = data
        for part in path[:-1]:
            node = node[part]
        if node[path[-1]]:
            p = Path(node[path[-1]]).expanduser()
            node[path[-1]] = str(p if p.is_absolute() else (base / p).absolute())
    data["plugins"]["dirs"] = [str((base / Path(d).expanduser()).absolute()) for d in data["plugins"]["dirs"]]


__all__ = ["Config", "ConfigError", "Key", "SCHEMA", "defaults", "load_config", "iter_keys", "format_path"]
