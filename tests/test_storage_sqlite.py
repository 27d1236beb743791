"""The SQLite backend: WAL, group commit of mixed writes, migrations, locking, clear failures."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import contextmanager

import pytest
import trio
from sqlite_utils import Migrations

from godeld.default_plugins.sqlite.backend import SqliteStorage
from godeld.default_plugins.sqlite.schema import core
from godeld.errors import StorageError
from godeld.events import make_draft

CORE = ["godel-core:m001_events", "godel-core:m002_meta", "godel-core:m003_agents", "godel-core:m004_workflows", "godel-core:m005_tasks", "godel-core:m006_skills", "godel-core:m007_swarms"]


async def open_storage(path, migrations=(core,), **kw) -> SqliteStorage:
    store = SqliteStorage(path=path, migrations=list(migrations), **kw)
    await store.open()
    return store


async def test_wal_and_synchronous_full_by_default(home):
    store = await open_storage(home / "godel.db")
    try:
        assert store._writer.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store._writer.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        # reads use their own connections, which cannot write
        assert len(store._readers) == 4
        with pytest.raises(StorageError):
            await store.read(lambda conn: conn.execute("INSERT INTO godel_meta VALUES ('x', 'y')"))
    finally:
        await store.aclose()


async def test_a_failing_write_rolls_back_only_itself(home):
    store = await open_storage(home / "godel.db")
    try:
        await store.write(lambda c: c.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)"))

        def insert(k):
            return lambda c: c.execute("INSERT INTO kv VALUES (?, 'v')", (k,)).rowcount

        def failing(c):
            c.execute("INSERT INTO kv VALUES ('half-done', 'v')")
            raise ValueError("boom")

        results = {}

        async def run(name, fn):
            try:
                results[name] = await store.write(fn)
            except ValueError as exc:
                results[name] = str(exc)

        before = store.stats["transactions"]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run, "a", insert("a"))
            nursery.start_soon(run, "bad", failing)
            nursery.start_soon(run, "b", insert("b"))
            nursery.start_soon(store.append_events, [make_draft("mixed:e")])
        assert results == {"a": 1, "bad": "boom", "b": 1}
        assert store.stats["transactions"] - before <= 4
        rows = await store.read(lambda c: c.execute("SELECT k FROM kv ORDER BY k").fetchall())
        assert rows == [("a",), ("b",)]
    finally:
        await store.aclose()


async def test_a_state_change_and_its_events_commit_together_or_not_at_all(home):
    store = await open_storage(home / "godel.db")
    try:
        await store.write(lambda c: c.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)"))
        seen = []
        store.set_commit_listener(lambda events: seen.extend(e.type for e in events))

        def change(c):
            c.execute("INSERT INTO kv VALUES ('a', 'v')")
            return "done", [make_draft("kv:set", {"k": "a"}), make_draft("kv:also")]

        def failing(c):
            c.execute("INSERT INTO kv VALUES ('b', 'v')")
            raise ValueError("boom")

        result, events = await store.write_with_events(change)
        assert result == "done" and [e.type for e in events] == ["kv:set", "kv:also"]
        assert events[1].seq == events[0].seq + 1 and seen == ["kv:set", "kv:also"]
        with pytest.raises(ValueError, match="boom"):
            await store.write_with_events(failing)
        assert await store.read(lambda c: c.execute("SELECT k FROM kv").fetchall()) == [("a",)]
        listed, head = await store.read_events(since=0)
        assert [e.type for e in listed] == ["kv:set", "kv:also"] and head == events[1].seq
        # write(fn, events=...): the same, for events known before the write.
        assert await store.write(lambda c: c.execute("INSERT INTO kv VALUES ('c', 'v')").rowcount, events=[make_draft("kv:c")]) == 1
        with pytest.raises(ValueError, match="boom"):
            await store.write(failing, events=[make_draft("kv:never")])
        listed, _ = await store.read_events(since=0)
        assert [e.type for e in listed] == ["kv:set", "kv:also", "kv:c"]
    finally:
        await store.aclose()


async def test_close_writes_everything_already_accepted(home):
    store = await open_storage(home / "godel.db")
    accepted = []

    async def publish(i):
        accepted.append((await store.append_events([make_draft("flush:e", {"i": i})]))[0].seq)

    async with trio.open_nursery() as nursery:
        for i in range(200):
            nursery.start_soon(publish, i)
    await store.aclose()
    with sqlite3.connect(home / "godel.db") as conn:
        assert conn.execute("SELECT count(*) FROM events WHERE type = 'flush:e'").fetchone()[0] == 200
    with pytest.raises(StorageError, match="closed"):
        await store.append_events([make_draft("late:e")])


async def test_migrations_are_applied_once_and_plugin_sets_too(home):
    plugin = Migrations("my-plugin")

    @plugin()
    def m001_widgets(db):
        db["widgets"].create({"id": int, "name": str}, pk="id")

    store = await open_storage(home / "godel.db", migrations=(core, plugin))
    assert store.applied_migrations == [*CORE, "my-plugin:m001_widgets"]
    await store.aclose()

    # Append-only: a later version of the plugin adds a step; only that one runs.
    @plugin()
    def m002_widget_color(db):
        db["widgets"].add_column("color", str)

    store = await open_storage(home / "godel.db", migrations=(core, plugin))
    try:
        assert store.applied_migrations == ["my-plugin:m002_widget_color"]
        status = store.migration_status()
        assert [(row["set"], row["name"], row["applied_at"] is not None) for row in status] == [
            *(("godel-core", name.split(":")[1], True) for name in CORE),
            ("my-plugin", "m001_widgets", True),
            ("my-plugin", "m002_widget_color", True),
        ]
        columns = await store.read(lambda c: [r[1] for r in c.execute("PRAGMA table_info(widgets)")])
        assert columns == ["id", "name", "color"]
    finally:
        await store.aclose()


async def test_a_failing_migration_stops_open_with_its_name(home):
    broken = Migrations("broken-plugin")

    @broken()
    def m001_oops(db):
        raise RuntimeError("cannot migrate")

    with pytest.raises(StorageError, match="broken-plugin.*cannot migrate"):
        await open_storage(home / "godel.db", migrations=(core, broken))
    # the lock was released: the database can be opened again
    store = await open_storage(home / "godel.db")
    await store.aclose()


async def test_second_opener_is_refused_while_the_first_holds_the_database(home):
    store = await open_storage(home / "godel.db")
    try:
        with pytest.raises(StorageError, match=rf"in use by another godeld \(pid {os.getpid()}\)"):
            await open_storage(home / "godel.db")
    finally:
        await store.aclose()


async def test_not_a_database(home):
    (home / "godel.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError, match=r"cannot use database .*godel\.db: file is not a database"):
        await open_storage(home / "godel.db")


async def test_directory_cannot_be_created(home):
    (home / "blocker").write_text("a file, not a directory")
    with pytest.raises(StorageError, match="cannot create the directory of database"):
        await open_storage(home / "blocker" / "godel.db")


@contextmanager
def read_only(path):
    """Make a file unwritable, also for root (immutable attribute), and undo it afterwards."""
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(path)], check=True)
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        os.chmod(path, 0o444)
        try:
            yield
        finally:
            os.chmod(path, 0o644)


async def test_a_database_that_cannot_be_written_stops_open(home):
    path = home / "godel.db"
    store = await open_storage(path)
    await store.aclose()
    for suffix in ("-wal", "-shm"):
        if os.path.exists(f"{path}{suffix}"):
            os.unlink(f"{path}{suffix}")
    with read_only(path):
        with pytest.raises(StorageError, match="readonly database"):
            await open_storage(path)


def test_godeld_migrate_applies_and_lists(home):
    env = dict(os.environ, GODEL_PLUGINS__ENTRY_POINTS="false")
    env.pop("GODEL_CONFIG", None)
    listed = subprocess.run([sys.executable, "-m", "godeld", "migrate", "--home", str(home), "--list"], env=env, capture_output=True, text=True, check=True)
    assert "pending" in listed.stdout and "godel-core:m001_events" in listed.stdout
    applied = subprocess.run([sys.executable, "-m", "godeld", "migrate", "--home", str(home)], env=env, capture_output=True, text=True, check=True)
    assert "applied godel-core:m001_events" in applied.stdout
    again = subprocess.run([sys.executable, "-m", "godeld", "migrate", "--home", str(home)], env=env, capture_output=True, text=True, check=True)
    assert again.stdout.strip() == "no pending migrations"
    listed = subprocess.run([sys.executable, "-m", "godeld", "migrate", "--home", str(home), "--list"], env=env, capture_output=True, text=True, check=True)
    assert "pending" not in listed.stdout
