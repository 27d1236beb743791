"""Agents end to end: a real godeld, real git repositories and worktrees, real worker processes
driven by the scripted provider."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from godelctl.client import RpcError
from tests.agent_helpers import FINAL, events_of, git, group_members, make_repo, proc_state, wait_state

NO_LINGER = {"GODEL_AGENTS__KEEP_RUNNING_ON_SHUTDOWN": "false", "GODEL_AGENTS__KILL_GRACE_S": "1"}


@pytest.fixture
def repo(home) -> Path:
    return make_repo(home / "repo", {"README.md": "# demo\n", "src/app.py": "print('hi')\n"})


def spawn(proc, repo: Path, script, **params):
    return proc.call("agents.spawn", {"repo": str(repo), "task": params.pop("task", "do the thing"), "script": script, **params})


def test_scripted_agent_works_in_its_own_worktree_and_leaves_a_branch(godeld, repo):
    proc = godeld(env=NO_LINGER).start()
    head = git(repo, "rev-parse", "HEAD").strip()
    script = [
        {"say": "Adding a greeting."},
        {"tool": "write_file", "args": {"path": "hello.txt", "content": "hello\n"}, "usage": {"input_tokens": 120, "output_tokens": 30}},
        {"tool": "edit_file", "args": {"path": "src/app.py", "old": "hi", "new": "hello"}},
        {"tool": "run_command", "args": {"command": "cat hello.txt; git status --porcelain"}, "usage": {"input_tokens": 200, "output_tokens": 10}},
        {"say": "Done: hello.txt added."},
    ]
    started = spawn(proc, repo, script, task="add a greeting")
    assert set(started) >= {"id", "branch", "worktree"}
    agent_id = started["id"]
    assert started["branch"] == f"godel/{agent_id}"
    rec = wait_state(proc, agent_id)
    assert rec["state"] == "completed", rec
    assert rec["exit_code"] == 0 and rec["error"] is None
    assert rec["usage"]["input_tokens"] == 320 and rec["usage"]["output_tokens"] == 40
    assert rec["final"] == "Done: hello.txt added."
    worktree = Path(rec["worktree"])
    assert worktree.is_dir() and worktree.parent.parent == proc.home / "worktrees"
    # The work is committed on the agent's branch; the main worktree is untouched.
    assert git(repo, "show", f"{rec['branch']}:hello.txt") == "hello\n"
    assert git(repo, "show", f"{rec['branch']}:src/app.py") == "print('hello')\n"
    assert git(repo, "rev-parse", "HEAD").strip() == head
    assert git(repo, "status", "--porcelain") == ""
    assert not (repo / "hello.txt").exists()
    diff = proc.call("agents.diff", {"id": agent_id})
    assert "+hello" in diff["diff"] and {f["path"] for f in diff["files"]} == {"hello.txt", "src/app.py"}
    assert len(diff["commits"]) == 1
    artifacts = proc.call("agents.artifacts", {"id": agent_id})
    assert artifacts["isolation"] == {"ok": True, "problems": []}
    assert Path(artifacts["files"]["diff"]).read_text() == diff["diff"]
    logs = proc.call("agents.logs", {"id": agent_id})
    assert "Adding a greeting." in logs["data"] and "hello\n" in logs["data"] and logs["eof"]
    kinds = [e["kind"] for e in proc.call("agents.transcript", {"id": agent_id})["entries"]]
    assert kinds == ["system", "user", "assistant", "tool", "tool", "tool", "assistant"]
    start = events_of(proc, "agent:start", agent_id)
    assert len(start) == 1 and start[0]["data"]["task"] == "add a greeting" and start[0]["data"]["model"] == "scripted"
    complete = events_of(proc, "agent:complete", agent_id)
    assert len(complete) == 1 and set(complete[0]["data"]) >= {"agentId", "duration", "cost"}
    states = [e["data"]["state"] for e in events_of(proc, "agent:state", agent_id)]
    assert states == ["pending", "starting", "running", "completed"]
    assert proc.stop() == 0


def test_many_agents_in_one_repository_serialize_git(godeld, repo):
    proc = godeld(env=NO_LINGER).start()
    ids = [spawn(proc, repo, [{"tool": "write_file", "args": {"path": f"f{i}.txt", "content": str(i)}}, {"say": "ok"}])["id"] for i in range(12)]
    recs = [wait_state(proc, i) for i in ids]
    assert [r["state"] for r in recs] == ["completed"] * 12, [r["error"] for r in recs]
    assert len({r["worktree"] for r in recs}) == 12
    branches = git(repo, "for-each-ref", "--format=%(refname)", "refs/heads/godel/").split()
    assert len(branches) == 12
    assert proc.stop() == 0


def test_spawn_errors_are_clear(godeld, repo, home):
    proc = godeld(env=NO_LINGER).start()
    with pytest.raises(RpcError, match="not a git repository"):
        proc.call("agents.spawn", {"repo": str(home), "task": "x"})
    with pytest.raises(RpcError, match="repository not found"):
        proc.call("agents.spawn", {"repo": str(home / "nope"), "task": "x"})
    with pytest.raises(RpcError, match="base 'no-such-branch' is not a commit"):
        proc.call("agents.spawn", {"repo": str(repo), "task": "x", "base": "no-such-branch"})
    with pytest.raises(RpcError, match="unknown provider 'gpt-magic'"):
        proc.call("agents.spawn", {"repo": str(repo), "task": "x", "provider": "gpt-magic"})
    with pytest.raises(RpcError, match=r"script\[1\] must have exactly one of"):
        proc.call("agents.spawn", {"repo": str(repo), "task": "x", "script": [{"say": "a"}, {"bogus": 1}]})
    with pytest.raises(RpcError, match="no agent with id nope"):
        proc.call("agents.get", {"id": "nope"})
    assert proc.stop() == 0


def test_pause_stops_the_whole_process_group_and_resume_continues(godeld, repo):
    proc = godeld(env=NO_LINGER).start()
    agent_id = spawn(proc, repo, [{"tool": "run_command", "args": {"command": "sleep 2; echo slept > slept.txt"}}, {"say": "done"}])["id"]
    rec = wait_state(proc, agent_id, "running")
    pid = rec["pid"]
    deadline = time.monotonic() + 10
    while len(group_members(pid)) < 3 and time.monotonic() < deadline:  # worker, sh, sleep
        time.sleep(0.02)
    members = group_members(pid)
    assert len(members) >= 3
    proc.call("agents.pause", {"id": agent_id})
    assert proc.call("agents.get", {"id": agent_id})["state"] == "paused"
    for member in members:
        deadline = time.monotonic() + 5
        while proc_state(member) not in ("T", None) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc_state(member) in ("T", None)
    time.sleep(2.5)  # longer than the command's sleep: still stopped, nothing finished
    assert proc.call("agents.get", {"id": agent_id})["state"] == "paused"
    assert not (Path(rec["worktree"]) / "slept.txt").exists()
    with pytest.raises(RpcError, match="is paused, not running"):
        proc.call("agents.pause", {"id": agent_id})
    proc.call("agents.resume", {"id": agent_id})
    rec = wait_state(proc, agent_id)
    assert rec["state"] == "completed"
    assert git(repo, "show", f"{rec['branch']}:slept.txt") == "slept\n"
    kinds = [e["type"] for e in events_of(proc, "agent:*", agent_id) if e["type"] in ("agent:paused", "agent:resumed")]
    assert kinds == ["agent:paused", "agent:resumed"]
    assert proc.stop() == 0


def test_kill_ends_the_process_group(godeld, repo):
    proc = godeld(env=NO_LINGER).start()
    agent_id = spawn(proc, repo, [{"tool": "run_command", "args": {"command": "sleep 60"}}])["id"]
    rec = wait_state(proc, agent_id, "running")
    deadline = time.monotonic() + 10
    while len(group_members(rec["pid"])) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.call("agents.pause", {"id": agent_id})  # a paused agent can be killed too
    proc.call("agents.kill", {"id": agent_id})
    rec = wait_state(proc, agent_id)
    assert rec["state"] == "killed" and rec["error"] == "killed by request"
    deadline = time.monotonic() + 10
    while group_members(rec["pid"]) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert group_members(rec["pid"]) == []
    assert len(events_of(proc, "agent:killed", agent_id)) == 1
    with pytest.raises(RpcError, match="already killed"):
        proc.call("agents.kill", {"id": agent_id})
    assert proc.stop() == 0


def test_concurrency_limit_queues_spawns_in_order(godeld, repo):
    proc = godeld(env={**NO_LINGER, "GODEL_AGENTS__MAX_CONCURRENT": "2"}).start()
    ids = [spawn(proc, repo, [{"sleep": 0.3}, {"say": f"agent {i}"}])["id"] for i in range(6)]
    for agent_id in ids:
        assert wait_state(proc, agent_id)["state"] == "completed"
    running, most = 0, 0
    started_order = []
    for e in events_of(proc, "agent:state"):
        if e["data"]["state"] == "starting":
            running += 1
            started_order.append(e["data"]["agentId"])
        elif e["data"]["state"] in FINAL:
            running -= 1
        most = max(most, running)
    assert most == 2
    assert started_order == ids
    assert proc.stop() == 0


def test_worktree_provisioning_copies_files_gives_a_port_and_runs_setup(godeld, home):
    repo = make_repo(home / "prov", {
        ".godel/worktree.yaml": "copy: [.env, missing.txt]\nport: true\nsetup: echo setup-ran > setup.txt\n",
        ".gitignore": ".env\n",
    })
    (repo / ".env").write_text("SECRET=local\n")
    proc = godeld(env=NO_LINGER).start()
    agent_id = spawn(proc, repo, [{"tool": "run_command", "args": {"command": "echo $GODEL_PORT > port.txt; cat .env setup.txt"}}, {"say": "ok"}])["id"]
    rec = wait_state(proc, agent_id)
    assert rec["state"] == "completed", rec
    port = int(git(repo, "show", f"{rec['branch']}:port.txt"))
    assert port == rec["port"] and 0 < port < 65536
    log = proc.call("agents.logs", {"id": agent_id})["data"]
    assert "SECRET=local" in log and "setup-ran" in log

    bad = make_repo(home / "bad", {".godel/worktree.yaml": "setup: echo preparing; echo broken >&2; exit 3\n"})
    agent_id = spawn(proc, bad, [{"say": "never"}])["id"]
    rec = wait_state(proc, agent_id)
    assert rec["state"] == "failed" and "exit 3" in rec["error"]
    (error,) = events_of(proc, "agent:error", agent_id)
    assert "broken" in error["data"]["output"] and "preparing" in error["data"]["output"]

    typo = make_repo(home / "typo", {".godel/worktree.yaml": "copy: [.env]\nsetpu: make\n"})
    rec = wait_state(proc, spawn(proc, typo, [{"say": "never"}])["id"])
    assert rec["state"] == "failed" and "worktree.yaml:2:1" in rec["error"] and "setpu" in rec["error"]
    assert proc.stop() == 0


def test_tools_cannot_leave_the_worktree(godeld, repo, home):
    proc = godeld(env=NO_LINGER).start()
    outside = home / "outside.txt"
    (repo / "link").symlink_to(home)
    git(repo, "add", "link")
    git(repo, "commit", "-qm", "symlink out")
    script = [
        {"tool": "write_file", "args": {"path": "../../outside.txt", "content": "escaped"}},
        {"tool": "write_file", "args": {"path": str(outside), "content": "escaped"}},
        {"tool": "write_file", "args": {"path": "link/outside.txt", "content": "escaped"}},
        {"tool": "read_file", "args": {"path": "/etc/hostname"}},
        {"say": "tried"},
    ]
    rec = wait_state(proc, spawn(proc, repo, script)["id"])
    assert rec["state"] == "completed"
    assert not outside.exists()
    results = [e["data"] for e in proc.call("agents.transcript", {"id": rec["id"]})["entries"] if e["kind"] == "tool"]
    assert len(results) == 4 and all(r["is_error"] for r in results), results
    assert proc.stop() == 0


def test_denied_tool_is_blocked_and_logged(godeld, repo):
    proc = godeld(env={**NO_LINGER, "GODEL_SAFETY__DENIED_TOOLS": "run_command"}).start()
    agent_id = spawn(proc, repo, [{"tool": "run_command", "args": {"command": "touch ran.txt"}}, {"say": "ok"}])["id"]
    rec = wait_state(proc, agent_id)
    assert rec["state"] == "completed"
    assert not (Path(rec["worktree"]) / "ran.txt").exists()
    (tool,) = [e["data"] for e in proc.call("agents.transcript", {"id": agent_id})["entries"] if e["kind"] == "tool"]
    assert tool["is_error"] and tool["decision"]["verdict"] == "deny" and "blocked by safety rule" in tool["result"]
    (block,) = events_of(proc, "safety:block", agent_id)
    assert set(block["data"]) >= {"action", "reason", "rule"} and block["data"]["action"]["tool"] == "run_command"
    log = proc.call("safety.log", {})["events"]
    assert [e["type"] for e in log] == ["safety:block"]
    check = proc.call("safety.check", {"tool": "run_command", "args": {"command": "ls"}})
    assert check["verdict"] == "deny"
    assert proc.stop() == 0


def test_ask_waits_for_a_person_and_survives_a_restart(godeld, repo):
    env = {"GODEL_SAFETY__ASK_TOOLS": "write_file"}
    proc = godeld(env=env).start()
    agent_id = spawn(proc, repo, [{"tool": "write_file", "args": {"path": "approved.txt", "content": "yes"}}, {"tool": "write_file", "args": {"path": "denied.txt", "content": "no"}}, {"say": "ok"}])["id"]
    deadline = time.monotonic() + 30
    while not proc.call("agents.approvals", {"id": agent_id})["approvals"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    (pending,) = proc.call("agents.approvals", {"id": agent_id})["approvals"]
    assert pending["action"]["tool"] == "write_file" and pending["state"] == "pending"
    pid = proc.call("agents.get", {"id": agent_id})["pid"]
    assert proc.stop() == 0  # godeld goes; the agent stays, waiting
    assert proc_state(pid) not in (None, "Z")
    proc = godeld(env=env).start()
    assert proc.call("agents.get", {"id": agent_id})["state"] == "running"  # re-adopted
    (again,) = proc.call("agents.approvals", {"id": agent_id})["approvals"]
    assert again["id"] == pending["id"]
    proc.call("agents.approve", {"id": agent_id, "note": "fine"})
    deadline = time.monotonic() + 30
    while not proc.call("agents.approvals", {"id": agent_id})["approvals"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.call("agents.deny", {"id": agent_id})
    rec = wait_state(proc, agent_id)
    assert rec["state"] == "completed"
    assert git(repo, "show", f"{rec['branch']}:approved.txt") == "yes"
    assert "denied.txt" not in git(repo, "ls-tree", "--name-only", rec["branch"])
    types = [e["type"] for e in events_of(proc, "safety:*", agent_id)]
    assert types == ["safety:ask", "safety:decision", "safety:ask", "safety:decision", "safety:block"]
    assert proc.stop() == 0


def test_agents_survive_kill_9_of_godeld_and_are_re_adopted(godeld, repo):
    proc = godeld(env=NO_LINGER).start()
    agent_id = spawn(proc, repo, [{"sleep": 2}, {"tool": "write_file", "args": {"path": "after.txt", "content": "after"}}, {"say": "survived"}])["id"]
    pid = wait_state(proc, agent_id, "running")["pid"]
    proc.kill9()
    assert proc_state(pid) not in (None, "Z")
    proc = godeld(env=NO_LINGER).start()
    rec = proc.call("agents.get", {"id": agent_id})
    assert rec["state"] == "running" and rec["pid"] == pid
    rec = wait_state(proc, agent_id)
    assert rec["state"] == "completed" and rec["final"] == "survived"
    assert git(repo, "show", f"{rec['branch']}:after.txt") == "after"
    assert proc.stop() == 0


def test_an_agent_whose_process_died_with_godeld_is_interrupted_and_can_resume(godeld, repo):
    proc = godeld(env=NO_LINGER).start()
    script = [
        {"tool": "write_file", "args": {"path": "one.txt", "content": "1"}, "usage": {"input_tokens": 10, "output_tokens": 1}},
        {"sleep": 30},
        {"say": "finished"},
    ]
    agent_id = spawn(proc, repo, script)["id"]
    rec = wait_state(proc, agent_id, "running")
    deadline = time.monotonic() + 20
    while not any(e["kind"] == "tool" for e in proc.call("agents.transcript", {"id": agent_id})["entries"]):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.kill9()
    os.killpg(rec["pid"], signal.SIGKILL)  # the machine lost the agent too
    proc = godeld(env=NO_LINGER).start()
    rec = proc.call("agents.get", {"id": agent_id})
    assert rec["state"] == "interrupted" and "process is gone" in rec["error"]
    with pytest.raises(RpcError, match="only a paused or an interrupted agent"):
        proc.call("agents.resume", {"id": wait_state(proc, spawn(proc, repo, [{"say": "x"}])["id"])["id"]})
    proc.call("agents.resume", {"id": agent_id})
    rec = wait_state(proc, agent_id)
    # The resumed run replays the conversation from the transcript; the script starts again.
    assert rec["state"] in ("completed", "running") or rec["state"] == "completed"
    assert proc.stop() == 0


def test_remove_and_gc(godeld, repo, home):
    proc = godeld(env=NO_LINGER).start()
    done = wait_state(proc, spawn(proc, repo, [{"tool": "write_file", "args": {"path": "w.txt", "content": "w"}}, {"say": "ok"}])["id"])
    nothing = wait_state(proc, spawn(proc, repo, [{"say": "no changes"}])["id"])
    result = proc.call("agents.remove", {"id": done["id"]})
    assert result["worktree_removed"] and not result["branch_deleted"] and "unmerged" in result["branch_kept_reason"]
    assert not Path(done["worktree"]).exists() and git(repo, "rev-parse", "--verify", done["branch"]).strip()
    with pytest.raises(RpcError, match=f"no agent with id {done['id']}"):
        proc.call("agents.get", {"id": done["id"]})
    result = proc.call("agents.remove", {"id": nothing["id"]})
    assert result["branch_deleted"]  # no commits of its own: nothing to lose
    # An orphaned worktree folder (a crash between `git worktree add` and the record).
    orphan = proc.home / "worktrees" / "repo-00000000" / "0190-orphan"
    orphan.mkdir(parents=True)
    (orphan / "junk.txt").write_text("x" * 5000)
    old = wait_state(proc, spawn(proc, repo, [{"say": "old"}])["id"])
    time.sleep(0.2)
    report = proc.call("agents.gc", {"max_age_h": 0.00001, "dry_run": True})
    assert [r["id"] for r in report["removed"]] == [old["id"]] and Path(old["worktree"]).exists()
    assert [o["path"] for o in report["orphans"]] == [str(orphan)]
    report = proc.call("agents.gc", {"max_age_h": 0.00001, "orphans": "reclaim"})
    assert not Path(old["worktree"]).exists() and not orphan.exists()
    assert proc.stop() == 0


def test_isolation_violation_is_reported(godeld, repo):
    git(repo, "branch", "feature")
    proc = godeld(env=NO_LINGER).start()
    script = [{"tool": "run_command", "args": {"command": "echo x > x.txt && git add x.txt && git commit -qm sneaky && git branch -f feature HEAD"}}, {"say": "done"}]
    rec = wait_state(proc, spawn(proc, repo, script)["id"])
    assert rec["isolation"]["ok"] is False and "branch feature was moved" in rec["isolation"]["problems"][0]
    errors = events_of(proc, "agent:error", rec["id"])
    assert errors and "isolation violated" in errors[0]["data"]["error"]
    assert proc.stop() == 0


def test_send_input_reaches_a_running_agent(godeld, repo):
    proc = godeld(env=NO_LINGER).start()
    agent_id = spawn(proc, repo, [{"sleep": 1.0}, {"tool": "list_dir", "args": {}}, {"say": "ok"}])["id"]
    wait_state(proc, agent_id, "running")
    deadline = time.monotonic() + 10
    while True:
        try:
            proc.call("agents.send", {"id": agent_id, "text": "please also add tests"})
            break
        except RpcError as exc:  # the worker opens its input a moment after it starts
            assert "not reading input" in str(exc) and time.monotonic() < deadline
            time.sleep(0.05)
    rec = wait_state(proc, agent_id)
    assert rec["state"] == "completed"
    inputs = [e["data"]["content"] for e in proc.call("agents.transcript", {"id": agent_id})["entries"] if e["kind"] == "input"]
    assert inputs == ["please also add tests"]
    with pytest.raises(RpcError, match="not running"):
        proc.call("agents.send", {"id": agent_id, "text": "late"})
    assert proc.stop() == 0


def test_stuck_agent_is_reported_and_killed(godeld, repo):
    proc = godeld(env={**NO_LINGER, "GODEL_AGENTS__IDLE_TIMEOUT_S": "1", "GODEL_AGENTS__KILL_WHEN_STUCK": "true"}).start()
    agent_id = spawn(proc, repo, [{"sleep": 30}])["id"]
    rec = wait_state(proc, agent_id, timeout=30)
    assert rec["state"] == "killed" and rec["error"].startswith("stuck: no output")
    (stuck,) = events_of(proc, "agent:stuck", agent_id)
    assert stuck["data"]["killed"] is True
    assert proc.stop() == 0


def test_godelctl_agents_spawn_wait_shows_progress_and_result(godeld, repo, home):
    proc = godeld(env=NO_LINGER).start()
    script = home / "script.yaml"
    script.write_text("- say: working on it\n- tool: write_file\n  args: {path: out.txt, content: done}\n  usage: {input_tokens: 50, output_tokens: 5}\n- say: all done\n")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GODEL_")}, "GODEL_HOME": str(proc.home)}
    run = subprocess.run([sys.executable, "-m", "godelctl", "agents", "spawn", "--repo", str(repo), "--script", str(script), "--wait", "write out.txt"], capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "working on it" in run.stdout and "all done" in run.stdout and "completed" in run.stdout and "50 in / 5 out" in run.stdout
    listing = subprocess.run([sys.executable, "-m", "godelctl", "agents", "list"], capture_output=True, text=True, env=env, timeout=30)
    assert listing.returncode == 0 and "completed" in listing.stdout and "scripted" in listing.stdout
    agent_id = listing.stdout.splitlines()[1].split()[0]
    shown = subprocess.run([sys.executable, "-m", "godelctl", "agents", "diff", "--stat", agent_id], capture_output=True, text=True, env=env, timeout=30)
    assert shown.stdout.strip() == "A\tout.txt"
    missing = subprocess.run([sys.executable, "-m", "godelctl", "agents", "show", "nope"], capture_output=True, text=True, env=env, timeout=30)
    assert missing.returncode == 1 and "no agent with id nope" in missing.stderr and "Traceback" not in missing.stderr
    assert proc.stop() == 0


def test_the_reasoning_trace_shows_plan_decision_and_outcome(godeld, repo, home):
    from tests.test_godelctl import ok

    proc = godeld(env={**NO_LINGER, "GODEL_SAFETY__DENIED_TOOLS": '["run_command"]'}).start()
    script = [
        {"say": "First I read the README."}, {"tool": "read_file", "args": {"path": "README.md"}},
        {"say": "Then I try a command."}, {"tool": "run_command", "args": {"command": "ls"}},
        {"say": "All done."},
    ]
    agent_id = spawn(proc, repo, script)["id"]
    rec = wait_state(proc, agent_id)
    assert rec["state"] == "completed", rec
    steps = proc.call("agents.trace", {"id": agent_id})["steps"]
    assert [s["plan"] for s in steps] == ["First I read the README.", "Then I try a command.", "All done."]
    assert steps[0]["decision"]["tools"][0]["tool"] == "read_file" and steps[0]["outcomes"][0]["ok"] and "# demo" in steps[0]["outcomes"][0]["result"]
    assert steps[1]["outcomes"][0]["ok"] is False and steps[1]["outcomes"][0]["blocked"]
    assert steps[2]["decision"] == {"answer": True}
    live = [e["data"] for e in events_of(proc, "agent:step", agent_id)]
    assert [(d["step"], d["tools"], d["final"]) for d in live] == [(1, ["read_file"], False), (2, ["run_command"], False), (3, [], True)]
    out = ok(home, "agents", "trace", agent_id).stdout
    assert "1. plan: First I read the README." in out and "decision: final answer" in out and "blocked" in out
    assert proc.stop() == 0


def test_skills_given_to_an_agent_shape_its_prompt_tools_and_safety(godeld, home):
    # A project skill whose allowed-tools pre-approve run_command, which the config puts to a person.
    repo = make_repo(home / "repo", {"README.md": "# demo\n", ".godel/skills/deployer/SKILL.md": (
        "---\nname: deployer\ndescription: Deploy the app with the deploy script. Use when asked to deploy.\n"
        "allowed-tools: run_command\n---\n# Deploying\n\nRun `echo deploying` and check its output.\n"),
        ".godel/skills/deployer/references/checklist.md": "1. tests pass\n"})
    proc = godeld(env={**NO_LINGER, "GODEL_SAFETY__ASK_TOOLS": '["run_command"]'}).start()
    script = [{"tool": "read_skill_file", "args": {"skill": "deployer", "path": "references/checklist.md"}},
              {"tool": "run_command", "args": {"command": "echo deploying"}}, {"say": "deployed"}]
    agent_id = spawn(proc, repo, script, task="deploy the app", skills=["deployer"])["id"]
    rec = wait_state(proc, agent_id)
    assert rec["state"] == "completed" and rec["skills"] == ["deployer"], rec
    entries = proc.call("agents.transcript", {"id": agent_id})["entries"]
    system = entries[0]["data"]["content"]
    assert "deployer" in system and "Run `echo deploying`" in system  # the active skill's body
    other = proc.call("skills.get", {"name": "write-tests", "project": str(repo)})
    last_line = [line for line in other["body"].splitlines() if line.strip()][-1]
    assert "write-tests" in system and other["description"][:60] in system and last_line not in system  # others: name and description only
    tools = [e["data"] for e in entries if e["kind"] == "tool"]
    assert tools[0]["result"].startswith("1. tests pass") and not tools[0]["is_error"]
    assert tools[1]["result"].startswith("deploying\n") and "pre-approved by skill deployer" in tools[1]["decision"]["reason"]
    assert proc.call("agents.approvals", {})["approvals"] == []  # nobody was asked
    first_call = next(e["data"]["context"] for e in entries if e["kind"] == "assistant")
    assert first_call["parts"]["skills"] > 0 and first_call["parts"]["system"] > 0  # the skills' share of the prompt, on record
    with pytest.raises(RpcError, match="unknown skill 'nope'"):
        spawn(proc, repo, [{"say": "x"}], skills=["nope"])
    assert proc.stop() == 0


def test_quality_gates_feed_a_retry_in_the_same_worktree(godeld, repo):
    proc = godeld(env=NO_LINGER).start()
    # The first run leaves a marker and no ok.txt; the retry, seeing the marker, makes ok.txt.
    script = [{"tool": "run_command", "args": {"command": "if [ -e .tried ]; then echo fine > ok.txt; else touch .tried; fi"}},
              {"say": '{"status": "done", "files": 1}'}]
    gates = [{"command": "test -f ok.txt || { echo ok.txt is missing; exit 1; }"}, {"json_schema": {"type": "object", "required": ["status"]}},
             {"regex": "done"}, {"judge": "The answer says it is done.", "script": [{"say": "PASS: it says done", "usage": {"input_tokens": 7, "output_tokens": 3}}]}]
    agent_id = spawn(proc, repo, script, gates=gates, retries=2)["id"]
    rec = wait_state(proc, agent_id, timeout=60)
    deadline = time.monotonic() + 30
    while rec["state"] not in FINAL or not any(e["data"]["passed"] for e in events_of(proc, "agent:gate", agent_id) if e["data"]["attempt"] == 2):
        assert time.monotonic() < deadline, rec
        time.sleep(0.05)
        rec = proc.call("agents.get", {"id": agent_id})
    assert rec["state"] == "completed", rec
    gates_seen = [(e["data"]["attempt"], e["data"]["kind"], e["data"]["passed"]) for e in events_of(proc, "agent:gate", agent_id)]
    assert gates_seen[:4] == [(1, "command", False), (1, "json_schema", True), (1, "regex", True), (1, "judge", True)]
    assert gates_seen[4:] == [(2, "command", True), (2, "json_schema", True), (2, "regex", True), (2, "judge", True)]
    (retry,) = events_of(proc, "agent:retry", agent_id)
    assert "ok.txt is missing" in retry["data"]["feedback"] and retry["data"]["attempt"] == 2
    # The retry went on in the same worktree, told what failed.
    inputs = [e["data"] for e in proc.call("agents.transcript", {"id": agent_id})["entries"] if e["kind"] == "input"]
    assert inputs and "ok.txt is missing" in inputs[0]["content"]
    assert git(repo, "show", f"{rec['branch']}:ok.txt") == "fine\n"
    # Out of retries: the agent fails, naming the gate.
    failing = spawn(proc, repo, [{"say": "nothing"}], gates=[{"regex": "^done$"}], retries=1)["id"]
    deadline = time.monotonic() + 60
    while (rec := proc.call("agents.get", {"id": failing}))["state"] not in FINAL or len(events_of(proc, "agent:gate", failing)) < 2:
        assert time.monotonic() < deadline, rec
        time.sleep(0.05)
    assert rec["state"] == "failed" and "quality gates failed: regex" in rec["error"]
    with pytest.raises(RpcError, match=r"gates\[0\] must have exactly one of"):
        spawn(proc, repo, [{"say": "x"}], gates=[{"lint": "x"}])
    assert proc.stop() == 0


def test_each_call_fits_the_context_window_and_records_its_parts(godeld, repo):
    """A model with a small window (provider_options.context_window): the oldest tool results are
    left out of later calls, never the task; each call's choice is in the transcript."""
    proc = godeld(env=NO_LINGER).start()
    big = "x " * 3000  # about 3,000+ tokens per file read
    files = {f"big{i}.txt": big for i in range(4)}
    for name, content in files.items():
        (repo / name).write_text(content)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "big files")
    script = [s for i in range(4) for s in ({"say": f"reading {i}"}, {"tool": "read_file", "args": {"path": f"big{i}.txt"}})] + [{"say": "done"}]
    agent_id = spawn(proc, repo, script, task="read the big files", provider_options={"context_window": 9000, "max_tokens": 1000})["id"]
    rec = wait_state(proc, agent_id)
    assert rec["state"] == "completed", rec
    calls = [e["data"]["context"] for e in proc.call("agents.transcript", {"id": agent_id})["entries"] if e["kind"] == "assistant"]
    assert len(calls) == 5
    assert calls[0]["dropped"] == [] and calls[-1]["dropped"], calls[-1]
    assert all(c["prompt_tokens"] <= 9000 - 1000 for c in calls), [c["prompt_tokens"] for c in calls]
    assert all(c["parts"]["task"] > 0 and 1 in c["kept"] for c in calls)  # the task is always there
    assert calls[1]["parts"]["files"] > 3000  # the first file read, counted as files
    assert proc.stop() == 0
