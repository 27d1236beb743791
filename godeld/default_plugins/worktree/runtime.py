"""Worktrees for agents: create, provision (.godel/worktree.yaml), collect the work, verify
isolation, remove, and garbage-collect. git runs as a subprocess, serialized per repository."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import trio

from godeld.agents.git import GitError, git, repo_lock, toplevel
from godeld.errors import GodelError, InvalidParams

PROVISION_FILE = ".godel/worktree.yaml"
MAX_DIFF_BYTES = 4 << 20  # a diff bigger than this is stored cut, with a note


class SetupError(GodelError):
    """The worktree's setup command failed; `data["output"]` has what it printed."""


@dataclass
class Workspace:
    repo: str  # the repository's top directory (the main worktree)
    common_dir: str
    worktree: str
    branch: str
    base: str  # what the caller asked for (a ref), for display
    base_commit: str
    port: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    refs_at_start: dict[str, str] = field(default_factory=dict)
    main_head_at_start: str = ""
    setup_output: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Workspace":
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _repo_slug(top: Path) -> str:
    digest = hashlib.sha1(str(top).encode()).hexdigest()[:8]
    return f"{top.name}-{digest}"


async def _branch_tips(repo: str) -> dict[str, str]:
    out = await git(repo, "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads")
    tips = {}
    for line in out.splitlines():
        name, _, sha = line.partition(" ")
        tips[name] = sha
    return tips


class WorktreeRuntime:
    """Registered as runtime "worktree"."""

    async def prepare(self, *, agent_id: str, repo: str, base: str | None, branch: str | None, root: Path, setup: str | list[str] | None = None, setup_timeout_s: float = 300.0) -> Workspace:
        top, common = await toplevel(repo)
        branch = branch or f"godel/{agent_id}"
        path = root / _repo_slug(top) / agent_id
        async with repo_lock(common):
            try:
                base_commit = (await git(top, "rev-parse", "--verify", "--quiet", f"{base or 'HEAD'}^{{commit}}")).strip()
            except GitError:
                raise InvalidParams(f"base {base or 'HEAD'!r} is not a commit in {top}", {"repo": str(top), "base": base}) from None
            if (await git(top, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False)).strip():
                raise InvalidParams(f"branch {branch} already exists in {top}", {"branch": branch})
            # Other agents' branches are left out: they never hold this agent's commits unless
            # it moved them, and with hundreds of agents they would make every record large.
            refs = {k: v for k, v in (await _branch_tips(str(top))).items() if not k.startswith("godel/")}
            main_head = (await git(top, "rev-parse", "HEAD", check=False)).strip()
            path.parent.mkdir(parents=True, exist_ok=True)
            await git(top, "worktree", "add", "--quiet", "-b", branch, str(path), base_commit)
        ws = Workspace(repo=str(top), common_dir=common, worktree=str(path), branch=branch, base=base or "HEAD", base_commit=base_commit, refs_at_start=refs, main_head_at_start=main_head)
        await self._provision(ws, extra_setup=setup, timeout=setup_timeout_s)
        return ws

    async def _provision(self, ws: Workspace, *, extra_setup: str | list[str] | None, timeout: float) -> None:
        """Apply the repository's own .godel/worktree.yaml (as committed at `base`), then the
        spawn's `setup`."""
        spec: dict[str, Any] = {}
        file = Path(ws.worktree) / PROVISION_FILE
        if file.is_file():
            spec = load_provision(file)
        for rel in spec.get("copy", []):
            src, dst = Path(ws.repo) / rel, Path(ws.worktree) / rel
            if not src.exists():
                continue  # e.g. .env on a machine that has none: not an error
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dst, dirs_exist_ok=True, symlinks=True)
            else:
                shutil.copy2(src, dst)
        if spec.get("port"):
            ws.port = free_port()
            ws.env["GODEL_PORT"] = str(ws.port)
        ws.env.update({str(k): str(v) for k, v in (spec.get("env") or {}).items()})
        commands = _as_list(spec.get("setup")) + _as_list(extra_setup)
        limit = float(spec.get("setup_timeout_s") or timeout)
        outputs = []
        for command in commands:
            outputs.append(await run_setup(command, cwd=ws.worktree, env=ws.env, timeout=limit))
        ws.setup_output = "".join(outputs)[-65536:]

    # -- after a run -------------------------------------------------------------------------

    async def commit_all(self, ws: Workspace, message: str, *, exclude: Sequence[str] = ()) -> str | None:
        """Commit everything left uncommitted in the worktree on its branch; the new sha or None.
        `exclude`: glob pathspecs of a program's scratch files (aider's .aider*) left out."""
        status = await git(ws.worktree, "status", "--porcelain")
        if not status.strip():
            return None
        await git(ws.worktree, "add", "-A", "--", ".", *(f":(exclude,glob){p}" for p in exclude))
        if not (await git(ws.worktree, "diff", "--cached", "--name-only")).strip():
            return None
        await git(ws.worktree, "commit", "--quiet", "--no-verify", "-m", message)
        return (await git(ws.worktree, "rev-parse", "HEAD")).strip()

    async def collect(self, ws: Workspace) -> dict[str, Any]:
        """The work of the run: commits on the branch, changed files, the diff, and whether the
        agent stayed inside its worktree."""
        rng = f"{ws.base_commit}..{ws.branch}"
        log = await git(ws.repo, "log", "--format=%H%x1f%an%x1f%at%x1f%s", rng)
        commits = []
        for line in log.splitlines():
            sha, author, at, subject = (line.split("\x1f") + ["", "", "", ""])[:4]
            commits.append({"sha": sha, "author": author, "time": int(at or 0), "subject": subject})
        files = []
        for line in (await git(ws.repo, "diff", "--name-status", "--no-renames", ws.base_commit, ws.branch)).splitlines():
            status, _, name = line.partition("\t")
            files.append({"status": status, "path": name})
        diff = await git(ws.repo, "diff", "--no-color", ws.base_commit, ws.branch)
        stat = await git(ws.repo, "diff", "--shortstat", ws.base_commit, ws.branch)
        truncated = len(diff.encode()) > MAX_DIFF_BYTES
        if truncated:
            diff = diff.encode()[:MAX_DIFF_BYTES].decode(errors="ignore") + "\n[diff cut at 4 MiB]\n"
        return {"commits": commits, "files": files, "diff": diff, "stat": stat.strip(), "diff_truncated": truncated, "isolation": await self.verify_isolation(ws)}

    async def verify_isolation(self, ws: Workspace) -> dict[str, Any]:
        """Commits only on the agent's branch; its worktree still on that branch; the main
        worktree's HEAD where it was."""
        problems = []
        if Path(ws.worktree).is_dir():
            head = (await git(ws.worktree, "symbolic-ref", "--quiet", "HEAD", check=False)).strip()
            if head != f"refs/heads/{ws.branch}":
                problems.append(f"the agent's worktree left its branch (HEAD is {head or 'detached'})")
        # Branches that now hold one of the agent's commits (one git call, however many branches
        # the repository has: other agents' branches come and go meanwhile).
        mine = (await git(ws.repo, "rev-list", "--reverse", f"{ws.base_commit}..{ws.branch}", check=False)).split()
        if mine:
            holders = await git(ws.repo, "for-each-ref", "--contains", mine[0], "--format=%(refname:short) %(objectname)", "refs/heads", check=False)
            for line in holders.splitlines():
                name, _, sha = line.partition(" ")
                if name != ws.branch and ws.refs_at_start.get(name) != sha:
                    problems.append(f"branch {name} was moved to {sha[:12]}, a commit of this agent")
        main_head = (await git(ws.repo, "rev-parse", "HEAD", check=False)).strip()
        if mine and ws.main_head_at_start and main_head != ws.main_head_at_start and main_head in mine:
            problems.append(f"the main worktree's HEAD moved to {main_head[:12]}, a commit of this agent")
        return {"ok": not problems, "problems": problems}

    # -- clean-up ----------------------------------------------------------------------------

    async def unmerged_commits(self, ws: Workspace) -> int:
        """Commits on the agent's branch that no other local branch holds."""
        out = await git(ws.repo, "rev-list", "--count", ws.branch, "--not", f"--exclude={ws.branch}", "--branches", check=False)
        try:
            return int(out.strip() or 0)
        except ValueError:
            return 0

    async def remove(self, ws: Workspace, *, force: bool = False, keep_branch: bool = False) -> dict[str, Any]:
        result: dict[str, Any] = {"worktree_removed": False, "branch_deleted": False, "branch_kept_reason": None}
        async with repo_lock(ws.common_dir):
            if Path(ws.worktree).exists():
                await git(ws.repo, "worktree", "remove", "--force", ws.worktree, check=False)
                if Path(ws.worktree).exists():  # not a registered worktree any more: plain files
                    shutil.rmtree(ws.worktree, ignore_errors=True)
                await git(ws.repo, "worktree", "prune", check=False)
            result["worktree_removed"] = not Path(ws.worktree).exists()
            exists = (await git(ws.repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{ws.branch}", check=False)).strip()
            if exists and not keep_branch:
                unmerged = await self.unmerged_commits(ws)
                if unmerged and not force:
                    result["branch_kept_reason"] = f"{ws.branch} has {unmerged} unmerged commit(s); use force to delete it"
                else:
                    await git(ws.repo, "branch", "-D", ws.branch)
                    result["branch_deleted"] = True
        return result


async def _is_ancestor(repo: str, a: str, b: str) -> bool:
    result = await trio.run_process(["git", "-C", repo, "merge-base", "--is-ancestor", a, b], check=False, capture_stdout=True, capture_stderr=True)
    return result.returncode == 0


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def load_provision(file: Path) -> dict[str, Any]:
    """Read .godel/worktree.yaml; problems are reported with file, line and field."""
    from godeld.yamlsource import YamlSyntaxError, load_yaml

    try:
        doc = load_yaml(file.read_text(), str(file))
    except YamlSyntaxError as exc:
        raise SetupError(str(exc), {"file": str(file)}) from None
    if doc.problems:
        raise SetupError(str(doc.problems[0]), {"file": str(file)})
    data = doc.value
    if data is None:
        return {}
    allowed = {"copy": list, "setup": (str, list), "setup_timeout_s": (int, float), "port": bool, "env": dict}
    if not isinstance(data, dict):
        raise SetupError(f"{file}: must be a mapping with keys {', '.join(allowed)}", {"file": str(file)})
    for key, value in data.items():
        if key not in allowed:
            raise SetupError(str(doc.problem((key,), f"unknown key {key!r} (known: {', '.join(allowed)})")), {"file": str(file), "field": key})
        if not isinstance(value, allowed[key]) or (isinstance(value, bool) and key == "setup_timeout_s"):
            raise SetupError(str(doc.problem((key,), f"{key} has the wrong type")), {"file": str(file), "field": key})
    return data


async def run_setup(command: str, *, cwd: str, env: dict[str, str], timeout: float) -> str:
    """Run one setup command in the worktree; its output, or SetupError with the output."""
    full_env = {**os.environ, **env}
    output = b""
    with trio.move_on_after(timeout) as scope:
        result = await trio.run_process(["/bin/sh", "-c", command], cwd=cwd, env=full_env, stdin=subprocess.DEVNULL, capture_stdout=True, stderr=subprocess.STDOUT, check=False, start_new_session=True)
        output = result.stdout
    if scope.cancelled_caught:
        raise SetupError(f"setup command timed out after {timeout:g}s: {command}", {"command": command, "output": ""})
    text = output.decode(errors="replace")
    if result.returncode != 0:
        raise SetupError(f"setup command failed (exit {result.returncode}): {command}\n{text[-4000:]}", {"command": command, "exit_code": result.returncode, "output": text[-65536:]})
    return f"$ {command}\n{text}"
