"""godelctl end to end: every command run as a real process against a real godeld.

Synchronisation is by output and state, never by sleeping: a follower's stdout is read line by
line, a waiter's `--since` makes it race-free (or godeld's subscriber count shows it is waiting);
subprocess and read timeouts are only safety nets.
"""

from __future__ import annotations

import json
import re
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from tests.helpers import Godeld, short_tmpdir, cleanup_home

STATUS_KEYS = {"version", "pid", "uptime_s", "socket", "home", "storage", "plugins", "last_seq"}
EVENT_KEYS = {"id", "seq", "type", "timestamp", "source", "data", "metadata"}
PLUGIN_KEYS = {"name", "source", "origin", "state", "hooks", "registered", "error", "errors"}
from godeld.default_plugins import DEFAULT_PLUGINS  # noqa: E402

BUILTINS = {
    "godeld.default_plugins.sqlite": {"migrations": ["sqlite:godel-core"], "storage": ["sqlite"]},
    "godeld.default_plugins.daemon_rpc": {"rpc_methods": ["daemon.reload", "daemon.shutdown", "daemon.status", "rpc.discover", "system.listMethods"]},
    "godeld.default_plugins.plugins_rpc": {"rpc_methods": ["plugins.list"]},
    "godeld.default_plugins.events_rpc": {"rpc_methods": ["events.list", "events.publish", "events.subscribe", "events.unsubscribe"]},
}


# -- helpers -------------------------------------------------------------------------------

def ctl_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a godelctl run: no GODEL_* of the developer's, the test's home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GODEL_")}
    env["GODEL_PLUGINS__ENTRY_POINTS"] = "false"
    env["GODEL_HOME"] = str(home)
    env.update(extra)
    return env


def ctl(home: Path, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run godelctl to completion. No run of godelctl may ever print a traceback."""
    result = subprocess.run(
        [sys.executable, "-m", "godelctl", *args],
        env=env if env is not None else ctl_env(home), cwd=cwd or home,
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )
    assert "Traceback" not in result.stderr, f"godelctl {' '.join(args)}:\n{result.stderr}"
    assert "Traceback" not in result.stdout, f"godelctl {' '.join(args)}:\n{result.stdout}"
    return result


def ok(home: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    result = ctl(home, *args, **kwargs)
    assert result.returncode == 0, f"godelctl {' '.join(args)} -> {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def not_running_message(socket: Path) -> str:
    return f"godelctl: godeld is not running (socket: {socket})\n"


class Background:
    """godelctl running in the background; its stdout is read line by line (the synchronisation)."""

    def __init__(self, home: Path, *args: str, env: dict[str, str] | None = None):
        self.args = args
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "godelctl", *args], env=env if env is not None else ctl_env(home), cwd=home,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.stderr = ""

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def line(self, timeout: float = 30) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"godelctl {' '.join(self.args)} printed nothing within {timeout}s") from None
        assert line is not None, f"godelctl {' '.join(self.args)} ended early: {self.finish()}"
        return line

    def event(self, timeout: float = 30) -> dict:
        return json.loads(self.line(timeout))

    def finish(self, timeout: float = 30) -> tuple[int, list[str], str]:
        """Wait for the exit; (exit status, stdout lines not read yet, stderr)."""
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        rest = []
        while True:
            line = self.lines.get_nowait() if not self.lines.empty() else None
            if line is None:
                break
            rest.append(line)
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()
        self.proc.stderr.close()
        assert "Traceback" not in self.stderr, f"godelctl {' '.join(self.args)}:\n{self.stderr}"
        return code, rest, self.stderr

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None and not stream.closed:
                try:
                    stream.close()
                except (OSError, ValueError):
                    pass


def publish_many(proc: Godeld, count: int, type_: str = "demo:bulk") -> list[int]:
    with proc.client() as client:
        results = client.batch([("events.publish", {"type": type_, "data": {"i": i}}) for i in range(count)])
    seqs = sorted(r["seq"] for r in results)  # a batch runs concurrently: any order
    assert seqs == list(range(seqs[0], seqs[0] + count))
    return seqs


def last_seq(proc: Godeld) -> int:
    return proc.call("daemon.status")["last_seq"]


def wait_for_subscribers(proc: Godeld, count: int, attempts: int = 5000) -> None:
    """Until godeld counts `count` subscribers (a waiter prints nothing before its event)."""
    with proc.client() as client:
        for _ in range(attempts):
            if client.call("daemon.status")["subscribers"] >= count:
                return
    raise AssertionError(f"fewer than {count} subscribers")


def pid_gone(pid: int) -> bool:
    """The process has exited (a zombie not reaped by a minimal init counts as exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


# -- imports, options, environment ---------------------------------------------------------

def test_imports_neither_trio_nor_pluggy(godeld):
    proc = godeld().start()
    code = textwrap.dedent("""
        import json, sys
        from godelctl.cli import cli
        for args in (["--json", "status"], ["--json", "events", "-n", "1"], ["--json", "plugins"]):
            code = cli.main(args=args, prog_name="godelctl", standalone_mode=False)
            assert not code, (args, code)
        assert "trio" not in sys.modules, "trio imported"
        assert "pluggy" not in sys.modules, "pluggy imported"
        print("CLEAN")
    """)
    result = subprocess.run([sys.executable, "-c", code], env=ctl_env(proc.home), cwd=proc.home, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().endswith("CLEAN")
    assert f'"pid": {proc.proc.pid}' in result.stdout  # it really talked to the daemon


def test_status_table_and_json(godeld):
    proc = godeld().start()
    table = ok(proc.home, "status").stdout
    assert table.startswith("godeld 0.1.0 running (pid %d), up " % proc.proc.pid)
    assert f"socket:      {proc.socket}" in table
    assert f"home:        {proc.home}" in table
    assert "events:      last seq 1" in table
    assert f"plugins:     {len(DEFAULT_PLUGINS)} loaded" in table

    info = json.loads(ok(proc.home, "--json", "status").stdout)
    assert STATUS_KEYS <= set(info)
    assert info["pid"] == proc.proc.pid
    assert info["socket"] == str(proc.socket) and info["home"] == str(proc.home)
    assert info["version"] == "0.1.0"
    assert isinstance(info["uptime_s"], (int, float)) and info["uptime_s"] >= 0
    assert info["storage"]["backend"] == "sqlite"
    assert info["plugins"]["loaded"] == len(DEFAULT_PLUGINS)
    assert info["last_seq"] == 1  # daemon:start


def test_global_options_and_environment(godeld, home):
    proc = godeld().start()
    elsewhere = short_tmpdir()
    try:
        # GODEL_HOME points at an empty home: nothing runs there.
        assert ctl(elsewhere, "status").returncode == 3
        # --home, --socket and GODEL_SOCKET each override it.
        assert json.loads(ok(elsewhere, "--json", "--home", str(proc.home), "status").stdout)["pid"] == proc.proc.pid
        assert json.loads(ok(elsewhere, "--json", "--socket", str(proc.socket), "status").stdout)["pid"] == proc.proc.pid
        env = ctl_env(elsewhere, GODEL_SOCKET=str(proc.socket))
        assert json.loads(ok(elsewhere, "--json", "status", env=env).stdout)["pid"] == proc.proc.pid
        # --socket wins over GODEL_SOCKET and --home; relative paths are taken from the cwd.
        missing = elsewhere / "none.sock"
        result = ctl(elsewhere, "--home", str(proc.home), "--socket", str(missing), "status", env=env)
        assert result.returncode == 3 and result.stderr == not_running_message(missing)
        assert ok(elsewhere, "--json", "--home", ".", "status", cwd=proc.home).stdout
        assert ok(elsewhere, "--json", "--socket", "godeld.sock", "status", cwd=proc.home).stdout
    finally:
        cleanup_home(elsewhere)
    version = ok(home, "--version").stdout
    assert version.strip() == "godelctl, version 0.1.0"


# -- exit statuses ---------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ("status",),
    ("--json", "status"),
    ("plugins",),
    ("events",),
    ("events", "-f"),
    ("events", "--since", "0", "--limit", "5"),
    ("events", "publish", "demo:x", "--data", '{"a": 1}'),
    ("events", "wait", "demo:*", "--timeout", "5"),
    ("rpc", "daemon.status"),
    ("daemon", "stop"),
    ("daemon", "reload"),
])
def test_not_running_is_exit_3(home, args):
    result = ctl(home, *args)
    assert result.returncode == 3
    assert result.stderr == not_running_message(home / "godeld.sock")


def test_stale_socket_is_not_running_and_daemon_start_replaces_it(godeld, home):
    proc = godeld().start()
    proc.kill9()
    assert proc.socket.exists()  # left behind by the crash
    result = ctl(home, "status")
    assert result.returncode == 3 and result.stderr == not_running_message(proc.socket)
    pid = None
    try:
        started = ok(home, "--json", "daemon", "start")
        pid = json.loads(started.stdout)["pid"]
        assert json.loads(ok(home, "--json", "status").stdout)["pid"] == pid
    finally:
        if pid is not None:
            assert ctl(home, "daemon", "stop").returncode == 0


def test_a_file_that_is_not_a_socket_is_not_running(home):
    (home / "godeld.sock").write_text("not a socket")
    result = ctl(home, "status")
    assert result.returncode == 3
    assert result.stderr.startswith(f"godelctl: godeld is not running (socket: {home / 'godeld.sock'})")


@pytest.mark.parametrize("args, message", [
    (("--bogus", "status"), "No such option '--bogus'"),
    (("status", "--bogus"), "No such option '--bogus'"),
    (("no-such-command",), "No such command 'no-such-command'"),
    (("events", "publish", "demo:x", "--data", "[1"), "Invalid value for --data: not valid JSON"),
    (("events", "publish", "demo:x", "--data", "[1]"), "Invalid value for --data: must be a JSON object"),
    (("events", "publish", "demo:x", "--metadata", "nope"), "Invalid value for --metadata: not valid JSON"),
    (("events", "publish"), "Missing argument 'TYPE'"),
    (("events", "wait"), "Missing argument 'PATTERNS...'"),
    (("events", "--limit", "0"), "Invalid value for '--limit'"),
    (("events", "--since", "-1"), "Invalid value for '--since'"),
    (("events", "-n", "x"), "Invalid value for '-n'"),
    (("rpc", "m", "[1"), "Invalid value for PARAMS: not valid JSON"),
    (("rpc", "m", "1"), "Invalid value for PARAMS: must be a JSON object or array"),
    (("rpc",), "Missing argument 'METHOD'"),
    (("completion", "tcsh"), "Invalid value for '{bash|zsh|fish}'"),
    (("daemon", "restart"), "No such command 'restart'"),
])
def test_usage_errors_are_exit_2_even_without_a_daemon(home, args, message):
    result = ctl(home, *args)
    assert result.returncode == 2, result
    assert message.lower() in result.stderr.replace('"', "'").lower(), result.stderr
    assert "not running" not in result.stderr
    assert result.stdout == ""


def test_usage_errors_with_a_daemon_reach_it_not(godeld):
    proc = godeld().start()
    for args in (("events", "publish", "demo:x", "--data", "[1"), ("rpc", "events.publish", '{"type": '), ("events", "--bogus")):
        result = ctl(proc.home, *args)
        assert result.returncode == 2, (args, result)
    assert last_seq(proc) == 1  # nothing was published


def test_daemon_errors_are_exit_1(godeld):
    proc = godeld().start()
    result = ctl(proc.home, "rpc", "no.such")
    assert result.returncode == 1
    assert result.stderr == "godelctl: method not found: no.such\n" and result.stdout == ""

    result = ctl(proc.home, "--json", "rpc", "no.such")
    assert result.returncode == 1
    error = json.loads(result.stdout)["error"]
    assert (error["code"], error["message"]) == (-32601, "method not found: no.such")

    result = ctl(proc.home, "events", "publish", "bad type!")
    assert result.returncode == 1
    assert result.stderr.startswith("godelctl: invalid event type 'bad type!'")

    result = ctl(proc.home, "rpc", "events.list", '{"limit": 0}')
    assert result.returncode == 1 and result.stderr == "godelctl: limit must be at least 1\n"

    result = ctl(proc.home, "rpc", "events.list", '{"nope": 1}')
    assert result.returncode == 1 and "nope" in result.stderr

    assert last_seq(proc) == 1


# -- rpc, plugins, completion ----------------------------------------------------------------

def test_rpc_raw_calls(godeld):
    proc = godeld().start()
    assert json.loads(ok(proc.home, "rpc", "daemon.status").stdout)["pid"] == proc.proc.pid
    methods = json.loads(ok(proc.home, "rpc", "system.listMethods").stdout)
    assert {"daemon.status", "events.publish", "plugins.list"} <= set(methods)
    published = json.loads(ok(proc.home, "rpc", "events.publish", '{"type": "demo:raw", "data": {"x": 1}}').stdout)
    assert published["seq"] == 2 and set(published) == {"id", "seq"}
    positional = json.loads(ok(proc.home, "rpc", "events.publish", '["demo:positional"]').stdout)
    assert positional["seq"] == 3
    listed = json.loads(ok(proc.home, "rpc", "events.list", '{"since": 1, "pattern": "demo:*"}').stdout)
    assert [(e["type"], e["data"]) for e in listed["events"]] == [("demo:raw", {"x": 1}), ("demo:positional", {})]
    # the output is an indented document
    assert ok(proc.home, "rpc", "daemon.status").stdout.startswith("{\n  ")


def test_plugins_lists_the_builtins(godeld):
    proc = godeld().start()
    table = ok(proc.home, "plugins").stdout.splitlines()
    assert table[0].split() == ["NAME", "SOURCE", "STATE", "REGISTERED", "ERROR"]
    rows = {line.split()[0]: line for line in table[1:]}
    assert set(rows) == set(DEFAULT_PLUGINS)
    for name, line in rows.items():
        assert line.split()[1:3] == ["builtin", "loaded"], line
    assert "migrations: 1, storage: 1" in rows["godeld.default_plugins.sqlite"]
    assert "rpc_methods: 5" in rows["godeld.default_plugins.daemon_rpc"]
    assert "rpc_methods: 1" in rows["godeld.default_plugins.plugins_rpc"]
    assert "rpc_methods: 4" in rows["godeld.default_plugins.events_rpc"]

    verbose = ok(proc.home, "plugins", "-v").stdout
    assert "rpc_methods: events.list, events.publish, events.subscribe, events.unsubscribe" in verbose

    document = ok(proc.home, "--json", "plugins").stdout
    assert document.startswith("{\n  ")
    plugins = json.loads(document)["plugins"]
    assert [p["name"] for p in plugins if p["source"] == "builtin"] == list(DEFAULT_PLUGINS)
    for plugin in plugins:
        assert set(plugin) == PLUGIN_KEYS, plugin
        assert plugin["state"] == "loaded" and plugin["error"] is None and plugin["errors"] == []
        if plugin["name"] in BUILTINS:  # the foundation's; the rest are checked by their own tests
            assert plugin["registered"] == BUILTINS[plugin["name"]]
        assert plugin["origin"] == plugin["name"]
        assert plugin["hooks"]


@pytest.mark.parametrize("shell, marker", [("bash", "complete -o nosort -F"), ("zsh", "#compdef godelctl"), ("fish", "complete --no-files --command godelctl")])
def test_completion_scripts(home, shell, marker):
    script = ok(home, "completion", shell).stdout
    assert "_GODELCTL_COMPLETE" in script
    assert marker in script


def test_completion_completes(home):
    env = ctl_env(home, _GODELCTL_COMPLETE="bash_complete", COMP_WORDS="godelctl da", COMP_CWORD="1")
    assert ok(home, env=env).stdout.splitlines() == ["plain,daemon"]
    env = ctl_env(home, _GODELCTL_COMPLETE="bash_complete", COMP_WORDS="godelctl daemon ", COMP_CWORD="2")
    assert ok(home, env=env).stdout.splitlines() == ["plain,reload", "plain,start", "plain,stop"]


# -- plugin commands -------------------------------------------------------------------------

HELLO = '''
import click


def register_commands(cli):
    @cli.command()
    @click.argument("name", default="world")
    @click.pass_obj
    def hello(settings, name):
        """Say hello from a drop-in."""
        click.echo(f"hello {name} from {settings.home}")
'''


def test_plugin_commands_from_a_dropin(godeld, home):
    (home / "plugins").mkdir()
    (home / "plugins" / "hello.py").write_text(HELLO)
    (home / "plugins" / "broken.py").write_text("raise RuntimeError('boom on import')\n")
    proc = godeld().start()

    result = ok(home, "hello", "ada")
    assert result.stdout == f"hello ada from {home}\n"
    # the broken drop-in is reported, and breaks nothing
    assert "plugin broken failed to add its commands: RuntimeError: boom on import" in result.stderr

    listed = ok(home, "--help")
    commands = listed.stdout.split("Commands:")[1]
    assert "hello" in commands and "Say hello from a drop-in." in commands
    for builtin in ("completion", "daemon", "events", "plugins", "rpc", "status"):
        assert f"\n  {builtin} " in commands

    status = ok(home, "status")
    assert status.stderr == ""  # built-in commands do not even load the drop-ins
    assert json.loads(ok(home, "--json", "status").stdout)["pid"] == proc.proc.pid
    # godeld itself records the broken drop-in
    plugins = {p["name"]: p for p in json.loads(ok(home, "--json", "plugins").stdout)["plugins"]}
    assert plugins["broken"]["state"] == "failed" and "boom on import" in plugins["broken"]["error"]

    missing = ctl(home, "nope")
    assert missing.returncode == 2 and "No such command 'nope'" in missing.stderr


def test_plugin_commands_follow_the_home_option(home):
    """`--home H` must find H/plugins like GODEL_HOME=H does (godeld run --home H loads them)."""
    (home / "plugins").mkdir()
    (home / "plugins" / "hello.py").write_text(HELLO)
    assert ok(home, "hello").stdout == f"hello world from {home}\n"
    elsewhere = short_tmpdir()
    try:
        result = ctl(elsewhere, "--home", str(home), "hello")
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"hello world from {home}\n"
    finally:
        cleanup_home(elsewhere)


# -- events: history, publish, wait ----------------------------------------------------------

def test_events_publish(godeld):
    proc = godeld().start()
    result = ok(proc.home, "events", "publish", "demo:a", "--data", '{"k": 1}', "--metadata", '{"agentId": "a1"}', "--source", "tester")
    assert result.stdout.startswith("published demo:a as seq 2 (id ")
    document = ok(proc.home, "--json", "events", "publish", "demo:b")
    assert document.stdout.startswith("{\n  ")
    published = json.loads(document.stdout)
    assert set(published) == {"id", "seq"} and published["seq"] == 3

    events = json_lines(ok(proc.home, "--json", "events", "--since", "1").stdout)
    assert [e["seq"] for e in events] == [2, 3]
    first, second = events
    assert set(first) == EVENT_KEYS
    assert (first["type"], first["data"], first["metadata"], first["source"]) == ("demo:a", {"k": 1}, {"agentId": "a1"}, "tester")
    assert (second["type"], second["data"], second["source"]) == ("demo:b", {}, "rpc")
    assert second["id"] == published["id"]


def test_events_history(godeld):
    proc = godeld().start()
    publish_many(proc, 24)  # seqs 2..25
    ok(proc.home, "events", "publish", "other:x")  # 26
    ok(proc.home, "events", "publish", "demo:last")  # 27

    def seqs(*args):
        lines = ok(proc.home, "--json", "events", *args).stdout
        events = json_lines(lines)
        for event in events:
            assert set(event) == EVENT_KEYS
        assert "\n " not in lines  # streams: one compact JSON per line
        return [e["seq"] for e in events]

    assert seqs() == list(range(8, 28))  # the 20 newest
    assert seqs("-n", "3") == [25, 26, 27]
    assert seqs("-n", "0") == []
    assert seqs("--since", "0", "--limit", "5") == [1, 2, 3, 4, 5]
    assert seqs("--since", "20", "--limit", "5") == [21, 22, 23, 24, 25]
    assert seqs("--since", "24") == [25, 26, 27]
    assert seqs("--since", "27") == []
    assert seqs("--since", "1000") == []
    assert seqs("-t", "demo:*", "-n", "2") == [25, 27]
    assert seqs("-t", "other:*", "-t", "daemon:*", "--since", "0") == [1, 26]
    assert seqs("-t", "demo:last") == [27]
    assert seqs("-t", "nothing:*") == []

    table = ok(proc.home, "events", "-n", "3").stdout.splitlines()
    assert len(table) == 3
    assert table[1].split()[0] == "26" and "other:x" in table[1] and "[rpc]" in table[1]
    assert table[0].split()[2:4] == ["demo:bulk", "[rpc]"] and re.search(r'\{"i":\d+\}$', table[0])  # a batch publishes in any order


def test_events_history_pages(godeld):
    proc = godeld().start()
    publish_many(proc, 2100)  # more than one page of godelctl (1000)
    events = json_lines(ok(proc.home, "--json", "events", "--since", "0").stdout)
    assert [e["seq"] for e in events] == list(range(1, 2102))
    events = json_lines(ok(proc.home, "--json", "events", "--since", "50", "--limit", "1500").stdout)
    assert [e["seq"] for e in events] == list(range(51, 1551))


def test_events_history_when_godeld_caps_a_page_below_godelctls(godeld):
    """events.list returns at most events.list_max_limit events: godelctl must keep paging."""
    proc = godeld(env={"GODEL_EVENTS__LIST_MAX_LIMIT": "10"}).start()
    publish_many(proc, 30)  # seqs 2..31
    events = json_lines(ok(proc.home, "--json", "events", "--since", "0").stdout)
    assert [e["seq"] for e in events] == list(range(1, 32))
    events = json_lines(ok(proc.home, "--json", "events", "--since", "0", "--limit", "25").stdout)
    assert [e["seq"] for e in events] == list(range(1, 26))


def test_events_wait(godeld):
    proc = godeld().start()
    # an event that already happened, accepted with --since
    first = json.loads(ok(proc.home, "--json", "events", "wait", "daemon:*", "--since", "0").stdout)
    assert (first["seq"], first["type"]) == (1, "daemon:start") and set(first) == EVENT_KEYS

    # the next matching event: --since the current seq makes this race-free
    since = last_seq(proc)
    waiter = Background(proc.home, "--json", "events", "wait", "demo:done", "demo:failed", "--since", str(since))
    try:
        ok(proc.home, "events", "publish", "demo:other")
        ok(proc.home, "events", "publish", "demo:failed", "--data", '{"why": "x"}')
        ok(proc.home, "events", "publish", "demo:done")
        code, lines, stderr = waiter.finish()
        assert code == 0, stderr
        assert len(lines) == 1
        event = json.loads(lines[0])
        assert (event["seq"], event["type"], event["data"]) == (since + 2, "demo:failed", {"why": "x"})
    finally:
        waiter.kill()

    table = ok(proc.home, "events", "wait", "demo:done", "--since", str(since)).stdout
    assert table.split()[0] == str(since + 3) and "demo:done" in table

    result = ctl(proc.home, "events", "wait", "nothing:*", "--timeout", "0.2")
    assert result.returncode == 1
    assert result.stderr == "godelctl: no nothing:* event within 0.2s\n" and result.stdout == ""


def test_events_wait_when_godeld_stops(godeld):
    proc = godeld().start()
    waiter = Background(proc.home, "events", "wait", "nothing:*", "--since", "0")
    try:
        wait_for_subscribers(proc, 1)
        ok(proc.home, "daemon", "stop")
        code, lines, stderr = waiter.finish()
        assert code == 3 and lines == []  # godeld went away: the not-running status, with why
        assert "godeld is stopping; no nothing:* event came" in stderr
    finally:
        waiter.kill()


# -- events --follow -------------------------------------------------------------------------

def test_follow_live_in_order_then_godeld_stops(godeld):
    proc = godeld().start()
    follower = Background(proc.home, "--json", "events", "-f", "-n", "1")
    try:
        assert follower.event()["seq"] == 1  # history shown: from here on it follows
        for i in range(3):
            ok(proc.home, "events", "publish", f"demo:cli{i}", "--data", json.dumps({"i": i}))
        publish_many(proc, 200)
        received = [follower.event() for _ in range(203)]
        assert [e["seq"] for e in received] == list(range(2, 205))
        assert [e["type"] for e in received[:3]] == ["demo:cli0", "demo:cli1", "demo:cli2"]
        assert all(set(e) == EVENT_KEYS for e in received)

        stopped = ok(proc.home, "daemon", "stop")
        assert stopped.stdout == f"godeld stopped (pid {proc.proc.pid})\n"
        code, rest, stderr = follower.finish()
        assert code == 0
        assert "godelctl: godeld is stopping" in stderr
        later = [json.loads(line) for line in rest]
        assert [e["seq"] for e in later] == list(range(205, 205 + len(later)))
        assert proc.wait() == 0
    finally:
        follower.kill()


def test_follow_since_replays_history_then_continues_live(godeld):
    proc = godeld().start()
    publish_many(proc, 1500)  # seqs 2..1501: the replay spans pages
    follower = Background(proc.home, "--json", "events", "--follow", "--since", "5")
    try:
        publish_many(proc, 50)  # races with the follower's history/subscribe boundary: 1502..1551
        assert [follower.event()["seq"] for _ in range(1546)] == list(range(6, 1552))
        ok(proc.home, "events", "publish", "demo:live")
        live = follower.event()
        assert (live["seq"], live["type"]) == (1552, "demo:live")
    finally:
        follower.kill()


def test_follow_filters_by_type_and_prints_a_table(godeld):
    proc = godeld().start()
    since = str(last_seq(proc))
    as_json = Background(proc.home, "--json", "events", "-f", "-t", "demo:*", "--since", since)
    as_table = Background(proc.home, "events", "-f", "-t", "demo:*", "-t", "x:y", "--since", since)
    try:
        for type_ in ("other:a", "demo:one", "demo2:no", "x:y", "other:b", "demo:two"):
            ok(proc.home, "events", "publish", type_)
        assert [(e["seq"], e["type"]) for e in (as_json.event(), as_json.event())] == [(3, "demo:one"), (7, "demo:two")]
        lines = [as_table.line() for _ in range(3)]
        assert [(line.split()[0], line.split()[2]) for line in lines] == [("3", "demo:one"), ("5", "x:y"), ("7", "demo:two")]
    finally:
        as_json.kill()
        as_table.kill()


def test_follow_catches_up_after_falling_behind(godeld):
    """A follower that stops reading overflows its buffer of 1 event; it catches up from the log."""
    proc = godeld(env={"GODEL_EVENTS__SUBSCRIBER_BUFFER": "1"}).start()
    follower = Background(proc.home, "--json", "events", "-f", "-n", "1")
    try:
        assert follower.event()["seq"] == 1
        follower.proc.send_signal(signal.SIGSTOP)
        try:
            publish_many(proc, 3000)
        finally:
            follower.proc.send_signal(signal.SIGCONT)
        assert [follower.event()["seq"] for _ in range(3000)] == list(range(2, 3002))
        ok(proc.home, "events", "publish", "demo:after")
        assert follower.event()["type"] == "demo:after"
        ok(proc.home, "daemon", "stop")
        code, rest, stderr = follower.finish()
        assert code == 0 and "godelctl: godeld is stopping" in stderr
        assert "godelctl: fell behind after seq " in stderr
    finally:
        follower.kill()


def test_events_wait_ctrl_c_exits_quietly(godeld):
    proc = godeld().start()
    waiter = Background(proc.home, "events", "wait", "nothing:*")
    try:
        wait_for_subscribers(proc, 1)
        waiter.proc.send_signal(signal.SIGINT)
        code, rest, stderr = waiter.finish()
        assert code == 130 and rest == []
        assert "KeyboardInterrupt" not in stderr
    finally:
        waiter.kill()


def test_follow_ctrl_c_exits_quietly(godeld):
    proc = godeld().start()
    follower = Background(proc.home, "events", "-f")
    try:
        assert "daemon:start" in follower.line()
        follower.proc.send_signal(signal.SIGINT)
        code, rest, stderr = follower.finish()
        assert code == 130
        assert rest == []
        assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    finally:
        follower.kill()
    assert json.loads(ok(proc.home, "--json", "status").stdout)["pid"] == proc.proc.pid  # godeld unaffected


def test_follow_when_godeld_dies(godeld):
    proc = godeld().start()
    follower = Background(proc.home, "events", "-f")
    try:
        assert "daemon:start" in follower.line()
        proc.kill9()
        code, rest, stderr = follower.finish()
        assert code == 3
        assert stderr == f"godelctl: lost the connection to godeld (socket: {proc.socket})\n"
    finally:
        follower.kill()


# -- daemon start | stop | reload ------------------------------------------------------------

def test_daemon_lifecycle(home):
    pid = None
    try:
        started = ok(home, "daemon", "start")
        assert started.stdout.startswith("godeld started (pid ")
        pid = int(started.stdout.split("(pid ")[1].split(",")[0])
        assert started.stdout == f"godeld started (pid {pid}, socket {home / 'godeld.sock'})\n"
        info = json.loads(ok(home, "--json", "status").stdout)
        assert info["pid"] == pid and info["home"] == str(home)
        assert (home / "godeld.log").exists()

        again = ok(home, "daemon", "start")
        assert again.stdout == f"godeld is already running (pid {pid}, socket {home / 'godeld.sock'})\n"
        again = json.loads(ok(home, "--json", "daemon", "start").stdout)
        assert STATUS_KEYS <= set(again) and again["pid"] == pid

        assert ok(home, "daemon", "reload").stdout == "reloaded\n"
        reloaded = json.loads(ok(home, "--json", "daemon", "reload").stdout)
        assert reloaded["failed"] == [] and reloaded["restart_required"] == []
        events = json_lines(ok(home, "--json", "events", "-t", "extension:reload").stdout)
        assert [e["type"] for e in events] == ["extension:reload", "extension:reload"]
        assert events[0]["data"]["reason"] == "daemon.reload" and events[0]["source"] == "godeld"

        stopped = ok(home, "daemon", "stop")
        assert stopped.stdout == f"godeld stopped (pid {pid})\n"
        assert pid_gone(pid)  # stop waited until it had exited
        assert not (home / "godeld.sock").exists()
        pid = None

        result = ctl(home, "daemon", "stop")
        assert result.returncode == 3 and result.stderr == not_running_message(home / "godeld.sock")

        # started again on the same home, with --json: the status document, then stop's
        document = json.loads(ok(home, "--json", "daemon", "start").stdout)
        pid = document["pid"]
        assert STATUS_KEYS <= set(document) and document["last_seq"] > 1  # the log survived
        assert json.loads(ok(home, "--json", "daemon", "stop").stdout) == {"stopped": True, "pid": pid}
        assert pid_gone(pid)
        pid = None
    finally:
        if pid is not None:
            ctl(home, "daemon", "stop")


def test_daemon_start_with_home_option_and_custom_socket(home):
    elsewhere = short_tmpdir()
    socket = elsewhere / "custom.sock"
    pid = None
    try:
        started = json.loads(ok(elsewhere, "--json", "--home", str(home), "--socket", str(socket), "daemon", "start").stdout)
        pid = started["pid"]
        assert started["home"] == str(home) and started["socket"] == str(socket)
        assert ctl(home, "status").returncode == 3  # not on the default socket
        assert json.loads(ok(home, "--json", "--socket", str(socket), "status").stdout)["pid"] == pid
        assert ok(home, "--socket", str(socket), "daemon", "stop").returncode == 0
        pid = None
    finally:
        if pid is not None:
            ctl(home, "--socket", str(socket), "daemon", "stop")
        cleanup_home(elsewhere)


def test_daemon_start_with_an_invalid_config(home):
    (home / "config.yaml").write_text('rpc: {max_line_bytes: "big"}\n')
    result = ctl(home, "daemon", "start")
    assert result.returncode == 1
    assert "godeld exited with status 2 before it was ready" in result.stderr
    assert f"{home / 'config.yaml'}:1:7: rpc.max_line_bytes: expected an integer, got the string 'big'" in result.stderr
    assert not (home / "godeld.sock").exists()
    assert ctl(home, "status").returncode == 3


def test_daemon_reload_refuses_an_invalid_config(godeld, home):
    proc = godeld().start()
    (home / "config.yaml").write_text('rpc: {max_line_bytes: "big"}\n')
    result = ctl(home, "daemon", "reload")
    assert result.returncode == 1
    assert result.stderr.startswith("godelctl: invalid configuration (1 problem):")
    assert "config.yaml:1:7: rpc.max_line_bytes" in result.stderr
    result = ctl(home, "--json", "daemon", "reload")
    assert result.returncode == 1
    error = json.loads(result.stdout)["error"]
    assert error["code"] == -32005 and error["data"]["errors"][0]["path"] == "rpc.max_line_bytes"
    assert json.loads(ok(home, "--json", "status").stdout)["pid"] == proc.proc.pid  # still running


def test_daemon_start_with_a_socket_path_too_long(home):
    """godeld refuses the socket path; godelctl shows why, and no traceback (from either)."""
    deep = home / ("d" * 100)
    result = ctl(home, "--home", str(deep), "daemon", "start")
    assert result.returncode == 1
    assert "socket path is too long" in result.stderr
    assert ctl(home, "--home", str(deep), "status").stderr.startswith(f"godelctl: godeld is not running (socket: {deep / 'godeld.sock'}): the socket path is too long")


def test_daemon_start_that_times_out_leaves_no_daemon_behind(home):
    # The `home` fixture fails the test if any process is still running on this home afterwards.
    result = ctl(home, "daemon", "start", "--timeout", "0.001")
    assert result.returncode == 1
    assert "did not become ready within 0.001s and was stopped" in result.stderr
    assert ctl(home, "status").returncode == 3


def test_a_plugin_cannot_replace_a_builtin_command(home):
    (home / "plugins").mkdir()
    (home / "plugins" / "hijack.py").write_text(textwrap.dedent('''
        import click

        def register_commands(cli):
            @cli.command()
            def status():
                click.echo("hijacked")

            @cli.command()
            def extra():
                click.echo("extra works")
    '''))
    result = ctl(home, "extra")
    assert result.returncode == 0 and result.stdout == "extra works\n"
    assert "plugin hijack may not replace the command 'status'; ignored" in result.stderr
    status = ctl(home, "status")
    assert status.returncode == 3 and "hijacked" not in status.stdout
