"""Safety in godeld: builds each agent's policy, puts every action to the registered rules
(veto model), publishes denials (`safety:block`, the security log), and holds "ask" decisions
until a person answers with agents.approve / agents.deny — persisted, so a pending approval
survives a restart of godeld."""

from __future__ import annotations

import time
from typing import Any

import trio

from godeld.errors import NotFound
from godeld.safety import Action, Decision, Policy, evaluate


class SafetyService:
    def __init__(self, daemon: Any):
        self.daemon = daemon
        self.store = daemon.storage.agents
        self._waiting: dict[str, trio.Event] = {}
        self._approvals: dict[str, dict[str, Any]] = {}

    async def load(self) -> None:
        for rec in await self.store.list_approvals(state="pending"):
            self._approvals[rec["id"]] = rec

    def rules(self) -> dict[str, Any]:
        disabled = set(self.daemon.config.get("safety.disabled_rules"))
        registry = self.daemon.plugins.registries.safety_rules
        return {name: registry[name] for name in registry if name not in disabled}

    def policy(self, agent: dict[str, Any] | None = None) -> Policy:
        cfg = self.daemon.config.get("safety")
        tools = (agent or {}).get("tools")
        return Policy(
            worktree=(agent or {}).get("worktree"),
            allowed_tools=frozenset(tools) if tools is not None else None,
            denied_tools=frozenset(cfg["denied_tools"]),
            network_allow=frozenset(cfg["network_allow"]) if cfg["network_allow"] else None,
            protected_branches=frozenset(cfg["protected_branches"]),
            ask_tools=frozenset(cfg["ask_tools"]) | frozenset((agent or {}).get("ask_tools") or ()),
        )

    def decide(self, action: Action, policy: Policy) -> Decision:
        return evaluate(self.rules(), action, policy)

    async def check(self, action: Action, agent: dict[str, Any] | None, *, publish: bool) -> Decision:
        decision = self.decide(action, self.policy(agent))
        if decision.verdict == "deny" and publish:
            await self.daemon.bus.publish(
                "safety:block",
                {"action": action.to_dict(), "reason": decision.reason, "rule": decision.rule, "agentId": action.agent_id},
                source="safety",
                metadata={"agentId": action.agent_id} if action.agent_id else None,
            )
        return decision

    async def authorize(self, agent: dict[str, Any], tool: str, args: dict[str, Any], call_id: str) -> Decision:
        """The decision for one tool call of a running agent; waits while a person decides."""
        action = Action(tool, args if isinstance(args, dict) else {"_raw": args}, agent["id"])
        approval_id = f"{agent['id']}:{call_id}"
        existing = self._approvals.get(approval_id)
        if existing is None:
            decision = await self.check(action, agent, publish=True)
            if decision.verdict == "ask" and tool in (agent.get("skill_allowed_tools") or {}):
                # An active skill's allowed-tools pre-approve the tool (as in Claude Code): no
                # person is asked; a rule that denies still denies.
                return Decision("allow", f"pre-approved by skill {agent['skill_allowed_tools'][tool]}", decision.rule)
            if decision.verdict != "ask":
                return decision
            existing = {
                "id": approval_id, "agent_id": agent["id"], "state": "pending", "created_at": int(time.time() * 1000),
                "action": action.to_dict(), "reason": decision.reason, "rule": decision.rule,
            }
            await self.store.save_approval(existing)
            self._approvals[approval_id] = existing
            await self.daemon.bus.publish("safety:ask", {"approval": approval_id, "agentId": agent["id"], "action": action.to_dict(), "reason": decision.reason, "rule": decision.rule}, source="safety")
        while existing["state"] == "pending":
            event = self._waiting.setdefault(approval_id, trio.Event())
            await event.wait()
            existing = self._approvals[approval_id]
        if existing["state"] == "approved":
            return Decision("allow", f"approved: {existing.get('note') or ''}".strip(), existing.get("rule", ""))
        decision = Decision("deny", f"denied by a person{': ' + existing['note'] if existing.get('note') else ''}", existing.get("rule", ""))
        await self.daemon.bus.publish("safety:block", {"action": existing["action"], "reason": decision.reason, "rule": decision.rule, "agentId": agent["id"]}, source="safety")
        return decision

    def pending(self, agent_id: str | None = None) -> list[dict[str, Any]]:
        return [a for a in self._approvals.values() if a["state"] == "pending" and (agent_id is None or a["agent_id"] == agent_id)]

    async def resolve(self, agent_id: str, approval_id: str | None, approve: bool, note: str | None) -> list[dict[str, Any]]:
        """Answer one pending approval (or, with approval_id None, every pending one of the agent)."""
        targets = [a for a in self.pending(agent_id) if approval_id in (None, a["id"])]
        if not targets:
            what = f"approval {approval_id}" if approval_id else "approval"
            raise NotFound(f"no pending {what} for agent {agent_id}", {"agent": agent_id, "approval": approval_id})
        for rec in targets:
            rec = {**rec, "state": "approved" if approve else "denied", "decided_at": int(time.time() * 1000), "note": note}
            await self.store.save_approval(rec)
            self._approvals[rec["id"]] = rec
            await self.daemon.bus.publish("safety:decision", {"approval": rec["id"], "agentId": agent_id, "approved": approve, "note": note}, source="safety")
            event = self._waiting.pop(rec["id"], None)
            if event is not None:
                event.set()
        return targets

    def forget(self, agent_id: str) -> None:
        """An agent ended: its in-memory approvals go (the records stay in storage)."""
        for key in [k for k, a in self._approvals.items() if a["agent_id"] == agent_id and a["state"] != "pending"]:
            del self._approvals[key]
