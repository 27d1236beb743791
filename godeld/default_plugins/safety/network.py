"""The `network` rule: with `safety.network_allow` set, commands may only reach the hosts listed.

Hosts are taken from URLs anywhere in a command's arguments (and in inline interpreter code),
from the operands of curl/wget/httpie, git clone/fetch/pull/push/remote add with a URL or an
scp-like `git@host:path`, ssh/scp/rsync/sftp `user@host:`, nc/ncat/telnet HOST PORT, socat
addresses and bash's /dev/tcp/HOST/PORT. Allowed: exact names, `*.example.com` (example.com and any
subdomain) and always the local machine (localhost, 127.0.0.0/8, ::1).

Not seen: a named git remote (`git push origin`) is not resolved to its URL; programs that reach
a built-in default host (`pip install x` → pypi.org) or a host from their own config; a script's
own connections. A host known only at run time (`curl https://$HOST/`) is answered "ask".
"""

from __future__ import annotations

import ipaddress
import re

from godeld.default_plugins.safety.effects import getopt, values
from godeld.default_plugins.safety.script import MARKERS, Cmd, analyze, command_of, real_root, show
from godeld.safety import Action, Decision, Policy

NAME = "network"

_URL = re.compile(
    r"\b(https?|ftps?|sftp|ssh|git|git\+ssh|git\+https?|ssh\+git|wss?|rsync|telnet|tcp|udp|ldaps?|smb|redis|rediss|postgres(?:ql)?|mysql|mongodb(?:\+srv)?|amqps?|mqtt|socks[45]h?|gopher|dict|imaps?|pop3s?|smtps?)://([^/\s?#'\"\\<>|;]*)",
    re.I,
)
# Programs whose arguments are data, not addresses (a URL in a commit message or a grep pattern
# is not a connection) — unless their output is fed to another program.
_DATA_PROGRAMS = {"echo", "printf", "grep", "egrep", "fgrep", "rg", "ag", "ack", "sed", "awk", "cat", "head", "tail", "wc", "sort", "uniq", "tr", "cut", "jq", "yq", "less", "more", "touch", "mkdir", "ls", "test", "[", "true", "false", ":", "diff", "cmp", "tee", "mv", "cp", "rm"}
_GIT_DATA = {"commit", "tag", "log", "show", "diff", "grep", "notes", "blame", "status", "add", "rm", "mv", "stash", "shortlog"}
_HTTP_CLIENTS = {"curl", "wget", "http", "https", "xh", "xhs", "aria2c", "httpie"}
_SSH_LIKE = {"ssh", "mosh", "autossh"}
_COPY_LIKE = {"scp", "rsync", "sftp", "sshfs", "rclone"}
_SOCKET_TOOLS = {"nc", "ncat", "netcat", "telnet", "ftp", "tftp", "lftp", "openssl"}
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


class NetworkAllowRule:
    name = NAME

    def check(self, action: Action, policy: Policy) -> Decision | None:
        if policy.network_allow is None:
            return None
        command, _problem = command_of(action)
        if command is None:
            return None
        ask: Decision | None = None
        for cmd in analyze(command, real_root(policy.worktree)).cmds:
            for host in hosts_of(cmd):
                if any(m in host for m in MARKERS):
                    ask = ask or Decision("ask", f"reaches a host only known at run time ({show(host)}), so it cannot be checked against safety.network_allow: `{cmd.display()}`", NAME)
                elif not host_allowed(host, policy.network_allow):
                    return Decision("deny", f"reaches {host}, which is not in safety.network_allow: `{cmd.display()}`", NAME)
        return ask


def host_allowed(host: str, allow) -> bool:
    host = host.lower().strip("[]").rstrip(".")
    if not host or host in _LOCAL_NAMES or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
        if ip.is_loopback or ip.is_unspecified:
            return True
    except ValueError:
        pass
    for pattern in allow:
        pattern = str(pattern).lower().rstrip(".")
        if pattern.startswith("*."):  # any subdomain, and the domain itself
            if host.endswith(pattern[1:]) or host == pattern[2:]:
                return True
        elif host == pattern.strip("[]"):
            return True
    return False


def hosts_of(cmd: Cmd) -> list[str]:
    """The hosts `cmd` would connect to, as far as its words tell."""
    prog, args = cmd.prog, cmd.args
    hosts: list[str] = []
    for _op, target in cmd.redirects:
        m = re.match(r"/dev/(?:tcp|udp)/([^/]+)/", target)
        if m:
            hosts.append(m.group(1))
    data = (prog in _DATA_PROGRAMS or (prog == "git" and _git_sub(args)[0] in _GIT_DATA)) and not cmd.piped
    if not data:
        for word in args + ([cmd.code] if cmd.code and cmd.lang not in ("", "sh") else []):
            hosts.extend(url_hosts(word))
    if prog in _HTTP_CLIENTS:
        hosts.extend(_http_client(prog, args))
    elif prog == "git":
        hosts.extend(_git(args))
    elif prog in _SSH_LIKE:
        opts, pos = getopt(args, "bcDEeFIiJLlmOopQRSWwBP", ())
        if pos:
            hosts.append(_host_part(pos[0]))
        for jump in values(opts, "-J"):
            hosts.extend(_host_part(j) for j in jump.split(","))
    elif prog in _COPY_LIKE:
        opts, pos = getopt(args, "cFiJlopPSeB", ("rsh", "port", "exclude", "include", "filter", "password-file"))
        for p in pos:
            m = re.match(r"^(?:[^@/:]+@)?(\[[^\]]+\]|[^/:\[\]]+):", p)
            if m and "://" not in p:
                hosts.append(m.group(1))
            elif prog == "sftp" and p is pos[0]:
                hosts.append(_host_part(p))
    elif prog in _SOCKET_TOOLS:
        hosts.extend(_socket_tool(prog, args))
    elif prog == "socat":
        for a in args:
            m = re.match(r"(?i)(?:tcp[46]?|udp[46]?|openssl|ssl|socks4a?|proxy|tcp-connect|udp-connect):([^:,]+)", a)
            if m:
                hosts.append(m.group(1))
    return [h for h in hosts if h]


def url_hosts(text: str) -> list[str]:
    out = []
    for m in _URL.finditer(text):
        authority = m.group(2).rsplit("@", 1)[-1]
        if authority.startswith("["):
            host = authority[1 : authority.find("]")] if "]" in authority else authority[1:]
        else:
            host = authority.split(":", 1)[0]
        if host:
            out.append(host)
    return out


def _host_part(destination: str) -> str:
    """user@host[:path] or ssh://user@host:port → host."""
    if "://" in destination:
        hosts = url_hosts(destination)
        return hosts[0] if hosts else ""
    host = destination.rsplit("@", 1)[-1]
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host[1:]
    return host.split(":", 1)[0]


def _http_client(prog: str, args: list[str]) -> list[str]:
    if prog == "curl":
        opts, pos = getopt(args, "oDcXHdAebuFTwxrCmKEYUPQtz", ("output", "dump-header", "cookie-jar", "output-dir", "request", "header", "data", "user-agent", "referer", "cookie", "user", "form", "upload-file", "write-out", "proxy", "range", "max-time", "config", "cert", "url", "data-raw", "data-binary", "data-urlencode", "retry", "connect-timeout", "resolve", "cacert", "trace", "trace-ascii", "stderr", "proxy-user", "interface", "json", "key", "pass", "connect-to", "max-filesize", "limit-rate"))
        proxies = values(opts, "-x", "--proxy")
        pos = pos + values(opts, "--url")
    elif prog == "wget":
        opts, pos = getopt(args, "OoaPUtTwiQeBlAR", ("output-document", "output-file", "append-output", "directory-prefix", "user-agent", "tries", "timeout", "wait", "input-file", "quota", "execute", "base", "level", "header", "post-data", "user", "password", "accept", "reject", "referer"))
        proxies = []
    else:  # httpie and friends: METHOD? URL ITEMS...
        opts, pos = getopt(args, "abvphf", ("auth", "verify", "print", "output", "session", "proxy"))
        pos = [p for p in pos if not re.fullmatch(r"[A-Z]+", p)][:1]
        proxies = []
    out = []
    for p in pos + proxies:
        if "://" in p:
            continue  # already found by the URL scan
        if p.startswith(("/", ".", "@")) or (prog not in ("curl", "wget") and "=" in p.split("/", 1)[0]):
            continue  # a file, or an httpie request item (name=value)
        host = _host_part(p.split("/", 1)[0])
        if host and (("." in host) or host == "localhost" or any(m in host for m in MARKERS)):
            out.append(host)
    return out


def _git_sub(args: list[str]) -> tuple[str, list[str]]:
    i = 0
    while i < len(args) and args[i].startswith("-"):
        i += 2 if args[i] in ("-C", "-c", "--git-dir", "--work-tree", "--namespace") else 1
    return (args[i], args[i + 1 :]) if i < len(args) else ("", [])


def _git(args: list[str]) -> list[str]:
    sub, rest = _git_sub(args)
    opts, pos = getopt(rest, "obcjuCt", ("origin", "branch", "config", "jobs", "upload-pack", "depth", "reference", "separate-git-dir", "template", "filter", "repo", "push-option", "receive-pack", "exec", "remote"))
    candidates: list[str] = values(opts, "--repo", "--remote")
    if sub in ("clone", "fetch", "pull", "push", "ls-remote", "archive"):
        candidates += pos[:1]
    elif sub == "remote" and pos[:1] in (["add"], ["set-url"]):
        candidates += pos[2:3] if pos[0] == "add" else pos[2:]
    elif sub == "submodule" and pos[:1] == ["add"]:
        candidates += pos[1:2]
    out = []
    for c in candidates:
        if "://" in c:
            continue  # found by the URL scan
        m = re.match(r"^(?:[^@/:]+@)?([^/:]+):(?!//)", c)  # scp-like: git@github.com:a/b.git
        if m and ("@" in c or "." in m.group(1)):
            out.append(m.group(1))
    return out


def _socket_tool(prog: str, args: list[str]) -> list[str]:
    if prog == "openssl":  # openssl s_client -connect host:port
        return [_host_part(args[i + 1]) for i, a in enumerate(args[:-1]) if a == "-connect"]
    opts, pos = getopt(args, "pswxXiqIOTeUcmgGP", ("source", "proxy", "exec", "sh-exec", "lua-exec", "wait", "idle-timeout"))
    if "-l" in opts or "--listen" in opts:
        return []  # listening, not connecting
    return [pos[0]] if pos and not pos[0].isdigit() else []
