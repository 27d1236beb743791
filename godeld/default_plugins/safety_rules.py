"""The built-in safety rules (veto model, see godeld.safety): tool lists, the path sandbox,
dangerous commands (seen through common obfuscation) and the network allowlist.

Static analysis of shell cannot be complete: what cannot be decided with confidence (a command
built at run time by `eval "$(...)"`) is answered "ask", never "allow".
"""

from __future__ import annotations

import os
import re
import shlex

from godeld import hookimpl
from godeld.safety import Action, Decision, Policy

FILE_TOOLS = {"read_file": "path", "write_file": "path", "edit_file": "path", "list_dir": "path", "search": "path"}
WRITE_TOOLS = {"write_file", "edit_file"}


class ToolListRule:
    def check(self, action: Action, policy: Policy) -> Decision | None:
        if action.tool in policy.denied_tools:
            return Decision("deny", f"tool {action.tool} is denied by policy", "tools")
        if policy.allowed_tools is not None and action.tool not in policy.allowed_tools:
            return Decision("deny", f"tool {action.tool} is not among this agent's allowed tools ({', '.join(sorted(policy.allowed_tools)) or 'none'})", "tools")
        if action.tool in policy.ask_tools:
            return Decision("ask", f"tool {action.tool} needs a person's approval", "tools")
        return None


class PathSandboxRule:
    """File tools stay inside the worktree: no `..` escapes, absolute paths elsewhere, or
    symlinks that lead out; and no writes into git's own metadata."""

    def check(self, action: Action, policy: Policy) -> Decision | None:
        key = FILE_TOOLS.get(action.tool)
        if key is None or policy.worktree is None or not isinstance(action.args, dict):
            return None
        path = action.args.get(key, ".")
        if not isinstance(path, str):
            return Decision("deny", f"{key} must be a string", "paths")
        root = os.path.realpath(policy.worktree)
        full = os.path.realpath(os.path.join(root, path))
        if full != root and not full.startswith(root + os.sep):
            return Decision("deny", f"{path} is outside the agent's worktree", "paths")
        rel = os.path.relpath(full, root)
        if action.tool in WRITE_TOOLS and (rel == ".git" or rel.startswith(".git" + os.sep)):
            return Decision("deny", "writing git's metadata (.git) is not allowed", "paths")
        return None


# -- commands -----------------------------------------------------------------------------

_SYSTEM_DIRS = ("/etc", "/boot", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/var", "/sys", "/proc", "/dev", "/root", "/home", "/opt")
_SHELLS = {"sh", "bash", "zsh", "dash", "ksh", "fish", "busybox"}
_WRAPPERS = {"sudo", "doas", "env", "command", "builtin", "exec", "nohup", "nice", "ionice", "timeout", "time", "stdbuf", "xargs", "setsid", "chroot", "strace", "watch"}
_INTERPRETERS = {"python", "python3", "perl", "ruby", "node", "php"}
_FORK_BOMB = re.compile(r"(\w+|:)\s*\(\)\s*\{[^}]*\1\s*\|\s*\1\s*&[^}]*\}\s*;?\s*\1")


def _unquote_ansi(text: str) -> str:
    """$'\\x72\\x6d' → rm (ANSI-C quoting)."""
    def decode(m: re.Match) -> str:
        try:
            return "'" + m.group(1).encode().decode("unicode_escape").replace("'", "") + "'"
        except UnicodeDecodeError:
            return m.group(0)

    return re.sub(r"\$'((?:[^'\\]|\\.)*)'", decode, text)


def _normalize(command: str) -> str:
    text = _unquote_ansi(command)
    text = re.sub(r"\$\{?IFS\}?", " ", text)
    return text


def _split_commands(text: str) -> list[list[str]]:
    """Simple commands, split on ; && || | & and newlines, with quotes removed; `$(...)` and
    backticks are analysed as commands of their own."""
    inner = re.findall(r"\$\(([^()]*)\)|`([^`]*)`", text)
    out: list[list[str]] = []
    for a, b in inner:
        out.extend(_split_commands(a or b))
    try:
        lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|\n()")
        lexer.whitespace = " \t\r"  # a newline separates commands
        lexer.whitespace_split = True
        lexer.commenters = ""
        tokens = list(lexer)
    except ValueError:  # unbalanced quotes: fall back to plain splitting
        tokens = re.split(r"\s+|(?=[;&|])|(?<=[;&|])", text)
    current: list[str] = []
    for token in tokens:
        if token and set(token) <= set(";&|\n{}()"):
            if current:
                out.append(current)
            current = []
        elif token:
            current.append(token)
    if current:
        out.append(current)
    return out


def _program(words: list[str], variables: dict[str, str]) -> tuple[str, list[str]]:
    """Skip assignments and wrappers (sudo, env, timeout 5, ...); resolve $var and paths."""
    i = 0
    while i < len(words):
        w = words[i]
        if re.fullmatch(r"[A-Za-z_]\w*=.*", w):
            name, _, value = w.partition("=")
            variables[name] = value
            i += 1
            continue
        w = _expand(w, variables)
        base = os.path.basename(w.lstrip("\\"))
        if base in _WRAPPERS:
            i += 1
            while i < len(words) and (words[i].startswith("-") or re.fullmatch(r"[\d.]+[smhd]?", words[i]) or re.fullmatch(r"[A-Za-z_]\w*=.*", words[i])):
                i += 1
            continue
        return base, [_expand(x, variables) for x in words[i + 1 :]]
    return "", []


def _expand(word: str, variables: dict[str, str]) -> str:
    def sub(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        if name in variables:
            return variables[name]
        return {"HOME": "~"}.get(name, m.group(0))

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", sub, word)


def _is_root_like(path: str) -> bool:
    p = path.rstrip("/") or "/"
    if p in ("/", "/*", "~", "~/", "~/*", "$HOME", "/.", "/..") or p.startswith("~/.."):
        return True
    return p in _SYSTEM_DIRS or any(p == d + "/*" for d in _SYSTEM_DIRS)


def _danger(program: str, args: list[str], policy: Policy, depth: int) -> str | None:
    flags = "".join(a[1:] for a in args if a.startswith("-") and not a.startswith("--"))
    long_flags = {a for a in args if a.startswith("--")}
    targets = [a for a in args if not a.startswith("-")]
    if program == "rm":
        recursive = "r" in flags.lower() or "--recursive" in long_flags
        if recursive and any(_is_root_like(t) for t in targets):
            return "recursive delete of the filesystem root, a home or a system directory"
        if any(_is_root_like(t) for t in targets) and "--no-preserve-root" in long_flags:
            return "rm --no-preserve-root"
    if program.startswith("mkfs") or program in ("mke2fs", "wipefs", "fdisk", "sfdisk", "parted"):
        return f"{program} formats or repartitions a disk"
    if program in ("dd",) and any(a.startswith("of=/dev/") and not a.startswith("of=/dev/null") for a in args):
        return "dd writing to a device"
    if program == "shred" and any(t.startswith("/dev/") for t in targets):
        return "shred of a device"
    if program in ("shutdown", "reboot", "halt", "poweroff") or (program == "systemctl" and set(targets) & {"poweroff", "reboot", "halt"}):
        return f"{program} stops the machine"
    if program in ("chmod", "chown", "chgrp") and ("R" in flags or "--recursive" in long_flags) and any(_is_root_like(t) for t in targets):
        return f"recursive {program} of the filesystem root or a system directory"
    if program == "kill" and "-1" in args:
        return "kill -1 signals every process"
    if program == "find" and targets and _is_root_like(targets[0]) and ("-delete" in args or "-exec" in args):
        return "find deleting across the filesystem"
    if program == "crontab" and "-r" in args:
        return "crontab -r deletes every scheduled job"
    if program == "git" and targets[:1] == ["push"]:
        forced = bool({"--force", "--force-with-lease", "--mirror"} & {a.split("=")[0] for a in long_flags}) or "f" in flags
        refs = targets[2:] if len(targets) > 2 else []
        for ref in refs:
            plus = ref.startswith("+")
            dest = ref.lstrip("+").split(":")[-1].removeprefix("refs/heads/")
            if (forced or plus) and dest in policy.protected_branches:
                return f"force-push to protected branch {dest}"
        if forced and "--all" in long_flags:
            return "force-push of every branch"
    if program in _SHELLS | {"eval"} and depth < 4:
        code = None
        if program == "eval":
            code = " ".join(args)
        elif "-c" in args and args.index("-c") + 1 < len(args):
            code = args[args.index("-c") + 1]
        if code is not None:
            return _scan(code, policy, depth + 1)
    if program in _INTERPRETERS or re.fullmatch(r"python3?(\.\d+)?", program):
        code = " ".join(args)
        if re.search(r"rmtree\(\s*['\"](/|~|/\*)['\"]|os\.system\(|subprocess\.|system\(", code):
            inner = re.findall(r"(?:os\.system|system|subprocess\.\w+)\(\s*\[?['\"]([^'\"]+)['\"]", code)
            if re.search(r"rmtree\(\s*['\"](/|~)['\"]", code):
                return "an interpreter deleting the filesystem root or a home"
            for cmd in inner:
                reason = _scan(cmd, policy, depth + 1)
                if reason:
                    return reason
    return None


def _scan(command: str, policy: Policy, depth: int = 0) -> str | None:
    text = _normalize(command)
    # For the pattern checks, single-quoted text is literal data ('curl x | sh' in a message),
    # not code; the word-by-word analysis below still sees it where it is an argument.
    literal_free = re.sub(r"'[^']*'", "''", text)
    compact = re.sub(r"\s+", "", literal_free)
    if _FORK_BOMB.search(compact) or _FORK_BOMB.search(literal_free):
        return "a fork bomb"
    if re.search(r">\s*/dev/(sd|nvme|hd|vd|xvd|mmcblk|disk)", literal_free):
        return "writing to a raw disk device"
    for target in re.findall(r">>?\s*([^\s;&|]+)", literal_free):
        if any(target.rstrip("/") == d or target.startswith(d + "/") for d in _SYSTEM_DIRS if d not in ("/dev",)):
            return f"writing into a system directory ({target})"
    # Downloaded code piped into an interpreter, or run through process substitution.
    if re.search(r"\b(curl|wget|fetch)\b[^|;&]*\|\s*(sudo\s+)?(ba|z|da|k)?sh\b|\b(curl|wget)\b[^|;&]*\|\s*(sudo\s+)?(python3?|perl|ruby|node)\b", literal_free):
        return "downloaded code piped into a shell or interpreter"
    if re.search(r"(ba|z)?sh\s+<\(\s*(curl|wget)", literal_free) or re.search(r"(ba|z)?sh\s+-c\s+[\"']?\$\(\s*(curl|wget)", literal_free):
        return "downloaded code run by a shell"
    if re.search(r"base64\s+(-d|--decode)[^|]*\|\s*(ba|z|da)?sh\b", literal_free):
        return "decoded data piped into a shell"
    variables: dict[str, str] = {}
    for words in _split_commands(text):
        program, args = _program(words, variables)
        if not program:
            continue
        reason = _danger(program, args, policy, depth)
        if reason:
            return reason
    # `echo / | xargs rm -rf`: the input of xargs becomes the arguments.
    m = re.search(r"echo\s+([^|;&]+)\|\s*xargs\s+(.*)", text)
    if m:
        piped = m.group(1).strip().strip("'\"")
        for words in _split_commands(m.group(2)):
            program, args = _program(words, dict(variables))
            reason = _danger(program, args + [piped], policy, depth)
            if reason:
                return reason
    return None


class DangerousCommandRule:
    def check(self, action: Action, policy: Policy) -> Decision | None:
        if action.tool != "run_command" or not isinstance(action.args, dict):
            return None
        command = action.args.get("command")
        if not isinstance(command, str):
            return Decision("deny", "command must be a string", "commands")
        reason = _scan(command, policy)
        if reason:
            return Decision("deny", f"dangerous command: {reason}", "commands")
        if re.search(r"(^|[;&|(]\s*)(\$\(|`)", command.strip()):
            return Decision("ask", "the program to run is computed at run time ($(...) or backticks in command position); it cannot be checked in advance", "commands")
        if re.search(r"\beval\b[^;&|]*\$\(|\beval\b[^;&|]*`", command):
            return Decision("ask", "the command builds another command at run time (eval of a substitution); it cannot be checked in advance", "commands")
        return None


# -- network -------------------------------------------------------------------------------

_URL = re.compile(r"\b(?:https?|ftp|ssh|git|wss?)://(?:[^@/\s]+@)?([A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\])")
_SCP = re.compile(r"(?:^|\s)(?:[\w.-]+@)([A-Za-z0-9.-]+):")
_NET_TOOLS = {"nc", "ncat", "netcat", "telnet"}
_LOCAL = {"localhost", "127.0.0.1", "::1", "[::1]", "0.0.0.0"}


def _host_allowed(host: str, allow: frozenset[str]) -> bool:
    host = host.lower().strip("[]")
    if host in _LOCAL or host.startswith("127."):
        return True
    for pattern in allow:
        pattern = pattern.lower()
        if host == pattern or (pattern.startswith("*.") and (host.endswith(pattern[1:]) or host == pattern[2:])):
            return True
    return False


class NetworkAllowRule:
    def check(self, action: Action, policy: Policy) -> Decision | None:
        if policy.network_allow is None or action.tool != "run_command" or not isinstance(action.args, dict):
            return None
        command = action.args.get("command")
        if not isinstance(command, str):
            return None
        hosts = set(_URL.findall(command)) | set(_SCP.findall(command))
        for words in _split_commands(_normalize(command)):
            program, args = _program(words, {})
            plain = [a for a in args if not a.startswith("-")]
            if program in _NET_TOOLS and plain:
                hosts.add(plain[0])
            if program in ("ssh", "scp", "rsync", "sftp") and plain:
                hosts.add(plain[0].split("@")[-1].split(":")[0])
        for host in sorted(hosts):
            if host and not _host_allowed(host, policy.network_allow):
                return Decision("deny", f"network access to {host} is not in safety.network_allow", "network")
        return None


@hookimpl
def register_safety_rules(register):
    register("tools", ToolListRule())
    register("paths", PathSandboxRule())
    register("commands", DangerousCommandRule())
    register("network", NetworkAllowRule())
