"""git, run as a subprocess (ARCHITECTURE §9: no gitpython). Operations that change one
repository's worktree list or refs are serialized per repository: concurrent `git worktree add`
in one repository fails on git's own lock files; different repositories proceed in parallel."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import trio

from godeld.errors import GodelError

# Commits made by godel itself (never the user's identity, never a prompt for one).
GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_AUTHOR_NAME": "godel",
    "GIT_AUTHOR_EMAIL": "godel@localhost",
    "GIT_COMMITTER_NAME": "godel",
    "GIT_COMMITTER_EMAIL": "godel@localhost",
    "GIT_EDITOR": "true",
    "LC_ALL": "C",
}


class GitError(GodelError):
    code = -32000


_locks: dict[str, trio.Lock] = {}


def repo_lock(common_dir: str) -> trio.Lock:
    lock = _locks.get(common_dir)
    if lock is None:
        lock = _locks[common_dir] = trio.Lock()
    return lock


async def git(cwd: str | Path, *args: str, check: bool = True, input: bytes | None = None) -> str:
    """Run `git -C cwd args...`; return stdout as text. A failure raises GitError with git's
    own message."""
    env = {**os.environ, **GIT_ENV}
    result = await trio.run_process(
        ["git", "-C", str(cwd), *args], stdin=input if input is not None else subprocess.DEVNULL, capture_stdout=True, capture_stderr=True, check=False, env=env
    )
    if check and result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip() or result.stdout.decode(errors="replace").strip()
        raise GitError(f"git {' '.join(args[:2])} failed in {cwd}: {message}", {"returncode": result.returncode, "args": list(args)})
    return result.stdout.decode(errors="replace")


async def toplevel(path: str | Path) -> tuple[Path, str]:
    """The repository's top directory and its common git dir (shared by all its worktrees)."""
    p = Path(path).expanduser()
    if not p.is_dir():
        raise GitError(f"repository not found: {p} is not a directory", {"repo": str(p)})
    try:
        out = await git(p, "rev-parse", "--show-toplevel", "--git-common-dir")
    except GitError:
        raise GitError(f"{p} is not a git repository", {"repo": str(p)}) from None
    top, common = out.splitlines()[:2]
    common_path = Path(common) if os.path.isabs(common) else (p / common)
    return Path(top), str(common_path.resolve())
