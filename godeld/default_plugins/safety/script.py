"""Static expansion of a shell command: every simple command it would run, with its words expanded
as far as they can be known without running anything.

The walk sees through what obfuscation relies on: quotes and escapes (`r''m`, `\\rm`, `$'\\x72\\x6d'`),
variables assigned earlier in the same command (`a=rm; $a -rf /`), `${IFS}`, brace expansion,
`$(echo rm)` / backticks with a literal output, wrappers (`sudo`, `env`, `timeout 5`, `nohup`,
`xargs`, `find -exec`, ...), code handed to another shell (`bash -c`, `eval`, `sh <<EOF`,
`echo ... | sh`) and inline interpreter code (`python -c`, via interp.py).

Text that is only known at run time is kept in the words as a marker character saying where it
comes from, so the rules can tell "unknown" from "downloaded" (see the markers below).
Nothing here decides what is dangerous: that is for the rules.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import posixpath
import re
import tempfile
from dataclasses import dataclass, field

from godeld.default_plugins.safety import interp
from godeld.default_plugins.safety.shell import (
    Arith,
    CmdSub,
    ForHeader,
    FuncDef,
    Group,
    Lit,
    Param,
    ProcSub,
    Script,
    Simple,
    Subshell,
    Word,
    decode_ansi_c,
    parse,
    parse_word,
)

# Markers for text known only at run time, worst last. They never occur in real commands (the
# input's own control characters are replaced before parsing).
RUNTIME = "\x00"  # an environment variable this command does not set (trusted: godel sets the env)
COMPUTED = "\x01"  # the output of a command that cannot be evaluated statically
DECODED = "\x02"  # the output of a decoder (base64 -d, xxd -r, rev, ...): deliberately hidden text
FETCHED = "\x03"  # the output of a network download (curl, wget, ...)
PIPE = "\x04"  # a process substitution <(...) used as a file name: followed by its id
MARKERS = RUNTIME + COMPUTED + DECODED + FETCHED + PIPE
_TAINT_ORDER = (FETCHED, DECODED, COMPUTED, RUNTIME)

MAX_LENGTH = 64 * 1024  # longer commands are not analysed (answered "ask")
MAX_NESTING = 8  # bash -c inside eval inside ... deeper than this is not followed
MAX_STEPS = 2000  # simple commands per analysis
MAX_FIELDS = 256  # words one word may expand to (brace expansion)
_SPACE = re.compile(r"[ \t\n]+")


def taint_of(text: str | None) -> str:
    """The worst marker in `text` ("" when it is fully known)."""
    if not text:
        return ""
    for marker in _TAINT_ORDER:
        if marker in text:
            return marker
    return ""


def program_name(word: str) -> str:
    """How a command word names its program: `/usr/bin/rm`, `\\rm`, `RM` (case-insensitive file
    systems) all name rm."""
    return word.rsplit("/", 1)[-1].lower()


def show(text: str) -> str:
    """A word for a message: run-time text shown as …, a process substitution as <(…)."""
    text = re.sub(PIPE + r"\d+", "<(…)", text)
    for m in MARKERS:
        text = text.replace(m, "…")
    return text


@dataclass
class Out:
    """What a command writes on stdout, as far as it is known: the text, or the marker of where
    unknown output comes from; `roots` for `find` (the trees whose paths it prints)."""

    text: str | None = None
    taint: str = COMPUTED
    roots: list[str] = field(default_factory=list)


NO_OUTPUT = Out("", "")


@dataclass(eq=False)
class Cmd:
    """One simple command as it would run."""

    argv: list[str]
    redirects: list[tuple[str, str]] = field(default_factory=list)  # (op, target) of file redirections
    cwd: str | None = None  # where it runs (absolute), None when unknown
    via: tuple[str, ...] = ()  # wrappers and nesting it was reached through ("sudo", "bash -c")
    stdin: Out | None = None  # what it reads: a pipe, a here-document, `< file`
    piped: bool = False  # its output feeds another command (a pipe or a substitution)
    code: str | None = None  # the code it runs (shells, eval, interpreters), when it has any
    code_taint: str = ""  # where that code comes from when it is not fully known
    lang: str = ""  # "sh" or the interpreter's language, when it runs code
    raw: str = ""  # the command as written, when it holds run-time text (for messages)
    _prog_of: str | None = field(default=None, repr=False)
    _prog: str = field(default="", repr=False)

    @property
    def prog(self) -> str:
        argv0 = self.argv[0] if self.argv else ""
        if self._prog_of != argv0:  # argv changes while wrappers are peeled off
            self._prog_of, self._prog = argv0, program_name(argv0)
        return self._prog

    @property
    def args(self) -> list[str]:
        return self.argv[1:]

    def display(self, limit: int = 120) -> str:
        """The command for a message: as expanded, or as written when parts are only known at
        run time (`rm -rf "$BUILD/"` says more than `rm -rf …/`)."""
        words = self.argv + [w for pair in self.redirects for w in pair]
        if self.raw and any(m in w for w in words for m in MARKERS if m != PIPE):
            text = self.raw
        else:
            text = " ".join(_quote(show(a)) for a in self.argv)
            text += "".join(f" {op} {_quote(show(t))}" for op, t in self.redirects)
        return text if len(text) <= limit else text[: limit - 1] + "…"


def _quote(word: str) -> str:
    if word and re.fullmatch(r"[\w@%+=:,./~…{}*?\[\]-]+", word):
        return word
    return "'" + word.replace("'", "'\\''") + "'"


@dataclass
class Analysis:
    cmds: list[Cmd] = field(default_factory=list)
    forkbombs: list[str] = field(default_factory=list)  # functions that spawn copies of themselves
    procsubs: dict[str, Out] = field(default_factory=dict)
    gave_up: str = ""  # why the analysis is incomplete (too long, too deep): answered "ask"


@dataclass
class State:
    vars: dict[str, str]
    cwd: str | None
    args: list[str] | None = None  # positional parameters ($0, $1, ...), None when unknown

    def copy(self) -> "State":
        return State(dict(self.vars), self.cwd, None if self.args is None else list(self.args))


# -- programs the walk knows -------------------------------------------------------------------

SHELLS = {"sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "yash", "posh", "fish", "tcsh", "csh", "rbash"}
FETCHERS = {"curl", "wget", "fetch", "http", "https", "xh", "aria2c", "lynx", "links", "w3m", "nc", "ncat", "netcat", "socat", "telnet", "ssh", "ftp", "tftp"}
# Filters that pass their input through (possibly changed): the taint of the input survives.
PASS_THROUGH = {"cat", "tee", "head", "tail", "sed", "awk", "grep", "sort", "uniq", "cut", "tr", "rev", "gunzip", "zcat", "gzip", "bzip2", "bzcat", "xz", "xzcat", "unxz", "zstd", "zstdcat", "tac", "fold", "dos2unix", "iconv", "dd", "pv", "buffer", "cmp"}
_DECODERS = {"base64", "base32", "basenc", "xxd", "uudecode", "openssl", "rev", "tr", "od"}

# Wrappers that run the rest of their arguments as a command: options that take a value, and how
# many operands come before the command.
_WRAPPERS: dict[str, tuple[str, tuple[str, ...], int]] = {
    # name: (short options with a value, long options with a value, operands before the command)
    "sudo": ("ugpCDhrtTUR", ("user", "group", "prompt", "chdir", "close-from", "host", "role", "type", "other-user", "command-timeout", "chroot"), 0),
    "doas": ("uC", (), 0),
    "pkexec": ("", ("user",), 0),
    "env": ("uCS", ("unset", "chdir", "split-string"), 0),
    "command": ("", (), 0),
    "builtin": ("", (), 0),
    "exec": ("a", (), 0),
    "nohup": ("", (), 0),
    "setsid": ("", (), 0),
    "nice": ("n", ("adjustment",), 0),
    "ionice": ("cnpt", ("class", "classdata", "pid"), 0),
    "timeout": ("sk", ("signal", "kill-after"), 1),
    "time": ("fo", ("format", "output"), 0),
    "stdbuf": ("ioe", ("input", "output", "error"), 0),
    "chroot": ("", ("userspec", "groups"), 1),
    "strace": ("eopsuEabOSXPI", (), 0),
    "ltrace": ("eopsuEaAbSn", (), 0),
    "unbuffer": ("", (), 0),
    "caffeinate": ("w", (), 0),
    "nocache": ("", (), 0),
    "eatmydata": ("", (), 0),
    "torsocks": ("aPu", (), 0),
    "proxychains": ("f", (), 0),
    "proxychains4": ("f", (), 0),
    "taskset": ("", ("cpu-list",), 1),
    "chrt": ("", (), 1),
    "numactl": ("NmCpi", ("cpunodebind", "membind", "physcpubind", "preferred", "interleave"), 0),
    "systemd-run": ("pEMuH", ("property", "setenv", "machine", "unit", "host", "description", "slice", "working-directory"), 0),
    "xvfb-run": ("nsefwl", (), 0),
    "faketime": ("f", (), 1),
    "firejail": ("", (), 0),
    "catchsegv": ("", (), 0),
    "dbus-run-session": ("", (), 0),
    "then": ("", (), 0),
    "do": ("", (), 0),
    "else": ("", (), 0),
    "!": ("", (), 0),
    "coproc": ("", (), 0),
}
ESCALATION = {"sudo", "doas", "pkexec", "su", "runuser", "sg"}
# git settings whose value is a program git runs (alias.x='!cmd', core.pager, ...)
GIT_EXEC_KEYS = re.compile(r"(core\.(hookspath|fsmonitor|sshcommand|editor|pager|askpass|gitproxy)|alias\..*|credential\..*helper|filter\..*\.(clean|smudge|process)|diff\..*\.(textconv|command)|merge\..*\.driver|sequence\.editor|include\.path|includeif\..*|gpg\.program|gpg\..*\.program|uploadpack\.packobjectshook)", re.I)
_INTERPRETER_RE = re.compile(r"(python|pypy|perl|ruby|node|nodejs|bun|deno|php|lua|luajit|awk|gawk|mawk|nawk|rscript|tclsh|osascript)[\d.]*")


def interpreter_lang(prog: str) -> str:
    m = _INTERPRETER_RE.fullmatch(prog)
    if not m:
        return ""
    base = m.group(1)
    return {"pypy": "python", "nodejs": "node", "bun": "node", "deno": "node", "luajit": "lua", "gawk": "awk", "mawk": "awk", "nawk": "awk"}.get(base, base)


# -- the walk ----------------------------------------------------------------------------------


class Walker:
    def __init__(self, root: str | None, home: str, tmp: str):
        self.root, self.home, self.tmp = root, home, tmp
        self.out = Analysis()
        self.funcs: dict[str, object] = {}
        self.files: dict[str, str] = {}  # scripts this command writes with known content
        self.aliases: dict[str, list[str]] = {}
        self.calls: list[str] = []
        self.steps = 0

    # -- structure ---------------------------------------------------------------------------
    def text(self, code: str, st: State, via: tuple[str, ...], depth: int, piped: bool = False) -> Out:
        """Walk shell code given as text (the top level, bash -c, eval, ...)."""
        if depth > MAX_NESTING:
            self.out.gave_up = self.out.gave_up or "commands nested too deeply to follow"
            return Out()
        p = parse(code)
        out = self.script(p.tree, st, via, depth, piped)
        if p.incomplete and p.unclosed_at is not None:
            # An unclosed quote: the shell would refuse the text, but our reading of where the
            # quote starts could be off; look at it without that quote too and keep the worst.
            alt = code[: p.unclosed_at] + code[p.unclosed_at + 1 :]
            self.text(alt, st.copy(), via, depth + 1, piped)
        return out

    def script(self, tree: Script, st: State, via: tuple[str, ...], depth: int, piped: bool = False) -> Out:
        out = NO_OUTPUT
        for pipeline, _sep in tree.items:
            stdin: Out | None = None
            n = len(pipeline.stages)
            for k, stage in enumerate(pipeline.stages):
                out = self.node(stage, st, via, depth, stdin, piped or k < n - 1)
                stdin = out
        return out

    def node(self, node, st: State, via: tuple[str, ...], depth: int, stdin: Out | None, piped: bool) -> Out:
        if isinstance(node, Simple):
            return self.simple(node, st, via, depth, stdin, piped)
        if isinstance(node, (Subshell, Group)):
            inner = st.copy() if isinstance(node, Subshell) else st
            out = self.script(node.body, inner, via, depth, piped)
            if node.redirects:
                reds, _ = self.redirects(node.redirects, st, dict(st.vars), via, depth)
                self.record(Cmd([], reds, st.cwd, via))
            return out
        if isinstance(node, FuncDef):
            self.funcs[node.name] = node.body
            if _spawns_itself(node.name, node.body):
                self.out.forkbombs.append(node.name)
            return NO_OUTPUT
        if isinstance(node, ForHeader):
            if node.name:
                values: list[str] = []
                for w in node.words:
                    values.extend(self.expand(w, st, st.vars, via, depth))
                st.vars[node.name] = " ".join(values)
            return NO_OUTPUT
        return NO_OUTPUT

    def record(self, cmd: Cmd) -> None:
        self.out.cmds.append(cmd)

    # -- simple commands ---------------------------------------------------------------------
    def simple(self, node: Simple, st: State, via: tuple[str, ...], depth: int, stdin: Out | None, piped: bool) -> Out:
        self.steps += 1
        if self.steps > MAX_STEPS:
            self.out.gave_up = self.out.gave_up or "too many commands to follow"
            return Out()
        words = node.words
        env = dict(st.vars)
        assigned: list[str] = []
        i = 0
        while i < len(words):
            split = _assignment(words[i])
            if split is None:
                break
            name, value = split
            env[name] = self.value(value, st, env, via, depth)
            assigned.append(name)
            i += 1
        reds, red_in = self.redirects(node.redirects, st, env, via, depth)
        if i == len(words):  # only assignments (and redirections)
            for name in assigned:
                st.vars[name] = env[name]
            if reds:
                self.record(Cmd([], reds, st.cwd, via))
            return NO_OUTPUT
        argv: list[str] = []
        for w in words[i:]:
            argv.extend(self.expand(w, st, env, via, depth))
        cmd = Cmd(argv, reds, st.cwd, via, red_in or stdin, piped, raw=" ".join(w.raw for w in words))
        out = self.dispatch(cmd, st, env, depth)
        if st.cwd:
            # Remember files this command writes with known content (echo ... > x.sh) or with
            # downloaded / decoded content (curl -o x.sh), in case it runs them next.
            content = out.text if out.text is not None else (out.taint if out.taint in (FETCHED, DECODED) else None)
            targets = [t for op, t in reds if op in (">", ">|", ">>")] if content is not None else []
            if cmd.prog in ("curl", "wget"):
                targets, content = targets + _download_targets(cmd.prog, cmd.args), FETCHED
            for target in targets:
                if not any(m in target for m in MARKERS):
                    path = _norm(posixpath.join(st.cwd, target))
                    self.files[path] = (self.files.get(path, "") if (target, ">>") in [(t, o) for o, t in reds] else "") + content
        return out

    def redirects(self, reds, st: State, env: dict, via: tuple[str, ...], depth: int) -> tuple[list[tuple[str, str]], Out | None]:
        files: list[tuple[str, str]] = []
        stdin: Out | None = None
        for red in reds:
            if red.op in ("<<", "<<-"):
                stdin = Out(self.value(red.heredoc, st, env, via, depth) if red.heredoc else "", "")
                continue
            target = self.value(red.target, st, env, via, depth) if red.target else ""
            if red.op == "<<<":
                stdin = Out(target + "\n", "")
            elif red.op == "<":
                files.append((red.op, target))  # read, not written: kept for the network rule
                if target.startswith(PIPE):
                    stdin = self.out.procsubs.get(target, Out())
                else:
                    stdin = Out(None, "")  # a file: its content is not known, nor generated here
            elif red.op in (">&", "<&") and (target.isdigit() or target == "-"):
                continue  # fd duplication
            elif red.op == "<&":
                continue
            else:
                files.append((red.op, target))
        return files, stdin

    # -- words -------------------------------------------------------------------------------
    def expand(self, word: Word, st: State, env: dict, via: tuple[str, ...], depth: int, split: bool = True) -> list[str]:
        """The fields a word expands to (quote removal, parameters, substitutions, splitting,
        braces). Unknown text stays as a marker."""
        fields: list[list[str]] = [[]]
        present = [False]
        ifs = _SPACE
        if "IFS" in env:  # IFS=, makes commas split words
            chars = "".join(c for c in env["IFS"] if c not in MARKERS)
            ifs = re.compile("[" + re.escape(chars) + "]+") if chars else _SPACE

        def add(text: str, splittable: bool) -> None:
            if not splittable or not split:
                fields[-1].append(text)
                present[-1] = True
                return
            pieces = ifs.split(text)
            if pieces[0]:
                fields[-1].append(pieces[0])
                present[-1] = True
            for piece in pieces[1:]:
                fields.append([piece] if piece else [])
                present.append(bool(piece))

        for k, part in enumerate(word.parts):
            if isinstance(part, Lit):
                text = part.text
                if k == 0 and not part.quoted and text.startswith("~"):
                    text = self.tilde(text, st)
                fields[-1].append(text)
                present[-1] = True
            elif isinstance(part, Param) and part.name == "@" and not part.op and st.args is not None:
                for n, arg in enumerate(st.args[1:]):  # "$@": one field per positional parameter
                    if n:
                        fields.append([])
                        present.append(False)
                    add(arg, not part.quoted)
                    present[-1] = True
            elif isinstance(part, Param):
                add(self.param(part, st, env, via, depth), not part.quoted)
            elif isinstance(part, CmdSub):
                add(self.substitute(part.body, st, via, depth), not part.quoted)
            elif isinstance(part, ProcSub):
                key = f"{PIPE}{len(self.out.procsubs)}"
                self.out.procsubs[key] = self.script(part.body, st.copy(), via + ("<(...)",), depth, piped=True)
                fields[-1].append(key)
                present[-1] = True
            elif isinstance(part, Arith):
                add(RUNTIME, False)
        result = ["".join(f) for f, p in zip(fields, present) if p]
        if split and any(isinstance(p, Lit) and not p.quoted and "{" in p.text for p in word.parts):
            braced: list[str] = []
            for r in result:
                braced.extend(_braces(r))
            result = braced[:MAX_FIELDS]
        return result

    def value(self, word: Word | None, st: State, env: dict, via: tuple[str, ...], depth: int) -> str:
        """A word expanded without field splitting (assignments, redirection targets)."""
        if word is None:
            return ""
        return " ".join(self.expand(word, st, env, via, depth, split=False))

    def tilde(self, text: str, st: State) -> str:
        head, sep, rest = text.partition("/")
        if head == "~":
            base = self.home
        elif head == "~+":
            base = st.cwd or RUNTIME
        elif head == "~-":
            base = RUNTIME
        elif re.fullmatch(r"~[A-Za-z0-9._-]+", head):  # ~user
            base = os.path.expanduser(head)
            if base == head:
                base = "/home/" + head[1:]
        else:
            return text
        return base + sep + rest

    def lookup(self, name: str, st: State, env: dict) -> tuple[bool, str]:
        if name in env:
            return True, env[name]
        if name.isdigit():
            if st.args is None:
                return False, RUNTIME
            idx = int(name)
            return True, st.args[idx] if idx < len(st.args) else ""
        if name in ("@", "*"):
            return (True, " ".join(st.args[1:])) if st.args is not None else (False, RUNTIME)
        if name == "HOME":
            return True, self.home
        if name == "PWD":
            return (True, st.cwd) if st.cwd else (False, RUNTIME)
        if name == "IFS":
            return True, " \t\n"
        if name == "TMPDIR":
            return True, self.tmp
        return False, RUNTIME

    def param(self, p: Param, st: State, env: dict, via: tuple[str, ...], depth: int) -> str:
        known, val = self.lookup(p.name, st, env)
        op = p.op
        if not op:
            return val
        if op in (":-", "-", ":=", "="):
            if known and (val or op in ("-", "=")):
                return val
            default = self.value(parse_word(p.arg), st, env, via, depth)
            if op in (":=", "="):
                st.vars[p.name] = env[p.name] = default
            return default  # unknown: assume unset, so the default is what runs
        if op in (":+", "+"):
            if not known:
                return RUNTIME
            return self.value(parse_word(p.arg), st, env, via, depth) if (val or op == "+") else ""
        if op == "!":
            ok, target = self.lookup(p.name, st, env)
            if ok and re.fullmatch(r"[A-Za-z_]\w*", target):
                return self.lookup(target, st, env)[1]
            return RUNTIME
        if not known or op in ("length", "?unknown", ":?", "?"):
            return val if known and op in (":?", "?") else RUNTIME
        if p.name == "IFS":
            return " "
        arg = p.arg
        try:
            if op in ("#", "##"):
                cuts = range(len(val) + 1) if op == "#" else range(len(val), -1, -1)
                return next((val[k:] for k in cuts if fnmatch.fnmatchcase(val[:k], arg)), val)
            if op in ("%", "%%"):
                cuts = range(len(val), -1, -1) if op == "%" else range(len(val) + 1)
                return next((val[:k] for k in cuts if fnmatch.fnmatchcase(val[k:], arg)), val)
            if op in ("/", "//"):
                pat, _, rep = arg.partition("/")
                if not pat or any(c in pat for c in "*?["):
                    return RUNTIME
                return val.replace(pat, rep) if op == "//" else val.replace(pat, rep, 1)
            if op == ":":
                off, _, length = arg.partition(":")
                start = int(off.strip() or 0)
                part = val[start:] if start >= 0 else val[start:]
                return part[: int(length)] if length.strip() else part
            if op in ("^^", "^"):
                return val.upper() if op == "^^" else val[:1].upper() + val[1:]
            if op in (",,", ","):
                return val.lower() if op == ",," else val[:1].lower() + val[1:]
            if op == "@":
                return val
        except (ValueError, IndexError):
            return RUNTIME
        return RUNTIME

    def substitute(self, body: Script, st: State, via: tuple[str, ...], depth: int) -> str:
        """The value of $(...) / `...`: its commands are walked (they run), and its output is
        known when it is literal (echo, printf, which, pwd, ...)."""
        out = self.script(body, st.copy(), via + ("$(...)",), depth, piped=True)
        if out.text is not None:
            return out.text.rstrip("\n")
        return out.taint or COMPUTED

    # -- commands ----------------------------------------------------------------------------
    def dispatch(self, cmd: Cmd, st: State, env: dict, depth: int) -> Out:
        argv, via = cmd.argv, cmd.via
        seen_alias: set[str] = set()
        while argv:
            if taint_of(argv[0]):
                break
            prog = program_name(argv[0])
            if prog in self.aliases and prog not in seen_alias:
                seen_alias.add(prog)
                argv = self.aliases[prog] + argv[1:]
                continue
            if prog in _WRAPPERS:
                rest = _unwrap(prog, argv, env)
                if rest is None:
                    break
                via = via + (prog,)
                argv = rest
                continue
            if prog in ("busybox", "toybox") and len(argv) > 1:
                argv = argv[1:]
                continue
            break
        cmd.argv, cmd.via = argv, via
        if not argv:
            if cmd.redirects:
                self.record(cmd)
            return NO_OUTPUT
        prog = cmd.prog
        if taint_of(argv[0]) and not (len(argv) > 2 and argv[1] == "-c"):
            self.record(cmd)
            return Out()
        if prog in self.funcs:
            self.record(cmd)
            if prog in self.calls or depth > MAX_NESTING:
                return Out()
            self.calls.append(prog)
            saved = st.args
            st.args = [prog] + argv[1:]
            try:
                return self.node(self.funcs[prog], st, cmd.via + (prog + "()",), depth + 1, cmd.stdin, cmd.piped)
            finally:
                st.args = saved
                self.calls.pop()
        self.record(cmd)  # before what it runs, so its own verdict (e.g. downloaded code) comes first
        written = self.written(cmd.argv[0], st) if "/" in cmd.argv[0] else None
        handler = _BUILTINS.get(prog)
        if written is not None:
            self.code(cmd, written, st, depth, cmd.argv[0], [cmd.argv[0]] + cmd.args)
        elif handler is not None:
            handler(self, cmd, st, env)
        elif prog in SHELLS:
            self.shell(cmd, st, depth)
        elif prog in ("eval",):
            self.code(cmd, " ".join(cmd.args), st, depth, "eval", None)
        elif prog in ("source", "."):
            self.source(cmd, st, depth)
        elif prog in ("su", "runuser", "flock", "watch", "sg"):
            self.run_string(cmd, st, depth)
        elif prog == "xargs":
            self.xargs(cmd, st, env, depth)
        elif prog == "find":
            self.find(cmd, st, env, depth)
        elif interpreter_lang(prog):
            self.interpreter(cmd, st, depth)
        elif prog == "git":
            self.git_config_commands(cmd, st, depth)
        elif prog == "trap" and cmd.args and cmd.args[0] not in ("-", "-p", "-l", "--"):
            self.code(cmd, cmd.args[0], st, depth, "trap", None)  # runs later, on a signal or exit
        elif len(argv) > 2 and argv[1] == "-c" and taint_of(argv[0]):
            self.code(cmd, argv[2], st, depth, "… -c", argv[3:] or [argv[0]])  # "$0" -c ...: likely a shell
        return self.output(cmd, st)

    def written(self, path: str, st: State) -> str | None:
        """The content of a script written earlier in this same command, if `path` names one."""
        if not self.files or not st.cwd or any(m in path for m in MARKERS):
            return None
        return self.files.get(_norm(posixpath.join(st.cwd, path)))

    def git_config_commands(self, cmd: Cmd, st: State, depth: int) -> None:
        """git -c alias.x='!cmd' / core.pager=cmd ...: settings that run a program."""
        args = cmd.args
        for k, a in enumerate(args[:-1]):
            if not a.startswith("-"):
                break
            if a == "-c":
                key, _, value = args[k + 1].partition("=")
                if GIT_EXEC_KEYS.fullmatch(key) and value:
                    self.code(cmd, value.lstrip("!"), st, depth, f"git -c {key}", None)

    def code(self, cmd: Cmd, code: str, st: State, depth: int, origin: str, args: list[str] | None) -> None:
        """`cmd` runs shell `code` (bash -c, eval, sh <<EOF, ...)."""
        cmd.code, cmd.lang = code, "sh"
        taint = taint_of(code.replace(RUNTIME, ""))
        if taint:
            # Text computed by this very command becomes code: its structure is unknown.
            cmd.code_taint = taint
        inner = State(dict(st.vars), st.cwd, args if args is not None else st.args)
        self.text(code, inner, cmd.via + (origin,), depth + 1)

    def stdin_code(self, cmd: Cmd, st: State, depth: int, origin: str, source: Out | None) -> None:
        if source is None:
            return  # interactive: reads the terminal
        if source.text is not None:
            if cmd.lang and cmd.lang != "sh":
                self.interp_code(cmd, source.text, st, depth, origin)
            else:
                self.code(cmd, source.text, st, depth, origin, None)
        elif source.taint:
            cmd.code_taint = source.taint
            cmd.lang = cmd.lang or "sh"

    def shell(self, cmd: Cmd, st: State, depth: int) -> None:
        args = cmd.args
        i, c_mode, s_mode = 0, False, False
        while i < len(args):
            a = args[i]
            if a == "--":
                i += 1
                break
            if a in ("-o", "+o", "-O", "+O", "--rcfile", "--init-file"):
                i += 2
                continue
            if a.startswith("--"):
                i += 1
                continue
            if len(a) > 1 and a[0] in "-+" and not taint_of(a):
                c_mode |= "c" in a[1:]
                s_mode |= "s" in a[1:]
                i += 1
                continue
            break
        rest = args[i:]
        origin = f"{cmd.prog} -c" if c_mode else cmd.prog
        if c_mode:
            if rest:
                self.code(cmd, rest[0], st, depth, origin, rest[1:] or [cmd.prog])
            return
        cmd.lang = "sh"
        if s_mode or not rest or rest[0] in ("-", "/dev/stdin"):
            self.stdin_code(cmd, st, depth, origin, cmd.stdin)
        elif rest[0].startswith(PIPE):
            self.stdin_code(cmd, st, depth, origin + " <(...)", self.out.procsubs.get(rest[0], Out()))
        elif (text := self.written(rest[0], st)) is not None:
            self.code(cmd, text, st, depth, f"{cmd.prog} {rest[0]}", rest)
        # else: a script file — its content is not visible here

    def source(self, cmd: Cmd, st: State, depth: int) -> None:
        if not cmd.args:
            return
        target = cmd.args[0]
        cmd.lang = "sh"
        if target.startswith(PIPE):
            self.stdin_code(cmd, st, depth, "source <(...)", self.out.procsubs.get(target, Out()))
        elif target in ("/dev/stdin", "-"):
            self.stdin_code(cmd, st, depth, "source /dev/stdin", cmd.stdin)
        elif (text := self.written(target, st)) is not None:
            self.code(cmd, text, st, depth, f"source {target}", None)

    def run_string(self, cmd: Cmd, st: State, depth: int) -> None:
        """su -c CMD, runuser -c, flock FILE -c CMD, watch CMD..., sg GROUP CMD."""
        args, prog = cmd.args, cmd.prog
        if prog in ("su", "runuser", "flock"):
            for k, a in enumerate(args):
                if a in ("-c", "--command") and k + 1 < len(args):
                    self.code(cmd, args[k + 1], st, depth, f"{prog} -c", None)
                elif a.startswith("--command="):
                    self.code(cmd, a.split("=", 1)[1], st, depth, f"{prog} -c", None)
            if prog == "flock":  # flock FILE CMD ARGS
                pos = [a for a in args if not a.startswith("-")]
                if len(pos) > 1 and "-c" not in args:
                    self.dispatch(Cmd(pos[1:], [], cmd.cwd, cmd.via + ("flock",), cmd.stdin, cmd.piped), st, dict(st.vars), depth + 1)
        elif prog == "watch":
            k = 0
            while k < len(args) and args[k].startswith("-"):
                k += 2 if args[k] in ("-n", "--interval", "-q", "--equexit") else 1
            if args[k:]:
                self.code(cmd, " ".join(args[k:]), st, depth, "watch", None)
        elif prog == "sg" and len(args) > 1:
            self.code(cmd, " ".join(args[1:]), st, depth, "sg", None)

    def interpreter(self, cmd: Cmd, st: State, depth: int) -> None:
        lang = interpreter_lang(cmd.prog)
        kind, code = interp.inline_code(lang, cmd.args)
        cmd.lang = lang
        if kind == "code":
            self.interp_code(cmd, code, st, depth, f"{cmd.prog} code")
        elif kind == "file" and (text := self.written(code, st)) is not None:
            self.interp_code(cmd, text, st, depth, f"{cmd.prog} {code}")
        elif kind == "stdin":
            source = self.out.procsubs.get(code, Out()) if code.startswith(PIPE) else cmd.stdin
            self.stdin_code(cmd, st, depth, f"{cmd.prog} code", source)

    def interp_code(self, cmd: Cmd, code: str, st: State, depth: int, origin: str) -> None:
        cmd.code = code
        taint = taint_of(code.replace(RUNTIME, ""))
        if taint:
            cmd.code_taint = taint
        if depth >= MAX_NESTING:
            self.out.gave_up = self.out.gave_up or "commands nested too deeply to follow"
            return
        for line in interp.shell_equivalents(cmd.lang, code):
            if line == interp.FORK_BOMB:
                self.out.forkbombs.append(f"{cmd.prog} code")
                continue
            self.text(line, State(dict(st.vars), st.cwd, None), cmd.via + (origin,), depth + 1)

    def xargs(self, cmd: Cmd, st: State, env: dict, depth: int) -> None:
        args = cmd.args
        i, replace = 0, None
        with_value = {"-L", "-l", "-n", "-P", "-s", "-d", "-E", "-e", "-a", "--arg-file", "--delimiter", "--max-args", "--max-procs", "--max-chars", "--max-lines", "--eof"}
        while i < len(args):
            a = args[i]
            if a == "--":
                i += 1
                break
            if a == "-I" and i + 1 < len(args):
                replace, i = args[i + 1], i + 2
            elif a.startswith("-I"):
                replace, i = a[2:], i + 1
            elif a in ("-i", "--replace") or a.startswith("--replace="):
                replace, i = (a.split("=", 1)[1] if "=" in a else "{}"), i + 1
            elif a in with_value:
                i += 2
            elif a.startswith("-"):
                i += 1
            else:
                break
        sub = args[i:] or ["echo"]
        source = cmd.stdin
        if source is not None and source.text is not None:
            items = source.text.split()[:32] or [""]
        elif source is not None and source.roots:
            items = source.roots[:32]
        else:
            items = [source.taint if source is not None and source.taint else COMPUTED]
        runs = [[a.replace(replace, item) for a in sub] for item in items] if replace else [sub + items]
        for argv in runs:
            self.dispatch(Cmd(argv, [], cmd.cwd, cmd.via + ("xargs",), None, cmd.piped), st, dict(env), depth + 1)

    def find(self, cmd: Cmd, st: State, env: dict, depth: int) -> None:
        args = cmd.args
        _roots, found, i = find_paths(args)
        while i < len(args):
            if args[i] in ("-exec", "-execdir", "-ok", "-okdir"):
                j = i + 1
                while j < len(args) and args[j] not in (";", "+"):
                    j += 1
                sub = args[i + 1 : j]
                for path in found:
                    if sub:
                        argv = [a.replace("{}", path) for a in sub]
                        self.dispatch(Cmd(argv, [], cmd.cwd, cmd.via + ("find " + args[i],), None, False), st, dict(env), depth + 1)
                i = j
            i += 1

    # -- what a command prints ---------------------------------------------------------------
    def output(self, cmd: Cmd, st: State) -> Out:
        prog, args, stdin = cmd.prog, cmd.args, cmd.stdin
        if prog == "echo":
            k = 0
            while k < len(args) and re.fullmatch(r"-[neE]+", args[k]):
                k += 1
            text = " ".join(args[k:])
            if "\\" in text:
                text = decode_ansi_c(text)
            return Out(text + ("" if any("n" in a for a in args[:k]) else "\n"), "")
        if prog == "printf" and args:
            if args[0] == "-v":
                return NO_OUTPUT
            return Out(_printf(args[0], args[1:]), "")
        if prog in ("which", "whence") or (prog == "command" and "-v" in args) or (prog == "type" and ("-p" in args or "-P" in args)):
            names = [a for a in args if not a.startswith("-")]
            return Out(names[-1] + "\n", "") if names else Out()
        if prog == "pwd":
            return Out(st.cwd + "\n", "") if st.cwd else Out()
        if prog == "mktemp":
            base = self.tmp
            for k, a in enumerate(args):
                if a in ("-p", "--tmpdir") and k + 1 < len(args):
                    base = args[k + 1]
                elif a.startswith("--tmpdir="):
                    base = a.split("=", 1)[1]
            return Out(base.rstrip("/") + "/tmp." + RUNTIME, "")  # a new name in the temp dir
        if prog in ("basename", "dirname") and args and not taint_of(args[0]):
            path = args[0].rstrip("/") or "/"
            return Out((posixpath.basename(path) if prog == "basename" else posixpath.dirname(path) or ".") + "\n", "")
        if prog == "git" and args[:2] == ["rev-parse", "--show-toplevel"]:
            return Out(self.root + "\n", "") if self.root else Out()
        if prog in FETCHERS:
            return Out(None, FETCHED)
        upstream = stdin.taint if stdin is not None and stdin.text is None else ""
        if prog in _DECODERS and _decodes(prog, args):
            return Out(None, FETCHED if upstream == FETCHED else DECODED)
        if prog in PASS_THROUGH:
            files = [a for a in args if not a.startswith("-")]
            if prog in ("cat", "tee") and stdin is not None and stdin.text is not None and (prog == "tee" or not files):
                return Out(stdin.text, "")
            if upstream in (FETCHED, DECODED):
                return Out(None, upstream)
            return Out()
        if prog == "find":
            roots, found, _ = find_paths(args)
            return Out(None, COMPUTED, roots + found)
        if prog in ("cd", "export", "unset", "alias", "set", "shift", "read", "true", ":", "false"):
            return NO_OUTPUT
        return Out()

    def chdir(self, st: State, args: list[str]) -> str | None:
        args = [a for a in args if a not in ("-L", "-P", "-e", "-@", "--")]
        if not args:
            return self.home
        target = args[0]
        if target == "-" or target[:1] in MARKERS:
            return None
        if target.startswith("/"):
            return _norm(target)
        return None if st.cwd is None else _norm(posixpath.join(st.cwd, target))


# -- builtins that change the walk's state ------------------------------------------------------


def _cd(w: Walker, cmd: Cmd, st: State, env: dict) -> None:
    st.cwd = w.chdir(st, cmd.args) if cmd.prog != "popd" else None


def _export(w: Walker, cmd: Cmd, st: State, env: dict) -> None:
    for a in cmd.args:
        name, eq, value = a.partition("=")
        if eq and re.fullmatch(r"[A-Za-z_]\w*", name):
            st.vars[name] = value


def _unset(w: Walker, cmd: Cmd, st: State, env: dict) -> None:
    for a in cmd.args:
        st.vars.pop(a, None)


def _read(w: Walker, cmd: Cmd, st: State, env: dict) -> None:
    args, k = cmd.args, 0
    while k < len(args):
        a = args[k]
        if a in ("-p", "-d", "-n", "-N", "-t", "-u", "-a", "-i"):
            k += 2
            continue
        if not a.startswith("-") and re.fullmatch(r"[A-Za-z_]\w*", a):
            st.vars[a] = COMPUTED
        k += 1


def _set(w: Walker, cmd: Cmd, st: State, env: dict) -> None:
    if "--" in cmd.args:
        st.args = [(st.args or ["sh"])[0]] + cmd.args[cmd.args.index("--") + 1 :]


def _shift(w: Walker, cmd: Cmd, st: State, env: dict) -> None:
    if st.args and len(st.args) > 1:
        del st.args[1]


def _alias(w: Walker, cmd: Cmd, st: State, env: dict) -> None:
    for a in cmd.args:
        name, eq, value = a.partition("=")
        if eq and name:
            w.aliases[name.lower()] = value.split()


_BUILTINS = {
    "cd": _cd, "pushd": _cd, "popd": _cd, "chdir": _cd,
    "export": _export, "declare": _export, "typeset": _export, "local": _export, "readonly": _export,
    "unset": _unset, "read": _read, "set": _set, "shift": _shift, "alias": _alias,
}


# -- helpers -------------------------------------------------------------------------------------


def _download_targets(prog: str, args: list[str]) -> list[str]:
    """Files curl / wget save a download to (-o FILE, -O: the URL's own name)."""
    out: list[str] = []
    urls = [a for a in args if "://" in a]
    for k, a in enumerate(args):
        value = args[k + 1] if k + 1 < len(args) else ""
        if prog == "curl" and a in ("-o", "--output") or prog == "wget" and a in ("-O", "--output-document"):
            out.append(value)
        elif a.startswith(("--output=", "--output-document=")):
            out.append(a.split("=", 1)[1])
        elif (prog == "curl" and a in ("-O", "--remote-name")) or (prog == "wget" and not any(x in args for x in ("-O", "--output-document", "-qO-", "-O-"))):
            out.extend(u.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] for u in urls)
            if prog == "wget":
                break
    return [p for p in out if p and p != "-"]


_FIND_NAME_TESTS = {"-name", "-iname", "-path", "-ipath", "-wholename", "-iwholename", "-regex", "-iregex", "-lname", "-ilname", "-samefile", "-inum", "-newer"}


def find_paths(args: list[str]) -> tuple[list[str], list[str], int]:
    """find's start directories, the paths it finds, and where its expression starts. Found
    paths are `root/*` (everything below: find matches dot-files too) unless a name test narrows
    them to some paths below, written `root/…` (one unknown name)."""
    i = 0
    while i < len(args) and (args[i] in ("-H", "-L", "-P") or args[i].startswith(("-D", "-O"))):
        i += 2 if args[i] == "-D" else 1
    roots = []
    while i < len(args) and not args[i].startswith(("-", "(", "!", ")")):
        roots.append(args[i])
        i += 1
    roots = roots[:8] or ["."]
    narrowed = any(a in _FIND_NAME_TESTS and args[k + 1 : k + 2] not in (["*"], ["*/*"], [".*"]) for k, a in enumerate(args[i:], i))
    below = "/…" if narrowed else "/*"
    return roots, [r.rstrip("/") + below for r in roots], i


def _assignment(word: Word) -> tuple[str, Word] | None:
    """NAME=value at the start of a command: (NAME, the value as a word)."""
    if not word.parts or not isinstance(word.parts[0], Lit) or word.parts[0].quoted:
        return None
    m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)\+?=", word.parts[0].text)
    if not m:
        return None
    rest = word.parts[0].text[m.end() :]
    parts = ([Lit(rest)] if rest else []) + list(word.parts[1:])
    return m.group(1), Word(parts or [Lit("", True)], word.raw[m.end() :])


def _unwrap(prog: str, argv: list[str], env: dict) -> list[str] | None:
    """The command a wrapper runs, or None when this use of it runs none (`command -v x`)."""
    short_val, long_val, operands = _WRAPPERS[prog]
    args = argv[1:]
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            i += 1
            break
        if prog == "env" and re.fullmatch(r"[A-Za-z_]\w*=.*", a, flags=re.S):
            name, _, value = a.partition("=")
            env[name] = value
            i += 1
            continue
        if prog == "env" and (a in ("-S", "--split-string") or a.startswith(("-S", "--split-string="))):
            text = a.split("=", 1)[1] if a.startswith("--split-string=") else (a[2:] if len(a) > 2 and a.startswith("-S") else (args[i + 1] if i + 1 < len(args) else ""))
            return text.split() + args[i + (1 if len(a) > 2 else 2) :]
        if prog == "command" and a in ("-v", "-V"):
            return None
        if prog == "nice" and re.fullmatch(r"-\d+", a):
            i += 1
            continue
        if a.startswith("--") and len(a) > 2:
            name = a[2:].split("=", 1)[0]
            i += 2 if (name in long_val and "=" not in a) else 1
            continue
        if a.startswith("-") and len(a) > 1:
            j = 1
            while j < len(a):
                if a[j] in short_val:
                    if j == len(a) - 1:
                        i += 1  # the value is the next argument
                    break
                j += 1
            i += 1
            continue
        break
    rest = args[i + operands :] if i + operands <= len(args) else []
    if prog in ("sudo", "doas", "pkexec") and not rest:
        return None  # `sudo -s`, `sudo -l`: the command is sudo itself
    return rest


def _norm(path: str) -> str:
    path = posixpath.normpath(path)
    return "/" + path.lstrip("/") if path.startswith("//") else path


def _braces(text: str) -> list[str]:
    """Bash brace expansion of `{a,b}` lists (sequences `{1..3}` are left alone)."""
    m = re.search(r"\{([^{}]*,[^{}]*)\}", text)
    if not m:
        return [text]
    out: list[str] = []
    for choice in m.group(1).split(","):
        out.extend(_braces(text[: m.start()] + choice + text[m.end() :]))
        if len(out) >= MAX_FIELDS:
            break
    return out


def _decodes(prog: str, args: list[str]) -> bool:
    flags = " ".join(args)
    if prog in ("base64", "base32", "basenc"):
        return bool(re.search(r"(^|\s)(-\w*[dD]\w*|--decode)\b", flags))
    if prog == "xxd":
        return bool(re.search(r"(^|\s)-\w*r", flags))
    if prog == "openssl":
        return bool(re.search(r"(^|\s)-d\b", flags)) or "base64" in args and "-d" in args
    return prog in ("uudecode", "rev", "tr")


def _printf(fmt: str, args: list[str]) -> str:
    fmt = decode_ansi_c(fmt) if "\\" in fmt else fmt
    out: list[str] = []
    queue = list(args)
    for _ in range(16):
        used = False
        i = 0
        while i < len(fmt):
            c = fmt[i]
            if c == "%" and i + 1 < len(fmt):
                m = re.match(r"%[-+ #0]*\d*(?:\.\d+)?([a-zA-Z%])", fmt[i:])
                if not m:
                    out.append(c)
                    i += 1
                    continue
                conv = m.group(1)
                if conv == "%":
                    out.append("%")
                else:
                    used = True
                    arg = queue.pop(0) if queue else ""
                    out.append(decode_ansi_c(arg) if conv == "b" else arg[:1] if conv == "c" else arg)
                i += m.end()
            else:
                out.append(c)
                i += 1
        if not (used and queue):
            break
    return "".join(out)


def _calls(node, name: str) -> bool:
    """Whether a parsed node runs the command `name`."""
    if isinstance(node, Simple):
        return bool(node.words) and (node.words[0].literal() or "") == name
    if isinstance(node, (Group, Subshell)):
        return any(_calls(stage, name) for pl, _ in node.body.items for stage in pl.stages)
    return False


def _spawns_itself(name: str, body) -> bool:
    """A function that runs itself in a pipeline or in the background multiplies: a fork bomb."""
    scripts = [body.body] if isinstance(body, (Group, Subshell)) else []
    while scripts:
        script = scripts.pop()
        for pipeline, sep in script.items:
            calls = [stage for stage in pipeline.stages if _calls(stage, name)]
            if calls and (len(pipeline.stages) > 1 or sep == "&"):
                return True
            scripts.extend(stage.body for stage in pipeline.stages if isinstance(stage, (Group, Subshell)))
    return False


_CONTROL = re.compile("[" + re.escape(MARKERS) + "]")


@functools.lru_cache(maxsize=512)
def _analyze(command: str, root: str | None, home: str, tmp: str) -> Analysis:
    walker = Walker(root, home, tmp)
    if len(command) > MAX_LENGTH:
        walker.out.gave_up = f"the command is too long to analyse ({len(command)} characters)"
        return walker.out
    command = _CONTROL.sub("?", command)  # the input's own control bytes must not pose as markers
    try:
        walker.text(command, State({}, root, None), (), 0)
    except RecursionError:
        walker.out.gave_up = "the command is nested too deeply to analyse"
    except Exception as exc:  # noqa: BLE001 - a bug here must not let the command through unseen
        walker.out.gave_up = f"the command could not be analysed ({type(exc).__name__}: {exc})"
    return walker.out


def analyze(command: str, root: str | None) -> Analysis:
    """Every command `command` would run (started in `root`). Cached: the rules share one walk.
    The result is shared; treat it as read-only."""
    return _analyze(command, root, home_dir(), TMP)


TMP = os.environ.get("TMPDIR", "").rstrip("/") or tempfile.gettempdir()


# -- for the rules -------------------------------------------------------------------------------

RUN_TOOLS = {"run_command": "command", "Bash": "command", "bash": "command", "shell": "command"}


def home_dir() -> str:
    """The user's home (what `~` and $HOME mean to the commands: they run as this user)."""
    home = os.environ.get("HOME")
    return home.rstrip("/") or "/" if home else os.path.expanduser("~")


def command_of(action) -> tuple[str | None, str]:
    """(the shell command of a run_command-like action, or None; a problem with its arguments)."""
    key = RUN_TOOLS.get(action.tool)
    if key is None:
        return None, ""
    if not isinstance(action.args, dict):
        return None, f"{action.tool}: the arguments are not an object, so they cannot be checked"
    command = action.args.get(key)
    if not isinstance(command, str):
        return None, f"{action.tool}: `{key}` must be a string (got {type(command).__name__})"
    return command, ""


@functools.lru_cache(maxsize=64)
def real_root(worktree: str | None) -> str | None:
    """The worktree's real path (symlinks resolved), or None without a worktree."""
    if not isinstance(worktree, str) or not worktree or "\x00" in worktree:
        return None
    return os.path.realpath(worktree)
