"""Godel team files (`kind: Team`): a swarm's parameters as the reference Godel writes them.

    metadata: {name, description}
    spec: {task, strategy, initialAgents, maxAgents, model, budget: {amount, currency,
           warningThreshold, criticalThreshold}, safety: {...}, scaling: {enabled, minAgents,
           maxAgents, scaleUpThreshold, scaleDownCooldown}}

Errors name the file, line and field. A `spec` of unknown keys is an error with a suggestion;
`safety` and `budget` thresholds are kept with the swarm (the daemon's own budget thresholds and
safety rules apply; `budget.amount` becomes the swarm's spending limit).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from godeld.errors import InvalidParams
from godeld.yamlsource import YamlSyntaxError, format_path, load_yaml

SPEC_KEYS = {"task", "strategy", "initialAgents", "maxAgents", "model", "provider", "budget", "safety", "scaling", "options", "script", "repo"}
TOP_KEYS = {"apiVersion", "kind", "metadata", "spec"}


def load_team(path: str | Path) -> dict[str, Any]:
    """swarms.create parameters from a team file; InvalidParams naming file:line: field."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InvalidParams(f"cannot read team file {path}: {exc.strerror or exc}", {"file": str(path)}) from None
    try:
        doc = load_yaml(text, str(path))
    except YamlSyntaxError as exc:
        raise InvalidParams(str(exc), {"file": str(path)}) from None
    data = doc.value
    if doc.problems:  # duplicate keys and the like
        raise InvalidParams("invalid team file: " + "; ".join(str(p) for p in doc.problems), {"file": str(path)})
    problems: list[str] = []

    def bad(where: tuple, message: str) -> None:
        line, col = doc.where(where)
        problems.append(f"{path}:{line}:{col}: {format_path(where) or '(document)'}: {message}")

    if not isinstance(data, dict):
        raise InvalidParams(f"{path}: a team file is a mapping with metadata and spec")
    for key in set(data) - TOP_KEYS:
        bad((key,), f"unknown key{_suggest(key, TOP_KEYS)}")
    if data.get("kind") not in (None, "Team"):
        bad(("kind",), f"kind must be Team, not {data.get('kind')!r}")
    spec = data.get("spec")
    if not isinstance(spec, dict):
        bad(("spec",), "spec must be a mapping (task, strategy, initialAgents, ...)")
        spec = {}
    for key in set(spec) - SPEC_KEYS:
        bad(("spec", key), f"unknown key{_suggest(key, SPEC_KEYS)}")
    for key in ("initialAgents", "maxAgents"):
        if key in spec and (isinstance(spec[key], bool) or not isinstance(spec[key], int) or spec[key] < 1):
            bad(("spec", key), "must be a whole number ≥ 1")
    budget = spec.get("budget")
    if budget is not None and not (isinstance(budget, dict) and isinstance(budget.get("amount", 0), (int, float))):
        bad(("spec", "budget"), "must be a mapping with a numeric amount")
    if problems:
        raise InvalidParams("invalid team file: " + "; ".join(problems), {"problems": problems})
    meta = data.get("metadata") or {}
    scaling = spec.get("scaling") or {}
    params: dict[str, Any] = {
        "name": meta.get("name") or path.stem, "description": meta.get("description"),
        "task": spec.get("task"), "strategy": spec.get("strategy") or "parallel",
        "agents": spec.get("initialAgents"), "model": spec.get("model"), "provider": spec.get("provider"),
        "options": dict(spec.get("options") or {}), "script": spec.get("script"), "repo": spec.get("repo"),
        "max_agents": spec.get("maxAgents") or scaling.get("maxAgents"),
        "min_agents": scaling.get("minAgents"), "scaling": scaling or None, "safety": spec.get("safety"),
        "team_budget": budget,
    }
    if isinstance(budget, dict) and budget.get("amount"):
        params["budget_usd"] = float(budget["amount"])
    return {k: v for k, v in params.items() if v is not None}


def _suggest(word: str, known: set[str]) -> str:
    close = difflib.get_close_matches(word, sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
