"""The daemon: start-up order, the nursery tree (whose nesting is the shutdown order), reload.

    storage (opened first, closed last: everything accepted is written before exit)
      services nursery: plugin background tasks, on_event dispatchers, the drop-in watcher
        front nursery: the RPC server, signal handling
On stop: the RPC server drains (stops accepting, finishes in-flight requests within the drain
deadline), the front nursery ends, `daemon:stop` is published, services are cancelled, and the
storage flushes and closes.
"""

from __future__ import annotations

import inspect
import logging
import os
import signal
import time
from contextlib import aclosing
from pathlib import Path
from typing import Any, Callable

import trio

from godeld import __version__, protocol, sdnotify
from godeld.config import Config, load_config
from godeld.dispatch import Context
from godeld.errors import ConfigError, GodelError, MethodNotFound, StartupError, StorageError
from godeld.events import Event, EventBus
from godeld.log import set_level
from godeld.plugins import PluginHost
from godeld.rpc import RpcServer, probe_socket
from godeld.storage import Storage
from godeld.watch import watch_directories

log = logging.getLogger("godeld")


def dropin_dirs(config: Config) -> list[Path]:
    dirs = [config.home / "plugins", config.project_dir / ".godel" / "plugins"]
    dirs += [Path(d) for d in config.get("plugins.dirs")]
    return list(dict.fromkeys(dirs))


class Daemon:
    def __init__(
        self,
        config: Config,
        *,
        plugins: PluginHost | None = None,
        handle_signals: bool = True,
        listen_fd: int | None = None,
        config_loader: Callable[[], Config] | None = None,
    ):
        self.config = config
        self.plugins = plugins or PluginHost(
            entry_points=config.get("plugins.entry_points"),
            dropin_dirs=dropin_dirs(config),
            disabled=config.get("plugins.disabled"),
        )
        self.handle_signals = handle_signals
        self.listen_fd = listen_fd
        self._config_loader = config_loader or (lambda: load_config(config.file, home=config.home, socket=config.socket_path))
        self.started_at = time.time()
        self._pid = os.getpid()
        self._socket_str = str(config.socket_path)
        self._home_str = str(config.home)
        self._config_str = str(config.file) if config.file else None
        self.state = "starting"
        self.stop_reason: str | None = None
        self.storage: Storage | None = None
        self.bus: EventBus | None = None
        self.rpc: RpcServer | None = None
        self._stop = trio.Event()
        self.stopped = trio.Event()
        self._reload_lock = trio.Lock()
        self._services: trio.Nursery | None = None
        self._plugin_scopes: dict[str, trio.CancelScope] = {}
        self._pending_errors: list[dict[str, Any]] = []
        self._last_error_event: dict[str, float] = {}
        self._drain_scope: trio.CancelScope | None = None
        self._watcher_scope: trio.CancelScope | None = None

    @property
    def socket_path(self) -> Path:
        return self.config.socket_path

    # -- the run ---------------------------------------------------------------------------

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        if self.listen_fd is None and probe_socket(self.socket_path) == "live":
            raise StartupError(f"godeld is already running on {self.socket_path}; stop it first (godelctl daemon stop)")
        self.config.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        (self.config.home / "plugins").mkdir(exist_ok=True)
        self.plugins.on_error = self._plugin_error
        self.plugins.load()
        self.plugins.build_registries()
        self.storage = await self._open_storage()
        try:
            ev = self.config.get("events")
            self.bus = EventBus(self.storage, buffer=ev["subscriber_buffer"], buffer_bytes=ev["subscriber_buffer_bytes"], replay_page=ev["replay_page"], list_max=ev["list_max_limit"])
            self.rpc = RpcServer(self, self.socket_path, listen_fd=self.listen_fd)
            await self.rpc.bind()
            async with trio.open_nursery() as services:
                self._services = services
                for report in self._pending_errors:
                    services.start_soon(self._publish_plugin_error, report)
                self._pending_errors.clear()
                await self._call_startup(self.plugins.records.keys())
                self._start_plugin_tasks(self.plugins.records.keys())
                self._restart_watcher()
                async with trio.open_nursery() as front:
                    if self.handle_signals:
                        await front.start(self._handle_signals)
                    await front.start(self.rpc.serve)
                    self.state = "running"
                    await self.bus.publish("daemon:start", {"version": __version__, "pid": os.getpid(), "socket": str(self.socket_path)}, source="godeld")
                    sdnotify.notify("READY=1", f"STATUS=listening on {self.socket_path}")
                    log.info("godeld %s ready on %s (pid %d)", __version__, self.socket_path, os.getpid())
                    task_status.started(self)
                    await self._stop.wait()
                    self.state = "stopping"
                    sdnotify.notify("STOPPING=1")
                    log.info("stopping (%s)", self.stop_reason)
                    await self.rpc.drain(self.config.get("rpc.drain_timeout_s"))
                    front.cancel_scope.cancel()
                with trio.CancelScope(shield=True), trio.move_on_after(5):
                    await self.bus.publish("daemon:stop", {"reason": self.stop_reason}, source="godeld")
                services.cancel_scope.cancel()
        finally:
            self.state = "stopped"
            if self.rpc is not None:
                self.rpc.close()
            with trio.CancelScope(shield=True):
                await self.storage.aclose()
            self.stopped.set()
            log.info("stopped")

    def build_storage(self) -> Storage:
        """The configured backend with its migrations, not yet opened."""
        registries = self.plugins.registries
        backend = self.config.get("storage.backend")
        if backend not in registries.storage:
            available = ", ".join(registries.storage.names()) or "none"
            raise StartupError(f"unknown storage backend {backend!r} (available: {available})")
        migrations = [m for (b, m) in (registries.migrations[k] for k in registries.migrations) if b == backend]
        return registries.storage[backend](self.config, migrations)

    async def _open_storage(self) -> Storage:
        storage = self.build_storage()
        try:
            await storage.open()
        except StorageError as exc:
            raise StartupError(exc.message) from None
        return storage

    def request_stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        self._stop.set()

    async def _handle_signals(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            task_status.started()
            async for signum in signals:
                name = signal.Signals(signum).name
                if signum == signal.SIGHUP:
                    assert self._services is not None
                    self._services.start_soon(self._reload_logging_errors, "SIGHUP")
                elif self._stop.is_set():
                    log.warning("%s again: not waiting for in-flight requests", name)
                    if self._drain_scope is not None:
                        self._drain_scope.cancel()
                else:
                    self.request_stop(name)

    # -- plugins ---------------------------------------------------------------------------

    def _plugin_error(self, report: dict[str, Any]) -> None:
        if self._services is None:
            self._pending_errors.append(report)  # published once the bus is up
            return
        try:
            self._services.start_soon(self._publish_plugin_error, report)
        except RuntimeError:
            pass  # stopping: the services nursery is closed; the error is logged and recorded

    async def _publish_plugin_error(self, report: dict[str, Any]) -> None:
        if self.bus is not None and self.state != "stopped":
            try:
                await self.bus.publish("plugin:error", report, source="godeld")
            except GodelError as exc:
                log.error("cannot publish plugin:error: %s", exc)

    async def _call_startup(self, names) -> None:
        for name, result in self.plugins.call_each("startup", only=list(names), daemon=self):
            if inspect.isawaitable(result):
                try:
                    await result
                except Exception as exc:  # noqa: BLE001
                    self.plugins.record_error(name, "hook startup", exc)

    def _start_plugin_tasks(self, names) -> None:
        assert self._services is not None and self.bus is not None
        wanted = set(names)
        tasks: dict[str, list[Any]] = {name: [] for name in wanted}
        for name, result in self.plugins.call_each("background_tasks", only=wanted, daemon=self):
            tasks[name].extend(result or [])
        observers = {name: (fn, argnames) for name, fn, argnames in self.plugins.impls("on_event") if name in wanted}
        for name in wanted:
            if not tasks[name] and name not in observers:
                continue
            scope = trio.CancelScope()
            self._plugin_scopes[name] = scope
            # Subscribe now, not when the task first runs: the plugin misses nothing from here on.
            subscription = self.bus.subscribe(since=self.bus.last_seq) if name in observers else None
            self._services.start_soon(self._run_plugin_tasks, name, scope, tasks[name], observers.get(name), subscription)

    def _stop_plugin_tasks(self, names) -> None:
        for name in names:
            scope = self._plugin_scopes.pop(name, None)
            if scope is not None:
                scope.cancel()

    async def _run_plugin_tasks(self, name: str, scope: trio.CancelScope, tasks: list[Any], observer, subscription) -> None:
        with scope:
            async with trio.open_nursery() as nursery:
                for fn in tasks:
                    nursery.start_soon(self._guard_task, name, fn)
                if observer is not None:
                    nursery.start_soon(self._dispatch_events, name, observer, subscription)

    async def _guard_task(self, name: str, fn: Any) -> None:
        try:
            await fn()
        except Exception as exc:  # noqa: BLE001 - stops only this task
            self.plugins.record_error(name, "background task", exc)

    async def _dispatch_events(self, name: str, observer, subscription) -> None:
        fn, argnames = observer
        async with subscription:
            async for event in subscription:
                args = {"event": event, "daemon": self}
                try:
                    result = fn(*[args[a] for a in argnames])
                    if inspect.isawaitable(result):
                        await result
                except Exception as exc:  # noqa: BLE001
                    self._on_event_failed(name, event, exc)

    def _on_event_failed(self, name: str, event: Event, exc: Exception) -> None:
        # Report as an event at most once a minute per plugin, and never about plugin:error
        # itself: a plugin failing on every event must not flood the log or feed on itself.
        now = time.monotonic()
        publish = event.type != "plugin:error" and now - self._last_error_event.get(name, -1e9) > 60
        if publish:
            self._last_error_event[name] = now
        on_error, self.plugins.on_error = self.plugins.on_error, (self._plugin_error if publish else None)
        try:
            self.plugins.record_error(name, f"hook on_event ({event.type} #{event.seq})", exc)
        finally:
            self.plugins.on_error = on_error

    def _restart_watcher(self) -> None:
        """(Re)start watching the drop-in directories, as plugins.watch and plugins.dirs say."""
        if self._watcher_scope is not None:
            self._watcher_scope.cancel()
            self._watcher_scope = None
        if self.config.get("plugins.watch") and self._services is not None:
            self._watcher_scope = trio.CancelScope()
            self._services.start_soon(self._watch_plugins, self._watcher_scope, list(self.plugins.dropin_dirs))

    async def _watch_plugins(self, scope: trio.CancelScope, directories: list[Path]) -> None:
        debounce = self.config.get("plugins.reload_debounce_ms") / 1000
        with scope:
            async with aclosing(watch_directories(directories, debounce_s=debounce)) as changes:
                async for paths in changes:
                    log.info("plugin files changed: %s", ", ".join(sorted(paths)))
                    await self._reload_logging_errors("file-change", reread_config=False, force=False)

    async def _reload_logging_errors(self, reason: str, **kwargs: Any) -> None:
        try:
            await self.reload(reason, **kwargs)
        except ConfigError as exc:
            log.error("reload (%s) refused, the running configuration is kept: %s", reason, exc.message)

    async def reload(self, reason: str = "rpc", *, reread_config: bool = True, force: bool = True) -> dict[str, Any]:
        """Re-read the config and the plugins; publish `extension:reload`. A config with errors is
        refused (ConfigError) and the running configuration is kept."""
        async with self._reload_lock:
            sdnotify.reloading()
            try:
                restart_required: list[str] = []
                if reread_config:
                    new = self._config_loader()  # raises ConfigError: nothing changes
                    restart_required = new.restart_required(self.config)
                    self._apply_config(new)
                report = self.plugins.apply_disabled(set(self.config.get("plugins.disabled")))
                dropins = self.plugins.sync_dropins(force=force)
                for key in ("loaded", "reloaded", "removed", "failed"):
                    getattr(report, key).extend(getattr(dropins, key))
                self.plugins.build_registries()
                self._stop_plugin_tasks(report.removed + report.reloaded)
                await self._call_startup(report.loaded + report.reloaded)
                self._start_plugin_tasks(report.loaded + report.reloaded)
            finally:
                sdnotify.notify("READY=1")
            result = {"reason": reason, **report.to_dict(), "restart_required": restart_required}
            if reread_config or report.changed or report.failed:
                assert self.bus is not None
                await self.bus.publish("extension:reload", result, source="godeld")
                log.info("reloaded (%s): %s", reason, {k: v for k, v in result.items() if v and k != "reason"})
            return result

    def _apply_config(self, new: Config) -> None:
        old = self.config
        # Settings that need a restart keep their running values, so status shows the truth.
        for dotted in new.restart_required(old):
            if dotted == "home":
                continue
            node_new, node_old = new.data, old.data
            *parents, last = dotted.split(".")
            for part in parents:
                node_new, node_old = node_new[part], node_old[part]
            node_new[last] = node_old[last]
        new.home = old.home
        self.config = new
        self._config_str = str(new.file) if new.file else None
        set_level(new.get("log.level"))
        if self.bus is not None:
            ev = new.get("events")
            self.bus.buffer, self.bus.buffer_bytes = ev["subscriber_buffer"], ev["subscriber_buffer_bytes"]
            self.bus.replay_page, self.bus.list_max = ev["replay_page"], ev["list_max_limit"]
        watch_changed = (old.get("plugins.watch"), dropin_dirs(old)) != (new.get("plugins.watch"), dropin_dirs(new))
        self.plugins.dropin_dirs = dropin_dirs(new)
        if watch_changed:
            self._restart_watcher()

    # -- for handlers and in-process callers ----------------------------------------------

    def status(self) -> dict[str, Any]:
        # Polled by every client and monitor: nothing here may touch the disk or walk much.
        config = self.config
        return {
            "version": __version__,
            "protocol": protocol.PROTOCOL_VERSION,
            "pid": self._pid,
            "state": self.state,
            "uptime_s": round(time.time() - self.started_at, 3),
            "socket": self._socket_str,
            "home": self._home_str,
            "config": self._config_str,
            "storage": self.storage.info() if self.storage is not None else None,
            "plugins": self.plugins.summary(),
            "last_seq": self.bus.last_seq if self.bus is not None else 0,
            "connections": len(self.rpc.connections) if self.rpc is not None else 0,
            "subscribers": self.bus.subscriber_count if self.bus is not None else 0,
        }

    async def call(self, method: str, **params: Any) -> Any:
        """Call an RPC method in-process (no connection): raises the method's GodelError."""
        spec = self.plugins.registries.rpc_methods.get(method)
        if spec is None:
            raise MethodNotFound(f"method not found: {method}")
        kwargs = spec.bind(params)
        ctx = Context(self, None, None, method)
        result = spec.handler(ctx, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        ctx.run_deferred()
        return result
