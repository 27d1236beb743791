"""Loading Agent Skills: parse SKILL.md folders from ordered sources into one catalog.

A skill is a folder holding SKILL.md: YAML front matter between `---` lines (`name`,
`description`; optional `license`, `compatibility`, `metadata`, `allowed-tools`), then Markdown.
Sources are scanned in precedence order (project > user > configured paths > plugin sources >
built-in); the first skill of a name wins and the later ones are recorded as shadowed.

A malformed skill never stops the others: it becomes a `SkillProblem` (file, line, reason) in the
catalog's `errors`. Deviations the public skills make from the spec (an odd name, an unknown key)
load with a warning instead, so skills people already have keep working.

Everything here is synchronous file I/O: the service runs `scan` on a worker thread.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from godeld.yamlsource import YamlSyntaxError, load_yaml

SKILL_FILE = "SKILL.md"
NAME_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
NAME_MAX = 64
DESCRIPTION_MAX = 1024
COMPATIBILITY_MAX = 500
KNOWN_KEYS = {"name", "description", "license", "compatibility", "metadata", "allowed-tools"}
MAX_FILES = 500  # files listed per skill: enough for any real skill, bounded for a stray huge folder
SKIP_DIRS = {".git", "__pycache__", "node_modules", ".venv"}


@dataclass
class SkillProblem:
    path: str
    message: str
    line: int | None = None
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "line": self.line, "message": self.message, "source": self.source}

    def key(self) -> tuple:
        return (self.path, self.line, self.message)


@dataclass
class Skill:
    name: str
    description: str
    source: str
    dir: Path
    body: str
    license: str | None = None
    compatibility: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    allowed_tools: list[str] | None = None
    files: list[str] = field(default_factory=list)
    warnings: list[SkillProblem] = field(default_factory=list)
    shadows: list[dict[str, str]] = field(default_factory=list)
    body_line: int = 1  # line of SKILL.md where the body starts

    @property
    def file(self) -> Path:
        return self.dir / SKILL_FILE

    def summary(self) -> dict[str, Any]:
        """The public shape used by skills.list."""
        return {
            "name": self.name, "description": self.description, "source": self.source, "path": str(self.dir),
            "file": str(self.file), "allowed_tools": self.allowed_tools, "license": self.license,
            "compatibility": self.compatibility, "metadata": self.metadata, "shadows": list(self.shadows),
            "files": list(self.files), "warnings": [w.to_dict() for w in self.warnings],
        }

    def detail(self) -> dict[str, Any]:
        """skills.get: the summary plus the body."""
        return {**self.summary(), "body": self.body}


@dataclass
class SourceDirs:
    """One source: a name and its directories, best first."""

    name: str
    dirs: list[Path]


@dataclass
class Catalog:
    skills: dict[str, Skill] = field(default_factory=dict)
    errors: list[SkillProblem] = field(default_factory=list)
    shadowed: list[Skill] = field(default_factory=list)
    sources: list[SourceDirs] = field(default_factory=list)

    def dirs(self) -> list[Path]:
        return [d for s in self.sources for d in s.dirs]


class SkillLoadError(Exception):
    def __init__(self, problem: SkillProblem):
        super().__init__(problem.message)
        self.problem = problem


def parse_allowed_tools(value: Any) -> list[str] | None:
    """`allowed-tools`: a space- or comma-separated string, or a list. None when absent."""
    if value is None:
        return None
    if isinstance(value, str):
        # Commas inside parentheses belong to one tool pattern, e.g. Bash(git add:*, git commit:*)
        parts, depth, current = [], 0, ""
        for ch in value:
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth = max(0, depth - 1)
            if depth == 0 and (ch == "," or ch.isspace()):
                parts.append(current)
                current = ""
            else:
                current += ch
        parts.append(current)
        return [p.strip() for p in parts if p.strip()]
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    raise ValueError(f"allowed-tools must be a string or a list, got {type(value).__name__}")


def split_front_matter(text: str) -> tuple[str, str, int]:
    """-> (front matter YAML, body, line where the body starts). Raises ValueError with the reason."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        raise ValueError("no YAML front matter: SKILL.md must start with a '---' line")
    for index in range(1, len(lines)):
        if lines[index].strip() == "---":
            return "".join(lines[1:index]), "".join(lines[index + 1:]), index + 2
    raise ValueError("front matter is not closed: no second '---' line")


def list_files(skill_dir: Path) -> list[str]:
    """Files of a skill besides SKILL.md, as relative POSIX paths, sorted (hidden files skipped)."""
    out: list[str] = []
    for root, dirs, files in os.walk(skill_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS)
        for name in sorted(files):
            if name.startswith("."):
                continue
            rel = (Path(root) / name).relative_to(skill_dir).as_posix()
            if rel != SKILL_FILE:
                out.append(rel)
            if len(out) >= MAX_FILES:
                return out
    return out


def load_skill(skill_dir: Path, source: str) -> Skill:
    """Parse one skill folder. Raises SkillLoadError (with file and line) when it cannot be used."""
    file = skill_dir / SKILL_FILE
    where = str(file)

    def fail(message: str, line: int | None = None) -> SkillLoadError:
        return SkillLoadError(SkillProblem(where, message, line, source))

    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise fail(f"not UTF-8 text: {exc.reason}") from None
    except OSError as exc:
        raise fail(f"cannot read: {exc.strerror or exc}") from None
    text = text.lstrip("\ufeff")
    try:
        yaml_text, body, body_line = split_front_matter(text)
    except ValueError as exc:
        raise fail(str(exc), 1) from None
    try:
        doc = load_yaml(yaml_text, where)
    except YamlSyntaxError as exc:
        # +1: the front matter starts on the line after the opening '---'
        raise fail(exc.problem.message, exc.problem.line + 1) from None
    meta = doc.value
    if not isinstance(meta, dict):
        raise fail("front matter must be a YAML mapping (name: ..., description: ...)", 2)

    def line_of(key: str) -> int:
        return doc.where((key,))[0] + 1

    warnings = [SkillProblem(where, p.message, p.line + 1, source) for p in doc.problems]
    for key in ("name", "description"):
        if key not in meta or meta[key] is None or (isinstance(meta[key], str) and not meta[key].strip()):
            raise fail(f"front matter has no '{key}' (required)", 2)
    name, description = meta["name"], meta["description"]
    if not isinstance(name, str):
        raise fail(f"'name' must be a string, got {type(name).__name__}", line_of("name"))
    if not isinstance(description, str):
        raise fail(f"'description' must be a string, got {type(description).__name__}", line_of("description"))
    name = name.strip()
    if name != skill_dir.name:
        raise fail(f"name {name!r} does not match its folder {skill_dir.name!r}", line_of("name"))
    if len(name) > NAME_MAX or not NAME_RE.match(name):
        warnings.append(SkillProblem(where, f"name {name!r} should be at most {NAME_MAX} lowercase letters, digits and single hyphens", line_of("name"), source))
    if len(description) > DESCRIPTION_MAX:
        warnings.append(SkillProblem(where, f"description is {len(description)} characters; the spec allows {DESCRIPTION_MAX}", line_of("description"), source))
    for key in sorted(set(meta) - KNOWN_KEYS, key=str):
        warnings.append(SkillProblem(where, f"unknown front matter key {key!r} (kept out; put extra data under 'metadata')", line_of(str(key)), source))
    metadata = meta.get("metadata") or {}
    if not isinstance(metadata, dict):
        warnings.append(SkillProblem(where, "'metadata' should be a mapping; ignored", line_of("metadata"), source))
        metadata = {}
    compatibility = meta.get("compatibility")
    if compatibility is not None and not isinstance(compatibility, str):
        warnings.append(SkillProblem(where, "'compatibility' should be a string", line_of("compatibility"), source))
        compatibility = str(compatibility)
    if compatibility and len(compatibility) > COMPATIBILITY_MAX:
        warnings.append(SkillProblem(where, f"compatibility is longer than {COMPATIBILITY_MAX} characters", line_of("compatibility"), source))
    license_ = meta.get("license")
    try:
        allowed = parse_allowed_tools(meta.get("allowed-tools"))
    except ValueError as exc:
        raise fail(str(exc), line_of("allowed-tools")) from None
    return Skill(
        name=name, description=description.strip(), source=source, dir=skill_dir, body=body.strip("\n"),
        license=None if license_ is None else str(license_), compatibility=compatibility,
        metadata=_jsonable(metadata), allowed_tools=allowed, files=list_files(skill_dir),
        warnings=warnings, body_line=body_line,
    )


def _jsonable(value: Any) -> Any:
    """YAML may hold dates and other non-JSON scalars: keep them as strings."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def skill_dirs(directory: Path) -> Iterable[Path]:
    """The skill folders of a source directory: its subfolders holding SKILL.md, sorted."""
    try:
        entries = sorted(directory.iterdir(), key=lambda p: p.name)
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith(".") or entry.name in SKIP_DIRS or not entry.is_dir():
            continue
        if (entry / SKILL_FILE).is_file():
            yield entry
        elif any(p.name.lower() == "skill.md" for p in _safe_iter(entry)):
            yield entry  # a misspelt SKILL.md: loading it reports the problem


def _safe_iter(directory: Path) -> list[Path]:
    try:
        return list(directory.iterdir())
    except OSError:
        return []


def scan(sources: list[SourceDirs]) -> Catalog:
    """Load every skill of every source; the first of a name wins, later ones are shadowed."""
    catalog = Catalog(sources=sources)
    seen_dirs: set[Path] = set()
    for source in sources:
        for directory in source.dirs:
            resolved = _resolve(directory)
            if resolved in seen_dirs:
                continue  # the same directory named twice (e.g. a symlink): load it once
            seen_dirs.add(resolved)
            for skill_dir in skill_dirs(directory):
                try:
                    skill = load_skill(skill_dir, source.name)
                except SkillLoadError as exc:
                    catalog.errors.append(exc.problem)
                    continue
                winner = catalog.skills.get(skill.name)
                if winner is None:
                    catalog.skills[skill.name] = skill
                else:
                    winner.shadows.append({"source": skill.source, "path": str(skill.dir)})
                    catalog.shadowed.append(skill)
    return catalog


def _resolve(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path


def when_to_use(body: str) -> str:
    """The text of the body's "When to use ..." sections (any heading level), joined."""
    out: list[str] = []
    level = 0
    for line in body.splitlines():
        m = re.match(r"^(#{1,6})\s+(.*)$", line)
        if m:
            if level and len(m.group(1)) <= level:
                level = 0
            if not level and re.match(r"when\s+to\s+use", m.group(2).strip(), re.I):
                level = len(m.group(1))
                continue
        if level:
            out.append(line)
    return "\n".join(out).strip()
