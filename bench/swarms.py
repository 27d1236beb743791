"""bench/swarms.py — a 100-agent map-reduce swarm with the scripted provider on a real godeld:
wall time, orchestration overhead per agent, and godeld's peak memory.

Baseline, same run and same daemon: the same 101 agents spawned directly with agents.spawn (all at
once, then the reducer) and waited for — the cost of the agents themselves (a worker process and a
git worktree each). The swarm's overhead per agent is (swarm wall − baseline wall) / agents.
BENCH_ITEMS=N changes the number of map agents (default 100).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import running_godeld  # noqa: E402
from agents import make_repo  # noqa: E402

from godelctl.client import Client  # noqa: E402

N = int(os.environ.get("BENCH_ITEMS", "100"))


def peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def wait_agents(client: Client, ids: list[str]) -> None:
    pending = set(ids)
    while pending:
        for r in client.batch([("agents.get", {"id": i}) for i in pending]):
            if r["state"] in ("completed", "failed", "killed", "interrupted"):
                if r["state"] != "completed":
                    raise SystemExit(f"agent {r['id']} {r['state']}: {r['error']}")
                pending.discard(r["id"])
        time.sleep(0.1)


def main() -> None:
    repo = make_repo()
    env = {"GODEL_AGENTS__MAX_CONCURRENT": str(N + 2), "GODEL_AGENTS__KEEP_RUNNING_ON_SHUTDOWN": "false", "GODEL_SWARMS__MAX_AGENTS": str(N + 10)}
    script = {"map": [{"say": "summary of {{item}}"}], "reduce": [{"say": "combined {{agent_index}} results"}]}
    items = [f"module_{i % 20}.py#{i}" for i in range(N)]
    with running_godeld(env) as sock, Client(sock, timeout=300).connect() as client:
        pid = client.call("daemon.status")["pid"]
        # Baseline: the same agents without a swarm.
        t0 = time.monotonic()
        ids = [r["id"] for r in client.batch([("agents.spawn", {"repo": str(repo), "task": f"summarize {it}", "script": [{"say": f"summary of {it}"}]}) for it in items])]
        wait_agents(client, ids)
        reducer = client.call("agents.spawn", {"repo": str(repo), "task": "combine", "script": [{"say": "combined"}]})["id"]
        wait_agents(client, [reducer])
        baseline = time.monotonic() - t0
        # The swarm.
        t0 = time.monotonic()
        swarm_id = client.call("swarms.create", {"task": "summarize {{item}}", "strategy": "map-reduce", "repo": str(repo), "script": script, "options": {"items": items}})["id"]
        while True:
            rec = client.call("swarms.get", {"id": swarm_id})
            if rec["state"] not in ("running",):
                break
            time.sleep(0.1)
        wall = time.monotonic() - t0
        if rec["state"] != "completed":
            raise SystemExit(f"swarm {rec['state']}: {rec['error']}")
        peak = peak_kib(pid)
    agents = len(rec["agents"])
    print(f"map-reduce swarm: {N} map agents + 1 reduce agent (scripted provider, a worker process and a git worktree each)")
    print(f"  wall time: {wall:.1f} s  ({agents / wall:.1f} agents/s)")
    print(f"  baseline, the same {agents} agents spawned directly and waited for: {baseline:.1f} s")
    print(f"  orchestration overhead: {(wall - baseline) / agents * 1000:.0f} ms per agent ({wall / baseline:.2f}x the baseline)")
    print(f"  godeld peak RSS (VmHWM) over both runs: {peak / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
