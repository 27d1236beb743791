"""A small POSIX-shell parser for safety analysis.

It knows enough of the grammar to find every command a string would run: lists (`; && || &`,
newlines), pipelines, subshells, `{ ...; }` groups, functions, `if`/`while`/`for`/`case`,
quoting (`'...'`, `"..."`, `$'...'`, backslashes), parameters, `$(...)`, backticks, process
substitution, redirections and here-documents. It only builds a tree; nothing is expanded or run
here (script.py does the static expansion).

It never raises on odd input: an unclosed quote or bracket ends at the end of the text and the
parse is marked `incomplete` (with where), so callers can look at the text a second way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# -- the tree ------------------------------------------------------------------------------


@dataclass
class Lit:
    text: str
    quoted: bool = False


@dataclass
class Param:
    """$name, ${name}, ${name<op><arg>}; `op` is e.g. ":-", "#", "%%", ":" (substring), "!"."""

    name: str
    op: str = ""
    arg: str = ""
    quoted: bool = False


@dataclass
class CmdSub:
    body: "Script"
    quoted: bool = False


@dataclass
class ProcSub:
    body: "Script"


@dataclass
class Arith:
    text: str


@dataclass
class Word:
    parts: list
    raw: str = ""

    def literal(self) -> str | None:
        """The word's text when it is plain literal text (quotes removed), else None."""
        if all(isinstance(p, Lit) for p in self.parts):
            return "".join(p.text for p in self.parts)
        return None

    def unquoted_literal(self) -> str | None:
        """The text when the word is a single unquoted literal (how reserved words must look)."""
        if len(self.parts) == 1 and isinstance(self.parts[0], Lit) and not self.parts[0].quoted:
            return self.parts[0].text
        return None


@dataclass
class Redirect:
    op: str  # > >> >| < <> &> &>> >& <& << <<- <<<
    target: Word | None
    fd: str = ""
    heredoc: Word | None = None  # the body of << / <<- (as a word: it may hold $(...))


@dataclass
class Simple:
    words: list[Word] = field(default_factory=list)
    redirects: list[Redirect] = field(default_factory=list)


@dataclass
class Subshell:
    body: "Script"
    redirects: list[Redirect] = field(default_factory=list)


@dataclass
class Group:
    body: "Script"
    redirects: list[Redirect] = field(default_factory=list)


@dataclass
class FuncDef:
    name: str
    body: object


@dataclass
class ForHeader:
    """`for NAME in WORDS` — the loop variable takes each word."""

    name: str
    words: list[Word]


@dataclass
class Pipeline:
    stages: list = field(default_factory=list)


@dataclass
class Script:
    items: list[tuple[Pipeline, str]] = field(default_factory=list)  # (pipeline, separator after it)


# -- the parser ------------------------------------------------------------------------------

_META = set(" \t\n;&|()<>")
_PLAIN = re.compile(r"[^ \t\n;&|()<>'\"\\$`]+")
_OPS = ("&&", "||", ";;&", ";;", ";&", "|&", "&>>", "&>", "<<<", "<<-", "<<", ">>", ">|", "<>", ">&", "<&", ";", "&", "|", "(", ")", "<", ">")
_OPS_BY_CHAR = {c: [op for op in _OPS if op[0] == c] for c in ";&|()<>"} | {"\n": ["\n"]}
_BLANKS = re.compile(r"(?:[ \t\r]+|\\\n|#[^\n]*)*")
_REDIRECT_OPS = {"&>>", "&>", "<<<", "<<-", "<<", ">>", ">|", "<>", ">&", "<&", "<", ">"}
_SEPARATORS = {";", "&", "&&", "||", ";;", ";&", ";;&", "\n"}
_TRANSPARENT = {"if", "then", "elif", "else", "fi", "do", "done", "while", "until", "!", "esac", "select"}
_SPECIAL_PARAMS = set("@*#?$!-0123456789")
MAX_DEPTH = 60  # nesting beyond this is not parsed further (marked incomplete)

_ANSI_SIMPLE = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v", "e": "\x1b", "E": "\x1b", "\\": "\\", "'": "'", '"': '"', "?": "?"}


def decode_ansi_c(body: str) -> str:
    """The value of $'...': backslash escapes as bash decodes them (\\x72, \\162, \\u0072, \\cX...)."""
    out: list[str] = []
    i, n = 0, len(body)
    while i < n:
        c = body[i]
        if c != "\\" or i + 1 >= n:
            out.append(c)
            i += 1
            continue
        e = body[i + 1]
        i += 2
        if e in _ANSI_SIMPLE:
            out.append(_ANSI_SIMPLE[e])
        elif e in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[e]
            j = i
            while j < n and j - i < width and body[j] in "0123456789abcdefABCDEF":
                j += 1
            if j > i:
                out.append(_chr(int(body[i:j], 16)))
                i = j
            else:
                out.append("\\" + e)
        elif e in "01234567":
            j = i - 1
            while j < n and j - (i - 1) < 3 and body[j] in "01234567":
                j += 1
            out.append(_chr(int(body[i - 1 : j], 8)))
            i = j
        elif e == "c" and i < n:
            out.append(chr(ord(body[i]) & 0x1F))
            i += 1
        else:
            out.append("\\" + e)
    return "".join(out)


def _chr(code: int) -> str:
    try:
        return chr(code)
    except (ValueError, OverflowError):
        return "?"


class Parser:
    def __init__(self, text: str):
        self.s = text
        self.n = len(text)
        self.i = 0
        self.incomplete = False
        self.unclosed_at: int | None = None  # where the first unclosed quote began
        self.depth = 0
        self.tree = Script()
        self._pending_heredocs: list[tuple[Redirect, str, bool]] = []

    # -- entry points ---------------------------------------------------------------------
    def parse(self) -> Script:
        script = self.script(stop_ops=frozenset(), stop_words=frozenset())
        while self.i < self.n:  # stray `)` or `}` at the top: skip it and go on
            self.incomplete = True
            self.i += 1
            more = self.script(stop_ops=frozenset(), stop_words=frozenset())
            script.items.extend(more.items)
        return script

    # -- lexing helpers ------------------------------------------------------------------
    def _skip_blanks(self) -> None:
        """Blanks, line continuations and comments (a # that starts a word) between tokens."""
        self.i = _BLANKS.match(self.s, self.i).end()

    def _peek_op(self) -> str | None:
        """The operator at the current position (after blanks), if any; newline is one too."""
        self._skip_blanks()
        if self.i >= self.n:
            return None
        s = self.s
        c = s[self.i]
        ops = _OPS_BY_CHAR.get(c)
        if ops is None:
            return None
        if c in "<>" and self.i + 1 < self.n and s[self.i + 1] == "(":
            return None  # process substitution: part of a word
        for op in ops:
            if s.startswith(op, self.i):
                return op
        return None

    def _take_op(self, op: str) -> None:
        self.i += len(op)
        if op == "\n":
            self._read_heredocs()

    def _peek_word_text(self) -> str | None:
        """The next token as plain text if it is an unquoted literal word (for reserved words)."""
        self._skip_blanks()
        j = self.i
        while j < self.n and self.s[j] not in _META and self.s[j] not in "'\"\\$`":
            j += 1
        if j == self.i or (j < self.n and self.s[j] not in _META):
            return None
        return self.s[self.i : j]

    # -- grammar ---------------------------------------------------------------------------
    def script(self, stop_ops: frozenset, stop_words: frozenset) -> Script:
        script = Script()
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                self.incomplete = True
                self.i = self.n
                return script
            while True:
                op = self._peek_op()
                if op == "\n" or op == ";":  # empty command
                    self._take_op(op)
                    continue
                if self.i >= self.n or (op is not None and op in stop_ops):
                    break
                word = self._peek_word_text()
                if word is not None and word in stop_words:
                    break
                start = self.i
                pipeline = self.pipeline(stop_ops, stop_words)
                sep = ""
                op = self._peek_op()
                if op in _SEPARATORS and op not in stop_ops:
                    self._take_op(op)
                    sep = op
                if pipeline.stages:
                    script.items.append((pipeline, sep))
                if self.i == start:  # nothing consumed: a token we cannot place; skip it
                    self.incomplete = True
                    if op is not None and op in stop_ops:
                        break
                    self.i += 1
            return script
        finally:
            self.depth -= 1

    def pipeline(self, stop_ops: frozenset, stop_words: frozenset) -> Pipeline:
        pipeline = Pipeline()
        while True:
            node = self.command(stop_ops, stop_words)
            if node is not None:
                pipeline.stages.append(node)
            op = self._peek_op()
            if op in ("|", "|&"):
                self._take_op(op)
                while self._peek_op() == "\n":
                    self._take_op("\n")
                continue
            return pipeline

    def command(self, stop_ops: frozenset, stop_words: frozenset):
        op = self._peek_op()
        if op == "(":
            self._take_op("(")
            body = self.script(frozenset({")"}), frozenset())
            self._expect(")")
            return Subshell(body, self._redirects())
        if op is not None and op not in _REDIRECT_OPS:
            return None
        word = self._peek_word_text()
        if word is not None and word not in stop_words:
            if word == "{":
                self.i += 1
                body = self.script(frozenset(), frozenset({"}"}))
                if self._peek_word_text() == "}":
                    self.i += 1
                else:
                    self.incomplete = True
                return Group(body, self._redirects())
            if word in _TRANSPARENT:
                self.i += len(word)
                return self.command(stop_ops, stop_words)
            if word == "for":
                self.i += len(word)
                return self._for()
            if word == "case":
                self.i += len(word)
                return self._case()
            if word == "function":
                self.i += len(word)
                name = self._peek_word_text() or ""
                self.i += len(name)
                if self._peek_op() == "(":
                    self._take_op("(")
                    self._expect(")")
                return FuncDef(name, self._func_body(stop_ops, stop_words))
        return self.simple(stop_ops, stop_words)

    def _func_body(self, stop_ops: frozenset, stop_words: frozenset):
        while self._peek_op() == "\n":
            self._take_op("\n")
        return self.command(stop_ops, stop_words)

    def _expect(self, op: str) -> None:
        if self._peek_op() == op:
            self._take_op(op)
        else:
            self.incomplete = True

    def _for(self) -> ForHeader:
        if self._peek_op() == "(":  # for (( ... )) : arithmetic, skip to the closing ))
            end = self.s.find("))", self.i)
            self.i = self.n if end < 0 else end + 2
            return ForHeader("", [])
        name = self._peek_word_text() or ""
        self.i += len(name)
        words: list[Word] = []
        if self._peek_word_text() == "in":
            self.i += 2
            while self._peek_op() is None and self.i < self.n:
                w = self.word()
                if w is None:
                    break
                words.append(w)
        return ForHeader(name, words)

    def _case(self) -> Group:
        """case WORD in PATTERN) LIST ;; ... esac: the lists become one group (all may run)."""
        self.word()
        if self._peek_word_text() == "in":
            self.i += 2
        group = Script()
        while self.i < self.n:
            while self._peek_op() in ("\n", ";", ";;"):
                self._take_op(self._peek_op())
            if self._peek_word_text() == "esac":
                self.i += 4
                break
            if self._peek_op() == "(":
                self._take_op("(")
            while self.i < self.n and self._peek_op() != ")":  # the pattern(s)
                if self._peek_op() == "|":
                    self._take_op("|")
                elif self.word() is None:
                    self.i += 1
            self._expect(")")
            body = self.script(frozenset({";;", ";&", ";;&"}), frozenset({"esac"}))
            group.items.extend(body.items)
            op = self._peek_op()
            if op in (";;", ";&", ";;&"):
                self._take_op(op)
        return Group(group)

    def simple(self, stop_ops: frozenset, stop_words: frozenset):
        cmd = Simple()
        while self.i < self.n:
            op = self._peek_op()
            fd = ""
            if op is None:
                j = self.i
                while j < self.n and self.s[j].isdigit():
                    j += 1
                if j > self.i and j < self.n and self.s[j] in "<>" and not self.s.startswith("<(", j) and not self.s.startswith(">(", j):
                    fd = self.s[self.i : j]
                    self.i = j
                    op = self._peek_op()
            if op in _REDIRECT_OPS:
                cmd.redirects.append(self._redirect(op, fd))
                continue
            if op is not None:
                break
            if stop_words and not cmd.words and not cmd.redirects and self._peek_word_text() in stop_words:
                break
            w = self.word()
            if w is None:
                break
            cmd.words.append(w)
            if len(cmd.words) == 1 and self._peek_op() == "(" and self.s.startswith(")", self._after_blanks(self.i + 1)):
                # name () body: a function definition
                self._take_op("(")
                self._expect(")")
                name = w.literal() or w.raw
                return FuncDef(name, self._func_body(stop_ops, stop_words))
        if not cmd.words and not cmd.redirects:
            return None
        return cmd

    def _after_blanks(self, j: int) -> int:
        while j < self.n and self.s[j] in " \t":
            j += 1
        return j

    def _redirects(self) -> list[Redirect]:
        out = []
        while True:
            op = self._peek_op()
            fd = ""
            if op is None:
                j = self.i
                while j < self.n and self.s[j].isdigit():
                    j += 1
                if j > self.i and j < self.n and self.s[j] in "<>":
                    fd = self.s[self.i : j]
                    self.i = j
                    op = self._peek_op()
            if op not in _REDIRECT_OPS:
                return out
            out.append(self._redirect(op, fd))

    def _redirect(self, op: str, fd: str) -> Redirect:
        self._take_op(op)
        target = self.word()
        red = Redirect(op, target, fd)
        if op in ("<<", "<<-") and target is not None:
            delim = target.literal() or ""
            quoted = any(isinstance(p, Lit) and p.quoted for p in target.parts)
            self._pending_heredocs.append((red, delim, quoted))
        return red

    def _read_heredocs(self) -> None:
        pending, self._pending_heredocs = self._pending_heredocs, []
        for red, delim, quoted in pending:
            lines = []
            while self.i < self.n:
                end = self.s.find("\n", self.i)
                end = self.n if end < 0 else end
                line = self.s[self.i : end]
                self.i = min(end + 1, self.n)
                if line.strip("\t") == delim:
                    break
                lines.append(line)
            body = "\n".join(lines)
            red.heredoc = Word([Lit(body, True)], body) if quoted else parse_dq(body)

    # -- words -----------------------------------------------------------------------------
    def word(self) -> Word | None:
        self._skip_blanks()
        s, n = self.s, self.n
        start = self.i
        parts: list = []
        lit: list[str] = []

        def flush() -> None:
            if lit:
                parts.append(Lit("".join(lit)))
                lit.clear()

        while self.i < n:
            c = s[self.i]
            if c in "<>" and self.i + 1 < n and s[self.i + 1] == "(" and self.i == start:
                self.i += 2
                flush()
                body = self.script(frozenset({")"}), frozenset())
                self._expect(")")
                parts.append(ProcSub(body))
                continue
            if c in _META:
                break
            plain = _PLAIN.match(s, self.i)
            if plain:  # a run of ordinary characters at once (the common case)
                lit.append(plain.group())
                self.i = plain.end()
                continue
            if c == "'":
                flush()
                end = s.find("'", self.i + 1)
                if end < 0:
                    self._unclosed(self.i)
                    end = n
                parts.append(Lit(s[self.i + 1 : end], True))
                self.i = end + 1
            elif c == '"':
                flush()
                self.i += 1
                parts.extend(self._double_quoted())
            elif c == "\\":
                if self.i + 1 < n:
                    if s[self.i + 1] != "\n":
                        flush()
                        parts.append(Lit(s[self.i + 1], True))
                    self.i += 2
                else:
                    self.i += 1
            elif c == "$":
                if s.startswith("$'", self.i):
                    flush()
                    j = self.i + 2
                    while j < n and s[j] != "'":
                        j += 2 if s[j] == "\\" else 1
                    if j >= n:
                        self._unclosed(self.i)
                    parts.append(Lit(decode_ansi_c(s[self.i + 2 : min(j, n)]), True))
                    self.i = j + 1
                elif s.startswith('$"', self.i):
                    flush()
                    self.i += 2
                    parts.extend(self._double_quoted())
                else:
                    part = self._dollar(quoted=False)
                    if isinstance(part, Lit):
                        lit.append(part.text)
                    else:
                        flush()
                        parts.append(part)
            elif c == "`":
                flush()
                parts.append(self._backtick(quoted=False))
            else:
                lit.append(c)
                self.i += 1
        flush()
        if self.i == start:
            return None
        return Word(parts, s[start : self.i])

    def _unclosed(self, at: int) -> None:
        self.incomplete = True
        if self.unclosed_at is None:
            self.unclosed_at = at

    def _double_quoted(self, heredoc: bool = False) -> list:
        """Parts of a "..." string (the opening quote is already consumed), or of a whole
        here-document body (`heredoc`: quotes are plain text there)."""
        s, n = self.s, self.n
        parts: list = []
        lit: list[str] = []
        start = self.i - 1
        while True:
            if self.i >= n:
                if not heredoc:
                    self._unclosed(start)
                break
            c = s[self.i]
            if c == '"' and not heredoc:
                self.i += 1
                break
            if c == "\\" and self.i + 1 < n:
                e = s[self.i + 1]
                if e in '$`"\\':
                    lit.append(e)
                elif e != "\n":
                    lit.append("\\" + e)
                self.i += 2
            elif c == "$":
                part = self._dollar(quoted=True)
                if isinstance(part, Lit):
                    lit.append(part.text)
                else:
                    if lit:
                        parts.append(Lit("".join(lit), True))
                        lit.clear()
                    parts.append(part)
            elif c == "`":
                if lit:
                    parts.append(Lit("".join(lit), True))
                    lit.clear()
                parts.append(self._backtick(quoted=True))
            else:
                lit.append(c)
                self.i += 1
        if lit or not parts:
            parts.append(Lit("".join(lit), True))
        return parts

    def _dollar(self, quoted: bool):
        s, n = self.s, self.n
        i = self.i + 1
        if i >= n:
            self.i = i
            return Lit("$")
        c = s[i]
        if s.startswith("((", i):  # $(( arithmetic ))
            end = s.find("))", i + 2)
            if end < 0:
                self._unclosed(self.i)
                end = n
            self.i = min(end + 2, n)
            return Arith(s[i + 2 : end])
        if c == "(":
            self.i = i + 1
            body = self.script(frozenset({")"}), frozenset())
            self._expect(")")
            return CmdSub(body, quoted)
        if c == "{":
            depth, j = 1, i + 1
            while j < n and depth:
                if s[j] == "{":
                    depth += 1
                elif s[j] == "}":
                    depth -= 1
                elif s[j] == "\\":
                    j += 1
                j += 1
            if depth:
                self._unclosed(self.i)
            inner = s[i + 1 : j - 1 if not depth else n]
            self.i = j
            return _braced_param(inner, quoted)
        if c.isalpha() or c == "_":
            j = i
            while j < n and (s[j].isalnum() or s[j] == "_"):
                j += 1
            self.i = j
            return Param(s[i:j], quoted=quoted)
        if c in _SPECIAL_PARAMS:
            self.i = i + 1
            return Param(c, quoted=quoted)
        self.i = i
        return Lit("$")

    def _backtick(self, quoted: bool) -> CmdSub:
        s, n = self.s, self.n
        j = self.i + 1
        inner: list[str] = []
        while j < n and s[j] != "`":
            if s[j] == "\\" and j + 1 < n and s[j + 1] in "`\\$":
                inner.append(s[j + 1])
                j += 2
            else:
                inner.append(s[j])
                j += 1
        if j >= n:
            self._unclosed(self.i)
        self.i = j + 1
        sub = Parser("".join(inner))
        sub.depth = self.depth
        body = sub.parse()
        self.incomplete |= sub.incomplete
        return CmdSub(body, quoted)


def _braced_param(inner: str, quoted: bool) -> Param:
    if inner.startswith("#") and len(inner) > 1:
        return Param(inner[1:], "length", quoted=quoted)
    if inner.startswith("!"):
        return Param(inner[1:], "!", quoted=quoted)
    j = 0
    if inner[:1] in _SPECIAL_PARAMS:
        j = 1
    while j < len(inner) and (inner[j].isalnum() or inner[j] == "_"):
        j += 1
    name, rest = inner[:j], inner[j:]
    for op in (":-", ":=", ":+", ":?", "##", "%%", "//", "^^", ",,", "-", "=", "+", "?", "#", "%", "/", ":", "^", ",", "@"):
        if rest.startswith(op):
            return Param(name, op, rest[len(op) :], quoted)
    return Param(name, "?unknown" if rest else "", rest, quoted)


def parse_dq(text: str) -> Word:
    """`text` parsed as if it were inside double quotes (a here-document body, an ${x:-arg})."""
    p = Parser(text)
    return Word(p._double_quoted(heredoc=True), text)


def parse_word(text: str) -> Word:
    """`text` parsed as one unquoted word (an ${x:-arg} default)."""
    p = Parser(text)
    parts: list = []
    while p.i < p.n:
        w = p.word()
        if w is None:
            if p.i >= p.n:
                break
            parts.append(Lit(p.s[p.i]))  # a metacharacter: plain text inside ${x:-...}
            p.i += 1
        else:
            parts.extend(w.parts)
    return Word(parts, text)


def parse(text: str) -> Parser:
    """Parse `text`; the Parser holds the tree (`.tree`) and whether it was complete."""
    p = Parser(text)
    p.tree = p.parse()
    return p
