"""Safety: the veto model. Every action an agent takes (a tool call, a command) is put to every
registered rule; any rule may deny it or ask a person, with a reason. Rules are plugins
(`register_safety_rules`); this module holds the shared vocabulary and the evaluation.

Kept import-light (stdlib only): the agent worker process imports it too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Verdict = Literal["allow", "deny", "ask"]


@dataclass(frozen=True)
class Action:
    """What an agent wants to do.

    `tool` is one of read_file, write_file, edit_file, list_dir, search, run_command (or a CLI
    agent's own tool name); `args` are the tool's arguments as the model gave them
    (`{"path": ...}`, `{"command": ...}`, ...).
    """

    tool: str
    args: dict[str, Any] = field(default_factory=dict)
    agent_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"tool": self.tool, "args": self.args, "agent_id": self.agent_id}


@dataclass(frozen=True)
class Policy:
    """What an agent may do; built from config (`safety.*`) and the agent's spawn params.

    - `worktree`: the only directory tree file tools and commands may touch (absolute, resolved);
      None when there is none (a dry-run `safety.check` without an agent).
    - `allowed_tools` / `denied_tools`: None means no allow list; deny wins over allow.
    - `network_allow`: host names (or `*.example.com`) that commands may reach; None means any.
    - `protected_branches`: force-pushes to these are refused.
    - `ask_tools`: tools that need a person's approval before they run.
    """

    worktree: str | None = None
    allowed_tools: frozenset[str] | None = None
    denied_tools: frozenset[str] = frozenset()
    network_allow: frozenset[str] | None = None
    protected_branches: frozenset[str] = frozenset({"main", "master"})
    ask_tools: frozenset[str] = frozenset()
    extra: dict[str, Any] = field(default_factory=dict)  # settings for third-party rules


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str = ""
    rule: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "reason": self.reason, "rule": self.rule}


ALLOW = Decision("allow")


class SafetyRule(Protocol):
    """A rule registered with `register_safety_rules`: `register(name, rule)`.

    `check` returns None (no objection) or a Decision with verdict "deny" or "ask" and a reason a
    person understands. It must be fast, pure and must not raise for odd input (a rule that
    raises is treated as a denial, so a buggy rule fails closed).
    """

    def check(self, action: Action, policy: Policy) -> Decision | None: ...


def evaluate(rules: dict[str, SafetyRule], action: Action, policy: Policy) -> Decision:
    """Veto model: the first denial wins (rules in name order, so the result is stable);
    otherwise the first "ask"; otherwise allow."""
    ask: Decision | None = None
    for name in sorted(rules):
        try:
            decision = rules[name].check(action, policy)
        except Exception as exc:  # noqa: BLE001 - fail closed
            return Decision("deny", f"safety rule {name} failed: {type(exc).__name__}: {exc}", name)
        if decision is None or decision.verdict == "allow":
            continue
        decision = Decision(decision.verdict, decision.reason, decision.rule or name)
        if decision.verdict == "deny":
            return decision
        if ask is None:
            ask = decision
    return ask or ALLOW
