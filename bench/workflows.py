"""bench/workflows.py — workflow throughput of a real godeld: 5-step workflows of trivial shell steps
(a chain a → b → c → d → e of `true`), many runs in flight. Prints runs per hour, the step
scheduling latency (from a step's completion to the start of the step that needed it, from the
event log), and, from bench/tasks.py, tasks claimed per second from the queue.

Baseline, same run: the five commands spawned one after another with subprocess, no engine — what
process creation alone allows on one core.

Target (issue 5): at least 100,000 runs per hour on this machine.
BENCH_RUNS=N (default 2000), BENCH_INFLIGHT=K runs in flight (default 64).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median, running_godeld  # noqa: E402

from godelctl.client import Client  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "2000"))
INFLIGHT = int(os.environ.get("BENCH_INFLIGHT", "64"))
DEFINITION = {
    "name": "bench-chain",
    "steps": [{"id": c, "run": "true", **({"dependsOn": [p]} if p else {})} for p, c in zip([None, "a", "b", "c", "d"], "abcde")],
}


def baseline(n: int = 200) -> float:
    """Runs per hour if each run were only its five `sh -c true`, one after another."""
    start = time.perf_counter()
    for _ in range(n):
        for _ in range(5):
            subprocess.run(["/bin/sh", "-c", "true"], check=True)
    return n / (time.perf_counter() - start) * 3600


def measure(runs: int = RUNS, inflight: int = INFLIGHT) -> dict[str, float]:
    with running_godeld({"GODEL_WORKFLOWS__MAX_PARALLEL_STEPS": str(max(inflight, 8))}) as sock:
        with Client(sock, timeout=None) as client:
            head = client.call("events.list", {"limit": 1, "tail": True})["last_seq"]
            client.call("events.subscribe", {"pattern": "workflow:complete", "since": head})
            start = time.perf_counter()
            submitted = done = failed = 0
            while submitted < min(inflight, runs):
                client.call("workflows.run", {"definition": DEFINITION})
                submitted += 1
            for message in client.notifications():
                if message.get("method") != "events.event":
                    continue
                done += 1
                failed += message["params"]["data"]["status"] != "completed"
                if submitted < runs:
                    client.call("workflows.run", {"definition": DEFINITION})
                    submitted += 1
                if done == runs:
                    break
            elapsed = time.perf_counter() - start
            latencies = _scheduling_latencies(client, head)
    return {"runs": runs, "failed": failed, "seconds": elapsed, "runs_per_hour": runs / elapsed * 3600,
            "steps_per_s": runs * 5 / elapsed, "latency_ms_median": median(latencies), "latency_ms_p95": sorted(latencies)[int(len(latencies) * 0.95)]}


def _scheduling_latencies(client: Client, since: int) -> list[float]:
    """ms from `workflow:step:complete` of a step to `workflow:step:start` of the next in the chain."""
    completes: dict[tuple[str, str], int] = {}
    starts: dict[tuple[str, str], int] = {}
    cursor = since
    while True:
        page = client.call("events.list", {"since": cursor, "pattern": ["workflow:step:start", "workflow:step:complete"], "limit": 5000})
        for e in page["events"]:
            key = (e["data"]["workflowId"], e["data"]["stepId"])
            (completes if e["type"] == "workflow:step:complete" else starts)[key] = e["timestamp"]
        if not page["events"]:
            break
        cursor = page["next_since"]
    nxt = dict(zip("abcd", "bcde"))
    return [float(starts[(run, nxt[step])] - ts) for (run, step), ts in completes.items() if step in nxt and (run, nxt[step]) in starts]


def main() -> None:
    base = baseline()
    result = measure()
    idle = measure(runs=50, inflight=1)
    print(f"workflows: {result['runs']} runs of 5 shell steps ({INFLIGHT} in flight) in {result['seconds']:.1f} s, {result['failed']} failed")
    print(f"  {result['runs_per_hour']:,.0f} runs/hour ({result['steps_per_s']:,.0f} steps/s) — target 100,000/hour")
    print(f"  step scheduling latency under that load: median {result['latency_ms_median']:.0f} ms, p95 {result['latency_ms_p95']:.0f} ms")
    print(f"  step scheduling latency, one run at a time: median {idle['latency_ms_median']:.0f} ms, p95 {idle['latency_ms_p95']:.0f} ms"
          f" ({idle['runs_per_hour']:,.0f} runs/hour) — event timestamps, ms resolution")
    print(f"  baseline, five `sh -c true` one after another, no engine: {base:,.0f} runs/hour (ratio {result['runs_per_hour'] / base:.2f}x)")
    from tasks import measure_claims  # bench/tasks.py

    n = int(os.environ.get("BENCH_TASKS", "20000"))
    claims = measure_claims(n=n)
    ip, rpc = claims["in_process"], claims["rpc"]
    print(f"tasks: {n:,} queued; claimed in-process by 64 claimers: {ip['claims_per_s']:,.0f}/s; over RPC by 4 clients: {rpc['claims_per_s']:,.0f}/s")
    print(f"  baseline, bare sqlite3, one UPDATE per transaction: {claims['baseline_updates_per_s']:,.0f}/s")


if __name__ == "__main__":
    main()
