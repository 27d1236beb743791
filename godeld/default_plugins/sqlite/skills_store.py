"""SkillStore on SQLite: which skills are activated for which agent or swarm."""

from __future__ import annotations

import sqlite3
import time
from typing import Any


class SqliteSkillStore:
    def __init__(self, backend: Any):
        self._b = backend

    async def activate(self, scope: str, target: str, name: str) -> bool:
        """Record an activation; False if it was already there."""
        row = (scope, target, name, int(time.time() * 1000))

        def write(conn: sqlite3.Connection) -> bool:
            cur = conn.execute("INSERT OR IGNORE INTO skill_activations (scope, target, name, activated_at) VALUES (?, ?, ?, ?)", row)
            return cur.rowcount > 0

        return await self._b.write(write)

    async def deactivate(self, scope: str, target: str, name: str) -> bool:
        """Remove an activation; False if there was none."""

        def write(conn: sqlite3.Connection) -> bool:
            cur = conn.execute("DELETE FROM skill_activations WHERE scope = ? AND target = ? AND name = ?", (scope, target, name))
            return cur.rowcount > 0

        return await self._b.write(write)

    async def list(self, scope: str | None = None, target: str | None = None) -> list[dict[str, Any]]:
        """Activations, oldest first, optionally for one scope and target."""
        where, args = [], []
        if scope is not None:
            where.append("scope = ?")
            args.append(scope)
        if target is not None:
            where.append("target = ?")
            args.append(target)
        sql = "SELECT scope, target, name, activated_at FROM skill_activations" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY activated_at, name"

        def read(conn: sqlite3.Connection):
            return conn.execute(sql, args).fetchall()

        rows = await self._b.read(read)
        return [{"scope": r[0], "target": r[1], "name": r[2], "activated_at": r[3]} for r in rows]
