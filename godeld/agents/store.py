"""What the agent, budget and safety services need from storage. A backend exposes an object
implementing AgentStore as `storage.agents`; SQL stays inside the backend plugin.

Records are plain dicts of JSON-able values; every method returns once the write is durable.
"""

from __future__ import annotations

from typing import Any, Protocol


class AgentStore(Protocol):
    # -- agents: one record per agent, the whole record written at every transition ---------
    async def save_agent(self, record: dict[str, Any]) -> None: ...
    async def get_agent(self, agent_id: str) -> dict[str, Any] | None: ...
    async def list_agents(self, *, states: list[str] | None = None, limit: int = 1000) -> list[dict[str, Any]]: ...
    async def delete_agent(self, agent_id: str) -> None: ...

    # -- transcript: what an agent said and did, in order ----------------------------------
    async def append_transcript(self, agent_id: str, entries: list[dict[str, Any]]) -> int:
        """Append entries (each {ts, kind, data}); returns the number of entries now stored."""
    async def read_transcript(self, agent_id: str, *, after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        """Entries numbered > after, each {n, ts, kind, data}."""

    # -- the usage ledger -------------------------------------------------------------------
    async def record_usage(self, entries: list[dict[str, Any]]) -> None:
        """Each: {ts, day, agent_id, swarm_id, workflow_id, task_id, provider, model, input_tokens,
        output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, duration_ms, price_version}."""
    async def usage_totals(self, *, day: str) -> dict[str, dict[str, dict[str, float]]]:
        """Spending so far by scope: {"global": {"": t}, "day": {day: t}, "agent": {id: t},
        "swarm": {id: t}, "workflow": {id: t}} where t = {cost_usd, tokens}."""
    async def usage_report(self, *, group_by: str, since_ms: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        """Sums grouped by one of: agent, swarm, workflow, task, provider, model, day."""

    # -- budget limits set at run time (budget.set) -----------------------------------------
    async def set_budget_limit(self, scope: str, scope_id: str, max_cost_usd: float | None, max_tokens: int | None) -> None: ...
    async def list_budget_limits(self) -> list[dict[str, Any]]: ...

    # -- approvals: "ask" decisions waiting for a person -------------------------------------
    async def save_approval(self, record: dict[str, Any]) -> None: ...
    async def list_approvals(self, *, state: str | None = None, agent_id: str | None = None) -> list[dict[str, Any]]: ...
