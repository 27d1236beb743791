"""Load YAML and keep where each value came from, so errors can name file, line and column.

`load_yaml(text, filename)` returns a `Located` document: the plain Python value plus a map from
a path (a tuple of keys and indexes) to the 1-based (line, column) of that entry. Duplicate keys,
which PyYAML silently collapses, are reported as errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Path_ = tuple[Any, ...]


@dataclass
class YamlProblem:
    file: str
    line: int
    column: int
    path: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "column": self.column, "path": self.path, "message": self.message}

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


@dataclass
class Located:
    value: Any
    file: str
    positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    problems: list[YamlProblem] = field(default_factory=list)

    def where(self, path: Path_) -> tuple[int, int]:
        """The position of `path`, or of its nearest located ancestor."""
        while path not in self.positions and path:
            path = path[:-1]
        return self.positions.get(path, (1, 1))

    def problem(self, path: Path_, message: str) -> YamlProblem:
        line, column = self.where(path)
        return YamlProblem(self.file, line, column, format_path(path), message)


def format_path(path: Path_) -> str:
    """('steps', 3, 'dependsOn', 0) -> 'steps[3].dependsOn[0]'."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class YamlSyntaxError(Exception):
    def __init__(self, problem: YamlProblem):
        super().__init__(str(problem))
        self.problem = problem


def load_yaml(text: str, filename: str) -> Located:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        value = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        context = exc.context or ""
        if context and exc.context_mark is not None and exc.context_mark is not mark:
            # e.g. an unclosed '[': say where it was opened, not only where the file ended
            context += f" (started at line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1})"
        message = ": ".join(str(part) for part in (context, exc.problem) if part)
        raise YamlSyntaxError(YamlProblem(filename, line, column, "", f"invalid YAML: {message}")) from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(YamlProblem(filename, 1, 1, "", f"invalid YAML: {exc}")) from None
    finally:
        loader.dispose()
    doc = Located(value, filename)
    if node is not None:
        _walk(node, (), doc)
    return doc


def _walk(node: yaml.Node, path: Path_, doc: Located) -> None:
    doc.positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key is None:
                continue
            # Positions point at the key: that is where a person looks for a wrong entry.
            doc.positions[path + (key,)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key in seen:
                doc.problems.append(doc.problem(path + (key,), f"duplicate key {key!r} (first at line {seen[key]})"))
            seen[key] = key_node.start_mark.line + 1
            _walk(value_node, path + (key,), doc)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, path + (index,), doc)
