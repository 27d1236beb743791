"""The `worktree` runtime: each agent gets its own git worktree on branch godel/<agent-id>."""

from __future__ import annotations

from godeld import hookimpl


@hookimpl
def register_runtimes(register):
    from godeld.default_plugins.worktree.runtime import WorktreeRuntime

    register("worktree", WorktreeRuntime())
