"""The `paths` rule: an agent's file tools and commands stay inside its worktree.

File tools (read_file, write_file, edit_file, list_dir, search — and CLI agents' Read/Write/Edit/...)
must name a path inside the worktree once symlinks are resolved (`..`, absolute paths and symlinks
that lead out are refused, also for files that do not exist yet). Commands must not write, delete
or re-permission anything outside it — temp directories excepted — as far as their targets can be
seen (redirections, rm/mv/cp/tee/chmod/ln/truncate/..., after `cd`). Reading outside through a
command (`cat /etc/hostname`) is fine. Nothing may write into the worktree's git metadata
(`.git`): godel reads the agent's work from it, and its hooks and config run code for the person.
Without a worktree (a dry-run check) only the git-metadata part applies.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath

from godeld.default_plugins.safety.effects import DELETE, HARMLESS_DEVICE_DIRS, HARMLESS_DEVICES, WRITE, absolute, created_links, effects, getopt, has, has_glob, root_like, scratch, through_links, within
from godeld.default_plugins.safety.script import GIT_EXEC_KEYS, MARKERS, Cmd, analyze, command_of, home_dir, real_root, show
from godeld.safety import Action, Decision, Policy

NAME = "paths"

# tool: (argument that holds the path, its default, whether the tool writes)
FILE_TOOLS: dict[str, tuple[str, str | None, bool]] = {
    "read_file": ("path", None, False),
    "write_file": ("path", None, True),
    "edit_file": ("path", None, True),
    "list_dir": ("path", ".", False),
    "search": ("path", ".", False),
    # CLI agents' own tools
    "Read": ("file_path", None, False),
    "Write": ("file_path", None, True),
    "Edit": ("file_path", None, True),
    "MultiEdit": ("file_path", None, True),
    "NotebookEdit": ("notebook_path", None, True),
    "Glob": ("path", ".", False),
    "Grep": ("path", ".", False),
    "LS": ("path", ".", False),
}


class PathSandboxRule:
    name = NAME

    def check(self, action: Action, policy: Policy) -> Decision | None:
        if action.tool in FILE_TOOLS:
            return check_file_tool(action, policy)
        command, _problem = command_of(action)  # a malformed command is the commands rule's to refuse
        if command is None:
            return None
        return check_command(command, policy)


def check_file_tool(action: Action, policy: Policy) -> Decision | None:
    key, default, writes = FILE_TOOLS[action.tool]
    if not isinstance(action.args, dict):
        return Decision("deny", f"{action.tool}: the arguments are not an object, so they cannot be checked", NAME)
    path = action.args.get(key, default)
    if path is None:
        return None  # the tool itself refuses a missing path
    if not isinstance(path, str):
        return Decision("deny", f"{action.tool}: `{key}` must be a string (got {type(path).__name__})", NAME)
    if "\x00" in path:
        return Decision("deny", f"{action.tool}: the path contains a NUL byte", NAME)
    root = real_root(policy.worktree)
    if root is None:
        if writes and not path.startswith("/") and _is_git_meta(posixpath.normpath(path)):
            return Decision("deny", f"{action.tool}: `{path}` is git's metadata (.git); agents must not rewrite it", NAME)
        return None
    try:
        full = os.path.realpath(os.path.join(root, path))
    except (OSError, ValueError) as exc:
        return Decision("deny", f"{action.tool}: `{path}` cannot be resolved ({exc})", NAME)
    if not within(full, root):
        lexical = posixpath.normpath(posixpath.join(root, path))
        how = " through a symlink" if within(lexical, root) else ""
        return Decision("deny", f"{action.tool}: `{path}` leads outside the agent's worktree{how} (to {full})", NAME)
    if writes and _is_git_meta(full[len(root) :].lstrip("/")):
        return Decision("deny", f"{action.tool}: `{path}` is git's metadata (.git); agents must not rewrite it", NAME)
    return None


def _is_git_meta(relative: str) -> bool:
    """Whether a worktree-relative path is .git or inside it (a wildcard that matches .git counts)."""
    first = relative.split("/", 1)[0]
    if first.lower() == ".git":
        return True
    # A shell wildcard matches a dot-file only when it starts with a dot itself (`.*`, `.g?t`).
    return first.startswith(".") and has_glob(first) and fnmatch.fnmatchcase(".git", first)


def check_command(command: str, policy: Policy) -> Decision | None:
    root = real_root(policy.worktree)
    analysis = analyze(command, root)
    home = home_dir()
    ask: Decision | None = None
    links = created_links(analysis.cmds)
    for cmd in analysis.cmds:
        for kind, target in effects(cmd):
            found = _check_target(kind, target, cmd, root, home, links)
            if found is None:
                continue
            verdict, reason = found
            decision = Decision(verdict, f"{reason}: `{cmd.display()}`", NAME)
            if verdict == "deny":
                return decision
            ask = ask or decision
        if ask is None and cmd.prog == "git" and _sets_exec_config(cmd.args):
            ask = Decision("ask", f"changes a git setting that makes git run a program; the repository's config is shared with the person's own checkout: `{cmd.display()}`", NAME)
    return ask


def _check_target(kind: str, target: str, cmd: Cmd, root: str | None, home: str, links: dict[str, str]) -> tuple[str, str] | None:
    verb = {WRITE: "writes", DELETE: "deletes"}.get(kind, "changes permissions of")
    if root is None:
        if not target.startswith("/") and cmd.cwd is None and _is_git_meta(posixpath.normpath(target)):
            return "deny", f"{verb} git's metadata (.git)"
        return None
    path = absolute(target, cmd.cwd)
    if path is None:
        if target[0] in MARKERS:
            return None  # a place only known at run time (`xargs rm` of a listing): not judged
        return "ask", f"{verb} `{target}` after changing to a directory only known at run time"
    follow = target.endswith(("/", "/.")) or kind != DELETE
    if cmd.prog != "ln":  # ln's own link name is not followed
        path = through_links(path, links, follow)
    real = _resolve(path, kind, follow)
    if within(real, root):
        relative = real[len(root) :].lstrip("/")
        if kind == DELETE and not relative:
            return "deny", "deletes the whole worktree (and git's metadata with it)"
        if _is_git_meta(relative):
            return "deny", f"{verb} git's metadata (.git); agents must not rewrite it"
        if kind == DELETE and relative == "*" and (cmd.prog == "find" or any(v.startswith("find") for v in cmd.via)):
            return "deny", "deletes everything in the worktree, git's metadata (.git) included (find matches dot-files)"
        return None
    if kind == WRITE and (real in HARMLESS_DEVICES or real.startswith(HARMLESS_DEVICE_DIRS)):
        return None
    if scratch(real, root) and not within(real, posixpath.dirname(root)) and not root_like(real, home):
        return None  # temp space (but not the worktree's siblings: other agents' worktrees)
    where = f" ({real})" if real != target else ""
    return "deny", f"{verb} `{show(target)}` outside the agent's worktree{where}"


def _resolve(path: str, kind: str, follow: bool) -> str:
    """Where `path` really is. Deleting `link` removes the link itself, so only its directory is
    resolved; writing through it, or naming it `link/`, follows it."""
    try:
        if kind == DELETE and not follow and path != "/":
            parent, name = posixpath.split(path)
            return posixpath.join(os.path.realpath(parent), name)
        return os.path.realpath(path)
    except (OSError, ValueError):
        return path


def _sets_exec_config(args: list[str]) -> bool:
    i = 0
    while i < len(args) and args[i].startswith("-"):
        i += 2 if args[i] in ("-C", "-c", "--git-dir", "--work-tree") else 1
    if i >= len(args) or args[i] != "config":
        return False
    opts, pos = getopt(args[i + 1 :], "f", ("file", "blob", "type", "default"))
    if has(opts, "--get", "--get-all", "--get-regexp", "--list", "-l", "--show-origin", "--get-urlmatch", "--unset", "--unset-all", "--remove-section"):
        return False
    if pos[:1] in (["get"], ["list"], ["unset"]):
        return False
    keys = pos[1:2] if pos[:1] == ["set"] else pos[:1]
    return bool(keys) and bool(GIT_EXEC_KEYS.fullmatch(keys[0])) and (len(pos) >= 2 or has(opts, "--add", "--replace-all"))
