"""bench/events.py — durable published events per second.

1. in-process: EventBus.publish() from many concurrent trio tasks, each awaiting durability
   (synchronous=full: every acknowledged event survives power loss);
2. over RPC: clients sending JSON-RPC batches of 100 events.publish to a real godeld;
3. baseline, same run: bare sqlite3 executemany into the same table with the same pragmas,
   1,000 rows per transaction (no bus, no event objects, no waiting publishers).

Targets (issue 3): >= 50,000/s in-process, >= 10,000/s over RPC, in-process >= 0.2x the baseline.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from _common import median, running_godeld  # noqa: E402

from godeld.default_plugins.sqlite.backend import SqliteStorage  # noqa: E402
from godeld.default_plugins.sqlite.schema import core  # noqa: E402
from godeld.events import EventBus, make_draft  # noqa: E402
from godeld.ids import uuid7  # noqa: E402

EVENTS = int(os.environ.get("BENCH_EVENTS", "100000"))
PUBLISHERS = int(os.environ.get("BENCH_PUBLISHERS", "1000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SYNCHRONOUS = os.environ.get("BENCH_SYNCHRONOUS", "full")


def fresh_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="gbench", dir="/tmp"))


def in_process() -> float:
    directory = fresh_dir()

    async def main() -> float:
        storage = SqliteStorage(path=directory / "godel.db", migrations=[core], synchronous=SYNCHRONOUS)
        await storage.open()
        bus = EventBus(storage)
        per_task = EVENTS // PUBLISHERS

        async def publisher(n: int) -> None:
            for i in range(per_task):
                await bus.publish("bench:event", {"publisher": n, "i": i}, source="bench")

        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for n in range(PUBLISHERS):
                nursery.start_soon(publisher, n)
        elapsed = time.perf_counter() - start
        assert storage.stats["events"] == per_task * PUBLISHERS
        await storage.aclose()
        return per_task * PUBLISHERS / elapsed

    try:
        return trio.run(main)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def baseline() -> float:
    directory = fresh_dir()
    try:
        conn = sqlite3.connect(directory / "godel.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {SYNCHRONOUS.upper()}")
        import sqlite_utils

        core.apply(sqlite_utils.Database(conn))
        seq = 0
        start = time.perf_counter()
        for _ in range(EVENTS // 1000):
            rows = []
            for i in range(1000):
                seq += 1
                rows.append((seq, uuid7(), "bench:event", int(time.time() * 1000), "bench", json.dumps({"publisher": 0, "i": i}), "{}"))
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO events (seq, id, type, timestamp, source, data, metadata) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - start
        conn.close()
        return seq / elapsed
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def over_rpc(connections: int = 8, batch: int = 100, seconds: float = 4.0) -> float:
    request = json.dumps([{"jsonrpc": "2.0", "id": i, "method": "events.publish", "params": {"type": "bench:event", "data": {"i": i}}} for i in range(batch)], separators=(",", ":"))
    with running_godeld({"GODEL_STORAGE__SQLITE__SYNCHRONOUS": SYNCHRONOUS}) as socket_path:
        out = subprocess.run([sys.executable, str(HERE / "_load.py"), str(socket_path), str(connections), str(seconds), request], capture_output=True, text=True, check=True)
    return float(out.stdout) * batch


def main() -> None:
    results = {"in-process": [], "baseline": [], "rpc": []}
    for _ in range(ROUNDS):
        results["in-process"].append(in_process())
        results["baseline"].append(baseline())
    for _ in range(ROUNDS):
        results["rpc"].append(over_rpc())
    fmt = lambda xs: ", ".join(f"{x:,.0f}" for x in xs)  # noqa: E731
    ip, base, rpc = (median(results[k]) for k in ("in-process", "baseline", "rpc"))
    print(f"synchronous={SYNCHRONOUS}, {EVENTS:,} events per in-process round, {PUBLISHERS} concurrent publishers")
    print(f"in-process durable publishes: {ip:,.0f} events/s (rounds: {fmt(results['in-process'])})")
    print(f"over RPC, batches of 100 on 8 connections: {rpc:,.0f} events/s (rounds: {fmt(results['rpc'])})")
    print(f"baseline, bare sqlite3 executemany of 1,000 rows per commit: {base:,.0f} rows/s (rounds: {fmt(results['baseline'])})")
    print(f"ratio in-process / baseline: {ip / base:.2f}  (targets: >= 50,000/s in-process, >= 10,000/s over RPC, >= 0.2x)")


if __name__ == "__main__":
    main()
