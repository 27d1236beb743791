"""bench/agents.py — N agents (scripted provider, a real worker process each, each in its own git
worktree of one repository): spawn rate, peak concurrent live agents, godeld's RSS per agent, and
the time to kill them all.

Target (issue 4): 500 concurrent live agents; godeld RSS at most 1 MiB per agent.
BENCH_AGENTS=N changes N (default 500).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import running_godeld  # noqa: E402

from godelctl.client import Client  # noqa: E402

N = int(os.environ.get("BENCH_AGENTS", "500"))


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2 :].split()[0] != b"Z"


def make_repo() -> Path:
    repo = Path(tempfile.mkdtemp(prefix="gbench-repo", dir="/tmp"))
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@b"}
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True, env=env)
    for i in range(20):
        (repo / f"module_{i}.py").write_text(f"def f{i}():\n    return {i}\n")
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True, env=env)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "init"], check=True, env=env)
    return repo


def main() -> None:
    repo = make_repo()
    env = {"GODEL_AGENTS__MAX_CONCURRENT": str(N), "GODEL_AGENTS__KEEP_RUNNING_ON_SHUTDOWN": "false", "GODEL_AGENTS__IDLE_TIMEOUT_S": "0"}
    with running_godeld(env) as sock, Client(sock, timeout=120).connect() as client:
        pid = client.call("daemon.status")["pid"]
        time.sleep(0.5)
        rss_before = rss_kib(pid)
        t0 = time.monotonic()
        ids = [r["id"] for r in client.batch([("agents.spawn", {"repo": str(repo), "task": f"agent {i}", "script": [{"say": f"agent {i} up"}, {"sleep": 3600}]}) for i in range(N)])]
        t_spawned = time.monotonic() - t0
        peak, pids = 0, {}
        while True:
            agents = client.call("agents.list", {"limit": N * 2})["agents"]
            running = [a for a in agents if a["state"] == "running"]
            for a in running:
                pids[a["id"]] = a["pid"]
            live = sum(1 for p in pids.values() if alive(p))
            peak = max(peak, live)
            failed = [a for a in agents if a["state"] in ("failed", "killed", "interrupted")]
            if failed:
                raise SystemExit(f"{len(failed)} agents failed, e.g. {failed[0]['error']}")
            if len(running) == N:
                break
            time.sleep(0.2)
        t_running = time.monotonic() - t0
        time.sleep(1.0)
        rss_after = rss_kib(pid)
        per_agent = (rss_after - rss_before) / N
        t1 = time.monotonic()
        client.batch([("agents.kill", {"id": i}) for i in ids])
        while any(a["state"] != "killed" for a in client.call("agents.list", {"limit": N * 2})["agents"]):
            time.sleep(0.1)
        t_killed = time.monotonic() - t1
        leftovers = sum(1 for p in pids.values() if alive(p))
    print(f"{N} agents (scripted, one worker process and one git worktree each, one repository)")
    print(f"spawn calls answered: {t_spawned:.2f}s; all {N} running after {t_running:.1f}s -> {N / t_running:.1f} agents/s (worktree + process)")
    print(f"peak concurrent live agents: {peak}")
    print(f"godeld RSS: {rss_before / 1024:.1f} MiB before, {rss_after / 1024:.1f} MiB with {N} agents -> {per_agent:.0f} KiB per agent (target <= 1024 KiB)")
    print(f"kill all: {t_killed:.2f}s (processes left: {leftovers})")


if __name__ == "__main__":
    main()
