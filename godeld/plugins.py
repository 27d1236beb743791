"""The plugin manager: built-ins, entry points and drop-in files, all registered the same way.

A plugin that fails to import, or raises in a hook, is recorded (log, `plugin:error` event,
`plugins.list`) and never stops the daemon or the other plugins: hooks are called one plugin at a
time through `call_each`.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.metadata
import importlib.util
import logging
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterable

import pluggy

from godeld import hookspecs
from godeld.default_plugins import DEFAULT_PLUGINS
from godeld.registry import NAMED_HOOKS, DuplicateRegistration, Registries

log = logging.getLogger("godeld.plugins")

ENTRY_POINT_GROUP = "godel"
HOOK_NAMES = sorted(name for name in dir(hookspecs) if getattr(getattr(hookspecs, name), "godel_spec", None) is not None)
MAX_ERRORS_KEPT = 20
_DROPIN_PREFIX = "godel_dropin_"


@dataclass
class PluginRecord:
    name: str
    source: str  # builtin | entrypoint | dropin | explicit
    origin: str  # module, distribution, or file
    module: Any = None
    hooks: list[str] = field(default_factory=list)
    registered: dict[str, list[str]] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    digest: str | None = None  # drop-ins: content hash, to reload only what changed
    disabled: bool = False
    loaded: bool = False
    loaded_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "origin": self.origin,
            "state": "disabled" if self.disabled else ("loaded" if self.loaded else "failed"),
            "hooks": self.hooks,
            "registered": {k: sorted(v) for k, v in sorted(self.registered.items()) if v},
            "error": self.errors[-1]["error"] if self.errors else None,
            "errors": self.errors,
        }


@dataclass
class ReloadReport:
    loaded: list[str] = field(default_factory=list)
    reloaded: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def changed(self) -> list[str]:
        return self.loaded + self.reloaded + self.removed

    def to_dict(self) -> dict[str, list[str]]:
        return {"loaded": self.loaded, "reloaded": self.reloaded, "removed": self.removed, "failed": self.failed}


def _spec_is_known(name: str) -> bool:
    return name in HOOK_NAMES


class PluginHost:
    """Owns the pluggy manager and the records of every plugin godeld knows about."""

    def __init__(
        self,
        *,
        builtins: Iterable[str] = DEFAULT_PLUGINS,
        entry_points: bool = True,
        dropin_dirs: Iterable[Path] = (),
        disabled: Iterable[str] = (),
        extra: Iterable[tuple[str, Any]] = (),
    ):
        self.pm = pluggy.PluginManager("godel")
        self.pm.add_hookspecs(hookspecs)
        self.builtins = list(builtins)
        self.entry_points = entry_points
        self.dropin_dirs = [Path(d) for d in dropin_dirs]
        self.disabled = set(disabled)
        self.extra = list(extra)
        self.records: dict[str, PluginRecord] = {}
        self.registries = Registries()
        self._summary: dict[str, int] | None = None
        # Set by the daemon: receives each error report (it publishes `plugin:error`).
        self.on_error: Callable[[dict[str, Any]], None] | None = None

    # -- loading -----------------------------------------------------------------------------

    def load(self) -> None:
        for module_name in self.builtins:
            self._load_module(module_name, source="builtin", origin=module_name, name=module_name)
        for name, plugin in self.extra:
            self._register(PluginRecord(name=name, source="explicit", origin=getattr(plugin, "__name__", repr(plugin))), plugin)
        if self.entry_points:
            self._load_entry_points()
        self.sync_dropins()

    def _load_module(self, module_name: str, *, source: str, origin: str, name: str) -> None:
        record = PluginRecord(name=name, source=source, origin=origin)
        if self._skip_disabled(record):
            return
        try:
            module = importlib.import_module(module_name)
        except BaseException as exc:  # noqa: BLE001 - a plugin must never take the daemon down
            if isinstance(exc, KeyboardInterrupt):
                raise
            self.records[name] = record
            self.record_error(name, "import", exc)
            return
        self._register(record, module)

    def _load_entry_points(self, only: str | None = None) -> None:
        try:
            eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        except Exception as exc:  # noqa: BLE001 - broken metadata in site-packages
            log.error("cannot read entry points: %s", exc)
            return
        for ep in eps:
            if only is not None and ep.name != only:
                continue
            dist = getattr(ep, "dist", None)
            origin = f"{dist.name} {dist.version}" if dist is not None else ep.value
            record = PluginRecord(name=ep.name, source="entrypoint", origin=origin)
            if ep.name in self.records:
                self.records.setdefault(f"{ep.name} ({origin})", record)
                self.record_error(f"{ep.name} ({origin})", "load", f"a plugin named {ep.name!r} is already loaded")
                continue
            if self._skip_disabled(record):
                continue
            try:
                plugin = ep.load()
            except BaseException as exc:  # noqa: BLE001
                if isinstance(exc, KeyboardInterrupt):
                    raise
                self.records[ep.name] = record
                self.record_error(ep.name, "import", exc)
                continue
            self._register(record, plugin)

    def _skip_disabled(self, record: PluginRecord) -> bool:
        self._summary = None
        if record.name in self.disabled:
            record.disabled = True
            self.records[record.name] = record
            return True
        return False

    def _register(self, record: PluginRecord, plugin: Any) -> bool:
        self._summary = None
        self.records[record.name] = record
        unknown = [
            attr for attr in dir(plugin)
            if self.pm.parse_hookimpl_opts(plugin, attr) is not None and not _spec_is_known(attr)
        ]
        try:
            self.pm.register(plugin, name=record.name)
        except Exception as exc:  # noqa: BLE001 - e.g. a hookimpl whose arguments match no spec
            self.record_error(record.name, "register", exc)
            return False
        record.module = plugin
        record.loaded = True
        record.loaded_at = time.time()
        record.hooks = sorted(h.name for h in (self.pm.get_hookcallers(plugin) or []))
        for attr in unknown:
            close = difflib.get_close_matches(attr, HOOK_NAMES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            self.record_error(record.name, "register", f"{attr!r} is not a godel hook{hint}; it will never be called")
        return True

    def _unregister(self, name: str) -> None:
        self._summary = None
        record = self.records.get(name)
        if record is not None and record.loaded and self.pm.has_plugin(name):
            self.pm.unregister(name=name)
        if record is not None:
            record.loaded = False

    def apply_disabled(self, disabled: set[str]) -> ReloadReport:
        """Unload plugins newly listed in plugins.disabled; load those taken off the list."""
        self._summary = None
        report = ReloadReport()
        newly_disabled, newly_enabled = disabled - self.disabled, self.disabled - disabled
        self.disabled = set(disabled)
        for name in newly_disabled:
            record = self.records.get(name)
            if record is None:
                continue
            if record.loaded:
                self._unregister(name)
                report.removed.append(name)
            record.disabled = True
        for name in newly_enabled:
            record = self.records.get(name)
            if record is None or not record.disabled:
                continue
            del self.records[name]
            if record.source == "builtin":
                self._load_module(name, source="builtin", origin=name, name=name)
            elif record.source == "entrypoint":
                self._load_entry_points(only=name)
            # drop-ins: sync_dropins() loads the file again now that the name is not disabled
            if name in self.records and self.records[name].loaded:
                report.loaded.append(name)
        return report

    # -- drop-in directories -------------------------------------------------------------

    def dropin_files(self) -> dict[str, Path]:
        """Plugin name -> file, for every *.py in the drop-in dirs. The first dir wins a name clash."""
        found: dict[str, Path] = {}
        for directory in self.dropin_dirs:
            if not directory.is_dir():
                continue
            for path in sorted(directory.glob("*.py")):
                if path.name.startswith((".", "_")):
                    continue
                found.setdefault(path.stem, path)
        return found

    def sync_dropins(self, *, force: bool = False) -> ReloadReport:
        """Load new drop-in files, reload changed ones, unload removed ones.

        A file that fails to import on reload is reported and its previous version stays loaded.
        `force` reloads every file even if unchanged (SIGHUP, daemon.reload).
        """
        self._summary = None
        report = ReloadReport()
        files = self.dropin_files()
        for name, record in list(self.records.items()):
            if record.source == "dropin" and name not in files:
                self._unregister(name)
                sys.modules.pop(_DROPIN_PREFIX + name, None)
                del self.records[name]
                report.removed.append(name)
        for name, path in files.items():
            existing = self.records.get(name)
            if existing is not None and existing.source != "dropin":
                self.records.setdefault(f"{name} ({path})", PluginRecord(name=f"{name} ({path})", source="dropin", origin=str(path)))
                self.record_error(f"{name} ({path})", "load", f"a plugin named {name!r} is already loaded from {existing.origin}")
                continue
            try:
                content = path.read_bytes()
            except OSError as exc:
                log.warning("cannot read drop-in plugin %s: %s", path, exc)
                continue
            digest = hashlib.sha256(content).hexdigest()
            if existing is not None and existing.digest == digest and not force and (existing.loaded or existing.errors):
                continue
            record = PluginRecord(name=name, source="dropin", origin=str(path), digest=digest)
            if name in self.disabled:
                record.disabled = True
                self.records[name] = record
                continue
            try:
                module = _import_file(name, path)
            except BaseException as exc:  # noqa: BLE001
                if isinstance(exc, KeyboardInterrupt):
                    raise
                if existing is not None and existing.loaded:
                    existing.digest = digest  # do not retry the same broken content on every change
                    self.record_error(name, "reload", exc, note="the previous version stays loaded")
                else:
                    self.records[name] = record
                    self.record_error(name, "import", exc)
                report.failed.append(name)
                continue
            if existing is not None:
                self._unregister(name)
            self._register(record, module)
            (report.reloaded if existing is not None else report.loaded).append(name)
        return report

    # -- calling hooks -------------------------------------------------------------------

    def call_each(
        self,
        hook: str,
        *,
        only: Iterable[str] | None = None,
        per_plugin: Callable[[str], dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> list[tuple[str, Any]]:
        """Call `hook` on each plugin in registration order, isolating failures.

        Returns (plugin name, result) for each plugin that did not raise. `per_plugin(name)`
        supplies arguments bound to the plugin (e.g. a `register` that records the owner).
        """
        wanted = set(only) if only is not None else None
        results = []
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            name = impl.plugin_name
            if wanted is not None and name not in wanted:
                continue
            args = dict(kwargs)
            if per_plugin is not None:
                args.update(per_plugin(name))
            try:
                result = impl.function(*[args[a] for a in impl.argnames])
            except Exception as exc:  # noqa: BLE001
                self.record_error(name, f"hook {hook}", exc)
                continue
            results.append((name, result))
        return results

    def impls(self, hook: str) -> list[tuple[str, Callable[..., Any], tuple[str, ...]]]:
        return [(i.plugin_name, i.function, tuple(i.argnames)) for i in getattr(self.pm.hook, hook).get_hookimpls()]

    # -- registries ----------------------------------------------------------------------

    def build_registries(self) -> Registries:
        """Collect every register_* hook into fresh registries and make them current."""
        from godeld.dispatch import MethodSpec  # dispatch imports errors only; kept local to avoid a cycle

        registries = Registries()
        for record in self.records.values():
            record.registered = {}

        def binder(kind: str, add: Callable[..., None]) -> Callable[[str], dict[str, Any]]:
            def per_plugin(plugin: str) -> dict[str, Any]:
                def register(*args: Any, **kw: Any) -> None:
                    try:
                        name = add(plugin, *args, **kw)
                    except (DuplicateRegistration, TypeError, ValueError) as exc:
                        self.record_error(plugin, f"register {kind}", str(exc))
                        return
                    self.records[plugin].registered.setdefault(kind, []).append(name)

                return {"register": register}

            return per_plugin

        def add_method(plugin: str, name: str, handler: Callable[..., Any], *, summary: str | None = None) -> str:
            registries.rpc_methods.add(name, MethodSpec.from_handler(name, handler, summary=summary, plugin=plugin), plugin=plugin)
            return name

        def add_migrations(plugin: str, migrations: Any, *, backend: str = "sqlite") -> str:
            key = f"{backend}:{migrations.name}"
            registries.migrations.add(key, (backend, migrations), plugin=plugin)
            return key

        self.call_each("register_rpc_methods", per_plugin=binder("rpc_methods", add_method))
        self.call_each("register_migrations", per_plugin=binder("migrations", add_migrations))
        for hook, attr in NAMED_HOOKS.items():
            registry = getattr(registries, attr)

            def add_named(plugin: str, name: str, obj: Any, _registry=registry) -> str:
                _registry.add(name, obj, plugin=plugin)
                return name

            self.call_each(hook, per_plugin=binder(attr, add_named))
        self.registries = registries
        return registries

    # -- errors --------------------------------------------------------------------------

    def record_error(self, plugin: str, stage: str, error: BaseException | str, *, note: str | None = None) -> dict[str, Any]:
        if isinstance(error, BaseException):
            text = f"{type(error).__name__}: {error}"
            tb = "".join(traceback.format_exception(type(error), error, error.__traceback__, limit=-6))
        else:
            text, tb = error, None
        if note:
            text = f"{text} ({note})"
        self._summary = None
        report = {"plugin": plugin, "stage": stage, "error": text, "at": int(time.time() * 1000)}
        record = self.records.get(plugin)
        if record is None:
            record = self.records[plugin] = PluginRecord(name=plugin, source="unknown", origin="")
        record.errors.append(report)
        del record.errors[:-MAX_ERRORS_KEPT]
        if tb:
            log.error("plugin %s failed in %s: %s\n%s", plugin, stage, text, tb.rstrip())
        else:
            log.error("plugin %s failed in %s: %s", plugin, stage, text)
        if self.on_error is not None:
            self.on_error(report)
        return report

    def list(self) -> list[dict[str, Any]]:
        return [record.to_dict() for record in self.records.values()]

    def summary(self) -> dict[str, int]:
        """Counts for daemon.status; cached until a plugin is (un)loaded or reports an error."""
        if self._summary is None:
            records = self.records.values()
            self._summary = {
                "loaded": sum(1 for r in records if r.loaded),
                "failed": sum(1 for r in records if not r.loaded and not r.disabled),
                "disabled": sum(1 for r in records if r.disabled),
                "with_errors": sum(1 for r in records if r.errors),
            }
        return dict(self._summary)


def _import_file(name: str, path: Path) -> ModuleType:
    module_name = _DROPIN_PREFIX + name
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(module_name)
    sys.modules[module_name] = module  # dataclasses and pickling look a module up by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        if previous is not None:
            sys.modules[module_name] = previous
        else:
            sys.modules.pop(module_name, None)
        raise
    return module
