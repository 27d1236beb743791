"""The `commands` rule: shell commands that wreck the machine, the user's account or protected git
branches — seen through wrappers, nesting and obfuscation (the walk in script.py does the seeing).

Denied: deleting `/`, a home, /tmp or a system directory (or everything in one); writing into system
directories or onto disk devices; formatting or repartitioning disks; downloaded or decoded code
run by a shell or interpreter; fork bombs; recursive chmod/chown of `/`; force-pushing or deleting
protected branches; shutting the machine down; `kill -1`; `crontab -r`.
Asked: `sudo` and friends; code or programs computed at run time (`eval "$(...)"`,
`$(some_command) args`); deletions that only go wrong when a variable is empty (`rm -rf "$X/"`);
installing a crontab; force-pushes whose target branch cannot be told.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import re

from godeld.default_plugins.safety.effects import DELETE, META, WRITE, absolute, created_links, effects, emptied, getopt, has, in_system, is_device, root_like, through_links, values, within
from godeld.default_plugins.safety.script import COMPUTED, DECODED, ESCALATION, FETCHED, MARKERS, Analysis, Cmd, analyze, command_of, home_dir, real_root, show, taint_of
from godeld.safety import Action, Decision, Policy

NAME = "commands"
_FORMATTERS = re.compile(r"mkfs(\..*)?|mke2fs|mkswap|mkdosfs|mkntfs|mkfs\w*|wipefs|blkdiscard|zpool|newfs\w*")
_PARTITIONERS = {"fdisk", "sfdisk", "parted", "gdisk", "sgdisk", "cfdisk", "diskutil"}
_POWER = {"shutdown", "reboot", "halt", "poweroff", "kexec"}
_SYSTEMCTL_POWER = {"poweroff", "reboot", "halt", "kexec", "suspend", "hibernate", "hybrid-sleep", "rescue", "emergency", "soft-reboot"}
# Programs a computed command name is tried as: if the arguments would be dangerous for any of
# them, the command is refused whatever the name turns out to be.
_STAND_INS = ("rm", "chmod", "chown", "dd", "shred", "kill", "mv", "find")


class DangerousCommandRule:
    name = NAME

    def check(self, action: Action, policy: Policy) -> Decision | None:
        command, problem = command_of(action)
        if problem:
            return Decision("deny", problem, NAME)
        if command is None:
            return None
        return judge(analyze(command, real_root(policy.worktree)), policy)


def judge(analysis: Analysis, policy: Policy) -> Decision | None:
    if analysis.forkbombs:
        return Decision("deny", f"a fork bomb: `{analysis.forkbombs[0]}` starts copies of itself without end", NAME)
    home = home_dir()
    root = real_root(policy.worktree)
    links = created_links(analysis.cmds)
    ask: Decision | None = None
    for cmd in analysis.cmds:
        found = check_command(cmd, policy, home, root, links)
        if found is None:
            continue
        verdict, reason = found
        decision = Decision(verdict, f"{reason}: `{cmd.display()}`{_where(cmd, root)}", NAME)
        if verdict == "deny":
            return decision
        ask = ask or decision
    if analysis.gave_up:
        return Decision("ask", f"{analysis.gave_up}; a person must look at it", NAME)
    return ask


def _where(cmd: Cmd, root: str | None) -> str:
    notes = []
    nested = [v for v in cmd.via if v not in ("then", "do", "else", "!")]
    if nested:
        notes.append(f"reached through {' › '.join(nested)}")
    if cmd.cwd and cmd.cwd != root:
        notes.append(f"run in {show(cmd.cwd)}")
    return f" ({'; '.join(notes)})" if notes else ""


def check_command(cmd: Cmd, policy: Policy, home: str, root: str | None, links: dict[str, str] | None = None) -> tuple[str, str] | None:
    """("deny"|"ask", reason) for one command, or None."""
    ask: tuple[str, str] | None = None
    program_taint = taint_of(cmd.argv[0]) if cmd.argv else ""
    if program_taint:
        if program_taint in (FETCHED, DECODED):
            return "deny", f"the program to run is {_source(program_taint)}"
        for stand_in in _STAND_INS:
            probe = Cmd([stand_in] + cmd.args, cmd.redirects, cmd.cwd, cmd.via)
            found = _danger(probe, policy, home, root) or _effects(probe, home, root, links or {})
            if found and found[0] == "deny":
                return "deny", f"the program name is only known at run time, and as `{stand_in}` these arguments would be fatal ({found[1]})"
        if program_taint == COMPUTED:
            ask = ("ask", "the program to run is computed at run time, so it cannot be checked in advance")
    if cmd.code_taint in (FETCHED, DECODED):
        return "deny", f"runs code {_source(cmd.code_taint)}; it cannot be checked and may do anything"
    found = _danger(cmd, policy, home, root)
    if found and found[0] == "deny":
        return found
    ask = ask or found
    found = _effects(cmd, home, root, links or {})
    if found and found[0] == "deny":
        return found
    ask = ask or found
    if cmd.code_taint == COMPUTED:
        ask = ask or ("ask", "runs code that is built at run time (from another command's output), so it cannot be checked in advance")
    escalation = [v for v in cmd.via if v in ESCALATION] or ([cmd.prog] if cmd.prog in ESCALATION else [])
    if escalation:
        ask = ask or ("ask", f"runs with another user's privileges ({escalation[0]}); a person must approve")
    return ask


def _source(taint: str) -> str:
    return "downloaded from the network" if taint == FETCHED else "hidden by an encoding (base64 -d, xxd -r, rev, ...)"


# -- by program -----------------------------------------------------------------------------------


def _danger(cmd: Cmd, policy: Policy, home: str, root: str | None) -> tuple[str, str] | None:
    prog, args = cmd.prog, cmd.args
    if prog in ("rm",) and "--no-preserve-root" in args:
        return "deny", "rm --no-preserve-root lets rm delete the filesystem root"
    if _FORMATTERS.fullmatch(prog):
        return "deny", f"{prog} formats or wipes a disk"
    if prog in _PARTITIONERS and not ({"-l", "--list", "-s", "--show", "print", "list", "info"} & set(args)):
        return "deny", f"{prog} changes a disk's partitions"
    if prog in _POWER or (prog == "systemctl" and _SYSTEMCTL_POWER & set(args)) or (prog in ("init", "telinit") and args[:1] and args[0] in ("0", "6", "1", "s", "S")):
        return "deny", "shuts down or restarts the machine"
    if prog == "kill" and _kills_everything(args):
        return "deny", "kill -1 signals every process of the user (the daemon and all agents included)"
    if prog == "killall5":
        return "deny", "killall5 signals every process"
    if prog == "crontab":
        opts, pos = getopt(args, "u", ())
        if has(opts, "-r"):
            return "deny", "crontab -r deletes all of the user's scheduled jobs"
        if not has(opts, "-l", "-e") and (pos or not args):
            return "ask", "installs a crontab: jobs that would run outside any agent's control"
    if prog in ("pkill", "killall") and "-u" in args:
        opts, pos = getopt(args, "usgPtUGFnoc", ("user", "signal"))
        if not pos:
            return "deny", f"{prog} -u signals every process of a user (the daemon and all agents included)"
    if prog in ("docker", "podman", "nerdctl") and args[:1] and args[0] in ("run", "create"):
        return _container(args[1:], home, root)
    if prog == "git":
        return _git(cmd, policy, root)
    return None


def _container(args: list[str], home: str, root: str | None) -> tuple[str, str] | None:
    """A container given the host's root, a system directory, a home or the docker socket can
    do anything to the host; what runs inside cannot be checked from here."""
    opts, _ = getopt(args, "veipuwlhnm", ("volume", "mount", "env", "pid", "network", "net", "name", "user", "workdir", "label", "hostname", "memory", "entrypoint", "privileged"))
    if has(opts, "--privileged") or any(v == "host" for v in values(opts, "--pid")):
        return "ask", "runs a privileged container (it can reach the host); a person must approve"
    sources = [v.split(":", 1)[0] for v in values(opts, "-v", "--volume")]
    for spec in values(opts, "--mount"):
        sources += [kv.split("=", 1)[1] for kv in spec.split(",") if kv.startswith(("source=", "src="))]
    for source in sources:
        path = absolute(source, "/") if source.startswith(("/", "~")) else None
        if path and not (root and within(path, root)) and (root_like(path, home) or in_system(path) or path.endswith("docker.sock")):
            return "ask", f"gives a container the host's {path}; what runs inside cannot be checked, so a person must approve"
    return None


def _kills_everything(args: list[str]) -> bool:
    """kill [-SIG | -s SIG | -n NUM] PID...: is one of the pids -1 (every process)?"""
    i = 0
    if args[:1] and args[0] in ("-s", "-n"):
        i = 2
    elif args[:1] and args[0].startswith("-") and args[0] not in ("--", "-1"):
        i = 1  # the signal: -9, -KILL, -SIGTERM
    elif args[:1] == ["-1"] and len(args) > 1:
        i = 1  # kill -1 PID: signal 1 (HUP) to PID
    pids = [a for a in args[i:] if a != "--"]
    return "-1" in pids


# -- what a command writes -------------------------------------------------------------------------


def _effects(cmd: Cmd, home: str, root: str | None, links: dict[str, str]) -> tuple[str, str] | None:
    ask = None
    recursive = any(a in ("-R", "--recursive") or (a.startswith("-") and not a.startswith("--") and "R" in a) for a in cmd.args)
    for kind, target in effects(cmd):
        path = absolute(target, cmd.cwd)
        if path is not None and links and cmd.prog != "ln":  # ln's own link name is not followed
            path = through_links(path, links, target.endswith("/") or kind != DELETE)
        found = _effect(kind, path, recursive, home, root)
        if found:
            return "deny", found
        if any(m in target for m in MARKERS):
            maybe = emptied(target)
            found = _effect(kind, absolute(maybe, cmd.cwd), recursive, home, root) if maybe.strip() else None
            if found:
                ask = ask or ("ask", f"if the run-time part of `{show(target)}` is empty (an unset variable, no output), this {found[0].lower()}{found[1:]}")
    return ask


def _effect(kind: str, path: str | None, recursive: bool, home: str, root: str | None) -> str | None:
    if path is None or (root and within(path, root)):
        return None
    if is_device(path) and kind != META:
        return f"writes onto the device {path} (destroys a disk's data)"
    if kind == DELETE and root_like(path, home):
        return f"deletes {_describe(path, home)}"
    if kind == META and (path == "/" or (recursive and root_like(path, home))):
        return f"changes permissions or ownership of {_describe(path, home)}"
    if in_system(path) and not (home not in ("", "/") and within(path, home)):  # /root may be the home
        verb = {WRITE: "writes into", DELETE: "deletes from", META: "changes permissions in"}[kind]
        return f"{verb} a system directory ({path})"
    return None


def _describe(path: str, home: str) -> str:
    if path == "/":
        return "the whole filesystem"
    base = path.rsplit("/", 1)[0] or "/"
    if home and path.rstrip("/") == home.rstrip("/"):
        return f"the home directory ({path})"
    if "*" in path.rsplit("/", 1)[-1]:
        return f"everything in {base if base != '/' else 'the filesystem root'} ({path})"
    return f"{path} (a vital directory)"


# -- git --------------------------------------------------------------------------------------------


def _git(cmd: Cmd, policy: Policy, root: str | None) -> tuple[str, str] | None:
    args = cmd.args
    i = 0
    while i < len(args) and args[i].startswith("-"):
        i += 2 if args[i] in ("-C", "-c", "--git-dir", "--work-tree", "--namespace", "--exec-path") else 1
    if i >= len(args):
        return None
    sub, rest = args[i], args[i + 1 :]
    protected = policy.protected_branches
    if not protected:
        return None

    def is_protected(ref: str) -> bool:
        name = ref.removeprefix("refs/heads/")
        return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(p, name) for p in protected)

    if sub == "push":
        return _push(rest, is_protected, cmd.cwd or root, root)
    if sub == "branch":
        opts, pos = getopt(rest, "tu", ("set-upstream-to", "track", "sort", "format", "points-at", "contains", "merged", "no-merged"))
        if has(opts, "-d", "-D", "--delete") and any(is_protected(p) for p in pos):
            return "deny", f"deletes the protected branch {next(p for p in pos if is_protected(p))}"
        if has(opts, "-f", "--force") and pos and is_protected(pos[0]):
            return "deny", f"moves the protected branch {pos[0]}"
        if has(opts, "-m", "-M", "--move", "-c", "-C", "--copy") and pos and (is_protected(pos[-1]) or (len(pos) == 2 and is_protected(pos[0]) and has(opts, "-m", "-M", "--move"))):
            return "deny", "renames or overwrites a protected branch"
    if sub == "update-ref":
        _, pos = getopt(rest, "m", ())
        if pos and pos[0].startswith("refs/heads/") and is_protected(pos[0]):
            return "deny", f"rewrites the protected branch {pos[0]}"
    if sub in ("checkout", "switch"):
        opts, _ = getopt(rest, "bBcC", ("orphan",))
        forced = values(opts, "-B", "-C", "--force-create")
        if any(is_protected(b) for b in forced):
            return "deny", "resets a protected branch"
    return None


def _push(rest: list[str], is_protected, cwd: str | None, root: str | None) -> tuple[str, str] | None:
    opts, pos = getopt(rest, "o", ("repo", "push-option", "receive-pack", "exec", "signed"))
    forced = has(opts, "-f", "--force", "--force-with-lease", "--mirror")
    deleting = has(opts, "-d", "--delete")
    if has(opts, "--mirror"):
        return "deny", "git push --mirror overwrites and deletes every remote branch, protected ones included"
    if forced and has(opts, "--all", "--branches"):
        return "deny", "force-pushes every branch, protected ones included"
    specs = pos[1:]
    for spec in specs:
        plus = spec.startswith("+")
        src, colon, dst = spec.lstrip("+").partition(":")
        if not colon:
            dst = src
        if dst in ("HEAD", "@"):
            dst = _current_branch(cwd, root) or ""
            if not dst and (forced or plus):
                return "ask", "force-pushes HEAD, and the current branch cannot be told"
        if any(m in dst for m in MARKERS) and (forced or plus or deleting):
            return "ask", "force-pushes or deletes a branch whose name is only known at run time"
        if not dst or not is_protected(dst):
            continue
        name = dst.removeprefix("refs/heads/")
        what = f"the protected branch {name}" if not any(c in name for c in "*?[") else f"{name}, which covers protected branches"
        if forced or plus:
            return "deny", f"force-pushes to {what}"
        if deleting or (colon and not src):
            return "deny", f"deletes {what} on the remote"
    if not specs and forced:
        branch = _current_branch(cwd, root)
        if branch is None:
            return "ask", "force-pushes the current branch, and which branch that is cannot be told"
        if is_protected(branch):
            return "deny", f"force-pushes to the protected branch {branch}"
    return None


def _current_branch(cwd: str | None, root: str | None) -> str | None:
    """The branch checked out in the repository around `cwd`, read from its HEAD file."""
    start = cwd if cwd and cwd.startswith("/") and not any(m in cwd for m in MARKERS) else root
    if not start:
        return None
    directory = start
    for _ in range(32):
        dot_git = os.path.join(directory, ".git")
        try:
            if os.path.isfile(dot_git):
                with open(dot_git, encoding="utf-8", errors="replace") as f:
                    line = f.read(4096).strip()
                if not line.startswith("gitdir:"):
                    return None
                gitdir = line[len("gitdir:") :].strip()
                head = os.path.join(directory, gitdir, "HEAD")
            elif os.path.isdir(dot_git):
                head = os.path.join(dot_git, "HEAD")
            else:
                parent = posixpath.dirname(directory)
                if parent == directory:
                    return None
                directory = parent
                continue
            with open(head, encoding="utf-8", errors="replace") as f:
                ref = f.read(4096).strip()
        except (OSError, ValueError):
            return None
        return ref[len("ref: refs/heads/") :] if ref.startswith("ref: refs/heads/") else None
    return None
