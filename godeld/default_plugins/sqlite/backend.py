"""SQLite storage: WAL, one writer thread with group commit, a pool of read connections.

Group commit: the writer thread takes everything waiting in its queue and writes it in one
transaction (events of consecutive appends in one executemany), so a commit — and with
synchronous=full, its fsync — is shared by every write that was waiting. The writer is the only
connection that writes, which is also what makes `seq` a simple counter.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import queue
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import sqlite_utils
import trio

from godeld.errors import StorageError
from godeld.events import Event, EventDraft

log = logging.getLogger("godeld.storage.sqlite")

T = TypeVar("T")
_EVENTS, _CALL, _STOP, _CALL_EVENTS = 0, 1, 2, 3
_INSERT_EVENTS = "INSERT INTO events (seq, id, type, timestamp, source, data, metadata) VALUES (?, ?, ?, ?, ?, ?, ?)"
_EVENT_COLUMNS = "seq, id, type, timestamp, source, data, metadata"


class _Waiter:
    __slots__ = ("done", "result", "error")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class _Op:
    __slots__ = ("kind", "payload", "waiter")

    def __init__(self, kind: int, payload: Any, waiter: _Waiter | None):
        self.kind = kind
        self.payload = payload
        self.waiter = waiter


class SqliteStorage:
    name = "sqlite"

    def __init__(self, *, path: Path, migrations: Sequence[sqlite_utils.Migrations] = (), synchronous: str = "full", readers: int = 4, busy_timeout_ms: int = 5000, max_batch: int = 10000):
        self.path = Path(path)
        self._path_str = str(self.path)
        self._size_at = -1e9
        self._size_cached: int | None = None
        self.migrations = list(migrations)
        self.synchronous = synchronous
        self.reader_count = readers
        self.busy_timeout_ms = busy_timeout_ms
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Op] = queue.SimpleQueue()
        self._writer: sqlite3.Connection | None = None
        self._readers: list[sqlite3.Connection] = []
        self._read_limiter: trio.CapacityLimiter | None = None
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._listener: Callable[[Sequence[Event]], None] | None = None
        self._lock_fd: int | None = None
        self._next_seq = 1  # writer thread only
        self._last_seq = 0  # trio thread: reported to the listener
        self._open = False
        self._applied: list[str] = []
        from godeld.default_plugins.sqlite.agents_store import SqliteAgentStore

        self.agents = SqliteAgentStore(self)  # godeld.agents.store.AgentStore
        from godeld.default_plugins.sqlite.workflows_store import SqliteWorkflowStore

        self.workflows = SqliteWorkflowStore(self)  # godeld.workflows.store.WorkflowStore
        from godeld.default_plugins.sqlite.skills_store import SqliteSkillStore

        self.skills = SqliteSkillStore(self)  # godeld.skills.service: activations
        from godeld.default_plugins.sqlite.swarms_store import SqliteSwarmStore

        self.swarms = SqliteSwarmStore(self)
        from godeld.default_plugins.sqlite.tasks_store import SqliteTaskStore

        self.tasks = SqliteTaskStore(self)  # godeld.tasks.store.TaskStore
        self.stats = {"transactions": 0, "writes": 0, "events": 0, "largest_batch": 0, "failed_transactions": 0}

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        await trio.to_thread.run_sync(self._open_sync)
        self._read_limiter = trio.CapacityLimiter(len(self._readers))
        self._thread = threading.Thread(target=self._writer_loop, name="godeld-sqlite-writer", daemon=True)
        self._thread.start()
        self._open = True

    def _open_sync(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the directory of database {self.path}: {exc.strerror}") from None
        self._take_lock()
        try:
            self._writer = self._connect(readonly=False)
            self._apply_migrations()
            # A real write: a database that cannot be written must stop start-up, not fail later.
            self._writer.execute("INSERT OR REPLACE INTO godel_meta (key, value) VALUES ('last_open', ?)", (str(time.time()),))
            row = self._writer.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
            top = self._writer.execute("SELECT max(seq) FROM events").fetchone()[0] or 0
            self._last_seq = max(row[0] if row else 0, top)
            self._next_seq = self._last_seq + 1
            self._readers = [self._connect(readonly=True) for _ in range(self.reader_count)]
        except sqlite3.Error as exc:
            self._close_connections()
            self._release_lock()
            raise StorageError(f"cannot use database {self.path}: {exc}") from None
        except BaseException:
            self._close_connections()
            self._release_lock()
            raise

    def _take_lock(self) -> None:
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StorageError(f"cannot open lock file {lock_path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise StorageError(f"database {self.path} is in use by another godeld (pid {holder}); stop it first") from None
            raise StorageError(f"cannot lock {lock_path}: {exc.strerror}") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    def _connect(self, *, readonly: bool) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=self.busy_timeout_ms / 1000)
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        if readonly:
            conn.execute("PRAGMA query_only = ON")
            return conn
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise StorageError(f"cannot use database {self.path}: WAL mode is not available (journal_mode={mode})")
        conn.execute(f"PRAGMA synchronous = {'FULL' if self.synchronous == 'full' else 'NORMAL'}")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def _apply_migrations(self) -> None:
        db = sqlite_utils.Database(self._writer)
        for migrations in self.migrations:
            before = {m.name for m in migrations.applied(db)}
            try:
                migrations.apply(db)
            except sqlite3.Error:
                raise  # reported by _open_sync with the database's path
            except Exception as exc:  # noqa: BLE001 - a plugin's migration is plugin code
                raise StorageError(f"migration set {migrations.name!r} failed: {type(exc).__name__}: {exc}") from None
            for applied in migrations.applied(db):
                if applied.name not in before:
                    self._applied.append(f"{migrations.name}:{applied.name}")
                    log.info("applied migration %s:%s", migrations.name, applied.name)

    async def aclose(self) -> None:
        if not self._open:
            return
        self._open = False
        self._queue.put(_Op(_STOP, None, None))
        thread = self._thread
        if thread is not None:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(thread.join)
        # Let completions queued by the writer's last batch run before connections go away.
        with trio.CancelScope(shield=True):
            await trio.lowlevel.checkpoint()
        self._close_connections()
        self._release_lock()

    def _close_connections(self) -> None:
        for conn in self._readers:
            conn.close()
        self._readers = []
        if self._writer is not None:
            try:
                self._writer.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error:
                pass
            self._writer.close()
            self._writer = None

    # -- writes ----------------------------------------------------------------------------

    def set_commit_listener(self, listener: Callable[[Sequence[Event]], None]) -> None:
        self._listener = listener

    @property
    def last_seq(self) -> int:
        return self._last_seq

    @property
    def applied_migrations(self) -> list[str]:
        return list(self._applied)

    async def append_events(self, drafts: Sequence[EventDraft]) -> list[Event]:
        if not drafts:
            return []
        return await self._submit(_EVENTS, drafts)

    async def write(self, fn: Callable[[sqlite3.Connection], T], *, events: Sequence[EventDraft] = ()) -> T:
        """Run `fn(connection)` on the writer thread inside the next group commit (in a savepoint:
        if it raises, only its own changes are rolled back). Returns once committed. `events` are
        appended in the same transaction, if `fn` succeeds (a state change and its announcement)."""
        if not events:
            return await self._submit(_CALL, fn)
        drafts = list(events)
        result, _ = await self._submit(_CALL_EVENTS, lambda conn: (fn(conn), drafts))
        return result

    async def write_with_events(self, fn: Callable[[sqlite3.Connection], tuple[T, Sequence[EventDraft]]]) -> tuple[T, list[Event]]:
        """Like `write`, for a state change and the events that announce it: `fn(connection)`
        returns (result, drafts) and the drafts are appended in the same transaction — both are
        durable, or neither. Returns (result, events) once committed."""
        return await self._submit(_CALL_EVENTS, fn)

    async def _submit(self, kind: int, payload: Any) -> Any:
        if not self._open:
            raise StorageError("storage is closed")
        waiter = _Waiter()
        self._queue.put(_Op(kind, payload, waiter))
        # If this task is cancelled now, the write still happens: it was accepted.
        await waiter.done.wait()
        if waiter.error is not None:
            raise waiter.error
        return waiter.result

    def _writer_loop(self) -> None:
        get, get_nowait = self._queue.get, self._queue.get_nowait
        stopping = False
        while not stopping:
            batch = [get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(get_nowait())
                except queue.Empty:
                    break
            ops = []
            for op in batch:
                if op.kind == _STOP:
                    stopping = True  # write everything that came before the stop, then end
                else:
                    ops.append(op)
            if ops:
                self._write_batch(ops)

    def _write_batch(self, ops: list[_Op]) -> None:
        conn = self._writer
        assert conn is not None
        first_seq = self._next_seq
        seq = first_seq
        committed: list[Event] = []
        results: list[tuple[_Waiter | None, Any, BaseException | None]] = []
        rows: list[tuple] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op in ops:
                if op.kind == _EVENTS:
                    events = []
                    for draft in op.payload:
                        rows.append((seq, draft.id, draft.type, draft.timestamp, draft.source, draft.data_json, draft.metadata_json))
                        events.append(draft.to_event(seq))
                        seq += 1
                    committed.extend(events)
                    results.append((op.waiter, events, None))
                else:
                    if rows:  # keep order: events appended before this call are written first
                        conn.executemany(_INSERT_EVENTS, rows)
                        rows = []
                    waiter, result, error = self._run_call(conn, op)
                    if op.kind == _CALL_EVENTS and error is None:
                        value, drafts = result
                        events = []
                        for draft in drafts:
                            rows.append((seq, draft.id, draft.type, draft.timestamp, draft.source, draft.data_json, draft.metadata_json))
                            events.append(draft.to_event(seq))
                            seq += 1
                        committed.extend(events)
                        result = (value, events)
                    results.append((waiter, result, error))
            if rows:
                conn.executemany(_INSERT_EVENTS, rows)
            conn.execute("COMMIT")
        except Exception as exc:  # noqa: BLE001 - disk full, I/O error: fail this batch, keep serving
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            self.stats["failed_transactions"] += 1
            log.error("group commit of %d writes failed: %s", len(ops), exc)
            error = StorageError(f"write failed: {exc}")
            self._complete([], [(op.waiter, None, error) for op in ops])
            return
        self._next_seq = seq
        stats = self.stats
        stats["transactions"] += 1
        stats["writes"] += len(ops)
        stats["events"] += len(committed)
        if len(ops) > stats["largest_batch"]:
            stats["largest_batch"] = len(ops)
        self._complete(committed, results)

    def _run_call(self, conn: sqlite3.Connection, op: _Op) -> tuple[_Waiter | None, Any, BaseException | None]:
        conn.execute("SAVEPOINT op")
        try:
            result = op.payload(conn)
        except Exception as exc:  # noqa: BLE001 - the caller gets its own error
            conn.execute("ROLLBACK TO op")
            conn.execute("RELEASE op")
            return (op.waiter, None, exc)
        conn.execute("RELEASE op")
        return (op.waiter, result, None)

    def _complete(self, committed: list[Event], results: list) -> None:
        try:
            assert self._token is not None
            self._token.run_sync_soon(self._completed, committed, results)
        except trio.RunFinishedError:
            pass

    def _completed(self, committed: list[Event], results: list) -> None:
        # Trio thread, in commit order: subscribers see events before their publishers return.
        if committed:
            self._last_seq = committed[-1].seq
            if self._listener is not None:
                self._listener(committed)
        for waiter, result, error in results:
            if waiter is not None:
                waiter.result, waiter.error = result, error
                waiter.done.set()

    # -- reads -----------------------------------------------------------------------------

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(connection)` on a read connection, on a worker thread."""
        if not self._open or self._read_limiter is None:
            raise StorageError("storage is closed")
        async with self._read_limiter:
            conn = self._readers.pop()
            try:
                return await trio.to_thread.run_sync(fn, conn)
            except sqlite3.Error as exc:
                raise StorageError(f"read failed: {exc}") from None
            finally:
                self._readers.append(conn)

    async def read_events(self, *, since: int = 0, patterns: tuple[str, ...] | None = None, limit: int = 100, tail: bool = False) -> tuple[list[Event], int]:
        where = "seq > ?"
        args: list[Any] = [since]
        if patterns:
            # Patterns only hold letters, digits, _ . : / - and the globs * and ?: GLOB agrees with events.Matcher.
            where += " AND (" + " OR ".join("type GLOB ?" for _ in patterns) + ")"
            args.extend(patterns)
        order = "DESC" if tail else "ASC"
        sql = f"SELECT {_EVENT_COLUMNS} FROM events WHERE {where} ORDER BY seq {order} LIMIT ?"
        args.append(limit)

        def query(conn: sqlite3.Connection) -> tuple[list[tuple], int]:
            conn.execute("BEGIN")  # one snapshot for the rows and the head
            try:
                rows = conn.execute(sql, args).fetchall()
                head = conn.execute("SELECT max(seq) FROM events").fetchone()[0] or 0
            finally:
                conn.execute("COMMIT")
            return rows, head

        rows, head = await self.read(query)
        if tail:
            rows.reverse()
        return [_row_to_event(row) for row in rows], head

    def migration_status(self) -> list[dict[str, Any]]:
        conn = sqlite3.connect(self.path) if self._writer is None else None
        try:
            db = sqlite_utils.Database(conn or self._writer)
            out = []
            for migrations in self.migrations:
                for applied in migrations.applied(db):
                    out.append({"set": migrations.name, "name": applied.name, "applied_at": applied.applied_at})
                for pending in migrations.pending(db):
                    out.append({"set": migrations.name, "name": pending.name, "applied_at": None})
            return out
        finally:
            if conn is not None:
                conn.close()

    def info(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "path": self._path_str,
            "synchronous": self.synchronous,
            "size_bytes": self._size(),
            "last_seq": self._last_seq,
            **self.stats,
        }

    def _size(self) -> int | None:
        # Measured at most once a second: status is polled often, and a size is never exact anyway.
        now = time.monotonic()
        if now - self._size_at >= 1.0:
            self._size_at = now
            total = 0
            for path in (self._path_str, self._path_str + "-wal"):
                try:
                    total += os.stat(path).st_size
                except FileNotFoundError:
                    pass
                except OSError:
                    total = None
                    break
            self._size_cached = total
        return self._size_cached


def _row_to_event(row: tuple) -> Event:
    seq, id_, type_, timestamp, source, data, metadata = row
    return Event(id_, seq, type_, timestamp, source, json.loads(data), json.loads(metadata), len(data) + len(metadata) + 160)
