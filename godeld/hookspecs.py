"""Every hook godel calls. Hooks are synchronous: they register objects, and those objects do the
asynchronous work. Where a hook may return an awaitable, godeld awaits it itself (pluggy never does).

Registration hooks receive a `register` callable bound to the calling plugin, so godel records which
plugin registered what (shown by `plugins.list`) and rejects a second registration of a name.
Every hook here is documented in docs/plugin-hooks.md and has a test named test_hook_<name>; a test
fails when either is missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable, Protocol

import pluggy

if TYPE_CHECKING:
    import click
    from sqlite_utils import Migrations

    from godeld.daemon import Daemon
    from godeld.events import Event

hookspec = pluggy.HookspecMarker("godel")


class RegisterMethod(Protocol):
    def __call__(self, name: str, handler: Callable[..., Any], *, summary: str | None = None) -> None: ...


class RegisterNamed(Protocol):
    def __call__(self, name: str, obj: Any) -> None: ...


class RegisterMigrations(Protocol):
    def __call__(self, migrations: "Migrations", *, backend: str = "sqlite") -> None: ...


@hookspec
def register_rpc_methods(register: RegisterMethod) -> None:
    """Register JSON-RPC methods: ``register("noun.verb", handler, summary=None)``.

    The handler's signature is the method's contract: its first parameter is ``ctx`` (a
    ``godeld.dispatch.Context`` with ``ctx.daemon``), the others are the params by name, with
    type annotations that are checked before the call (-32602 on a mismatch). A plain ``def``
    handler runs inline and must not block; an ``async def`` handler runs in its own task.
    The summary defaults to the first line of the docstring. Called at start and on every reload.
    """


@hookspec
def register_commands(cli: "click.Group") -> None:
    """Add godelctl commands to the click group ``cli``.

    Called by godelctl, which stays a thin synchronous client: it calls this function directly
    (no pluggy), only for entry-point and drop-in plugins, and only when a command it does not
    know is asked for or the command list is shown. Keep the module's imports light.
    """


@hookspec
def register_storage(register: RegisterNamed) -> None:
    """Register a storage backend: ``register(name, factory)``.

    ``factory(config, migrations)`` gets the daemon's ``Config`` and the migration sets
    registered for this backend, and returns an object implementing ``godeld.storage.Storage``.
    The backend named by ``storage.backend`` in the config is opened at start.
    """


@hookspec
def register_migrations(register: RegisterMigrations) -> None:
    """Register schema migrations: ``register(migrations, backend="sqlite")``.

    For SQLite, ``migrations`` is a ``sqlite_utils.Migrations`` set named after its owner; its
    steps are append-only (never edit one that has landed). Pending steps are applied when the
    storage opens and by ``godeld migrate``.
    """


@hookspec
def register_providers(register: RegisterNamed) -> None:
    """Register LLM providers: ``register(name, provider)`` (used by agents)."""


@hookspec
def register_runtimes(register: RegisterNamed) -> None:
    """Register agent runtimes: ``register(name, runtime)`` (how an agent process is run)."""


@hookspec
def register_strategies(register: RegisterNamed) -> None:
    """Register swarm strategies: ``register(name, strategy)`` (parallel, map-reduce, …)."""


@hookspec
def register_step_kinds(register: RegisterNamed) -> None:
    """Register workflow step kinds: ``register(kind, step_kind)`` (agent, shell, approval, …)."""


@hookspec
def register_safety_rules(register: RegisterNamed) -> None:
    """Register safety rules: ``register(name, rule)``. Any rule may veto an action with a reason."""


@hookspec
def register_notifiers(register: RegisterNamed) -> None:
    """Register notifiers: ``register(name, notifier)`` (where notifications are delivered)."""


@hookspec
def register_skill_sources(register: RegisterNamed) -> None:
    """Register skill sources: ``register(name, source)`` (where SKILL.md folders are found)."""


@hookspec
def startup(daemon: "Daemon") -> Awaitable[None] | None:
    """Called once the storage and the event bus are up, before godeld accepts connections, and
    for a drop-in plugin each time it is (re)loaded. May return an awaitable, which is awaited.
    """


@hookspec
def background_tasks(daemon: "Daemon") -> Iterable[Callable[[], Awaitable[None]]] | None:
    """Return async callables that run for the daemon's life (or until the plugin is reloaded).

    Each runs in its own task under the daemon's services nursery; it is cancelled on shutdown
    or when its plugin is reloaded. One that raises is logged and reported and stops only itself.
    """


@hookspec
def on_event(event: "Event", daemon: "Daemon") -> Awaitable[None] | None:
    """Called for every event published after godeld started, in ``seq`` order, per plugin.

    Each plugin has its own cursor on the event log, so a slow or failing plugin neither blocks
    publishers nor delays other plugins, and misses nothing. May return an awaitable.
    """
