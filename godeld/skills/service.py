"""The skills service of godeld: catalogs per project, the directory watcher, activations.

`daemon.skills` (created by the skills_rpc plugin). A catalog is built per project directory (the
project's own skill folders come first), cached, and rebuilt when a watched directory changes or
on `reload()`. Scanning reads files, so it runs on a worker thread. Each rebuild publishes
`skills:reload`; each malformed skill not reported before publishes `skill:error`.
"""

from __future__ import annotations

import inspect
import logging
import os
from pathlib import Path
from typing import Any

import trio

from godeld.errors import InvalidParams, NotFound
from godeld.skills import match as matching
from godeld.skills.prompt import format_skills
from godeld.skills.registry import Catalog, Skill, SkillProblem, SourceDirs, scan
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

log = logging.getLogger("godeld.skills")

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "builtin_skills"
SCOPES = ("agent", "swarm")
READ_MAX_BYTES = 1 << 20


def project_dirs(project: Path) -> list[Path]:
    return [project / ".godel" / "skills", project / ".claude" / "skills"]


def source_dirs_of(obj: Any, project: Path) -> list[Path]:
    """The directories a plugin's skill source names: `list_dirs(project)`, `list_dirs()`, a
    `dirs` attribute, or the object itself as a path or list of paths."""
    fn = getattr(obj, "list_dirs", None)
    if callable(fn):
        try:
            takes_project = len(inspect.signature(fn).parameters) >= 1
        except (TypeError, ValueError):
            takes_project = False
        value = fn(project) if takes_project else fn()
    elif hasattr(obj, "dirs"):
        value = obj.dirs
    else:
        value = obj
    if isinstance(value, (str, os.PathLike)):
        return [Path(value)]
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, os.PathLike)) for v in value):
        return [Path(v) for v in value]
    raise TypeError("a skill source must have list_dirs() returning paths (or be a path or list of paths)")


class SkillService:
    def __init__(self, daemon: Any):
        self.daemon = daemon
        self.store = daemon.storage.skills
        self._catalogs: dict[Path, Catalog] = {}
        self._reported: set[tuple] = set()
        self._lock = trio.Lock()
        self._rewatch = trio.Event()
        self._watched: list[Path] = []
        self._registries: Any = None  # the plugin registries the catalogs were built from
        self.ready = trio.Event()

    # -- sources and catalogs --------------------------------------------------------------

    @property
    def default_project(self) -> Path:
        return Path(self.daemon.config.project_dir).absolute()

    def project(self, project: str | None) -> Path:
        return Path(project).expanduser().absolute() if project else self.default_project

    def sources(self, project: Path) -> tuple[list[SourceDirs], list[SkillProblem]]:
        """Sources in precedence order: project > user > paths > plugin sources > built-in."""
        config = self.daemon.config
        user = config.get("skills.user_dirs")
        if user is None:
            user = [config.home / "skills", Path.home() / ".claude" / "skills"]
        paths = [Path(p) for p in config.get("skills.paths")]
        paths += [Path(p) for p in os.environ.get("GODEL_SKILLS_PATH", "").split(":") if p]
        out = [SourceDirs("project", project_dirs(project)), SourceDirs("user", [Path(p).expanduser() for p in user])]
        if paths:
            out.append(SourceDirs("paths", [p.expanduser() for p in paths]))
        problems: list[SkillProblem] = []
        registry = self.daemon.plugins.registries.skill_sources
        for name in registry.names():
            try:
                out.append(SourceDirs(name, source_dirs_of(registry[name], project)))
            except Exception as exc:  # a broken plugin source must not hide the other skills
                problems.append(SkillProblem(f"<skill source {name!r} of plugin {registry.owner(name)!r}>", str(exc), None, name))
        if config.get("skills.builtin"):
            out.append(SourceDirs("builtin", [BUILTIN_DIR]))
        return out, problems

    def _build(self, project: Path) -> Catalog:
        self._registries = self.daemon.plugins.registries
        sources, problems = self.sources(project)
        catalog = scan(sources)
        catalog.errors[:0] = problems
        return catalog

    async def catalog(self, project: str | Path | None = None) -> Catalog:
        path = project if isinstance(project, Path) else self.project(project)
        registries = self.daemon.plugins.registries
        if self._catalogs and registries is not self._registries:
            # Plugins were reloaded: their skill sources may have changed.
            await self.reload("daemon-reload")
        found = self._catalogs.get(path)
        if found is not None:
            return found
        async with self._lock:
            if path not in self._catalogs:
                self._catalogs[path] = await trio.to_thread.run_sync(self._build, path)
                await self._report_errors(self._catalogs[path])
                self._rewatch.set()  # a new project: watch its directories too
        return self._catalogs[path]

    async def reload(self, reason: str = "rpc", changed: list[str] | None = None) -> dict[str, Any]:
        """Rebuild every cached catalog; publish skills:reload (and skill:error for new problems)."""
        async with self._lock:
            projects = list(self._catalogs) or [self.default_project]
            fresh = {}
            for path in projects:
                fresh[path] = await trio.to_thread.run_sync(self._build, path)
            self._catalogs = fresh
            # Report problems that are new since the last load; a fixed one may be reported again.
            previous, self._reported = self._reported, set()
            for catalog in fresh.values():
                await self._report_errors(catalog, previous)
            rewatch = self.watch_dirs() != self._watched
        main = fresh.get(self.default_project) or next(iter(fresh.values()))
        data = {"reason": reason, "skills": sorted(main.skills), "errors": len(main.errors), "changed": sorted(changed or [])}
        await self.daemon.bus.publish("skills:reload", data, source="skills")
        if rewatch:
            self._rewatch.set()  # after publishing: this may cancel the watcher that called us
        return {"skills": len(main.skills), "errors": [e.to_dict() for e in main.errors], "projects": [str(p) for p in fresh]}

    async def _report_errors(self, catalog: Catalog, previous: set[tuple] | None = None) -> None:
        for problem in catalog.errors:
            key = problem.key()
            seen = key in self._reported or key in (previous or ())
            self._reported.add(key)
            if seen:
                continue
            log.warning("skill not loaded: %s%s: %s", problem.path, f":{problem.line}" if problem.line else "", problem.message)
            await self.daemon.bus.publish("skill:error", problem.to_dict(), source="skills")

    async def skill(self, name: str, project: str | None = None) -> Skill:
        catalog = await self.catalog(project)
        skill = catalog.skills.get(name)
        if skill is None:
            known = ", ".join(sorted(catalog.skills)) or "none"
            raise NotFound(f"unknown skill {name!r} (known skills: {known})", {"name": name})
        return skill

    # -- watching --------------------------------------------------------------------------

    def watch_dirs(self) -> list[Path]:
        """Existing directories of the default and every cached project (built-in excluded: it
        ships read-only)."""
        dirs: set[Path] = set()
        for project in {self.default_project, *self._catalogs}:
            for source in self.sources(project)[0]:
                if source.name != "builtin":
                    dirs.update(d for d in source.dirs if d.is_dir())
        return sorted(dirs)

    async def run(self) -> None:
        """The watcher: restarts itself when the set of directories to watch changes. Watching
        starts before the first scan, so no change falls between the two."""
        first = True
        while True:
            self._rewatch = trio.Event()
            self._watched = self.watch_dirs()
            async with trio.open_nursery() as nursery:
                if self.daemon.config.get("skills.watch") and self._watched:
                    await nursery.start(self._watch, list(self._watched))
                if first:
                    await self.catalog(None)
                    self.ready.set()
                    first = False
                else:
                    await self._refresh()  # a change may have come while no observer was running
                await self._rewatch.wait()
                nursery.cancel_scope.cancel()

    async def _refresh(self) -> None:
        """Reload (and announce it) only if a rescan finds something different."""
        async with self._lock:
            projects = list(self._catalogs)
            same = True
            for path in projects:
                fresh = await trio.to_thread.run_sync(self._build, path)
                same = same and _fingerprint(fresh) == _fingerprint(self._catalogs[path])
        if not same:
            await self.reload("file-change")

    async def _watch(self, dirs: list[Path], *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """watchdog observer thread -> debounced reloads; started() once the watches are in place."""
        debounce = self.daemon.config.get("skills.reload_debounce_ms") / 1000
        changed: set[str] = set()
        wakeup = trio.Event()

        def on_change(paths: list[str]) -> None:
            changed.update(paths)
            wakeup.set()

        observer = Observer()
        handler = _Handler(trio.lowlevel.current_trio_token(), on_change)
        for directory in dirs:
            observer.schedule(handler, str(directory), recursive=True)
        observer.start()  # inotify watches are added synchronously here
        task_status.started()
        try:
            while True:
                await wakeup.wait()
                while True:  # debounce: wait for a quiet moment
                    wakeup = trio.Event()
                    with trio.move_on_after(debounce):
                        await wakeup.wait()
                        continue
                    break
                batch, changed = sorted(changed), set()
                log.info("skill files changed: %s", ", ".join(batch))
                try:
                    await self.reload("file-change", changed=batch)
                except Exception:  # keep watching: the next change may fix it
                    log.exception("reloading skills failed")
        finally:
            observer.stop()
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(observer.join)

    # -- activations -----------------------------------------------------------------------

    @staticmethod
    def scope_of(agent: str | None, swarm: str | None) -> tuple[str, str]:
        if (agent is None) == (swarm is None):
            raise InvalidParams("give exactly one of agent or swarm")
        return ("agent", agent) if agent is not None else ("swarm", swarm)  # type: ignore[return-value]

    async def activate(self, name: str, agent: str | None, swarm: str | None, project: str | None) -> dict[str, Any]:
        scope, target = self.scope_of(agent, swarm)
        await self.skill(name, project)  # refuse unknown names
        added = await self.store.activate(scope, target, name)
        if added:
            await self.daemon.bus.publish("skill:activate", {"name": name, "scope": scope, "target": target}, source="skills", metadata=_meta(scope, target))
        return {"name": name, "scope": scope, "target": target, "changed": added}

    async def deactivate(self, name: str, agent: str | None, swarm: str | None) -> dict[str, Any]:
        scope, target = self.scope_of(agent, swarm)
        removed = await self.store.deactivate(scope, target, name)
        if not removed:
            raise NotFound(f"skill {name!r} is not active for {scope} {target!r}", {"name": name, scope: target})
        await self.daemon.bus.publish("skill:deactivate", {"name": name, "scope": scope, "target": target}, source="skills", metadata=_meta(scope, target))
        return {"name": name, "scope": scope, "target": target, "changed": True}

    async def active(self, agent: str | None = None, swarm: str | None = None, project: str | None = None) -> list[dict[str, Any]]:
        """Activations for the agent and/or swarm (both: their union); neither: all of them."""
        rows: list[dict[str, Any]] = []
        if agent is None and swarm is None:
            rows = await self.store.list()
        else:
            if agent is not None:
                rows += await self.store.list("agent", agent)
            if swarm is not None:
                rows += await self.store.list("swarm", swarm)
        catalog = await self.catalog(project)
        for row in rows:
            row["missing"] = row["name"] not in catalog.skills
        return rows

    # -- prompt and files ------------------------------------------------------------------

    async def prompt(self, agent: str | None, swarm: str | None, task: str | None, project: str | None) -> dict[str, Any]:
        catalog = await self.catalog(project)
        rows = await self.active(agent, swarm, project) if (agent or swarm) else []
        active = [catalog.skills[r["name"]] for r in rows if r["name"] in catalog.skills]
        suggested = [m["name"] for m in matching.match(catalog.skills.values(), task, limit=3)] if task else []
        text = format_skills(catalog.skills.values(), active, suggested)
        return {"prompt": text, "active": sorted({s.name for s in active}), "available": sorted(catalog.skills), "suggested": suggested}

    async def read(self, name: str, path: str, project: str | None) -> dict[str, Any]:
        skill = await self.skill(name, project)
        return await trio.to_thread.run_sync(read_skill_file, skill, path)


class _Handler(FileSystemEventHandler):
    """Like godeld.watch's: react to a write being finished, a move or a delete (not to reads),
    and also to creations, files and folders alike: inotify sees a new folder only once it has
    put a watch on it, so the first file written into a brand-new skill folder may come with no
    event but the folder's creation. The debounce turns the bursts into one reload."""

    RELEVANT = {"closed", "moved", "deleted", "created"}

    def __init__(self, token: trio.lowlevel.TrioToken, on_change):
        self._token = token
        self._on_change = on_change

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in self.RELEVANT:
            return
        paths = [event.src_path] + ([event.dest_path] if getattr(event, "dest_path", "") else [])
        paths = [p if isinstance(p, str) else p.decode() for p in paths]
        try:
            self._token.run_sync_soon(self._on_change, paths)
        except trio.RunFinishedError:
            pass


def read_skill_file(skill: Skill, path: str) -> dict[str, Any]:
    """A file inside the skill's folder. Absolute paths, `..` and symlinks leading out are refused."""
    rel = Path(path)
    if not path or rel.is_absolute() or ".." in rel.parts:
        raise InvalidParams(f"path {path!r} must be relative to the skill folder, without '..'", {"name": skill.name, "path": path})
    root = skill.dir.resolve()
    target = (root / rel).resolve()
    if target != root and root not in target.parents:
        raise InvalidParams(f"path {path!r} leads outside the skill {skill.name!r}", {"name": skill.name, "path": path})
    if not target.is_file():
        raise NotFound(f"skill {skill.name!r} has no file {path!r}", {"name": skill.name, "path": path})
    size = target.stat().st_size
    if size > READ_MAX_BYTES:
        raise InvalidParams(f"{path} is {size} bytes; skills.read returns at most {READ_MAX_BYTES}", {"name": skill.name, "path": path})
    data = target.read_bytes()
    try:
        return {"name": skill.name, "path": rel.as_posix(), "size": size, "encoding": "utf-8", "content": data.decode("utf-8")}
    except UnicodeDecodeError:
        import base64

        return {"name": skill.name, "path": rel.as_posix(), "size": size, "encoding": "base64", "content": base64.b64encode(data).decode()}


def _fingerprint(catalog: Catalog) -> tuple:
    skills = tuple((s.name, str(s.dir), s.description, s.body, tuple(s.files), tuple(map(str, s.shadows))) for s in catalog.skills.values())
    return skills, tuple(e.key() for e in catalog.errors)


def _meta(scope: str, target: str) -> dict[str, str]:
    return {"agentId": target} if scope == "agent" else {"swarmId": target}
