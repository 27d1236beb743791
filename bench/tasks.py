"""bench/tasks.py — task claims per second.

1. in-process: submit N trivial tasks through the real SQLite TaskStore, then time CLAIMERS
   concurrent trio tasks claiming until the queue is empty (each claim: one guarded write
   transaction, shared by whatever claims wait in the same group commit);
2. over RPC: a real godeld (its in-daemon runner off), N tasks submitted in JSON-RPC batches, then
   CLIENTS concurrent connections calling tasks.claim one request at a time until it answers null
   (each claim also publishes a durable task:assigned event);
3. baseline, same run: bare sqlite3, one `UPDATE tasks SET state = 'running' WHERE id = ?` per
   transaction, with the same pragmas.

`measure_claims(...)` returns the figures as a dict for other bench scripts.

    python bench/tasks.py            # BENCH_TASKS=20000 BENCH_CLAIMERS=64 BENCH_CLIENTS=4 BENCH_SYNCHRONOUS=full
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import trio

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from _common import running_godeld  # noqa: E402

from godelctl.client import Client  # noqa: E402
from godeld.default_plugins.sqlite.backend import SqliteStorage  # noqa: E402
from godeld.default_plugins.sqlite.schema import core  # noqa: E402
from godeld.ids import uuid7  # noqa: E402

_BIG = 1_000_000_000  # a group limit no bench reaches: measure claims, not waiting for slots


def _record(i: int) -> dict[str, Any]:
    return {"id": uuid7(), "priority": i % 3, "group": "bench", "swarm": None, "max_attempts": 1, "created_at": int(time.time() * 1000),
            "spec": {"kind": "command", "command": "true"}}


def in_process(n: int, claimers: int, synchronous: str) -> dict[str, float]:
    directory = Path(tempfile.mkdtemp(prefix="gbench", dir="/tmp"))

    async def main() -> dict[str, float]:
        storage = SqliteStorage(path=directory / "godel.db", migrations=[core], synchronous=synchronous)
        await storage.open()
        try:
            store = storage.tasks
            await store.set_group("bench", _BIG, 0)
            start = time.perf_counter()
            async with trio.open_nursery() as nursery:  # concurrent submitters share group commits
                for k in range(claimers):
                    async def submitter(k: int = k) -> None:
                        for i in range(k, n, claimers):
                            await store.insert(_record(i), [])
                    nursery.start_soon(submitter)
            submit_s = time.perf_counter() - start
            claimed = 0
            start = time.perf_counter()

            async def claimer(k: int) -> None:
                nonlocal claimed
                while await store.claim(worker=f"w{k}", now_ms=int(time.time() * 1000), lease_ms=30_000, groups=None, swarm=None, default_parallel=4):
                    claimed += 1

            async with trio.open_nursery() as nursery:
                for k in range(claimers):
                    nursery.start_soon(claimer, k)
            claim_s = time.perf_counter() - start
            assert claimed == n, (claimed, n)
            return {"submits_per_s": n / submit_s, "claims_per_s": n / claim_s, "transactions": storage.stats["transactions"]}
        finally:
            await storage.aclose()

    try:
        return trio.run(main)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def over_rpc(n: int, clients: int, synchronous: str) -> dict[str, float]:
    env = {"GODEL_STORAGE__SQLITE__SYNCHRONOUS": synchronous, "GODEL_TASKS__RUN_IN_DAEMON": "false"}
    with running_godeld(env) as socket_path:
        with Client(socket_path, timeout=120).connect() as client:
            client.call("tasks.set_group", {"name": "bench", "parallel": _BIG})
            start = time.perf_counter()
            for lo in range(0, n, 100):
                client.batch([("tasks.submit", {"command": "true", "group": "bench", "priority": i % 3}) for i in range(lo, min(n, lo + 100))])
            submit_s = time.perf_counter() - start
        counts = [0] * clients

        def worker(k: int) -> None:
            with Client(socket_path, timeout=120).connect() as c:
                while c.call("tasks.claim", {"worker": f"w{k}"}) is not None:
                    counts[k] += 1

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        claim_s = time.perf_counter() - start
    assert sum(counts) == n, (sum(counts), n)
    return {"submits_per_s": n / submit_s, "claims_per_s": n / claim_s}


def baseline(n: int, synchronous: str) -> float:
    directory = Path(tempfile.mkdtemp(prefix="gbench", dir="/tmp"))
    try:
        conn = sqlite3.connect(directory / "godel.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        conn.execute("CREATE TABLE tasks (id TEXT PRIMARY KEY, state TEXT NOT NULL)")
        ids = [uuid7() for _ in range(n)]
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO tasks VALUES (?, 'queued')", [(i,) for i in ids])
        conn.execute("COMMIT")
        start = time.perf_counter()
        for i in ids:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("UPDATE tasks SET state = 'running' WHERE id = ?", (i,))
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - start
        conn.close()
        return n / elapsed
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def measure_claims(n: int = 20_000, *, claimers: int = 64, clients: int = 4, synchronous: str = "full", rpc: bool = True) -> dict[str, Any]:
    """Claims per second in-process, over RPC (optional) and the raw-UPDATE baseline, same run."""
    out: dict[str, Any] = {"tasks": n, "claimers": claimers, "clients": clients, "synchronous": synchronous}
    out["in_process"] = in_process(n, claimers, synchronous)
    out["baseline_updates_per_s"] = baseline(n, synchronous)
    if rpc:
        out["rpc"] = over_rpc(n, clients, synchronous)
    return out


def main() -> None:
    n = int(os.environ.get("BENCH_TASKS", "20000"))
    claimers = int(os.environ.get("BENCH_CLAIMERS", "64"))
    clients = int(os.environ.get("BENCH_CLIENTS", "4"))
    synchronous = os.environ.get("BENCH_SYNCHRONOUS", "full")
    r = measure_claims(n, claimers=claimers, clients=clients, synchronous=synchronous)
    ip, rpc = r["in_process"], r["rpc"]
    print(f"synchronous={synchronous}, {n:,} tasks")
    print(f"in-process, {claimers} concurrent claimers: {ip['claims_per_s']:,.0f} claims/s  (submits: {ip['submits_per_s']:,.0f}/s; {ip['transactions']:,} transactions in all)")
    print(f"over RPC, {clients} clients, one claim in flight each: {rpc['claims_per_s']:,.0f} claims/s  (submits in batches of 100: {rpc['submits_per_s']:,.0f}/s)")
    print(f"baseline, bare sqlite3, one UPDATE per transaction: {r['baseline_updates_per_s']:,.0f} updates/s")
    print(f"ratio in-process claims / baseline: {ip['claims_per_s'] / r['baseline_updates_per_s']:.2f}")


if __name__ == "__main__":
    main()
