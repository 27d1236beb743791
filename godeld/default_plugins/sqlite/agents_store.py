"""AgentStore on SQLite: agents, transcripts, the usage ledger, budget limits, approvals."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

_USAGE_COLUMNS = ("ts", "day", "agent_id", "swarm_id", "workflow_id", "task_id", "provider", "model", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cost_usd", "duration_ms", "price_version")
_GROUPS = {"agent": "agent_id", "swarm": "swarm_id", "workflow": "workflow_id", "task": "task_id", "provider": "provider", "model": "model", "day": "day"}
_SUMS = "SUM(input_tokens), SUM(output_tokens), SUM(cache_read_tokens), SUM(cache_write_tokens), SUM(cost_usd), COUNT(*), SUM(duration_ms)"


def _now_ms() -> int:
    return int(time.time() * 1000)


class SqliteAgentStore:
    def __init__(self, backend: Any):
        self._b = backend

    # -- agents ------------------------------------------------------------------------------
    async def save_agent(self, record: dict[str, Any], *, events: Any = ()) -> None:
        """Write the record; `events` (EventDrafts) are appended in the same transaction."""
        row = (record["id"], record["state"], record.get("created_at") or _now_ms(), _now_ms(), _dumps(record))

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR REPLACE INTO agents (id, state, created_at, updated_at, record) VALUES (?, ?, ?, ?, ?)", row)

        await self._b.write(write, events=events)

    async def get_agent(self, agent_id: str) -> dict[str, Any] | None:
        def read(conn: sqlite3.Connection):
            return conn.execute("SELECT record FROM agents WHERE id = ?", (agent_id,)).fetchone()

        row = await self._b.read(read)
        return json.loads(row[0]) if row else None

    async def list_agents(self, *, states: list[str] | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        def read(conn: sqlite3.Connection):
            if states:
                marks = ",".join("?" * len(states))
                return conn.execute(f"SELECT record FROM agents WHERE state IN ({marks}) ORDER BY id LIMIT ?", (*states, limit)).fetchall()
            return conn.execute("SELECT record FROM agents ORDER BY id LIMIT ?", (limit,)).fetchall()

        return [json.loads(r[0]) for r in await self._b.read(read)]

    async def delete_agent(self, agent_id: str) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM agents WHERE id = ?", (agent_id,))
            conn.execute("DELETE FROM agent_transcript WHERE agent_id = ?", (agent_id,))

        await self._b.write(write)

    # -- transcript --------------------------------------------------------------------------
    async def append_transcript(self, agent_id: str, entries: list[dict[str, Any]]) -> int:
        def write(conn: sqlite3.Connection) -> int:
            (last,) = conn.execute("SELECT COALESCE(MAX(n), 0) FROM agent_transcript WHERE agent_id = ?", (agent_id,)).fetchone()
            rows = [(agent_id, last + i + 1, int(e.get("ts") or _now_ms()), str(e["kind"]), _dumps(e.get("data"))) for i, e in enumerate(entries)]
            conn.executemany("INSERT INTO agent_transcript (agent_id, n, ts, kind, data) VALUES (?, ?, ?, ?, ?)", rows)
            return last + len(rows)

        return await self._b.write(write)

    async def read_transcript(self, agent_id: str, *, after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        def read(conn: sqlite3.Connection):
            return conn.execute("SELECT n, ts, kind, data FROM agent_transcript WHERE agent_id = ? AND n > ? ORDER BY n LIMIT ?", (agent_id, after, limit)).fetchall()

        return [{"n": n, "ts": ts, "kind": kind, "data": json.loads(data)} for n, ts, kind, data in await self._b.read(read)]

    # -- usage ledger ------------------------------------------------------------------------
    async def record_usage(self, entries: list[dict[str, Any]]) -> None:
        rows = [tuple(e.get(c) for c in _USAGE_COLUMNS) for e in entries]
        sql = f"INSERT INTO usage_ledger ({', '.join(_USAGE_COLUMNS)}) VALUES ({', '.join('?' * len(_USAGE_COLUMNS))})"

        def write(conn: sqlite3.Connection) -> None:
            conn.executemany(sql, rows)

        await self._b.write(write)

    async def usage_totals(self, *, day: str) -> dict[str, dict[str, dict[str, float]]]:
        tokens = "SUM(input_tokens + output_tokens + cache_read_tokens + cache_write_tokens)"

        def read(conn: sqlite3.Connection):
            out: dict[str, dict[str, dict[str, float]]] = {}
            for scope, column in (("agent", "agent_id"), ("swarm", "swarm_id"), ("workflow", "workflow_id")):
                rows = conn.execute(f"SELECT {column}, SUM(cost_usd), {tokens} FROM usage_ledger WHERE {column} IS NOT NULL GROUP BY {column}").fetchall()
                out[scope] = {k: {"cost_usd": c or 0.0, "tokens": t or 0} for k, c, t in rows}
            c, t = conn.execute(f"SELECT SUM(cost_usd), {tokens} FROM usage_ledger").fetchone()
            out["global"] = {"": {"cost_usd": c or 0.0, "tokens": t or 0}}
            c, t = conn.execute(f"SELECT SUM(cost_usd), {tokens} FROM usage_ledger WHERE day = ?", (day,)).fetchone()
            out["day"] = {day: {"cost_usd": c or 0.0, "tokens": t or 0}}
            return out

        return await self._b.read(read)

    async def usage_report(self, *, group_by: str, since_ms: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        column = _GROUPS[group_by]

        def read(conn: sqlite3.Connection):
            return conn.execute(
                f"SELECT {column}, {_SUMS} FROM usage_ledger WHERE ts >= ? GROUP BY {column} ORDER BY SUM(cost_usd) DESC, {column} LIMIT ?",
                (since_ms, limit),
            ).fetchall()

        keys = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cost_usd", "calls", "duration_ms")
        return [{group_by: row[0], **{k: (v or 0) for k, v in zip(keys, row[1:])}} for row in await self._b.read(read)]

    # -- budget limits -----------------------------------------------------------------------
    async def set_budget_limit(self, scope: str, scope_id: str, max_cost_usd: float | None, max_tokens: int | None) -> None:
        def write(conn: sqlite3.Connection) -> None:
            if max_cost_usd is None and max_tokens is None:
                conn.execute("DELETE FROM budget_limits WHERE scope = ? AND scope_id = ?", (scope, scope_id))
            else:
                conn.execute(
                    "INSERT OR REPLACE INTO budget_limits (scope, scope_id, max_cost_usd, max_tokens, updated_at) VALUES (?, ?, ?, ?, ?)",
                    (scope, scope_id, max_cost_usd, max_tokens, _now_ms()),
                )

        await self._b.write(write)

    async def list_budget_limits(self) -> list[dict[str, Any]]:
        def read(conn: sqlite3.Connection):
            return conn.execute("SELECT scope, scope_id, max_cost_usd, max_tokens, updated_at FROM budget_limits ORDER BY scope, scope_id").fetchall()

        return [dict(zip(("scope", "scope_id", "max_cost_usd", "max_tokens", "updated_at"), r)) for r in await self._b.read(read)]

    # -- approvals ---------------------------------------------------------------------------
    async def save_approval(self, record: dict[str, Any]) -> None:
        row = (record["id"], record["agent_id"], record["state"], record["created_at"], _dumps(record))

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR REPLACE INTO approvals (id, agent_id, state, created_at, record) VALUES (?, ?, ?, ?, ?)", row)

        await self._b.write(write)

    async def list_approvals(self, *, state: str | None = None, agent_id: str | None = None) -> list[dict[str, Any]]:
        def read(conn: sqlite3.Connection):
            sql, args = "SELECT record FROM approvals WHERE 1=1", []
            if state:
                sql += " AND state = ?"
                args.append(state)
            if agent_id:
                sql += " AND agent_id = ?"
                args.append(agent_id)
            return conn.execute(sql + " ORDER BY id", args).fetchall()

        return [json.loads(r[0]) for r in await self._b.read(read)]
