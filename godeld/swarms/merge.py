"""Merging a swarm's branches into one integration branch, without ever touching the user's
checkout or waiting on an editor.

The merge happens in a temporary worktree on a new branch `godel/swarm-<id>` made from the swarm's
base commit. Each agent branch with commits is merged in the swarm's order (a pipeline's stages in
order, a map-reduce's maps before its reduce) with `--no-edit`; a conflicting branch is aborted,
reported with its conflicting files, and skipped, and the others go on.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from godeld.agents.git import git, repo_lock, toplevel


async def merge_branches(repo: str, base: str, branches: list[str], target: str, workdir: Path) -> dict[str, Any]:
    top, common = await toplevel(repo)
    merged: list[str] = []
    conflicts: list[dict[str, Any]] = []
    skipped: list[str] = []
    worktree = workdir / target.replace("/", "-")
    async with repo_lock(common):
        await git(top, "worktree", "add", "--quiet", "-B", target, str(worktree), base)
    try:
        for branch in branches:
            ahead = (await git(worktree, "rev-list", "--count", f"HEAD..{branch}")).strip()
            if ahead == "0":
                skipped.append(branch)  # nothing new: already contained, or no commits
                continue
            done = await git(worktree, "merge", "--no-ff", "--no-edit", "-m", f"godel: merge {branch}", branch, check=False)
            status = await git(worktree, "diff", "--name-only", "--diff-filter=U")
            if status.strip():
                conflicts.append({"branch": branch, "files": status.split()})
                await git(worktree, "merge", "--abort", check=False)
            elif (await git(worktree, "rev-parse", "-q", "--verify", "MERGE_HEAD", check=False)).strip():
                conflicts.append({"branch": branch, "files": [], "error": done.strip()[-500:]})
                await git(worktree, "merge", "--abort", check=False)
            else:
                merged.append(branch)
        head = (await git(worktree, "rev-parse", "HEAD")).strip()
    finally:
        async with repo_lock(common):
            await git(top, "worktree", "remove", "--force", str(worktree), check=False)
        shutil.rmtree(worktree, ignore_errors=True)
    return {"branch": target, "base": base, "head": head, "merged": merged, "conflicts": conflicts, "skipped": skipped}


async def is_ancestor(repo: str | Path, ancestor: str, descendant: str) -> bool:
    """Whether `descendant` contains `ancestor` (git merge-base --is-ancestor)."""
    import trio

    proc = await trio.run_process(["git", "-C", str(repo), "merge-base", "--is-ancestor", ancestor, descendant], check=False, capture_stdout=True, capture_stderr=True)
    return proc.returncode == 0
