"""Inline interpreter code (`python -c`, `perl -e`, `node -e`, `ruby -e`, `php -r`, awk programs):
where the code is, and the shell commands it amounts to.

Best effort by design: the code is not parsed, only searched for the calls that matter —
commands handed to a shell (`os.system`, `subprocess.run([...])`, backticks, `system`, `execSync`,
...) and file-system calls with literal arguments that have a shell equivalent (`shutil.rmtree('/')`
is `rm -rf /`, `open('/etc/x', 'w')` is `: > /etc/x`). The equivalents are then analysed like any
other command, so one set of rules judges both. Arguments that are not literals are not followed.
"""

from __future__ import annotations

import re
import shlex

from godeld.default_plugins.safety.shell import decode_ansi_c

FORK_BOMB = ":(){ :|:& };:"  # what a fork loop in interpreter code amounts to
MAX_DEPTH = 3  # exec("...") inside exec("...")

# -- where the code is ---------------------------------------------------------------------------

# Per language: options whose value is inline code, options that take some other value, and
# whether a bare run (no script argument) reads its program from stdin.
_LANGS: dict[str, tuple[tuple[str, ...], str, bool]] = {
    "python": (("-c",), "WXQ", True),
    "perl": (("-e", "-E"), "IMmdDxlC0", True),
    "ruby": (("-e",), "IrCEFKTUWx", True),
    "node": (("-e", "--eval", "-p", "--print"), "r", True),
    "php": (("-r",), "cdfzt", True),
    "lua": (("-e",), "l", True),
    "rscript": (("-e",), "", False),
    "tclsh": ((), "", True),
    "osascript": (("-e",), "sl", False),
    "awk": ((), "fvFil", False),
}


def inline_code(lang: str, args: list[str]) -> tuple[str, str]:
    """("code", text) for inline code; ("stdin", "") when the program comes from stdin (or
    ("stdin", <PIPE id>) from a process substitution); ("file"|"module"|"none", "") otherwise."""
    code_opts, valued, reads_stdin = _LANGS.get(lang, ((), "", False))
    codes: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        nxt = args[i + 1] if i + 1 < len(args) else ""
        if a == "--":
            i += 1
            break
        if lang == "node" and a == "eval" and i == 0:  # deno eval CODE
            return "code", nxt
        if a in code_opts:
            codes.append(nxt)
            i += 2
            continue
        if a.startswith("--"):
            name, eq, value = a.partition("=")
            if name in code_opts:
                codes.append(value)
            i += 1
            continue
        if a.startswith("-") and len(a) > 1:
            flags = a[1:]
            if lang == "python" and "c" in flags:  # -c, -Ic, -cCODE
                rest = flags[flags.index("c") + 1 :]
                return "code", rest or nxt
            if lang == "python" and "m" in flags:
                return "module", ""
            short_code = [o[1] for o in code_opts if len(o) == 2]
            if lang in ("perl", "ruby") and flags[-1] in short_code:  # -ne, -pe, -lne CODE
                codes.append(nxt)
                i += 2
                continue
            if flags[0] in valued and len(flags) == 1:
                i += 2
                continue
            i += 1
            continue
        break
    if codes:
        return "code", "\n".join(codes)
    rest = args[i:]
    if lang == "awk":
        return ("code", rest[0]) if rest and "-f" not in args else ("none", "")
    if not rest or rest[0] in ("-", "/dev/stdin"):
        return ("stdin", "") if reads_stdin else ("none", "")
    if rest[0].startswith("\x04"):
        return "stdin", rest[0]
    return "file", rest[0]


# -- what the code runs ------------------------------------------------------------------------

_STRING = re.compile(
    r"""(?:\b[rRbBuUfF]{1,2})?('''[\s\S]*?'''|\"\"\"[\s\S]*?\"\"\"|'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")"""
)
_PY_EXEC = r"os\.system|os\.popen|system|popen|subprocess\.\w+|check_call|check_output|getoutput|getstatusoutput|Popen|os\.exec\w+|os\.spawn\w+|os\.posix_spawnp?|pty\.spawn|commands\.getoutput"
_EXEC_CALLS = {
    "python": r"\b(?:" + _PY_EXEC + r")\s*\(",
    "perl": r"\b(?:system|exec)\b\s*\(?",
    "ruby": r"(?:\bsystem|\bexec|\bspawn|IO\.popen|Open3\.\w+|Kernel\.system)\b\s*\(?",
    "node": r"\b(?:execSync|execFileSync|execFile|exec|spawnSync|spawn)\s*\(",
    "php": r"\b(?:system|exec|shell_exec|passthru|popen|proc_open)\s*\(",
    "lua": r"\b(?:os\.execute|io\.popen)\s*\(?",
    "awk": r"\bsystem\s*\(",
    "rscript": r"\bsystem2?\s*\(",
    "tclsh": r"\bexec\b",
    "osascript": r"\bdo shell script\b",
}
_BACKTICKS = re.compile(r"`([^`]*)`|\bqx\s*([{(/\[])(.*?)[})/\]]|%x\s*([{(\[])(.*?)[})\]]", re.S)
_HOME = r"(?:(?:pathlib\.)?Path\.home\(\)|os\.path\.expanduser\(\s*['\"]~['\"]\s*\)|os\.environ\[\s*['\"]HOME['\"]\s*\]|os\.getenv\(\s*['\"]HOME['\"]\s*\)|os\.homedir\(\)|process\.env\.HOME|ENV\[\s*['\"]HOME['\"]\s*\]|\$ENV\{\s*['\"]?HOME['\"]?\s*\}|Dir\.home|File\.expand_path\(\s*['\"]~['\"]\s*\))"
_FILE_CALLS: list[tuple[re.Pattern, str]] = [
    # (call, shell equivalent with {0}, {1} for the first two arguments)
    (re.compile(r"\b(?:rmtree|rm_rf|rm_r|remove_dir|remove_tree|rimraf(?:\.sync)?|rmrf)\s*\(?"), "rm -rf {0}"),
    (re.compile(r"(?:\bfs(?:\.promises)?\.(?:rm|rmdir)|\.(?:rmSync|rmdirSync))\s*\("), "rm {recursive} {0}"),
    (re.compile(r"\b(?:os\.remove|os\.unlink|unlink|File\.delete|FileUtils\.rm)\s*\(?"), "rm -f {0}"),
    (re.compile(r"\b(?:os\.rmdir|os\.removedirs|rmdir)\s*\(?"), "rmdir {0}"),
    (re.compile(r"\b(?:shutil\.move|os\.rename|os\.replace|rename|FileUtils\.mv)\s*\("), "mv {0} {1}"),
    (re.compile(r"\b(?:shutil\.copy\w*|copyfile|FileUtils\.cp\w*)\s*\("), "cp {0} {1}"),
    (re.compile(r"\b(?:os\.chmod|chmod|FileUtils\.chmod)\s*\("), "chmod 777 {0}"),
    (re.compile(r"\b(?:os\.chown|chown)\s*\("), "chown 0 {0}"),
    (re.compile(r"\b(?:writeFileSync|appendFileSync|file_put_contents|File\.write|IO\.write)\s*\("), ": > {0}"),
]
_PATH_METHOD = re.compile(r"\bPath\(\s*(" + _STRING.pattern + r"|" + _HOME + r")\s*\)\.(unlink|rmdir|write_text|write_bytes|chmod|touch)\(")
_OPEN_WRITE = re.compile(r"\bopen\s*\(\s*(" + _STRING.pattern + r")\s*,\s*(" + _STRING.pattern + r")")
_PERL_OPEN = re.compile(r"\bopen\s*\(?\s*[\w$]+\s*,\s*(" + _STRING.pattern + r")")
_KILL_ALL = re.compile(r"\b(?:os\.kill|Process\.kill|process\.kill|kill)\s*\(?\s*(?:-1\s*,|['\"]?\w+['\"]?\s*,\s*-1\b)")
_FORK_LOOPS = re.compile(
    r"while\s*\(?\s*(?:True|1|true)\s*\)?\s*:?\s*\{?\s*(?:\n\s+)?[^\n]*\bfork\s*\(|"  # while True: os.fork()
    r"\bfork\s+while\s+(?:fork|1)\b|\bloop\s*\{\s*fork\b|\bfork\s+while\s+true\b|\bfork\s*\(\s*\)\s+while\b"
)


def shell_equivalents(lang: str, code: str, depth: int = 0) -> list[str]:
    """Shell commands `code` runs or amounts to (FORK_BOMB for a fork loop)."""
    if not code or depth > MAX_DEPTH:
        return []
    out: list[str] = []
    pattern = _EXEC_CALLS.get(lang)
    if pattern:
        if lang == "python" and "subprocess" in code:  # from subprocess import run
            pattern = r"\b(?:" + _PY_EXEC + r"|run|call)\s*\("
        for m in re.finditer(pattern, code):
            command = _command_from_call(code, m.end(), paren=code[m.end() - 1 : m.end()] == "(")
            if command:
                out.append(command)
    if lang in ("perl", "ruby", "php", "awk"):
        for m in _BACKTICKS.finditer(code):
            text = m.group(1) if m.group(1) is not None else (m.group(3) if m.group(3) is not None else m.group(5))
            if text:
                out.append(text)
    if lang == "awk":
        # print ... | "cmd" and "cmd" | getline hand text to a shell
        for m in re.finditer(r"\|\s*(" + _STRING.pattern + r")|(" + _STRING.pattern + r")\s*\|\s*getline", code):
            lit = m.group(1) or m.group(3)
            out.append(_literal(lit))
    for call, template in _FILE_CALLS:
        for m in call.finditer(code):
            args = _args(code, m.end(), paren=code[m.end() - 1 : m.end()] == "(")
            first = _value(args[0]) if args else None
            if first is None:
                continue
            second = _value(args[1]) if len(args) > 1 else None
            if "{1}" in template and second is None:
                continue
            recursive = "-rf" if "recursive" in code[m.end() : m.end() + 200] else "-f"
            out.append(template.format(_q(first), _q(second or ""), recursive=recursive))
    for m in _PATH_METHOD.finditer(code):
        target = _value(m.group(1))
        if target is not None:
            method = m.group(m.lastindex)
            verb = {"unlink": "rm -f", "rmdir": "rmdir", "chmod": "chmod 777"}.get(method)
            out.append(f"{verb} {_q(target)}" if verb else f": > {_q(target)}")
    for m in _OPEN_WRITE.finditer(code):
        path, mode = _literal(m.group(1)), _literal(m.group(2))
        if any(c in mode for c in "wax+"):
            out.append(f": > {shlex.quote(path)}")
    if lang in ("perl", "ruby"):
        for m in _PERL_OPEN.finditer(code):
            spec = _literal(m.group(1)).strip()
            if spec.startswith(">"):
                out.append(f": > {shlex.quote(spec.lstrip('>').strip())}")
            elif spec.endswith("|") or spec.startswith("|"):
                out.append(spec.strip("|").strip())
    if _KILL_ALL.search(code):
        out.append("kill -9 -1")
    if _FORK_LOOPS.search(code):
        out.append(FORK_BOMB)
    if lang == "python":
        for m in re.finditer(r"\b(?:exec|eval)\s*\(\s*(" + _STRING.pattern + r")", code):
            out.extend(shell_equivalents(lang, _literal(m.group(1)), depth + 1))
    return out


def _command_from_call(code: str, start: int, paren: bool) -> str:
    """The shell command a call's arguments spell: one string, a concatenation of literals, or an
    argv list (`["rm", "-rf", "/"]`, `spawn("rm", ["-rf", "/"])`)."""
    end = _call_end(code, start, paren)
    region = code[start:end]
    literals = list(_STRING.finditer(region))
    if not literals:
        return ""
    values = [_literal(m.group(1)) for m in literals]
    if len(values) == 1 or "shell=True" in region:
        return values[0]  # one string (with shell=True, a list's first item is the shell command)
    between = [region[a.end() : b.start()] for a, b in zip(literals, literals[1:])]
    if any("," in gap or "[" in gap for gap in between) or region.lstrip().startswith(("[", "(")):
        return shlex.join(values)
    return "".join(values)


def _call_end(code: str, start: int, paren: bool) -> int:
    """Where the call's arguments end: its closing parenthesis, or the end of the statement."""
    depth = 1 if paren else 0
    i = start
    while i < len(code):
        m = _STRING.match(code, i)
        if m and m.start() == i and code[i] in "'\"rRbBuUfF" and m.group(1):
            i = m.end()
            continue
        c = code[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth <= 0:
                return i if paren else i
        elif c in ";\n" and depth <= (1 if paren else 0) and not paren:
            return i
        i += 1
    return len(code)


def _args(code: str, start: int, paren: bool) -> list[str]:
    """The call's top-level arguments, as source text."""
    region = code[start : _call_end(code, start, paren)]
    args, depth, current, i = [], 0, [], 0
    while i < len(region):
        m = _STRING.match(region, i)
        if m and region[i] in "'\"rRbBuUfF" and m.group(1):
            current.append(m.group(0))
            i = m.end()
            continue
        c = region[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        if c == "," and depth == 0:
            args.append("".join(current).strip())
            current = []
        else:
            current.append(c)
        i += 1
    if "".join(current).strip():
        args.append("".join(current).strip())
    return args


HOME = "$HOME"  # a home directory expression (Path.home(), expanduser("~"), ...), as shell text


def _value(expr: str) -> str | None:
    """A literal argument's value: a string, a home directory (`Path.home()`), `Path('x')`."""
    expr = expr.strip()
    m = re.fullmatch(r"(Path|pathlib\.Path|File\.expand_path|os\.path\.expanduser|os\.path\.abspath)?\(?\s*(" + _STRING.pattern + r")\s*\)?", expr)
    if m:
        value = _literal(m.group(2))
        if m.group(1) in ("File.expand_path", "os.path.expanduser") and (value == "~" or value.startswith("~/")):
            return HOME + value[1:]
        return value
    if re.fullmatch(_HOME, expr):
        return HOME
    return None


def _q(value: str) -> str:
    """Shell-quote a value, leaving a leading home expression to the shell."""
    if value.startswith(HOME):
        return HOME + shlex.quote(value[len(HOME) :]) if value != HOME else HOME
    return shlex.quote(value)


def _literal(text: str) -> str:
    """The value of a quoted string literal (escapes decoded)."""
    text = re.sub(r"^[rRbBuUfF]{1,2}(?=['\"])", "", text)
    for q in ('"""', "'''", '"', "'", "`"):
        if len(text) >= 2 * len(q) and text.startswith(q) and text.endswith(q):
            body = text[len(q) : -len(q)]
            return decode_ansi_c(body) if "\\" in body else body
    return text
