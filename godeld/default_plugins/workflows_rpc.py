"""workflows.* methods, and the workflow engine's place in the daemon."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from godeld import hookimpl
from godeld.dispatch import Context
from godeld.errors import InvalidParams

STEP_PUBLIC = ("id", "kind", "state", "attempts", "started_at", "finished_at", "output", "error", "reason", "next_attempt_at", "waiting")


@hookimpl
def startup(daemon):
    from godeld.workflows.engine import WorkflowEngine

    async def start() -> None:
        daemon.workflows = WorkflowEngine(daemon)
        await daemon.workflows.load()

    return start()


@hookimpl
def background_tasks(daemon):
    async def run() -> None:
        await daemon.workflows.run()

    return [run]


@hookimpl
def register_rpc_methods(register):
    for name, fn in [
        ("workflows.validate", validate), ("workflows.run", run), ("workflows.get", get), ("workflows.list", list_runs),
        ("workflows.cancel", cancel), ("workflows.resume", resume), ("workflows.approve", approve), ("workflows.reject", reject),
        ("workflows.kinds", kinds),
    ]:
        register(name, fn)


async def _engine(ctx: Context):
    engine = ctx.daemon.workflows
    await engine.ready.wait()
    return engine


def _source(file: str | None, definition: dict | None, cwd: str | None) -> tuple[str | dict, str | None]:
    if (file is None) == (definition is None):
        raise InvalidParams("give either file (a path to a workflow YAML file) or definition (the workflow as an object)")
    if definition is not None:
        return definition, None
    path = Path(file)
    if not path.is_absolute():
        path = Path(cwd or ".") / path
    try:
        return path.read_text(), str(path)
    except OSError as exc:
        raise InvalidParams(f"cannot read workflow file {path}: {exc.strerror or exc}", {"file": str(path)}) from None


def _check(ctx: Context, file: str | None, definition: dict | None, variables: dict | None, cwd: str | None) -> dict[str, Any]:
    from godeld.workflows import spec

    source, path = _source(file, definition, cwd)
    result = spec.validate(source, file=path, step_kinds=ctx.daemon.plugins.registries.step_kinds, variables=variables)
    if result.get("definition") is not None and path:
        result["definition"]["file"] = path
        result["definition"]["base_dir"] = str(Path(path).parent)
    return result


async def validate(ctx: Context, file: str | None = None, definition: dict | None = None, variables: dict | None = None, cwd: str | None = None) -> dict[str, Any]:
    """Check a workflow without running it: {valid, errors: [{path, line, column, message}], file}."""
    result = _check(ctx, file, definition, variables, cwd)
    out = {"valid": result["valid"], "errors": result["errors"], "file": result.get("file")}
    if result["valid"]:
        d = result["definition"]
        out["workflow"] = {"name": d["name"], "steps": [{"id": s["id"], "kind": s["kind"], "needs": s["needs"]} for s in d["steps"]], "order": d["order"]}
    return out


async def run(ctx: Context, file: str | None = None, definition: dict | None = None, variables: dict | None = None, repo: str | None = None, cwd: str | None = None) -> dict[str, Any]:
    """Start a run of a workflow: {id, name}. `variables` override the workflow's; `repo` is the
    repository of agent steps that name none; `cwd` resolves relative paths."""
    result = _check(ctx, file, definition, variables, cwd)
    if not result["valid"]:
        first = result["errors"][0]
        where = ":".join(str(x) for x in (result.get("file") or "<definition>", first.get("line"), first.get("column")) if x is not None)
        more = f" (and {len(result['errors']) - 1} more)" if len(result["errors"]) > 1 else ""
        raise InvalidParams(f"invalid workflow: {where}: {first['path']}: {first['message']}{more}", {"errors": result["errors"], "file": result.get("file")})
    engine = await _engine(ctx)
    started = await engine.start(result["definition"], variables=variables or {}, cwd=cwd, repo=repo)
    return {"id": started.id, "name": started.rec["name"], "state": started.rec["state"]}


def public(rec: dict[str, Any], steps: list[dict[str, Any]]) -> dict[str, Any]:
    kinds = {s["id"]: s["kind"] for s in rec["definition"]["steps"]}
    out_steps = []
    for s in steps:
        item = {k: s.get(k) for k in STEP_PUBLIC}
        item["kind"] = kinds.get(s["id"])
        data = s.get("data") or {}
        for key in ("agent_id", "child_run", "agents"):
            if key in data:
                item[key] = data[key]
        if item["kind"] == "approval" and s["state"] == "running" and "waiting_since" in data and "decision" not in data:
            item["waiting"] = "approval"
        out_steps.append(item)
    return {
        "id": rec["id"], "name": rec["name"], "state": rec["state"], "error": rec.get("error"), "file": rec.get("file"),
        "variables": rec.get("variables"), "created_at": rec["created_at"], "started_at": rec.get("started_at"),
        "finished_at": rec.get("finished_at"), "parent_id": rec.get("parent_id"), "steps": out_steps,
    }


async def get(ctx: Context, id: str) -> dict[str, Any]:
    """One run: {id, name, state, error, steps: [{id, kind, state, attempts, started_at, finished_at, output, error}]}."""
    engine = await _engine(ctx)
    return public(*await engine.get(id))


async def list_runs(ctx: Context, state: str | list[str] | None = None, limit: int = 100, parent_id: str | None = None) -> dict[str, Any]:
    """Runs, newest first: {runs: [{id, name, state, created_at, finished_at, error}]}."""
    engine = await _engine(ctx)
    states = [state] if isinstance(state, str) else state
    runs = await engine.store.list_runs(states=states, limit=limit, parent_id=parent_id)
    return {"runs": [{k: r.get(k) for k in ("id", "name", "state", "created_at", "started_at", "finished_at", "error", "parent_id")} for r in runs]}


async def cancel(ctx: Context, id: str) -> dict[str, Any]:
    """Cancel a run: its running steps are stopped (agents killed, commands' process groups ended)."""
    engine = await _engine(ctx)
    await engine.cancel(id)
    return public(*await engine.get(id))


async def resume(ctx: Context, id: str) -> dict[str, Any]:
    """Run a failed or cancelled run again from where it stopped; completed steps are not re-run."""
    engine = await _engine(ctx)
    rec = await engine.resume(id)
    return {"id": rec["id"], "name": rec["name"], "state": rec["state"]}


async def approve(ctx: Context, id: str, step: str, comment: str | None = None, by: str | None = None) -> dict[str, Any]:
    """Approve the approval step `step` of run `id`."""
    engine = await _engine(ctx)
    return await engine.decide(id, step, True, by=by, comment=comment)


async def reject(ctx: Context, id: str, step: str, comment: str | None = None, by: str | None = None) -> dict[str, Any]:
    """Reject the approval step `step` of run `id`: the step fails."""
    engine = await _engine(ctx)
    return await engine.decide(id, step, False, by=by, comment=comment)


async def kinds(ctx: Context) -> dict[str, Any]:
    """The step kinds godeld knows, with the fields each adds to a step."""
    registry = ctx.daemon.plugins.registries.step_kinds
    return {"kinds": [{"name": n, "fields": sorted(getattr(registry[n], "fields", ())), "resumable": bool(getattr(registry[n], "resumable", False))} for n in registry.names()]}
