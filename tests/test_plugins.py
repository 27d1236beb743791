"""Plugins: every hook (test_hook_<name>, checked by test_docs), entry points, drop-ins, isolation."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import trio
from sqlite_utils import Migrations

from godeld import hookimpl
from godeld.default_plugins.sqlite.backend import SqliteStorage
from godeld.default_plugins import DEFAULT_PLUGINS
from godeld.plugins import PluginHost
from tests.helpers import AsyncRpc


def plugin_record(daemon, name):
    return next(p for p in daemon.plugins.list() if p["name"] == name)


# -- one test per hook ---------------------------------------------------------------------

async def test_hook_register_rpc_methods(daemons):
    class Greeter:
        @hookimpl
        def register_rpc_methods(self, register):
            register("greet.hello", self.hello)
            register("greet.later", self.later, summary="Greets after a checkpoint.")

        def hello(self, ctx, name: str, times: int = 1) -> dict:
            """Say hello."""
            return {"greeting": " ".join([f"hello {name}"] * times)}

        async def later(self, ctx, name: str) -> str:
            await trio.sleep(0)
            return f"later {name}"

    daemon = await daemons.start(plugins=[("greeter", Greeter())])
    rpc = await AsyncRpc.connect(daemon.socket_path)
    assert await rpc.result("greet.hello", name="ada", times=2) == {"greeting": "hello ada hello ada"}
    assert await rpc.result("greet.later", name="bob") == "later bob"
    bad = await rpc.call("greet.hello", name=3)
    assert bad["error"]["code"] == -32602 and "param 'name' must be string, got integer" in bad["error"]["message"]
    methods = {m["name"]: m for m in (await rpc.result("rpc.discover"))["methods"]}
    assert methods["greet.hello"]["summary"] == "Say hello."
    assert methods["greet.later"]["summary"] == "Greets after a checkpoint."
    assert methods["greet.hello"]["params"] == [
        {"name": "name", "type": "string", "required": True},
        {"name": "times", "type": "integer", "required": False, "default": 1},
    ]
    assert plugin_record(daemon, "greeter")["registered"] == {"rpc_methods": ["greet.hello", "greet.later"]}
    await rpc.aclose()


def test_hook_register_commands(home):
    (home / "plugins").mkdir()
    (home / "plugins" / "hello_cmd.py").write_text(textwrap.dedent('''
        import click

        def register_commands(cli):
            @cli.command()
            @click.argument("name")
            def hello(name):
                """Say hello."""
                click.echo(f"hello {name} from a plugin")
    '''))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GODEL_")}
    env.update(GODEL_HOME=str(home), GODEL_PLUGINS__ENTRY_POINTS="false")
    result = subprocess.run([sys.executable, "-m", "godelctl", "hello", "ada"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello ada from a plugin\n"
    listed = subprocess.run([sys.executable, "-m", "godelctl", "--help"], env=env, capture_output=True, text=True, timeout=60)
    assert "hello" in listed.stdout


async def test_hook_register_storage(daemons):
    opened = []

    class AuditedSqlite(SqliteStorage):
        name = "audited-sqlite"

        async def open(self):
            opened.append(self.path)
            await super().open()

    class Backend:
        @hookimpl
        def register_storage(self, register):
            register("audited-sqlite", lambda config, migrations: AuditedSqlite(path=config.home / "audited.db", migrations=migrations))

        @hookimpl
        def register_migrations(self, register):
            from godeld.default_plugins.sqlite.schema import core

            register(core, backend="audited-sqlite")

    daemon = await daemons.start(plugins=[("audited", Backend())], overrides={"GODEL_STORAGE__BACKEND": "audited-sqlite"})
    assert opened == [daemons.home / "audited.db"]
    rpc = await AsyncRpc.connect(daemon.socket_path)
    status = await rpc.result("daemon.status")
    assert status["storage"]["backend"] == "audited-sqlite"
    published = await rpc.result("events.publish", type="audit:e")
    listed = await rpc.result("events.list", pattern="audit:e")
    assert [e["seq"] for e in listed["events"]] == [published["seq"]]
    assert not (daemons.home / "godel.db").exists(), "the default backend must not be used"
    await rpc.aclose()


async def test_hook_register_migrations(daemons):
    notes = Migrations("notes-plugin")

    @notes()
    def m001_notes(db):
        db["notes"].create({"id": int, "text": str}, pk="id")

    class Notes:
        @hookimpl
        def register_migrations(self, register):
            register(notes)

    daemon = await daemons.start(plugins=[("notes", Notes())])
    assert "notes-plugin:m001_notes" in daemon.storage.applied_migrations
    await daemon.storage.write(lambda conn: conn.execute("INSERT INTO notes (text) VALUES ('kept')"))
    rows = await daemon.storage.read(lambda conn: conn.execute("SELECT text FROM notes").fetchall())
    assert rows == [("kept",)]
    assert plugin_record(daemon, "notes")["registered"] == {"migrations": ["sqlite:notes-plugin"]}


async def _check_named_registry(daemons, hook: str, attr: str, kind_label: str):
    """A plugin registers two objects through `hook`; a second plugin's duplicate is refused."""
    thing_a, thing_b = object(), object()

    class First:
        pass

    class Second:
        pass

    def first(self, register):
        register("alpha", thing_a)
        register("beta", thing_b)

    def second(self, register):
        register("alpha", object())

    setattr(First, hook, hookimpl(first))
    setattr(Second, hook, hookimpl(second))
    daemon = await daemons.start(plugins=[("first", First()), ("second", Second())])
    registry = getattr(daemon.plugins.registries, attr)
    assert registry["alpha"] is thing_a and registry["beta"] is thing_b
    assert registry.owner("alpha") == "first"
    assert plugin_record(daemon, "first")["registered"] == {attr: ["alpha", "beta"]}
    error = plugin_record(daemon, "second")["error"]
    assert error == f"{kind_label} 'alpha' is already registered by plugin 'first'"
    assert plugin_record(daemon, "second")["state"] == "loaded"


async def test_hook_register_providers(daemons):
    await _check_named_registry(daemons, "register_providers", "providers", "provider")


async def test_hook_register_runtimes(daemons):
    await _check_named_registry(daemons, "register_runtimes", "runtimes", "runtime")


async def test_hook_register_strategies(daemons):
    await _check_named_registry(daemons, "register_strategies", "strategies", "strategy")


async def test_hook_register_step_kinds(daemons):
    await _check_named_registry(daemons, "register_step_kinds", "step_kinds", "step kind")


async def test_hook_register_safety_rules(daemons):
    await _check_named_registry(daemons, "register_safety_rules", "safety_rules", "safety rule")


async def test_hook_register_notifiers(daemons):
    await _check_named_registry(daemons, "register_notifiers", "notifiers", "notifier")


async def test_hook_register_skill_sources(daemons):
    await _check_named_registry(daemons, "register_skill_sources", "skill_sources", "skill source")


async def test_hook_startup(daemons):
    calls = []

    class Starter:
        @hookimpl
        async def startup(self, daemon):
            calls.append(daemon.state)
            await daemon.bus.publish("starter:ready", source="starter")

    class Broken:
        @hookimpl
        def startup(self, daemon):
            raise RuntimeError("cannot start")

    daemon = await daemons.start(plugins=[("starter", Starter()), ("broken", Broken())])
    assert calls == ["starting"], "startup runs before godeld accepts connections"
    events, _ = await daemon.bus.list(patterns=["starter:ready", "daemon:start", "plugin:error"])
    types = [e.type for e in events]
    assert types.index("starter:ready") < types.index("daemon:start")
    assert plugin_record(daemon, "broken")["error"] == "RuntimeError: cannot start"
    error_event = await daemon.bus.once("plugin:error", since=0)
    assert error_event.data["plugin"] == "broken" and error_event.data["stage"] == "hook startup"


async def test_hook_background_tasks(daemons):
    cancelled = trio.Event()

    class Worker:
        @hookimpl
        def background_tasks(self, daemon):
            async def heartbeat():
                try:
                    await daemon.bus.publish("worker:beat")
                    await trio.sleep_forever()
                finally:
                    cancelled.set()

            async def crashes():
                raise ValueError("task failed")

            return [heartbeat, crashes]

    daemon = await daemons.start(plugins=[("worker", Worker())])
    await daemon.bus.once("worker:beat", since=0)
    error = await daemon.bus.once("plugin:error", since=0)
    assert error.data == {"plugin": "worker", "stage": "background task", "error": "ValueError: task failed", "at": error.data["at"]}
    assert not cancelled.is_set(), "a failing task stops only itself"
    await daemons.stop(daemon)
    assert cancelled.is_set(), "background tasks are cancelled at shutdown"


async def test_hook_on_event(daemons):
    seen = []
    stuck = trio.Event()
    finished = trio.Event()

    class Recorder:
        @hookimpl
        def on_event(self, event, daemon):
            if event.type.startswith("obs:"):
                seen.append(event.seq)
            if event.type == "obs:done":
                finished.set()

    class Slow:
        @hookimpl
        async def on_event(self, event):
            await stuck.wait()  # never returns during the test

    class Failing:
        @hookimpl
        def on_event(self, event):
            if event.type.startswith("obs:"):
                raise KeyError(event.type)

    daemon = await daemons.start(plugins=[("recorder", Recorder()), ("slow", Slow()), ("failing", Failing())])
    published = [(await daemon.bus.publish("obs:e", {"i": i})).seq for i in range(50)]
    done = await daemon.bus.publish("obs:done")
    with trio.fail_after(10):
        await finished.wait()
    assert seen == published + [done.seq], "each plugin gets every event, in seq order, despite a stuck one"
    errors = plugin_record(daemon, "failing")["errors"]
    assert len(errors) == 20 and errors[-1]["stage"] == f"hook on_event (obs:done #{done.seq})"
    events, _ = await daemon.bus.list(patterns="plugin:error")
    assert len([e for e in events if e.data["plugin"] == "failing"]) == 1, "failures are reported as events at most once a minute"
    stuck.set()


# -- loading -------------------------------------------------------------------------------

def write_plugin(directory, name, body):
    directory.mkdir(exist_ok=True)
    path = directory / f"{name}.py"
    tmp = directory / f".{name}.tmp"
    tmp.write_text(textwrap.dedent(body))
    os.replace(tmp, path)  # as editors do: the watcher sees one complete file
    return path


METHOD_PLUGIN = '''
from godeld import hookimpl

@hookimpl
def register_rpc_methods(register):
    register("dropin.version", version)

def version(ctx) -> str:
    return "{version}"
'''


async def test_dropin_plugins_load_and_reload_when_their_file_changes(daemons):
    plugins = daemons.home / "plugins"
    write_plugin(plugins, "versioned", METHOD_PLUGIN.format(version="v1"))
    daemon = await daemons.start()
    assert await daemon.call("dropin.version") == "v1"
    assert plugin_record(daemon, "versioned")["source"] == "dropin"

    async def change(body):
        async with daemon.bus.subscribe("extension:reload") as reloads:
            write_plugin(plugins, "versioned", body)
            with trio.fail_after(20):
                return await reloads.next()

    event = await change(METHOD_PLUGIN.format(version="v2"))
    assert event.data["reloaded"] == ["versioned"] and event.data["reason"] == "file-change"
    assert await daemon.call("dropin.version") == "v2"

    # A broken edit is reported and the previous version keeps serving.
    event = await change("this is not python (\n")
    assert event.data["failed"] == ["versioned"]
    assert await daemon.call("dropin.version") == "v2"
    record = plugin_record(daemon, "versioned")
    assert record["state"] == "loaded" and "SyntaxError" in record["error"] and "previous version stays loaded" in record["error"]

    async with daemon.bus.subscribe("extension:reload") as reloads:
        (plugins / "versioned.py").unlink()
        with trio.fail_after(20):
            event = await reloads.next()
    assert event.data["removed"] == ["versioned"]
    assert "dropin.version" not in daemon.plugins.registries.rpc_methods


async def test_a_plugin_that_fails_to_import_is_reported_and_harms_no_one(daemons, caplog):
    plugins = daemons.home / "plugins"
    write_plugin(plugins, "broken", "import no_such_module_anywhere\n")
    write_plugin(plugins, "exits", "import sys\nsys.exit(3)\n")
    write_plugin(plugins, "fine", METHOD_PLUGIN.format(version="ok"))
    daemon = await daemons.start()
    assert await daemon.call("dropin.version") == "ok"
    broken = plugin_record(daemon, "broken")
    assert broken["state"] == "failed"
    assert broken["error"] == "ModuleNotFoundError: No module named 'no_such_module_anywhere'"
    assert plugin_record(daemon, "exits")["error"] == "SystemExit: 3"
    reported = {e.data["plugin"] for e in (await daemon.bus.list(patterns="plugin:error"))[0]}
    assert reported == {"broken", "exits"}
    assert "plugin broken failed in import" in caplog.text


async def test_a_hook_that_raises_does_not_silence_other_plugins(daemons):
    class Raises:
        @hookimpl
        def register_rpc_methods(self, register):
            register("raises.first", lambda ctx: 1)
            raise RuntimeError("half-registered")

    daemon = await daemons.start(plugins=[("raises", Raises())])
    assert "daemon.status" in daemon.plugins.registries.rpc_methods
    assert "raises.first" in daemon.plugins.registries.rpc_methods
    assert plugin_record(daemon, "raises")["error"] == "RuntimeError: half-registered"


def test_misspelt_hook_and_bad_signature_are_reported():
    class Typo:
        @hookimpl
        def register_rpc_method(self, register):
            pass

    class BadArgs:
        @hookimpl
        def on_event(self, event, daemon, extra):
            pass

    host = PluginHost(builtins=[], entry_points=False, extra=[("typo", Typo()), ("badargs", BadArgs())])
    host.load()
    records = {r["name"]: r for r in host.list()}
    assert records["typo"]["error"] == "'register_rpc_method' is not a godel hook (did you mean 'register_rpc_methods'?); it will never be called"
    assert records["badargs"]["state"] == "failed" and "extra" in records["badargs"]["error"]


def test_handlers_must_take_ctx_and_supported_annotations():
    class BadHandlers:
        @hookimpl
        def register_rpc_methods(self, register):
            register("bad.noctx", lambda name: name)
            register("bad.type", self.weird)
            register("nodot", lambda ctx: 1)

        def weird(self, ctx, value: set) -> None:
            pass

    host = PluginHost(builtins=[], entry_points=False, extra=[("bad", BadHandlers())])
    host.load()
    host.build_registries()
    errors = [e["error"] for e in host.records["bad"].errors]
    assert any("must take `ctx` as its first parameter" in e for e in errors)
    assert any("unsupported parameter annotation" in e for e in errors)
    assert any("'noun.verb'" in e for e in errors)
    assert len(host.registries.rpc_methods) == 0


def test_disabled_plugins_are_not_loaded():
    host = PluginHost(entry_points=False, disabled=["godeld.default_plugins.events_rpc"])
    host.load()
    host.build_registries()
    assert "events.publish" not in host.registries.rpc_methods
    assert host.records["godeld.default_plugins.events_rpc"].to_dict()["state"] == "disabled"
    report = host.apply_disabled(set())
    host.build_registries()
    assert report.loaded == ["godeld.default_plugins.events_rpc"]
    assert "events.publish" in host.registries.rpc_methods


@pytest.fixture
def installed_distribution(tmp_path):
    """A real installed distribution exposing entry points in the 'godel' group."""
    site = tmp_path / "site"
    dist = site / "godel_weather-1.2.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: godel-weather\nVersion: 1.2\n")
    (dist / "entry_points.txt").write_text("[godel]\nweather = godel_weather_plugin\nbroken = godel_weather_missing\n")
    (site / "godel_weather_plugin.py").write_text(textwrap.dedent('''
        from godeld import hookimpl

        @hookimpl
        def register_rpc_methods(register):
            register("weather.today", today)

        def today(ctx) -> str:
            return "sunny"
    '''))
    sys.path.insert(0, str(site))
    try:
        yield
    finally:
        sys.path.remove(str(site))
        sys.modules.pop("godel_weather_plugin", None)


def test_entry_point_plugins(installed_distribution):
    host = PluginHost(entry_points=True)
    host.load()
    host.build_registries()
    weather = host.records["weather"].to_dict()
    assert weather["source"] == "entrypoint" and weather["origin"] == "godel-weather 1.2"
    assert weather["registered"] == {"rpc_methods": ["weather.today"]}
    assert host.registries.rpc_methods["weather.today"].handler(None) == "sunny"
    broken = host.records["broken"].to_dict()
    assert broken["state"] == "failed" and "godel_weather_missing" in broken["error"]
    assert "daemon.status" in host.registries.rpc_methods


def test_builtins_are_registered_like_any_plugin():
    host = PluginHost(entry_points=False)
    host.load()
    host.build_registries()
    assert [r["name"] for r in host.list()] == list(DEFAULT_PLUGINS)
    assert DEFAULT_PLUGINS[:4] == (
        "godeld.default_plugins.sqlite",
        "godeld.default_plugins.daemon_rpc",
        "godeld.default_plugins.plugins_rpc",
        "godeld.default_plugins.events_rpc",
    )
    assert all(r["source"] == "builtin" and r["state"] == "loaded" for r in host.list())
    assert host.registries.storage.owner("sqlite") == "godeld.default_plugins.sqlite"
