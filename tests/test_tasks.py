"""The task queue end to end: a real godeld on a temporary home, real SQLite, real subprocesses,
a real git repository for agent tasks (scripted provider), and godelctl as a real process.

Ordering and concurrency are observed through events and files the commands write; waits poll
a condition with a deadline, never sleep for ordering.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable

import pytest

from godeld import protocol
from godelctl.client import RpcError
from tests.agent_helpers import group_members, make_repo, proc_state

FINAL = {"completed", "failed", "cancelled"}
FAST = {"tasks": {"sweep_interval_s": 0.1, "kill_grace_s": 1.0}, "agents": {"keep_running_on_shutdown": False, "kill_grace_s": 1.0}}


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.03)


def wait_task(proc, task_id: str, states: set[str] | str = FINAL, timeout: float = 30.0) -> dict[str, Any]:
    states = {states} if isinstance(states, str) else states
    try:
        return wait_for(f"task {task_id} in {states}", lambda: (t := proc.call("tasks.get", {"id": task_id}))["state"] in states and t, timeout)
    except AssertionError:
        raise AssertionError(f"task still {proc.call('tasks.get', {'id': task_id})}\n{proc.output()[-3000:]}") from None


def task_events(proc, pattern: str = "task:*") -> list[dict[str, Any]]:
    return proc.call("events.list", {"since": 0, "pattern": pattern, "limit": 10000})["events"]


def submit(proc, command: str | None = None, **params) -> str:
    if command is not None:
        params["command"] = command
    return proc.call("tasks.submit", params)["id"]


def rpc_error(proc, method: str, params: dict) -> RpcError:
    with pytest.raises(RpcError) as info:
        proc.call(method, params)
    return info.value


@pytest.fixture
def daemon(godeld):
    return godeld(config=FAST).start()


# -- ordering, groups, dependencies ---------------------------------------------------------------

def test_higher_priority_first_then_submission_order(daemon):
    daemon.call("tasks.set_group", {"name": "solo", "parallel": 0})  # paused: everything queues up first
    prios = [0, 5, 0, 5, 1, 0]
    ids = [submit(daemon, f"echo {i}", priority=p, group="solo") for i, p in enumerate(prios)]
    groups = {g["name"]: g for g in daemon.call("tasks.groups")["groups"]}
    assert groups["solo"] == {"name": "solo", "parallel": 0, "running": 0, "queued": 6}
    assert all(daemon.call("tasks.get", {"id": i})["state"] == "queued" for i in ids)
    daemon.call("tasks.set_group", {"name": "solo", "parallel": 1})
    for i in ids:
        assert wait_task(daemon, i)["state"] == "completed"
    assigned = [e["data"]["taskId"] for e in task_events(daemon, "task:assigned")]
    expected = [ids[1], ids[3], ids[4], ids[0], ids[2], ids[5]]
    assert assigned == expected
    completed = [e["data"]["taskId"] for e in task_events(daemon, "task:complete")]
    assert completed == expected  # parallel 1: each ran alone, in that order


def test_a_group_never_runs_more_than_its_limit(daemon, home):
    daemon.call("tasks.set_group", {"name": "two", "parallel": 2})
    trace = home / "trace"
    ids = [submit(daemon, f"echo + >> {trace}; sleep 0.4; echo - >> {trace}", group="two") for _ in range(6)]
    for i in ids:
        assert wait_task(daemon, i)["state"] == "completed"
    running = peak = 0
    for line in trace.read_text().split():
        running += 1 if line == "+" else -1
        peak = max(peak, running)
    assert peak == 2
    group = next(g for g in daemon.call("tasks.groups")["groups"] if g["name"] == "two")
    assert group == {"name": "two", "parallel": 2, "running": 0, "queued": 0}


def test_dependencies_wait_and_a_failed_dependency_fails_its_dependents(daemon, home):
    out = home / "order"
    a = submit(daemon, f"sleep 0.5; echo a >> {out}")
    b = submit(daemon, f"echo b >> {out}", depends_on=[a])
    t = daemon.call("tasks.get", {"id": b})
    if t["state"] == "queued":  # a still runs: b is visibly blocked on it
        assert t["blocked"] and t["waiting_on"] == [a]
    assert wait_task(daemon, b)["state"] == "completed"
    assert out.read_text() == "a\nb\n"
    assert daemon.call("tasks.get", {"id": b})["started_at"] >= daemon.call("tasks.get", {"id": a})["finished_at"]

    bad = submit(daemon, "sleep 0.2; exit 1")
    child = submit(daemon, "echo never", depends_on=[bad])
    grandchild = submit(daemon, "echo never", depends_on=[child])
    assert wait_task(daemon, bad)["state"] == "failed"
    c = wait_task(daemon, child)
    assert c["state"] == "failed" and c["error"] == f"dependency {bad} failed" and c["attempts"] == 0
    assert wait_task(daemon, grandchild)["error"] == f"dependency {child} failed"
    failed = {e["data"]["taskId"] for e in task_events(daemon, "task:failed")}
    assert {bad, child, grandchild} <= failed
    # A task submitted after its dependency failed fails at once.
    late = daemon.call("tasks.submit", {"command": "echo never", "depends_on": [bad]})
    assert late["state"] == "failed"


# -- what runs --------------------------------------------------------------------------------------

def test_a_command_gives_its_exit_code_and_output(daemon, home):
    tid = submit(daemon, "echo out; echo err >&2; pwd; exit 7", cwd=str(home))
    t = wait_task(daemon, tid)
    assert t["state"] == "failed" and t["error"] == "exit code 7"
    assert t["result"]["exit_code"] == 7
    assert t["result"]["output"].split() == ["out", "err", str(home)]
    log = daemon.call("tasks.log", {"id": tid})
    assert log["data"] == t["result"]["output"]
    assert (daemon.home / "tasks" / f"{tid}.log").exists()
    ok = wait_task(daemon, submit(daemon, "echo $GREETING", env={"GREETING": "hello"}))
    assert ok["state"] == "completed" and ok["result"] == {"exit_code": 0, "output": "hello\n"}
    assert ok["env"] == ["GREETING"]  # names only
    events = [e for e in task_events(daemon) if e["data"]["taskId"] == ok["id"]]
    assert [e["type"] for e in events] == ["task:queued", "task:assigned", "task:complete"]
    assert all(e["metadata"]["taskId"] == ok["id"] and e["source"] == "tasks" for e in events)


def test_an_agent_task_runs_as_an_agent(daemon, home):
    repo = make_repo(home / "repo")
    tid = daemon.call("tasks.submit", {"task": "say done", "repo": str(repo), "provider": "scripted", "script": [{"say": "done"}]})["id"]
    t = wait_task(daemon, tid, timeout=60)
    assert t["state"] == "completed", t
    assigned = [e for e in task_events(daemon, "task:assigned") if e["data"]["taskId"] == tid]
    agent_id = assigned[0]["data"]["agentId"]
    assert t["agent_id"] == agent_id and t["result"]["agent_id"] == agent_id and t["result"]["final"] == "done"
    agent = daemon.call("agents.get", {"id": agent_id})
    assert agent["state"] == "completed" and agent["task_id"] == tid
    complete = [e for e in task_events(daemon, "task:complete") if e["data"]["taskId"] == tid]
    assert complete[0]["data"]["result"]["agent_id"] == agent_id


def test_cancel_kills_a_running_commands_process_group(daemon):
    tid = submit(daemon, "sleep 30 & sleep 30; wait")
    t = wait_for("a pid", lambda: (t := daemon.call("tasks.get", {"id": tid}))["pid"] and t)
    pid = t["pid"]
    wait_for("the group's two sleeps", lambda: len(group_members(pid)) >= 3)
    assert daemon.call("tasks.cancel", {"id": tid})["state"] == "cancelled"
    wait_for("the process group to end", lambda: not group_members(pid), timeout=10)
    t = daemon.call("tasks.get", {"id": tid})
    assert t["state"] == "cancelled" and t["lease_owner"] is None
    assert [e["data"]["taskId"] for e in task_events(daemon, "task:cancelled")] == [tid]
    assert not [e for e in task_events(daemon, "task:complete") if e["data"]["taskId"] == tid]
    err = rpc_error(daemon, "tasks.cancel", {"id": tid})
    assert err.code == protocol.CONFLICT and "cancelled" in err.message
    # A queued task is cancelled before it runs.
    daemon.call("tasks.set_group", {"name": "held", "parallel": 0})
    held = submit(daemon, "echo never", group="held")
    assert daemon.call("tasks.cancel", {"id": held})["state"] == "cancelled"


def test_retry_and_max_attempts(daemon, home):
    flaky = f"test -f {home}/marker-$M || {{ touch {home}/marker-$M; exit 1; }}"
    tid = submit(daemon, flaky, env={"M": "1"})
    assert wait_task(daemon, tid)["state"] == "failed"
    assert daemon.call("tasks.retry", {"id": tid})["state"] == "queued"
    t = wait_task(daemon, tid)
    assert t["state"] == "completed" and t["attempts"] == 2 and t["error"] is None
    assert rpc_error(daemon, "tasks.retry", {"id": tid}).code == protocol.CONFLICT
    auto = submit(daemon, flaky, env={"M": "2"}, max_attempts=2)
    t = wait_task(daemon, auto)
    assert t["state"] == "completed" and t["attempts"] == 2
    requeued = [e["data"] for e in task_events(daemon, "task:requeued") if e["data"]["taskId"] == auto]
    assert [r["reason"] for r in requeued] == ["attempt_failed"]


# -- leases -----------------------------------------------------------------------------------------

def test_an_expired_lease_requeues_and_a_stale_worker_gets_conflict(daemon):
    # A swarm task: the in-daemon runner leaves it to claims that name the swarm.
    tid = submit(daemon, "echo hi", swarm="blue")
    assert daemon.call("tasks.claim", {"worker": "w-none"}) is None
    t = daemon.call("tasks.claim", {"worker": "w1", "swarm": "blue", "lease_s": 1})
    assert t["id"] == tid and t["state"] == "running" and t["attempts"] == 1 and t["lease_owner"] == "w1"
    assert t["spec"]["command"] == "echo hi"
    assert daemon.call("tasks.heartbeat", {"id": tid, "worker": "w1", "lease_s": 1})["lease_expires_at"] > 0
    assert rpc_error(daemon, "tasks.heartbeat", {"id": tid, "worker": "intruder"}).code == protocol.CONFLICT
    # w1 stops heartbeating: the sweep puts the task back.
    wait_for("task:requeued", lambda: [e for e in task_events(daemon, "task:requeued") if e["data"]["taskId"] == tid])
    ev = [e for e in task_events(daemon, "task:requeued") if e["data"]["taskId"] == tid][0]["data"]
    assert ev["reason"] == "lease_expired" and ev["worker"] == "w1"
    assert daemon.call("tasks.get", {"id": tid})["state"] == "queued"
    assert rpc_error(daemon, "tasks.heartbeat", {"id": tid, "worker": "w1"}).code == protocol.CONFLICT
    t2 = daemon.call("tasks.claim", {"worker": "w2", "swarm": "blue", "lease_s": 30})
    assert t2["id"] == tid and t2["attempts"] == 2
    stale = rpc_error(daemon, "tasks.complete", {"id": tid, "worker": "w1", "result": "late"})
    assert stale.code == protocol.CONFLICT and "w2" in stale.message
    assert daemon.call("tasks.complete", {"id": tid, "worker": "w2", "result": {"ok": True}})["state"] == "completed"
    t = daemon.call("tasks.get", {"id": tid})
    assert t["result"] == {"ok": True} and t["requeues"] == 1
    assert [e["data"]["worker"] for e in task_events(daemon, "task:assigned") if e["data"]["taskId"] == tid] == ["w1", "w2"]
    # An external worker's failure.
    other = submit(daemon, "x", swarm="blue")
    assert daemon.call("tasks.claim", {"worker": "w3", "swarm": "blue"})["id"] == other
    assert daemon.call("tasks.fail", {"id": other, "worker": "w3", "error": "broke"})["state"] == "failed"
    assert daemon.call("tasks.get", {"id": other})["error"] == "broke"


def test_nothing_is_lost_when_godeld_is_killed(godeld, home):
    config = {"tasks": {"sweep_interval_s": 0.1, "lease_s": 2.0}}
    first = godeld(config=config).start()
    first.call("tasks.set_group", {"name": "line", "parallel": 1})
    slow = submit(first, "if [ -f second ]; then echo second; else touch second; sleep 30; fi", group="line", cwd=str(home))
    queued = [submit(first, f"echo {i}", group="line") for i in range(3)]
    t = wait_for("the slow task's pid", lambda: (t := first.call("tasks.get", {"id": slow}))["pid"] and t)
    old_pid = t["pid"]
    first.kill9()
    assert proc_state(old_pid) not in (None, "Z")  # its command outlived godeld

    second = godeld(config=config).start()
    listed = {t["id"]: t for t in second.call("tasks.list")["tasks"]}
    assert set(listed) == {slow, *queued}
    t = wait_task(second, slow, timeout=60)
    assert t["state"] == "completed" and t["result"]["output"] == "second\n"
    assert t["attempts"] == 2 and t["requeues"] == 1
    for q in queued:
        assert wait_task(second, q)["state"] == "completed"
    wait_for("the old command to be killed", lambda: proc_state(old_pid) in (None, "Z"), timeout=10)
    reasons = [e["data"]["reason"] for e in task_events(second, "task:requeued") if e["data"]["taskId"] == slow]
    assert reasons == ["lease_expired"]


# -- errors -----------------------------------------------------------------------------------------

def test_unknown_ids_and_invalid_params_are_clear(daemon, home):
    missing = "01a00000-0000-7000-8000-000000000000"
    for method in ("tasks.get", "tasks.cancel", "tasks.retry", "tasks.log"):
        err = rpc_error(daemon, method, {"id": missing})
        assert err.code == protocol.NOT_FOUND and missing in err.message, method
    err = rpc_error(daemon, "tasks.submit", {"command": "true", "depends_on": [missing]})
    assert err.code == protocol.INVALID_PARAMS and missing in err.message
    for params in ({"command": "true", "task": "x", "repo": str(home)}, {}, {"task": "no repo"}, {"command": "  "}, {"command": "true", "max_attempts": 0}):
        assert rpc_error(daemon, "tasks.submit", params).code == protocol.INVALID_PARAMS, params
    assert rpc_error(daemon, "tasks.set_group", {"name": "g", "parallel": -1}).code == protocol.INVALID_PARAMS
    assert rpc_error(daemon, "tasks.list", {"state": "bogus"}).code == protocol.INVALID_PARAMS
    assert rpc_error(daemon, "tasks.complete", {"id": missing, "worker": "w"}).code == protocol.NOT_FOUND
    assert daemon.call("tasks.list", {"state": "running"}) == {"tasks": []}


# -- godelctl ---------------------------------------------------------------------------------------

def test_godelctl_task_commands(daemon, home):
    from tests.test_godelctl import ctl

    added = ctl(home, "--json", "task", "add", "--priority", "3", "--label", "greet", "--", "echo", "hello", "world")
    assert added.returncode == 0, added.stderr
    tid = json.loads(added.stdout)["id"]
    assert wait_task(daemon, tid)["state"] == "completed"
    shown = ctl(home, "task", "show", tid)
    assert shown.returncode == 0 and "completed" in shown.stdout and "hello world" in shown.stdout
    listed = ctl(home, "task", "list")
    assert tid in listed.stdout and "greet" in listed.stdout
    data = json.loads(ctl(home, "--json", "task", "show", tid).stdout)
    assert data["priority"] == 3 and data["command"] == "echo hello world" and data["cwd"] == str(home)
    assert ctl(home, "task", "log", tid).stdout == "hello world\n"
    grp = ctl(home, "task", "group", "batch", "--parallel", "0")
    assert grp.returncode == 0 and "batch" in grp.stdout and "paused" in grp.stdout
    held = json.loads(ctl(home, "--json", "task", "add", "-g", "batch", "--after", tid, "true").stdout)["id"]
    assert "queued" in ctl(home, "task", "list", "--state", "queued").stdout
    assert ctl(home, "task", "cancel", held).stdout.split() == [held, "cancelled"]
    assert ctl(home, "task", "retry", held).stdout.split() == [held, "queued"]
    missing = ctl(home, "task", "show", "nope")
    assert missing.returncode == 1 and "no task with id nope" in missing.stderr
    usage = ctl(home, "task", "add")
    assert usage.returncode == 2


def test_a_clean_stop_kills_running_commands_and_requeues_them(godeld, home):
    config = {"tasks": {"sweep_interval_s": 0.1}}
    first = godeld(config=config).start()
    tid = submit(first, "if [ -f again ]; then echo again; else touch again; sleep 30; fi", cwd=str(home))
    pid = wait_for("a pid", lambda: first.call("tasks.get", {"id": tid})["pid"])
    first.stop()
    wait_for("the command's group to end", lambda: not group_members(pid), timeout=10)
    second = godeld(config=config).start()
    t = wait_task(second, tid)
    assert t["state"] == "completed" and t["result"]["output"] == "again\n" and t["requeues"] == 0
    reasons = [e["data"]["reason"] for e in task_events(second, "task:requeued") if e["data"]["taskId"] == tid]
    assert reasons == ["worker_stopped"]
