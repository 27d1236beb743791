"""The embedded default storage backend: SQLite at $GODEL_HOME/godel.db."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from godeld import hookimpl


@hookimpl
def register_storage(register):
    register("sqlite", create_storage)


@hookimpl
def register_migrations(register):
    from godeld.default_plugins.sqlite.schema import core

    register(core, backend="sqlite")


def create_storage(config: Any, migrations: list) -> Any:
    from godeld.default_plugins.sqlite.backend import SqliteStorage

    section = config.get("storage.sqlite")
    return SqliteStorage(
        path=Path(section["path"]) if section["path"] else config.home / "godel.db",
        migrations=migrations,
        synchronous=section["synchronous"],
        readers=section["readers"],
        busy_timeout_ms=section["busy_timeout_ms"],
        max_batch=section["max_batch"],
    )
