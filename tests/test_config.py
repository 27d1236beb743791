"""Configuration: defaults, file, environment; every problem at once with file, line and column."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from godeld.config import defaults, load_config
from godeld.errors import ConfigError


def test_defaults_without_a_file(home):
    config = load_config(home=home, environ={})
    assert config.file is None
    assert config.data == defaults()
    assert config.socket_path == home / "godeld.sock"
    assert config.get("storage.backend") == "sqlite"
    assert config.get("rpc.max_line_bytes") == 1 << 20


def test_home_and_socket_from_environment(home):
    config = load_config(environ={"GODEL_HOME": str(home), "GODEL_SOCKET": str(home / "s.sock")})
    assert config.home == home
    assert config.socket_path == home / "s.sock"


def test_every_problem_is_reported_at_once_with_its_position(home):
    path = home / "config.yaml"
    path.write_text(
        "rpc:\n"
        "  max_line_bytes: lots\n"          # wrong type
        "  drain_timeout_s: -1\n"           # below minimum
        "log:\n"
        "  level: verbose\n"                # not a choice
        "storage:\n"
        "  sqlite:\n"
        "    synchronus: full\n"            # misspelt key
        "plugin:\n"                         # misspelt section
        "  watch: false\n"
        "events: 5\n"                       # a section that is not a mapping
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, home=home, environ={})
    problems = [(p["line"], p["column"], p["path"], p["message"]) for p in caught.value.data["errors"]]
    assert (2, 3, "rpc.max_line_bytes", "expected an integer, got the string 'lots'") in problems
    assert (3, 3, "rpc.drain_timeout_s", "must be at least 0, got -1") in problems
    assert (5, 3, "log.level", "must be one of debug, info, warning, error, got 'verbose'") in problems
    assert (8, 5, "storage.sqlite.synchronus", "unknown key 'synchronus' (did you mean 'synchronous'?)") in problems
    assert (9, 1, "plugin", "unknown key 'plugin' (did you mean 'plugins'?)") in problems
    assert (11, 1, "events", "expected a mapping, got an integer") in problems
    assert all(p["file"] == str(path) for p in caught.value.data["errors"])
    assert f"{path}:2:3: rpc.max_line_bytes: expected an integer" in caught.value.message


def test_duplicate_keys_are_reported(home):
    path = home / "config.yaml"
    path.write_text("rpc:\n  max_connections: 2\nlog:\n  level: info\nrpc:\n  max_connections: 3\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, home=home, environ={})
    [problem] = caught.value.data["errors"]
    assert (problem["line"], problem["path"], problem["message"]) == (5, "rpc", "duplicate key 'rpc' (first at line 1)")


def test_yaml_syntax_error_names_line_and_column(home):
    path = home / "config.yaml"
    path.write_text("rpc:\n  max_line_bytes: 1\n bad indent: [\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, home=home, environ={})
    error = caught.value.data["errors"][0]
    assert error["file"] == str(path) and error["line"] == 3
    assert "invalid YAML" in caught.value.message


def test_missing_explicit_file(home):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(home / "nope.yaml", home=home, environ={})


def test_env_references_are_resolved_and_masked(home):
    path = home / "config.yaml"
    path.write_text("plugins:\n  config:\n    slack:\n      token: {$env: SLACK_TOKEN}\n      channel: '#ops'\n      fallback: {$env: NOT_SET, default: none}\n")
    config = load_config(path, home=home, environ={"SLACK_TOKEN": "xoxb-secret"})
    assert config.plugin_config("slack") == {"token": "xoxb-secret", "channel": "#ops", "fallback": "none"}
    assert "xoxb-secret" not in json.dumps(config.public())
    with pytest.raises(ConfigError) as caught:
        load_config(path, home=home, environ={})
    assert caught.value.data["errors"][0]["path"] == "plugins.config.slack.token"
    assert caught.value.data["errors"][0]["message"] == "environment variable SLACK_TOKEN is not set"
    assert caught.value.data["errors"][0]["line"] == 4


def test_environment_overrides_file(home):
    path = home / "config.yaml"
    path.write_text("rpc:\n  drain_timeout_s: 3\n")
    config = load_config(path, home=home, environ={"GODEL_RPC__DRAIN_TIMEOUT_S": "0.5", "GODEL_PLUGINS__WATCH": "false", "GODEL_PLUGINS__DISABLED": "a,b"})
    assert config.get("rpc.drain_timeout_s") == 0.5
    assert config.get("plugins.watch") is False
    assert config.get("plugins.disabled") == ["a", "b"]
    with pytest.raises(ConfigError) as caught:
        load_config(path, home=home, environ={"GODEL_RPC__NO_SUCH": "1", "GODEL_RPC__MAX_CONNECTIONS": "many"})
    paths = {e["path"]: e["message"] for e in caught.value.data["errors"]}
    assert paths["rpc.no_such"] == "unknown config key set from the environment"
    assert paths["rpc.max_connections"].startswith("expected an integer")


def test_relative_paths_are_relative_to_the_file(home):
    (home / "etc").mkdir()
    path = home / "etc" / "config.yaml"
    path.write_text("storage:\n  sqlite:\n    path: data/godel.db\nplugins:\n  dirs: [extra]\n")
    config = load_config(path, home=home, environ={})
    assert config.get("storage.sqlite.path") == str(home / "etc" / "data" / "godel.db")
    assert config.get("plugins.dirs") == [str(home / "etc" / "extra")]


def test_restart_required_lists_settings_that_do_not_reload(home):
    old = load_config(home=home, environ={})
    new = load_config(home=home, environ={"GODEL_STORAGE__SQLITE__READERS": "8", "GODEL_LOG__LEVEL": "debug"})
    assert new.restart_required(old) == ["storage.sqlite.readers"]


def godeld_cli(*args, home):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GODEL_")}
    return subprocess.run([sys.executable, "-m", "godeld", *args, "--home", str(home)], env=env, capture_output=True, text=True, timeout=60)


def test_check_config_command(home):
    (home / "config.yaml").write_text("log:\n  level: debug\nplugins:\n  config:\n    x: {key: {$env: HOME}}\n")
    ok = godeld_cli("check-config", home=home)
    assert ok.returncode == 0, ok.stderr
    assert "is valid" in ok.stdout and "level: debug" in ok.stdout and "'***'" in ok.stdout
    as_json = godeld_cli("check-config", "--json", home=home)
    assert json.loads(as_json.stdout)["config"]["log"]["level"] == "debug"
    (home / "config.yaml").write_text("log:\n  levle: debug\n")
    bad = godeld_cli("check-config", home=home)
    assert bad.returncode == 2
    assert f"{home / 'config.yaml'}:2:3: log.levle: unknown key 'levle' (did you mean 'level'?)" in bad.stderr
    assert "Traceback" not in bad.stderr
