"""godelctl: the thin, synchronous client of godeld.

Imports neither trio nor pluggy (a test checks): start-up time is part of every command. Built-in
commands are registered like plugins' ones, through `register_commands(cli)`; commands of
installed and drop-in plugins are loaded only when a command godelctl does not know is asked for,
or the command list is shown.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from godeld import __version__, protocol
from godelctl.client import Client, ClientError, ConnectionLost, DaemonNotRunning, RpcError

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NOT_RUNNING = 0, 1, 2, 3

BUILTIN_COMMANDS = (
    "godelctl.commands.status",
    "godelctl.commands.plugins",
    "godelctl.commands.events",
    "godelctl.commands.daemon",
    "godelctl.commands.rpc",
    "godelctl.commands.agents",
    "godelctl.commands.budget",
    "godelctl.commands.workflow",
    "godelctl.commands.swarm",
    "godelctl.commands.task",
    "godelctl.commands.completion",
    "godelctl.commands.skills",
)


@dataclass
class Settings:
    home: Path
    socket: Path
    json: bool

    def client(self, timeout: float | None = 60.0) -> Client:
        return Client(self.socket, timeout=timeout)

    def call(self, method: str, params=None):
        with self.client() as client:
            return client.call(method, params)


class GodelCtl(click.Group):
    _plugins_loaded = False

    def get_command(self, ctx, name):
        command = super().get_command(ctx, name)
        if command is None and not self._plugins_loaded:
            self._load_plugin_commands(ctx)
            command = super().get_command(ctx, name)
        return command

    def list_commands(self, ctx):
        if not self._plugins_loaded:
            self._load_plugin_commands(ctx)
        return super().list_commands(ctx)

    def _load_plugin_commands(self, ctx) -> None:
        self._plugins_loaded = True
        # Resolved from the parsed --home: plugin commands are looked up before cli() runs.
        home = ctx.params.get("home")
        home = home.expanduser().absolute() if home else protocol.default_home()
        for name, load in _plugin_command_sources(home):
            before = dict(self.commands)
            try:
                module = load()
                hook = getattr(module, "register_commands", None)
                if hook is not None:
                    hook(cli=self)
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not break godelctl
                click.echo(f"godelctl: plugin {name} failed to add its commands: {type(exc).__name__}: {exc}", err=True)
            for command_name, command in before.items():
                if self.commands.get(command_name) is not command:
                    self.commands[command_name] = command
                    click.echo(f"godelctl: plugin {name} may not replace the command {command_name!r}; ignored", err=True)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except DaemonNotRunning as exc:
            click.echo(f"godelctl: {exc}", err=True)
            ctx.exit(EXIT_NOT_RUNNING)
        except ConnectionLost as exc:
            click.echo(f"godelctl: {exc}", err=True)
            ctx.exit(EXIT_NOT_RUNNING)
        except RpcError as exc:
            settings = ctx.find_object(Settings)
            if settings is not None and settings.json:
                from godelctl.output import emit_json

                emit_json({"error": exc.to_dict()})
            click.echo(f"godelctl: {exc.message}", err=True)
            ctx.exit(EXIT_ERROR)
        except ClientError as exc:
            click.echo(f"godelctl: {exc}", err=True)
            ctx.exit(EXIT_ERROR)
        except KeyboardInterrupt:
            ctx.exit(130)


def _plugin_command_sources(home: Path):
    """(name, loader) for entry-point plugins and drop-in files, chosen by the same settings
    godeld uses (plugins.entry_points, .disabled, .dirs, project). Imported only when needed."""
    import importlib.util

    from godeld.config import load_config
    from godeld.errors import ConfigError

    try:
        config = load_config(home=home)
    except ConfigError as exc:
        click.echo(f"godelctl: {exc.message}\ngodelctl: loading plugin commands with the default settings", err=True)
        from godeld.config import defaults
        from godeld.config import Config

        config = Config(data=defaults(), home=home)
    disabled = set(config.get("plugins.disabled"))
    if config.get("plugins.entry_points"):
        from importlib.metadata import entry_points

        try:
            for ep in entry_points(group="godel"):
                if ep.name not in disabled:
                    yield ep.name, ep.load
        except Exception:  # noqa: BLE001 - unreadable metadata: no plugin commands from it
            pass
    directories = [home / "plugins", config.project_dir / ".godel" / "plugins", *map(Path, config.get("plugins.dirs"))]
    seen: set[str] = set()
    for directory in dict.fromkeys(directories):
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.py")):
            if path.name.startswith((".", "_")) or path.stem in disabled or path.stem in seen:
                continue
            seen.add(path.stem)

            def load(path=path):
                spec = importlib.util.spec_from_file_location(f"godelctl_dropin_{path.stem}", path)
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                return module

            yield path.stem, load


@click.group(cls=GodelCtl, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--socket", type=click.Path(dir_okay=False, path_type=Path), envvar="GODEL_SOCKET", help="godeld's socket [default: $GODEL_HOME/godeld.sock].")
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), envvar="GODEL_HOME", help="godel's home directory [default: ~/.godel].")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (stable keys; streams are one JSON per line).")
@click.version_option(__version__, "-V", "--version", prog_name="godelctl")
@click.pass_context
def cli(ctx, socket, home, as_json):
    """Control godeld, the godel daemon.

    Exit status: 0 ok, 1 godeld answered with an error, 2 usage error, 3 godeld is not running.
    """
    home = home.expanduser().absolute() if home else protocol.default_home()
    sock = socket.expanduser().absolute() if socket else home / "godeld.sock"
    ctx.obj = Settings(home=home, socket=sock, json=as_json)


for _module in BUILTIN_COMMANDS:
    importlib.import_module(_module).register_commands(cli)


def main() -> None:
    try:
        cli.main(prog_name="godelctl")
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
