"""The budget: one ledger of LLM calls (API providers and CLI agents alike), costs from a
versioned price table, limits per agent, swarm, workflow, day and overall, and the thresholds:
50% budget:warning, 75% a notification, 90% no new spawns under that limit, 100% budget:exceeded
and a hard stop (the agents under the limit are killed)."""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import Any, Iterable

from godeld.agents.llm import Usage

log = logging.getLogger("godeld.budget")

# USD per million tokens. A model matches its longest listed prefix ("gpt-4o-2024-08-06" → "gpt-4o").
# Config's budget.prices is merged over this table; budget.prices_version labels the ledger rows.
BUILTIN_PRICES: dict[str, dict[str, float]] = {
    "gpt-4o": {"input": 2.5, "output": 10.0, "cache_read": 1.25},
    "gpt-4o-mini": {"input": 0.15, "output": 0.6, "cache_read": 0.075},
    "gpt-4.1": {"input": 2.0, "output": 8.0, "cache_read": 0.5},
    "gpt-4.1-mini": {"input": 0.4, "output": 1.6, "cache_read": 0.1},
    "gpt-4.1-nano": {"input": 0.1, "output": 0.4, "cache_read": 0.025},
    "gpt-5": {"input": 1.25, "output": 10.0, "cache_read": 0.125},
    "gpt-5-mini": {"input": 0.25, "output": 2.0, "cache_read": 0.025},
    "o3": {"input": 2.0, "output": 8.0, "cache_read": 0.5},
    "o4-mini": {"input": 1.1, "output": 4.4, "cache_read": 0.275},
    "claude-opus-4": {"input": 15.0, "output": 75.0, "cache_read": 1.5, "cache_write": 18.75},
    "claude-sonnet-4": {"input": 3.0, "output": 15.0, "cache_read": 0.3, "cache_write": 3.75},
    "claude-3-7-sonnet": {"input": 3.0, "output": 15.0, "cache_read": 0.3, "cache_write": 3.75},
    "claude-3-5-haiku": {"input": 0.8, "output": 4.0, "cache_read": 0.08, "cache_write": 1.0},
    "claude-haiku-4": {"input": 1.0, "output": 5.0, "cache_read": 0.1, "cache_write": 1.25},
    "gemini-2.5-pro": {"input": 1.25, "output": 10.0, "cache_read": 0.31},
    "gemini-2.5-flash": {"input": 0.3, "output": 2.5, "cache_read": 0.075},
}

LEVELS = (50, 75, 90, 100)
SCOPES = ("global", "day", "agent", "swarm", "workflow")


def today() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")


class PriceTable:
    def __init__(self, prices: dict[str, dict[str, float]], version: str):
        self.prices = {**BUILTIN_PRICES, **{k.lower(): v for k, v in prices.items()}}
        self.version = version
        self._by_length = sorted(self.prices, key=len, reverse=True)

    def price(self, model: str) -> dict[str, float] | None:
        m = (model or "").lower().split("/")[-1]  # "openai/gpt-4o" (OpenRouter style) → "gpt-4o"
        for name in self._by_length:
            if m.startswith(name):
                return self.prices[name]
        return None

    def cost(self, model: str, usage: Usage) -> tuple[float, bool]:
        """(cost in USD, priced?). An unknown model costs what the provider reported, if it did."""
        p = self.price(model)
        if p is None:
            return (float(usage.cost_usd or 0.0), usage.cost_usd is not None)
        total = usage.input_tokens * p.get("input", 0.0) + usage.output_tokens * p.get("output", 0.0)
        total += usage.cache_read_tokens * p.get("cache_read", p.get("input", 0.0))
        total += usage.cache_write_tokens * p.get("cache_write", p.get("input", 0.0))
        return (total / 1_000_000, True)


@dataclass
class Limit:
    max_cost_usd: float | None = None
    max_tokens: int | None = None

    def fraction(self, spent: dict[str, float]) -> float:
        """How much of the limit is used (1.0 = all)."""
        parts = []
        if self.max_cost_usd:
            parts.append(spent.get("cost_usd", 0.0) / self.max_cost_usd)
        if self.max_tokens:
            parts.append(spent.get("tokens", 0) / self.max_tokens)
        return max(parts, default=0.0)

    def to_dict(self) -> dict[str, Any]:
        return {"max_cost_usd": self.max_cost_usd, "max_tokens": self.max_tokens}


class Budget:
    """In memory: the totals and limits, loaded from storage at start and kept current on
    every record(); the ledger itself is in storage."""

    def __init__(self, daemon: Any):
        self.daemon = daemon
        self.store = daemon.storage.agents
        self.totals: dict[str, dict[str, dict[str, float]]] = {s: {} for s in SCOPES}
        self.limits: dict[tuple[str, str], Limit] = {}  # set by budget.set (and per-agent at spawn)
        self.crossed: dict[tuple[str, str], int] = {}  # highest level reported per limit
        self.day = today()
        self.configure()

    def configure(self) -> None:
        cfg = self.daemon.config.get("budget")
        self.prices = PriceTable(cfg["prices"] or {}, cfg["prices_version"])

    async def load(self) -> None:
        self.day = today()
        self.totals = await self.store.usage_totals(day=self.day)
        for row in await self.store.list_budget_limits():
            self.limits[(row["scope"], row["scope_id"])] = Limit(row["max_cost_usd"], row["max_tokens"])
        for key, limit in list(self._all_limits()):
            self.crossed[key] = max([lvl for lvl in LEVELS if limit.fraction(self._spent(*key)) * 100 >= lvl], default=0)

    # -- limits --------------------------------------------------------------------------------
    def limit_for(self, scope: str, scope_id: str) -> Limit | None:
        key = (scope, scope_id if scope not in ("global", "day") else "")
        if key in self.limits:
            return self.limits[key]
        cfg = self.daemon.config.get("budget")
        if scope == "global" and cfg["global_usd"]:
            return Limit(cfg["global_usd"])
        if scope == "day" and cfg["daily_usd"]:
            return Limit(cfg["daily_usd"])
        if scope == "agent" and cfg["agent_usd"]:
            return Limit(cfg["agent_usd"])
        return None

    def _all_limits(self) -> Iterable[tuple[tuple[str, str], Limit]]:
        seen = set()
        for key, limit in self.limits.items():
            seen.add(key)
            yield key, limit
        for scope in ("global", "day"):
            limit = self.limit_for(scope, "")
            if limit and (scope, "") not in seen:
                yield (scope, ""), limit

    async def set_limit(self, scope: str, scope_id: str, max_cost_usd: float | None, max_tokens: int | None, *, persist: bool = True) -> None:
        scope_id = scope_id if scope not in ("global", "day") else ""
        if persist:
            await self.store.set_budget_limit(scope, scope_id, max_cost_usd, max_tokens)
        if max_cost_usd is None and max_tokens is None:
            self.limits.pop((scope, scope_id), None)
        else:
            self.limits[(scope, scope_id)] = Limit(max_cost_usd, max_tokens)

    def _spent(self, scope: str, scope_id: str) -> dict[str, float]:
        if scope == "global":
            return self.totals["global"].get("", {})
        if scope == "day":
            return self.totals["day"].get(self.day, {})
        return self.totals[scope].get(scope_id, {})

    def scopes_of(self, agent: dict[str, Any]) -> list[tuple[str, str]]:
        out = [("global", ""), ("day", ""), ("agent", agent["id"])]
        for scope in ("swarm", "workflow"):
            if agent.get(f"{scope}_id"):
                out.append((scope, agent[f"{scope}_id"]))
        return out

    def status(self, scope: str, scope_id: str) -> dict[str, Any]:
        limit = self.limit_for(scope, scope_id)
        spent = self._spent(scope, scope_id)
        return {
            "scope": scope,
            "id": scope_id or None,
            "spent_usd": round(spent.get("cost_usd", 0.0), 6),
            "tokens": int(spent.get("tokens", 0)),
            "limit": limit.to_dict() if limit else None,
            "used_pct": round(limit.fraction(spent) * 100, 2) if limit else None,
        }

    def check_spawn(self, agent: dict[str, Any]) -> None:
        """No new spawns under a limit that is 90% used."""
        from godeld.errors import BudgetExceeded

        for scope, scope_id in self.scopes_of(agent):
            limit = self.limit_for(scope, scope_id)
            if limit and limit.fraction(self._spent(scope, scope_id)) >= 0.9:
                st = self.status(scope, scope_id)
                raise BudgetExceeded(f"{scope} budget{(' ' + scope_id) if scope_id else ''} is {st['used_pct']}% used (90% or more): no new agents under it", st)

    # -- recording -----------------------------------------------------------------------------
    async def record(self, agent: dict[str, Any], items: list[dict[str, Any]]) -> list[tuple[str, str]]:
        """Write ledger rows for an agent's usage; update totals; publish threshold events.
        Returns the limits now exceeded (the caller stops the agents under them)."""
        if today() != self.day:
            await self.load()
        now = int(time.time() * 1000)
        rows = []
        for item in items:
            usage = Usage.from_dict(item.get("usage"))
            model = item.get("model") or agent.get("model") or ""
            cost, _priced = self.prices.cost(model, usage)
            rows.append({
                "ts": now, "day": self.day, "agent_id": agent["id"], "swarm_id": agent.get("swarm_id"), "workflow_id": agent.get("workflow_id"), "task_id": agent.get("task_id"),
                "provider": item.get("provider") or agent.get("provider") or "", "model": model,
                "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens, "cache_read_tokens": usage.cache_read_tokens, "cache_write_tokens": usage.cache_write_tokens,
                "cost_usd": cost, "duration_ms": int(item.get("duration_ms") or 0), "price_version": self.prices.version,
            })
        if not rows:
            return []
        await self.store.record_usage(rows)
        agent_usage = agent.setdefault("usage", {"input_tokens": 0, "output_tokens": 0, "cache_read_tokens": 0, "cache_write_tokens": 0, "cost_usd": 0.0})
        for row in rows:
            tokens = row["input_tokens"] + row["output_tokens"] + row["cache_read_tokens"] + row["cache_write_tokens"]
            for k in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"):
                agent_usage[k] = agent_usage.get(k, 0) + row[k]
            agent_usage["cost_usd"] = round(agent_usage.get("cost_usd", 0.0) + row["cost_usd"], 9)
            for scope, scope_id in self.scopes_of(agent):
                key = self.day if scope == "day" else scope_id
                t = self.totals[scope].setdefault(key, {"cost_usd": 0.0, "tokens": 0})
                t["cost_usd"] = t.get("cost_usd", 0.0) + row["cost_usd"]
                t["tokens"] = t.get("tokens", 0) + tokens
        return await self._thresholds(agent)

    async def _thresholds(self, agent: dict[str, Any]) -> list[tuple[str, str]]:
        exceeded = []
        for scope, scope_id in self.scopes_of(agent):
            limit = self.limit_for(scope, scope_id)
            if limit is None:
                continue
            pct = limit.fraction(self._spent(scope, scope_id)) * 100
            reached = max([lvl for lvl in LEVELS if pct >= lvl], default=0)
            key = (scope, scope_id)
            if reached >= 100:
                exceeded.append(key)
            if reached <= self.crossed.get(key, 0):
                continue
            self.crossed[key] = reached
            data = {**self.status(scope, scope_id), "level": reached, "agentId": agent["id"]}
            if reached >= 100:
                await self.daemon.bus.publish("budget:exceeded", data, source="budget")
            else:
                data["notify"] = reached >= 75
                data["spawns_blocked"] = reached >= 90
                await self.daemon.bus.publish("budget:warning", data, source="budget")
                if reached >= 75:
                    await self._notify(f"{scope} budget at {reached}%", data)
        return exceeded

    async def _notify(self, message: str, data: dict[str, Any]) -> None:
        for name, notifier in self.daemon.plugins.registries.notifiers.items():
            try:
                result = notifier.notify(message, data)
                if hasattr(result, "__await__"):
                    await result
            except Exception as exc:  # noqa: BLE001 - a notifier never stops the budget
                log.warning("notifier %s failed: %s", name, exc)

    def project(self, *, model: str, script: list | None, task: str, max_turns: int) -> dict[str, Any]:
        """A projected cost for agents.spawn {dry_run: true}."""
        if script is not None:
            usage = Usage()
            for step in script:
                if isinstance(step, dict):
                    usage.add(Usage.from_dict(step.get("usage")))
            basis = "the script's usage figures"
        else:
            # Each turn re-sends the conversation; assume ~8 turns, 4 characters per token, a
            # growing history of ~1,500 tokens per turn and ~400 output tokens per turn.
            turns = min(8, max_turns)
            prompt = (len(task) + 600) // 4
            usage = Usage(input_tokens=sum(prompt + 1500 * i for i in range(turns)), output_tokens=400 * turns)
            basis = f"an estimate: {turns} turns, 4 characters per token, growing history"
        cost, priced = self.prices.cost(model, usage)
        return {"model": model, "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens, "cost_usd": round(cost, 6), "priced": priced, "basis": basis, "price_version": self.prices.version}
