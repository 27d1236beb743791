"""WorkflowStore on SQLite: runs and their steps, one JSON record per row."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any, Sequence

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode


def _now_ms() -> int:
    return int(time.time() * 1000)


class SqliteWorkflowStore:
    def __init__(self, backend: Any):
        self._b = backend

    async def save_run(self, run: dict[str, Any], steps: list[dict[str, Any]] | None = None, *, events: Sequence[Any] = ()) -> None:
        """Write the run (and steps, if given); `events` are appended in the same transaction."""
        row = (run["id"], run["name"], run["state"], run.get("parent_id"), run["created_at"], _now_ms(), _dumps(run))
        step_rows = [(run["id"], s["id"], s["state"], s["attempts"], _dumps(s)) for s in steps or ()]

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO workflow_runs (id, name, state, parent_id, created_at, updated_at, record) VALUES (?, ?, ?, ?, ?, ?, ?)", row
            )
            if step_rows:
                conn.executemany("INSERT OR REPLACE INTO workflow_steps (run_id, step_id, state, attempts, record) VALUES (?, ?, ?, ?, ?)", step_rows)

        await self._b.write(write, events=events)

    async def save_step(self, run_id: str, step: dict[str, Any], *, events: Sequence[Any] = ()) -> None:
        """Write one step; `events` are appended in the same transaction."""
        row = (run_id, step["id"], step["state"], step["attempts"], _dumps(step))

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR REPLACE INTO workflow_steps (run_id, step_id, state, attempts, record) VALUES (?, ?, ?, ?, ?)", row)

        await self._b.write(write, events=events)

    async def get_run(self, run_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        def read(conn: sqlite3.Connection):
            run = conn.execute("SELECT record FROM workflow_runs WHERE id = ?", (run_id,)).fetchone()
            if run is None:
                return None
            steps = conn.execute("SELECT record FROM workflow_steps WHERE run_id = ?", (run_id,)).fetchall()
            return run[0], [s[0] for s in steps]

        found = await self._b.read(read)
        if found is None:
            return None
        return json.loads(found[0]), [json.loads(s) for s in found[1]]

    async def list_runs(self, *, states: list[str] | None = None, limit: int = 100, parent_id: str | None = None) -> list[dict[str, Any]]:
        """Newest first (ids are uuid7: time-ordered)."""
        where, args = [], []
        if states:
            where.append(f"state IN ({','.join('?' * len(states))})")
            args += states
        if parent_id:
            where.append("parent_id = ?")
            args.append(parent_id)
        sql = "SELECT record FROM workflow_runs" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC LIMIT ?"

        def read(conn: sqlite3.Connection):
            return conn.execute(sql, (*args, limit)).fetchall()

        return [json.loads(r[0]) for r in await self._b.read(read)]

    async def unfinished(self, states: list[str]) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
        """Every run in one of `states`, oldest first, with its steps."""
        marks = ",".join("?" * len(states))

        def read(conn: sqlite3.Connection):
            runs = conn.execute(f"SELECT id, record FROM workflow_runs WHERE state IN ({marks}) ORDER BY id", states).fetchall()
            out = []
            for run_id, record in runs:
                steps = conn.execute("SELECT record FROM workflow_steps WHERE run_id = ?", (run_id,)).fetchall()
                out.append((record, [s[0] for s in steps]))
            return out

        return [(json.loads(r), [json.loads(s) for s in steps]) for r, steps in await self._b.read(read)]
