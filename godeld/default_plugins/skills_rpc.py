"""skills.* methods, and the skills service's place in the daemon (daemon.skills)."""

from __future__ import annotations

from typing import Any

from godeld import hookimpl
from godeld.dispatch import Context
from godeld.errors import InvalidParams


@hookimpl
def startup(daemon):
    from godeld.skills.service import SkillService

    daemon.skills = SkillService(daemon)


@hookimpl
def background_tasks(daemon):
    async def run() -> None:
        await daemon.skills.run()

    return [run]


@hookimpl
def register_rpc_methods(register):
    for name, fn in [
        ("skills.list", list_skills), ("skills.get", get), ("skills.match", match), ("skills.activate", activate),
        ("skills.deactivate", deactivate), ("skills.active", active), ("skills.reload", reload),
        ("skills.prompt", prompt), ("skills.read", read),
    ]:
        register(name, fn)


async def _service(ctx: Context):
    service = ctx.daemon.skills
    await service.ready.wait()  # the first scan, with the watcher already in place
    return service


async def list_skills(ctx: Context, project: str | None = None, source: str | None = None) -> dict[str, Any]:
    """Every usable skill, best source first, with what each shadows; and the malformed ones:
    {skills: [{name, description, source, path, allowed_tools, shadows, files, ...}], errors: [{path, line, message}]}."""
    catalog = await (await _service(ctx)).catalog(project)
    skills = [s.summary() for s in sorted(catalog.skills.values(), key=lambda s: s.name)]
    by_path = {s["path"]: s for s in skills}
    shadowed = []
    for skill in catalog.shadowed:
        winner = catalog.skills[skill.name]
        item = skill.summary()
        item["shadowed_by"] = {"source": winner.source, "path": str(winner.dir)}
        shadowed.append(item)
    for item in skills:
        item["shadowed_by"] = None
    if source is not None:
        skills = [s for s in skills if s["source"] == source]
        shadowed = [s for s in shadowed if s["source"] == source]
    warnings = [w for s in list(by_path.values()) + shadowed for w in s["warnings"]]
    return {
        "skills": skills, "shadowed": shadowed, "errors": [e.to_dict() for e in catalog.errors], "warnings": warnings,
        "sources": [{"name": s.name, "dirs": [str(d) for d in s.dirs]} for s in catalog.sources],
    }


async def get(ctx: Context, name: str, project: str | None = None) -> dict[str, Any]:
    """One skill with its body and files."""
    skills = await _service(ctx)
    return (await skills.skill(name, project)).detail()


async def match(ctx: Context, text: str | None = None, task: str | None = None, limit: int = 10, project: str | None = None) -> dict[str, Any]:
    """Skills ranked for a task: {matches: [{name, score, reasons}]}, best first."""
    from godeld.skills.match import match as rank

    query = text if text is not None else task
    if not query or not query.strip():
        raise InvalidParams("give the task as text")
    if limit < 0:
        raise InvalidParams("limit must be 0 or more")
    skills = await _service(ctx)
    catalog = await skills.catalog(project)
    return {"matches": rank(catalog.skills.values(), query, limit=limit)}


async def activate(ctx: Context, name: str, agent: str | None = None, swarm: str | None = None, project: str | None = None) -> dict[str, Any]:
    """Activate a skill for an agent or a swarm (persisted): its body goes into their prompt."""
    skills = await _service(ctx)
    return await skills.activate(name, agent, swarm, project)


async def deactivate(ctx: Context, name: str, agent: str | None = None, swarm: str | None = None) -> dict[str, Any]:
    """Deactivate a skill for an agent or a swarm."""
    skills = await _service(ctx)
    return await skills.deactivate(name, agent, swarm)


async def active(ctx: Context, agent: str | None = None, swarm: str | None = None, project: str | None = None) -> dict[str, Any]:
    """Activations: {active: [{name, scope, target, activated_at, missing}]}."""
    skills = await _service(ctx)
    return {"active": await skills.active(agent, swarm, project)}


async def reload(ctx: Context) -> dict[str, Any]:
    """Scan the skill directories again now (they are also watched)."""
    skills = await _service(ctx)
    return await skills.reload("rpc")


async def prompt(ctx: Context, agent: str | None = None, swarm: str | None = None, task: str | None = None, project: str | None = None) -> dict[str, Any]:
    """The skills text an agent gets: {prompt, active, available, suggested}."""
    skills = await _service(ctx)
    return await skills.prompt(agent, swarm, task, project)


async def read(ctx: Context, name: str, path: str, project: str | None = None) -> dict[str, Any]:
    """A file inside a skill's folder (the on-demand read of progressive disclosure)."""
    skills = await _service(ctx)
    return await skills.read(name, path, project)
