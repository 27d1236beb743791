"""TaskStore on SQLite (godeld/tasks/store.py): the task queue's tables and its claim.

Every method that changes state is one `backend.write` callable: it runs inside the writer
thread's group commit, in its own savepoint, so a claim (pick + mark running + count the group's
slot) is atomic and many claims share one commit. The claim is written as the statements
PostgreSQL would run (see docs/tasks.md): read a group's free slots, pick the first ready row in
(priority DESC, seq) order, update it guarded by its state.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from godeld.errors import Conflict, InvalidParams, NotFound

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_COLUMNS = (
    "id", "seq", "state", "priority", "grp", "swarm", "pending_deps", "attempts", "max_attempts", "requeues", "lease_owner",
    "lease_expires_at", "created_at", "updated_at", "started_at", "finished_at", "spec", "run", "result", "error",
)
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM tasks"


def _row(row: tuple | None) -> dict[str, Any] | None:
    if row is None:
        return None
    rec = dict(zip(_COLUMNS, row))
    rec["group"] = rec.pop("grp")
    for key in ("spec", "run", "result"):
        if rec[key] is not None:
            rec[key] = json.loads(rec[key])
    return rec


def _get(conn: sqlite3.Connection, task_id: str) -> dict[str, Any] | None:
    rec = _row(conn.execute(f"{_SELECT} WHERE id = ?", (task_id,)).fetchone())
    if rec is not None:
        rec["depends_on"] = [r[0] for r in conn.execute("SELECT dep_id FROM task_deps WHERE task_id = ? ORDER BY dep_id", (task_id,))]
    return rec


def _must(conn: sqlite3.Connection, task_id: str) -> dict[str, Any]:
    rec = _get(conn, task_id)
    if rec is None:
        raise NotFound(f"no task with id {task_id}", {"id": task_id})
    return rec


def _owned(conn: sqlite3.Connection, task_id: str, worker: str | None) -> dict[str, Any]:
    """The task, which must be running under `worker`'s lease (any worker if None)."""
    rec = _must(conn, task_id)
    if rec["state"] != "running":
        raise Conflict(f"task {task_id} is {rec['state']}, not running (its lease is gone)", {"id": task_id, "state": rec["state"]})
    if worker is not None and rec["lease_owner"] != worker:
        raise Conflict(f"task {task_id} is leased to {rec['lease_owner']}, not {worker} (the lease expired and was taken over)", {"id": task_id, "lease_owner": rec["lease_owner"]})
    return rec


def _leave_running(conn: sqlite3.Connection, rec: dict[str, Any]) -> None:
    conn.execute("UPDATE task_groups SET running = running - 1 WHERE name = ? AND running > 0", (rec["group"],))


def _fail_dependents(conn: sqlite3.Connection, root: str, now: int) -> list[dict[str, Any]]:
    """Every queued task depending on `root`, transitively, fails (pueue's rule)."""
    failed: list[dict[str, Any]] = []
    frontier = [root]
    while frontier:
        dep = frontier.pop()
        rows = conn.execute("SELECT d.task_id FROM task_deps d JOIN tasks t ON t.id = d.task_id WHERE d.dep_id = ? AND t.state = 'queued'", (dep,)).fetchall()
        for (tid,) in rows:
            conn.execute("UPDATE tasks SET state = 'failed', error = ?, finished_at = ?, updated_at = ? WHERE id = ?", (f"dependency {dep} failed", now, now, tid))
            failed.append(_must(conn, tid))
            frontier.append(tid)
    return failed


class SqliteTaskStore:
    def __init__(self, backend: Any):
        self._b = backend

    # -- submit and read ---------------------------------------------------------------------
    async def insert(self, record: dict[str, Any], depends_on: list[str]) -> tuple[dict[str, Any], str | None]:
        def write(conn: sqlite3.Connection) -> tuple[dict[str, Any], str | None]:
            pending, failed_dep = 0, None
            for dep in depends_on:
                row = conn.execute("SELECT state FROM tasks WHERE id = ?", (dep,)).fetchone()
                if row is None:
                    raise InvalidParams(f"depends_on: no task with id {dep}", {"id": dep})
                if row[0] != "completed":
                    pending += 1
                if row[0] in ("failed", "cancelled") and failed_dep is None:
                    failed_dep = dep
            (seq,) = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM tasks").fetchone()
            state, error = ("failed", f"dependency {failed_dep} failed") if failed_dep else ("queued", None)
            now = record["created_at"]
            conn.execute(
                "INSERT INTO tasks (id, seq, state, priority, grp, swarm, pending_deps, attempts, max_attempts, requeues, created_at, updated_at, finished_at, spec, error)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, 0, ?, ?, ?, ?, ?)",
                (record["id"], seq, state, record["priority"], record["group"], record["swarm"], pending, record["max_attempts"], now, now,
                 now if failed_dep else None, _dumps(record["spec"]), error),
            )
            conn.executemany("INSERT OR IGNORE INTO task_deps (task_id, dep_id) VALUES (?, ?)", [(record["id"], d) for d in depends_on])
            conn.execute("INSERT OR IGNORE INTO task_groups (name, parallel, running, updated_at) VALUES (?, NULL, 0, ?)", (record["group"], now))
            return _must(conn, record["id"]), failed_dep

        return await self._b.write(write)

    async def get(self, task_id: str) -> dict[str, Any] | None:
        return await self._b.read(lambda conn: _get(conn, task_id))

    async def waiting_on(self, task_id: str) -> list[str]:
        def read(conn: sqlite3.Connection) -> list[str]:
            sql = "SELECT d.dep_id FROM task_deps d JOIN tasks t ON t.id = d.dep_id WHERE d.task_id = ? AND t.state != 'completed' ORDER BY d.dep_id"
            return [r[0] for r in conn.execute(sql, (task_id,))]

        return await self._b.read(read)

    async def list(self, *, states: list[str] | None = None, group: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        where, args = [], []
        if states:
            where.append(f"state IN ({','.join('?' * len(states))})")
            args.extend(states)
        if group is not None:
            where.append("grp = ?")
            args.append(group)
        sql = _SELECT + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY seq LIMIT ?"

        def read(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            return [_row(r) for r in conn.execute(sql, (*args, limit)).fetchall()]

        return await self._b.read(read)

    # -- leases ------------------------------------------------------------------------------
    async def claim(self, *, worker: str, now_ms: int, lease_ms: int, groups: list[str] | None, swarm: str | None, default_parallel: int,
                    announce: Any = None) -> dict[str, Any] | None:
        """`announce(rec) -> [EventDraft]`: events written in the claim's own transaction."""
        def write(conn: sqlite3.Connection) -> dict[str, Any] | None:
            # 1. Groups with a free slot (PostgreSQL: the same SELECT; the slot is taken in step 3).
            rows = conn.execute("SELECT name FROM task_groups WHERE running < COALESCE(parallel, ?)", (default_parallel,)).fetchall()
            open_groups = [r[0] for r in rows if groups is None or r[0] in groups]
            if not open_groups:
                return None
            # 2. The best ready task (PostgreSQL: ... LIMIT 1 FOR UPDATE SKIP LOCKED). INDEXED BY: without
            # statistics the planner would pick tasks_state and sort every queued row.
            swarm_sql = "swarm IS NULL" if swarm is None else "swarm = ?"
            sql = (
                f"SELECT id, grp FROM tasks INDEXED BY tasks_queued WHERE state = 'queued' AND pending_deps = 0 AND {swarm_sql}"
                f" AND grp IN ({','.join('?' * len(open_groups))}) ORDER BY priority DESC, seq LIMIT 1"
            )
            row = conn.execute(sql, ((swarm,) if swarm is not None else ()) + tuple(open_groups)).fetchone()
            if row is None:
                return None
            task_id, grp = row
            # 3. Take it and its group's slot, each guarded (PostgreSQL: the same two UPDATEs).
            conn.execute(
                "UPDATE tasks SET state = 'running', lease_owner = ?, lease_expires_at = ?, attempts = attempts + 1, started_at = ?, updated_at = ?,"
                " run = NULL, result = NULL, error = NULL WHERE id = ? AND state = 'queued'",
                (worker, now_ms + lease_ms, now_ms, now_ms, task_id),
            )
            conn.execute("UPDATE task_groups SET running = running + 1 WHERE name = ?", (grp,))
            return _get(conn, task_id)

        if announce is None:
            return await self._b.write(write)

        def write_and_announce(conn: sqlite3.Connection):
            rec = write(conn)
            return rec, (announce(rec) if rec is not None else [])

        rec, _events = await self._b.write_with_events(write_and_announce)
        return rec

    async def heartbeat(self, task_id: str, worker: str, expires_ms: int) -> dict[str, Any]:
        def write(conn: sqlite3.Connection) -> dict[str, Any]:
            rec = _owned(conn, task_id, worker)
            conn.execute("UPDATE tasks SET lease_expires_at = ? WHERE id = ?", (expires_ms, task_id))
            rec["lease_expires_at"] = expires_ms
            return rec

        return await self._b.write(write)

    async def extend_leases(self, worker: str, expires_ms: int) -> int:
        def write(conn: sqlite3.Connection) -> int:
            return conn.execute("UPDATE tasks SET lease_expires_at = ? WHERE lease_owner = ? AND state = 'running'", (expires_ms, worker)).rowcount

        return await self._b.write(write)

    async def set_run(self, task_id: str, worker: str, run: dict[str, Any]) -> None:
        def write(conn: sqlite3.Connection) -> None:
            _owned(conn, task_id, worker)
            conn.execute("UPDATE tasks SET run = ? WHERE id = ?", (_dumps(run), task_id))

        await self._b.write(write)

    async def finish(self, task_id: str, worker: str | None, *, ok: bool, result: Any, error: str | None, now_ms: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        res = None if result is None else _dumps(result)

        def write(conn: sqlite3.Connection) -> tuple[dict[str, Any], list[dict[str, Any]]]:
            rec = _owned(conn, task_id, worker)
            _leave_running(conn, rec)
            failed: list[dict[str, Any]] = []
            if ok:
                state = "completed"
                conn.execute("UPDATE tasks SET pending_deps = pending_deps - 1 WHERE state = 'queued' AND id IN (SELECT task_id FROM task_deps WHERE dep_id = ?)", (task_id,))
            elif rec["attempts"] < rec["max_attempts"]:
                state = "queued"  # another attempt
            else:
                state = "failed"
            final = state != "queued"
            conn.execute(
                "UPDATE tasks SET state = ?, result = ?, error = ?, lease_owner = NULL, lease_expires_at = NULL, finished_at = ?, updated_at = ? WHERE id = ?",
                (state, res, error, now_ms if final else None, now_ms, task_id),
            )
            if state == "failed":
                failed = _fail_dependents(conn, task_id, now_ms)
            return _must(conn, task_id), failed

        return await self._b.write(write)

    async def cancel(self, task_id: str, now_ms: int) -> tuple[dict[str, Any], str, list[dict[str, Any]]]:
        def write(conn: sqlite3.Connection) -> tuple[dict[str, Any], str, list[dict[str, Any]]]:
            rec = _must(conn, task_id)
            before = rec["state"]
            if before not in ("queued", "running"):
                raise Conflict(f"task {task_id} is already {before}", {"id": task_id, "state": before})
            if before == "running":
                _leave_running(conn, rec)
            conn.execute(
                "UPDATE tasks SET state = 'cancelled', error = 'cancelled', lease_owner = NULL, lease_expires_at = NULL, finished_at = ?, updated_at = ? WHERE id = ?",
                (now_ms, now_ms, task_id),
            )
            failed = _fail_dependents(conn, task_id, now_ms)
            out = _must(conn, task_id)
            out["run"] = rec["run"]  # the caller stops what was running
            return out, before, failed

        return await self._b.write(write)

    async def retry(self, task_id: str, now_ms: int) -> dict[str, Any]:
        def write(conn: sqlite3.Connection) -> dict[str, Any]:
            rec = _must(conn, task_id)
            if rec["state"] not in ("failed", "cancelled"):
                raise Conflict(f"task {task_id} is {rec['state']}; only a failed or cancelled task can be retried", {"id": task_id, "state": rec["state"]})
            deps = conn.execute("SELECT d.dep_id, t.state FROM task_deps d JOIN tasks t ON t.id = d.dep_id WHERE d.task_id = ? ORDER BY d.dep_id", (task_id,)).fetchall()
            for dep, state in deps:
                if state in ("failed", "cancelled"):
                    raise Conflict(f"dependency {dep} of task {task_id} is {state}: retry it first", {"id": task_id, "dependency": dep})
            pending = sum(1 for _, state in deps if state != "completed")
            conn.execute(
                "UPDATE tasks SET state = 'queued', pending_deps = ?, error = NULL, result = NULL, run = NULL, finished_at = NULL, updated_at = ? WHERE id = ?",
                (pending, now_ms, task_id),
            )
            return _must(conn, task_id)

        return await self._b.write(write)

    async def expire(self, now_ms: int, max_requeues: int) -> list[dict[str, Any]]:
        def write(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = conn.execute(f"{_SELECT} INDEXED BY tasks_leases WHERE state = 'running' AND lease_expires_at < ? ORDER BY lease_expires_at", (now_ms,)).fetchall()
            out = []
            for row in rows:
                rec = _row(row)
                _leave_running(conn, rec)
                if rec["requeues"] + 1 > max_requeues:
                    error = f"lease expired {rec['requeues'] + 1} times (tasks.max_requeues)"
                    conn.execute(
                        "UPDATE tasks SET state = 'failed', error = ?, requeues = requeues + 1, lease_owner = NULL, lease_expires_at = NULL, finished_at = ?, updated_at = ? WHERE id = ?",
                        (error, now_ms, now_ms, rec["id"]),
                    )
                    rec.update(outcome="failed", error=error, dependents_failed=_fail_dependents(conn, rec["id"], now_ms))
                else:
                    conn.execute(
                        "UPDATE tasks SET state = 'queued', requeues = requeues + 1, lease_owner = NULL, lease_expires_at = NULL, updated_at = ? WHERE id = ?",
                        (now_ms, rec["id"]),
                    )
                    rec["outcome"] = "queued"
                out.append(rec)
            return out

        return await self._b.write(write)

    async def release(self, worker: str, task_ids: list[str], now_ms: int) -> list[dict[str, Any]]:
        def write(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = [_row(conn.execute(f"{_SELECT} WHERE id = ? AND state = 'running' AND lease_owner = ?", (t, worker)).fetchone()) for t in task_ids]
            rows = [r for r in rows if r is not None]
            for rec in rows:
                _leave_running(conn, rec)
                conn.execute("UPDATE tasks SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL, updated_at = ? WHERE id = ?", (now_ms, rec["id"]))
            return rows

        return await self._b.write(write)

    # -- groups ------------------------------------------------------------------------------
    async def groups(self, default_parallel: int) -> list[dict[str, Any]]:
        def read(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            queued = dict(conn.execute("SELECT grp, COUNT(*) FROM tasks WHERE state = 'queued' GROUP BY grp").fetchall())
            rows = conn.execute("SELECT name, parallel, running FROM task_groups ORDER BY name").fetchall()
            return [{"name": n, "parallel": default_parallel if p is None else p, "running": r, "queued": queued.get(n, 0)} for n, p, r in rows]

        return await self._b.read(read)

    async def set_group(self, name: str, parallel: int | None, now_ms: int) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO task_groups (name, parallel, running, updated_at) VALUES (?, ?, 0, ?)"
                " ON CONFLICT (name) DO UPDATE SET parallel = excluded.parallel, updated_at = excluded.updated_at",
                (name, parallel, now_ms),
            )

        await self._b.write(write)
