"""SwarmStore on SQLite: one JSON record per swarm."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode


class SqliteSwarmStore:
    def __init__(self, backend: Any):
        self._b = backend

    async def save_swarm(self, rec: dict[str, Any]) -> None:
        row = (rec["id"], rec["name"], rec["state"], rec["created_at"], int(time.time() * 1000), _dumps(rec))

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR REPLACE INTO swarms (id, name, state, created_at, updated_at, record) VALUES (?, ?, ?, ?, ?, ?)", row)

        await self._b.write(write)

    async def get_swarm(self, swarm_id: str) -> dict[str, Any] | None:
        def read(conn: sqlite3.Connection):
            return conn.execute("SELECT record FROM swarms WHERE id = ?", (swarm_id,)).fetchone()

        row = await self._b.read(read)
        return json.loads(row[0]) if row else None

    async def list_swarms(self, *, states: list[str] | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first."""
        def read(conn: sqlite3.Connection):
            if states:
                marks = ",".join("?" * len(states))
                return conn.execute(f"SELECT record FROM swarms WHERE state IN ({marks}) ORDER BY id DESC LIMIT ?", (*states, limit)).fetchall()
            return conn.execute("SELECT record FROM swarms ORDER BY id DESC LIMIT ?", (limit,)).fetchall()

        return [json.loads(r[0]) for r in await self._b.read(read)]
