"""What a command changes on disk — the files it writes, deletes or re-permissions — and how paths
are classified (the filesystem root, system directories, disk devices, scratch space).

Shared by the `commands` rule (system directories, devices, the whole filesystem) and the `paths`
rule (the worktree sandbox). Only explicit targets are known: what a program decides to write on
its own (`pip install` into site-packages, a script's output files) is not visible statically.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import re
import tempfile

from godeld.default_plugins.safety.script import MARKERS, PIPE, Cmd, find_paths

WRITE, DELETE, META = "write", "delete", "meta"  # META: permissions / ownership

SYSTEM_DIRS = (
    "/etc", "/boot", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/sys", "/proc",
    "/root", "/var", "/opt", "/srv", "/snap", "/System", "/Library", "/private/etc", "/private/var",
)
NOT_SYSTEM = ("/var/tmp", "/var/folders", "/private/var/folders", "/private/var/tmp")  # temp space
HARMLESS_DEVICES = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty", "/dev/stdin", "/dev/stdout", "/dev/stderr", "/dev/ptmx"}
HARMLESS_DEVICE_DIRS = ("/dev/fd/", "/dev/pts/", "/dev/shm/", "/dev/tcp/", "/dev/udp/")  # tcp/udp: bash's sockets
SCRATCH_DIRS = tuple(sorted({os.path.realpath(d) for d in ("/tmp", "/var/tmp", "/dev/shm", tempfile.gettempdir())}))


def getopt(args: list[str], short_val: str = "", long_val: tuple[str, ...] = ()) -> tuple[dict[str, list[str]], list[str]]:
    """Options and operands the way GNU tools read them: options may follow operands, `--` ends
    them, short options bundle (`-rf`). Options in `short_val` / `long_val` take a value."""
    opts: dict[str, list[str]] = {}
    pos: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            pos.extend(args[i + 1 :])
            break
        if a.startswith("--") and len(a) > 2:
            name, eq, value = a[2:].partition("=")
            if not eq and name in long_val and i + 1 < len(args):
                value = args[i + 1]
                i += 1
            opts.setdefault("--" + name, []).append(value)
        elif a.startswith("-") and len(a) > 1 and not a[1:2] in MARKERS:
            for j in range(1, len(a)):
                if a[j] in short_val:
                    value = a[j + 1 :]
                    if not value and i + 1 < len(args):
                        value = args[i + 1]
                        i += 1
                    opts.setdefault("-" + a[j], []).append(value)
                    break
                opts.setdefault("-" + a[j], []).append("")
        else:
            pos.append(a)
        i += 1
    return opts, pos


def has(opts: dict[str, list[str]], *names: str) -> bool:
    return any(n in opts for n in names)


def values(opts: dict[str, list[str]], *names: str) -> list[str]:
    return [v for n in names for v in opts.get(n, ())]


# -- effects -------------------------------------------------------------------------------------


def effects(cmd: Cmd) -> list[tuple[str, str]]:
    """(kind, path) for every file `cmd` names as something it writes, deletes or re-permissions."""
    out = [(WRITE, target) for op, target in cmd.redirects if op not in ("<", "<&")]
    handler = _HANDLERS.get(cmd.prog)
    if handler is not None:
        out.extend(handler(cmd.args))
    return [(kind, path) for kind, path in out if path and not path.startswith(PIPE)]


def _rm(args):
    opts, pos = getopt(args, "", ("interactive", "one-file-system"))
    return [(DELETE, p) for p in pos]


def _shred(args):
    opts, pos = getopt(args, "ns", ("iterations", "size", "random-source"))
    return [(WRITE, p) for p in pos]


def _mv(args):
    opts, pos = getopt(args, "tS", ("target-directory", "suffix"))
    target = values(opts, "-t", "--target-directory")
    if target:
        return [(DELETE, p) for p in pos] + [(WRITE, target[-1])]
    if len(pos) < 2:
        return []
    return [(DELETE, p) for p in pos[:-1]] + [(WRITE, pos[-1])]


def _copy_like(short_val: str, long_val: tuple[str, ...]):
    def handler(args):
        opts, pos = getopt(args, short_val, long_val)
        target = values(opts, "-t", "--target-directory")
        if target:
            return [(WRITE, target[-1])]
        return [(WRITE, pos[-1])] if len(pos) >= 2 else []

    return handler


def _rsync(args):
    opts, pos = getopt(args, "efTB", ("rsh", "exclude", "include", "filter", "temp-dir", "backup-dir", "suffix", "rsync-path", "chmod", "chown", "password-file", "log-file", "exclude-from", "include-from", "files-from", "partial-dir", "compare-dest", "copy-dest", "link-dest"))
    if len(pos) >= 2 and not _is_remote(pos[-1]):
        return [(WRITE, pos[-1])] + ([(DELETE, pos[-1])] if any(k.startswith("--delete") for k in opts) else [])
    return []


def _is_remote(arg: str) -> bool:
    return bool(re.match(r"^(?:[^/@:]+@)?[^/:]+::?", arg)) or "://" in arg


def _ln(args):
    opts, pos = getopt(args, "tS", ("target-directory", "suffix"))
    target = values(opts, "-t", "--target-directory")
    if target:
        return [(WRITE, target[-1])]
    return [(WRITE, pos[-1])] if len(pos) >= 2 else []


def _each(kind: str, short_val: str = "", long_val: tuple[str, ...] = (), skip_first: bool = False):
    def handler(args):
        opts, pos = getopt(args, short_val, long_val)
        if skip_first and not any(k.startswith("--reference") for k in opts):
            pos = pos[1:]
        return [(kind, p) for p in pos]

    return handler


def _chmod(args):
    # A mode like -w or -x is an operand, not an option: put it back where it belongs.
    modes = [a for a in args if re.fullmatch(r"-[rwxXst]+", a)]
    rest = [a for a in args if a not in modes]
    opts, pos = getopt(rest, "", ("reference",))
    if modes or "--reference" in opts:
        return [(META, p) for p in pos]
    return [(META, p) for p in pos[1:]]


def _dd(args):
    return [(WRITE, a[3:]) for a in args if a.startswith("of=")]


def _sed(args):
    opts, pos = getopt(args, "efl", ("expression", "file", "line-length"))
    if not has(opts, "-i", "--in-place") and not any(a.startswith("-i") or (a.startswith("-") and not a.startswith("--") and "i" in a[1:]) for a in args if a.startswith("-") and not a.startswith("--")):
        return []
    files = pos if has(opts, "-e", "--expression", "-f", "--file") else pos[1:]
    return [(WRITE, p) for p in files]


def _perl(args):
    def in_place(flags: str) -> bool:
        for ch in flags:
            if ch == "i":
                return True
            if ch in "eEIMmxlC0":  # the rest of the bundle is this option's value
                return False
        return False

    if not any(a.startswith("-") and not a.startswith("--") and in_place(a[1:]) for a in args):
        return []
    opts, pos = getopt(args, "eEIMm", ())
    return [(WRITE, p) for p in pos]


def _curl(args):
    opts, pos = getopt(args, "oDcXHdAebuFTwxrCmKEY", ("output", "dump-header", "cookie-jar", "output-dir", "request", "header", "data", "user-agent", "referer", "cookie", "user", "form", "upload-file", "write-out", "proxy", "range", "max-time", "config", "cert", "url", "data-raw", "data-binary", "retry", "connect-timeout", "resolve", "cacert", "trace", "trace-ascii", "stderr"))
    return [(WRITE, p) for p in values(opts, "-o", "--output", "-D", "--dump-header", "-c", "--cookie-jar", "--output-dir", "--trace", "--trace-ascii", "--stderr") if p != "-"]


def _wget(args):
    opts, pos = getopt(args, "OoaPUtTwiQeBl", ("output-document", "output-file", "append-output", "directory-prefix", "user-agent", "tries", "timeout", "wait", "input-file", "quota", "execute", "base", "level", "header", "post-data"))
    return [(WRITE, p) for p in values(opts, "-O", "--output-document", "-o", "--output-file", "-a", "--append-output", "-P", "--directory-prefix") if p != "-"]


def _tar(args):
    first = args[0] if args and not args[0].startswith("-") else ""
    expanded = (["-" + first] if first else []) + args[1 if first else 0 :]
    opts, pos = getopt(expanded, "fCbHKNTVXgL", ("file", "directory", "exclude", "transform", "files-from", "exclude-from", "owner", "group", "mode", "format", "to-command", "use-compress-program"))
    out = []
    if has(opts, "-x", "--extract", "--get"):
        out += [(WRITE, d) for d in values(opts, "-C", "--directory")]
    if has(opts, "-c", "--create", "-r", "--append", "-u", "--update"):
        out += [(WRITE, f) for f in values(opts, "-f", "--file") if f != "-"]
    return out


def _unzip(args):
    opts, pos = getopt(args, "dx", ())
    return [(WRITE, d) for d in values(opts, "-d")]


def _find(args):
    _roots, found, _ = find_paths(args)
    out = []
    if "-delete" in args:
        out += [(DELETE, path) for path in found]
    for k, a in enumerate(args[:-1]):
        if a in ("-fprint", "-fprint0", "-fprintf", "-fls"):
            out.append((WRITE, args[k + 1]))
    return out


_GIT_WRITES = {"clean", "reset", "checkout", "switch", "restore", "rm", "mv", "stash", "commit", "merge", "rebase", "pull", "apply", "am", "cherry-pick", "revert", "add", "init", "gc", "prune"}


def _git(args):
    opts, pos = [], []
    i, where = 0, None
    while i < len(args) and args[i].startswith("-"):
        if args[i] in ("-C", "-c", "--git-dir", "--work-tree", "--namespace") and i + 1 < len(args):
            if args[i] in ("-C", "--work-tree", "--git-dir"):
                where = args[i + 1] if where is None or args[i] != "-C" else posixpath.join(where, args[i + 1])
            i += 2
        else:
            if args[i].startswith(("--git-dir=", "--work-tree=")):
                where = args[i].split("=", 1)[1]
            i += 1
    sub, rest = (args[i], args[i + 1 :]) if i < len(args) else ("", [])
    out = []
    if sub in _GIT_WRITES and where is not None:
        out.append((WRITE, where))
    if sub == "clone":
        _, pos = getopt(rest, "obcjuC", ("origin", "branch", "config", "jobs", "upload-pack", "depth", "reference", "separate-git-dir", "template", "filter"))
        if len(pos) >= 2:
            out.append((WRITE, pos[1]))
    if sub == "worktree" and rest:
        _, pos = getopt(rest[1:], "bB", ("reason",))
        if rest[0] == "add" and pos:
            out.append((WRITE, pos[0]))
        elif rest[0] in ("remove", "move") and pos:
            out.append((DELETE, pos[0]))
            if rest[0] == "move" and len(pos) > 1:
                out.append((WRITE, pos[1]))
    return out


def _pip(args):
    opts, pos = getopt(args, "tdrceif", ("target", "dest", "prefix", "root", "requirement", "constraint", "editable", "index-url", "extra-index-url", "find-links", "src", "cache-dir", "log"))
    return [(WRITE, d) for d in values(opts, "-t", "--target", "-d", "--dest", "--prefix", "--root", "--src")]


_HANDLERS = {
    "rm": _rm, "unlink": _rm, "rmdir": _rm, "srm": _rm, "wipe": _rm,
    "shred": _shred,
    "mv": _mv,
    "cp": _copy_like("tS", ("target-directory", "suffix", "sparse", "reflink", "backup")),
    "install": _copy_like("tSmog", ("target-directory", "suffix", "mode", "owner", "group")),
    "scp": _copy_like("cFiJlopPS", ()),
    "rsync": _rsync,
    "ln": _ln,
    "tee": _each(WRITE),
    "touch": _each(WRITE, "dtr", ("date", "reference")),
    "mkdir": _each(WRITE, "m", ("mode",)),
    "mkfifo": _each(WRITE, "m", ("mode",)),
    "truncate": _each(WRITE, "sr", ("size", "reference")),
    "chmod": _chmod,
    "chown": _each(META, "", ("reference", "from"), skip_first=True),
    "chgrp": _each(META, "", ("reference",), skip_first=True),
    "chattr": lambda args: [(META, a) for a in args[1:] if not a.startswith("-")] if args else [],
    "setfacl": _each(META, "mMxX", ("modify", "remove", "set", "set-file", "modify-file", "remove-file")),
    "dd": _dd,
    "sed": _sed,
    "perl": _perl,
    "curl": _curl,
    "wget": _wget,
    "tar": _tar,
    "unzip": _unzip,
    "find": _find,
    "git": _git,
    "pip": _pip, "pip3": _pip,
}


def created_links(cmds: list[Cmd]) -> dict[str, str]:
    """Symlinks a command creates (`ln -s / r`): absolute link path → absolute target, so that
    paths through them (`rm -rf r/`) are judged where they lead."""
    links: dict[str, str] = {}
    for cmd in cmds:
        if cmd.prog != "ln":
            continue
        opts, pos = getopt(cmd.args, "tS", ("target-directory", "suffix"))
        if not has(opts, "-s", "--symbolic") or len(pos) < 2 and not has(opts, "-t", "--target-directory"):
            continue
        directory = values(opts, "-t", "--target-directory")
        pairs = [(posixpath.join(directory[-1], posixpath.basename(p.rstrip("/"))), p) for p in pos] if directory else [(pos[-1], pos[0])]
        for name, target in pairs:
            name_abs = absolute(name, cmd.cwd)
            if name_abs is None:
                continue
            target_abs = absolute(target if target.startswith("/") else posixpath.join(posixpath.dirname(name_abs), target), "/")
            if target_abs is not None:
                links[name_abs] = target_abs
    return links


def through_links(path: str, links: dict[str, str], follow_last: bool) -> str:
    """`path` with a leading created symlink replaced by where it leads (the link itself, when it
    is the whole path and not followed, stays)."""
    for name, target in links.items():
        if path.startswith(name + "/") or (follow_last and path == name):
            return "/" + posixpath.normpath(target + path[len(name) :]).lstrip("/")
    return path


# -- paths ---------------------------------------------------------------------------------------


def globbed(path: str) -> str:
    """A path with run-time text made concrete: each unknown part stands for one unknown name
    (`/tmp/$X` → `/tmp/…`). The rules look at the case where it is empty separately (`emptied`)."""
    for m in MARKERS:
        path = path.replace(m, "…")
    return path


def absolute(path: str, cwd: str | None) -> str | None:
    """`path` made absolute and normalised (lexically); None when that is not known (a relative
    path in an unknown directory, or a path that starts with run-time text)."""
    if not path or path[0] in MARKERS:
        return None
    path = globbed(path)
    if not path.startswith("/"):
        if cwd is None or cwd[:1] != "/":
            return None
        path = posixpath.join(globbed(cwd), path)
    path = posixpath.normpath(path)
    return "/" + path.lstrip("/")


def has_glob(path: str) -> bool:
    return any(c in path for c in "*?[")


def is_device(path: str) -> bool:
    """A device file other than the harmless ones (/dev/null, /dev/stdout, ...)."""
    if not path.startswith("/dev/") or path in HARMLESS_DEVICES:
        return False
    return not path.startswith(HARMLESS_DEVICE_DIRS)


def within(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def in_system(path: str) -> bool:
    """Inside a system directory (/etc, /usr, /boot, ...) — including through a wildcard."""
    if any(within(path, d) for d in NOT_SYSTEM):
        return False
    if any(within(path, d) for d in SYSTEM_DIRS):
        return True
    head = path.split("/")[1] if path.count("/") >= 1 else ""
    return has_glob(head) and any(fnmatch.fnmatchcase(d.split("/")[1], head) for d in SYSTEM_DIRS)  # /e*/x


def vital_dirs(home: str) -> set[str]:
    """Directories whose loss (or the loss of everything directly in them) wrecks the machine or
    a user's account."""
    dirs = {"/", "/home", "/Users", "/tmp", "/var/tmp", "/mnt", "/media", *SYSTEM_DIRS}
    if home and home != "/":
        dirs.add(home.rstrip("/"))
        dirs.add(posixpath.dirname(home.rstrip("/")))
    return dirs


def root_like(path: str, home: str) -> bool:
    """Deleting `path` (an absolute, normalised path that may hold wildcards) would wipe the
    filesystem root, a system directory, /tmp or a home — or everything directly inside one."""
    vital = vital_dirs(home)
    parts = path.split("/")
    for k in range(1, len(parts)):
        if has_glob(parts[k]):
            parent = "/".join(parts[:k]) or "/"
            if parent in vital or (k == 1):
                return True  # /*, /e*, ~/*, /usr/*: everything in a vital directory
            return False
    return path.rstrip("/") in vital or path == "/"


def emptied(path: str) -> str:
    """`path` as it would be if its run-time parts were empty (`"$X/"` → `/`)."""
    for m in MARKERS:
        path = path.replace(m, "")
    return path


def scratch(path: str, root: str | None = None) -> bool:
    """Inside a temp directory (not the temp directory itself). When the worktree lives in a temp
    directory, the tree around it there (other worktrees, godel's own files) is not scratch."""
    for d in SCRATCH_DIRS:
        base = d.rstrip("/") + "/"
        if path.startswith(base):
            if root and root.startswith(base):
                held = base + root[len(base) :].split("/", 1)[0]
                return not within(path, held)
            return True
    return False
