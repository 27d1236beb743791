"""The godeld command: run the daemon in the foreground, check a config, apply migrations."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from godeld import __version__
from godeld.errors import ConfigError, StartupError

EXIT_CONFIG = 2


def _options(fn):
    fn = click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), envvar="GODEL_CONFIG", help="Config file [default: $GODEL_HOME/config.yaml].")(fn)
    fn = click.option("--home", type=click.Path(file_okay=False, path_type=Path), envvar="GODEL_HOME", help="godel's home directory [default: ~/.godel].")(fn)
    return fn


def _load(home, config_file, socket=None):
    from godeld.config import load_config

    try:
        return load_config(config_file, home=home, socket=socket)
    except ConfigError as exc:
        click.echo(f"godeld: {exc.message}", err=True)
        sys.exit(EXIT_CONFIG)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="godeld")
def cli():
    """godeld: the godel daemon. Control it with godelctl."""


@cli.command()
@_options
@click.option("--socket", type=click.Path(dir_okay=False, path_type=Path), envvar="GODEL_SOCKET", help="Unix socket [default: $GODEL_HOME/godeld.sock].")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), help="Overrides log.level.")
def run(home, config_file, socket, log_level):
    """Run godeld in the foreground (SIGTERM/SIGINT stop it, SIGHUP reloads)."""
    import trio

    from godeld.daemon import Daemon
    from godeld.log import setup_logging
    from godeld.sdnotify import listen_fds

    config = _load(home, config_file, socket)
    if log_level:
        config.data["log"]["level"] = log_level
    setup_logging(config.get("log.level"), config.get("log.file"))
    fds = listen_fds()
    daemon = Daemon(config, listen_fd=fds[0] if fds else None, config_loader=lambda: _reload_config(home, config_file, socket, log_level))
    try:
        trio.run(daemon.run)
    except StartupError as exc:
        click.echo(f"godeld: {exc}", err=True)
        sys.exit(1)


def _reload_config(home, config_file, socket, log_level):
    from godeld.config import load_config

    config = load_config(config_file, home=home, socket=socket)
    if log_level:
        config.data["log"]["level"] = log_level
    return config


@cli.command("check-config")
@_options
@click.option("--json", "as_json", is_flag=True, help="Print the effective configuration as JSON.")
def check_config(home, config_file, as_json):
    """Validate the configuration and print the effective settings (secrets masked).

    Exit status 0 if it is valid, 2 with every problem listed (file:line:column: path: message)."""
    config = _load(home, config_file)
    if as_json:
        click.echo(json.dumps({"file": str(config.file) if config.file else None, "home": str(config.home), "config": config.public()}, indent=2))
        return
    import yaml

    click.echo(f"# {config.file or 'no config file: defaults'} is valid; effective settings:")
    click.echo(yaml.safe_dump(config.public(), sort_keys=False).rstrip())


@cli.command("example-config")
def example_config():
    """Print a config file with every key, its default and what it does."""
    from godeld.config import example_yaml

    click.echo(example_yaml(), nl=False)


@cli.command()
@_options
@click.option("--list", "list_only", is_flag=True, help="Only show each migration and whether it is applied.")
def migrate(home, config_file, list_only):
    """Apply pending schema migrations (godeld also does this at start-up)."""
    import trio

    from godeld.daemon import Daemon

    config = _load(home, config_file)
    daemon = Daemon(config, handle_signals=False)
    daemon.plugins.load()
    daemon.plugins.build_registries()

    async def apply():
        storage = await daemon._open_storage()
        try:
            return storage.applied_migrations
        finally:
            await storage.aclose()

    try:
        if list_only:
            for row in daemon.build_storage().migration_status():
                state = f"applied {row['applied_at']}" if row["applied_at"] else "pending"
                click.echo(f"{state:42} {row['set']}:{row['name']}")
            return
        applied = trio.run(apply)
    except StartupError as exc:
        click.echo(f"godeld: {exc}", err=True)
        sys.exit(1)
    if applied:
        for name in applied:
            click.echo(f"applied {name}")
    else:
        click.echo("no pending migrations")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
