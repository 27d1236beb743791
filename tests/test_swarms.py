"""Swarms end to end: a real godeld, scripted agents in real worktrees, strategies as plugins,
and the merge of their branches."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from godelctl.client import RpcError
from tests.agent_helpers import events_of, git, make_repo
from tests.helpers import shared_fixtures, wait_for

TEAM = shared_fixtures() / "godel" / "teams" / "simple-team.yaml"
QUIET = {"GODEL_AGENTS__KEEP_RUNNING_ON_SHUTDOWN": "false", "GODEL_AGENTS__KILL_GRACE_S": "1"}
FINAL = ("completed", "failed", "stopped", "interrupted")


@pytest.fixture
def repo(home) -> Path:
    return make_repo(home / "repo", {"README.md": "# demo\n", "shared.txt": "base\n"})


def wait_swarm(proc, swarm_id: str, timeout: float = 90.0) -> dict:
    def ended() -> dict | None:
        rec = proc.call("swarms.get", {"id": swarm_id})
        return rec if rec["state"] in FINAL else None

    return wait_for(proc, ["swarm:complete"], "swarmId", swarm_id, ended, timeout)


def write(path: str, content: str, say: str = "done") -> list[dict]:
    return [{"tool": "write_file", "args": {"path": path, "content": content}}, {"say": say}]


def test_the_godel_team_file_loads_and_runs(godeld, repo):
    proc = godeld(env=QUIET).start()
    swarm_id = proc.call("swarms.create", {"file": str(TEAM), "repo": str(repo), "script": [{"say": "agent {{agent_index}} looked"}]})["id"]
    rec = wait_swarm(proc, swarm_id)
    assert rec["state"] == "completed", rec
    assert rec["name"] == "simple-analysis-team" and rec["strategy"] == "parallel" and rec["max_agents"] == 20
    assert rec["results"] == [f"agent {i} looked" for i in range(5)] and len(rec["agents"]) == 5
    assert rec["budget_usd"] == 25.0
    status = proc.call("budget.get", {"scope": "swarm", "id": swarm_id})
    assert status["limit"]["max_cost_usd"] == 25.0, status
    agents = [proc.call("agents.get", {"id": a}) for a in rec["agents"]]
    assert {a["model"] for a in agents} == {"kimi-k2.5"} and all(a["swarm_id"] == swarm_id for a in agents)
    (start,) = [e for e in events_of(proc, "swarm:start") if e["data"]["swarmId"] == swarm_id]
    assert start["data"]["name"] == "simple-analysis-team" and start["data"]["agents"] == 5
    (complete,) = [e for e in events_of(proc, "swarm:complete") if e["data"]["swarmId"] == swarm_id]
    assert complete["data"]["results"] == rec["results"]
    assert proc.stop() == 0


def test_parallel_agents_and_a_clean_merge(godeld, repo):
    proc = godeld(env=QUIET).start()
    script = write("part-{{agent_index}}.txt", "from agent {{agent_index}}\n", "wrote part {{agent_index}}")
    swarm_id = proc.call("swarms.create", {"task": "write your part", "strategy": "parallel", "agents": 3, "repo": str(repo), "script": script})["id"]
    rec = wait_swarm(proc, swarm_id)
    assert rec["state"] == "completed" and rec["results"] == ["wrote part 0", "wrote part 1", "wrote part 2"]
    with pytest.raises(RpcError, match="is already completed"):
        proc.call("swarms.stop", {"id": swarm_id})
    merged = proc.call("swarms.merge", {"id": swarm_id})
    assert merged["branch"] == f"godel/swarm-{swarm_id}" and len(merged["merged"]) == 3 and merged["conflicts"] == []
    files = git(repo, "ls-tree", "-r", "--name-only", merged["branch"]).split()
    assert {"part-0.txt", "part-1.txt", "part-2.txt"} <= set(files)
    assert git(repo, "status", "--porcelain") == "" and not (repo / "part-0.txt").exists()  # the user's checkout untouched
    assert proc.call("swarms.get", {"id": swarm_id})["merge"]["merged"] == merged["merged"]
    assert proc.stop() == 0


def test_merge_reports_conflicts_and_goes_on(godeld, repo):
    proc = godeld(env=QUIET).start()
    script = write("shared.txt", "changed by agent {{agent_index}}\n")
    swarm_id = proc.call("swarms.create", {"task": "edit", "strategy": "parallel", "agents": 2, "repo": str(repo), "script": script})["id"]
    assert wait_swarm(proc, swarm_id)["state"] == "completed"
    merged = proc.call("swarms.merge", {"id": swarm_id})
    assert len(merged["merged"]) == 1 and len(merged["conflicts"]) == 1
    assert merged["conflicts"][0]["files"] == ["shared.txt"]
    assert git(repo, "show", f"{merged['branch']}:shared.txt") == "changed by agent 0\n"
    assert proc.stop() == 0


def test_map_reduce_with_items_and_with_a_planner(godeld, repo):
    proc = godeld(env=QUIET).start()
    script = {"map": [{"say": "summary of {{item}}"}], "reduce": [{"say": "combined: {{results}}"}]}
    swarm_id = proc.call("swarms.create", {"task": "summarize", "strategy": "map-reduce", "repo": str(repo), "script": script,
                                           "options": {"items": ["a.py", "b.py", "c.py"]}})["id"]
    rec = wait_swarm(proc, swarm_id)
    assert rec["state"] == "completed", rec
    assert rec["results"] == ['combined: ["summary of a.py", "summary of b.py", "summary of c.py"]']
    assert sorted(rec["roles"].values()) == ["map", "map", "map", "reduce"] and len(rec["agents"]) == 4
    planned = {"planner": [{"say": "Items:\n- one\n- two"}], "map": [{"say": "did {{item}}"}], "reduce": [{"say": "{{results}}"}]}
    rec = wait_swarm(proc, proc.call("swarms.create", {"task": "t", "strategy": "map-reduce", "repo": str(repo), "script": planned})["id"])
    assert rec["state"] == "completed" and json.loads(rec["results"][0]) == ["did one", "did two"]
    assert [rec["roles"][a] for a in rec["agents"]] == ["planner", "map", "map", "reduce"]
    lazy = {"planner": [{"say": "I have no plan."}]}
    rec = wait_swarm(proc, proc.call("swarms.create", {"task": "t", "strategy": "map-reduce", "repo": str(repo), "script": lazy})["id"])
    assert rec["state"] == "failed" and "gave no items" in rec["error"]
    assert proc.stop() == 0


def test_pipeline_stages_build_on_each_other(godeld, repo):
    proc = godeld(env=QUIET).start()
    script = [{"tool": "run_command", "args": {"command": "ls stage-*.txt 2>/dev/null | wc -l > seen-{{agent_index}}.txt; echo x > stage-{{agent_index}}.txt"}},
              {"say": "stage {{agent_index}} after: {{results}}"}]
    swarm_id = proc.call("swarms.create", {"task": "build", "strategy": "pipeline", "agents": 3, "repo": str(repo), "script": script})["id"]
    rec = wait_swarm(proc, swarm_id)
    assert rec["state"] == "completed", rec
    assert rec["results"] == ["stage 0 after: ", "stage 1 after: stage 0 after: ", "stage 2 after: stage 1 after: stage 0 after: "]
    last = proc.call("agents.get", {"id": rec["agents"][-1]})
    # Each stage started from the previous one's branch: the last sees both earlier files.
    assert git(repo, "show", f"{last['branch']}:seen-2.txt").strip() == "2"
    assert proc.stop() == 0


def test_tree_decomposes_and_rolls_up(godeld, repo):
    proc = godeld(env=QUIET).start()
    # Scripts per role: the root node (role node-0) decomposes, the others answer as leaves.
    script = {"node-0": [{"say": '{"subtasks": ["left", "right"]}'}], "worker": [{"say": "leaf {{path}}"}]}
    swarm_id = proc.call("swarms.create", {"task": "root", "strategy": "tree", "repo": str(repo), "script": script, "options": {"max_depth": 1}})["id"]
    rec = wait_swarm(proc, swarm_id)
    assert rec["state"] == "completed", rec
    (root,) = rec["results"]
    assert root["task"] == "root" and [c["result"] for c in root["children"]] == ["leaf 0.0", "leaf 0.1"]
    assert [c["task"] for c in root["children"]] == ["left", "right"] and len(rec["agents"]) == 3
    assert proc.stop() == 0


def test_stop_kills_the_agents_and_errors_are_clear(godeld, repo):
    proc = godeld(env=QUIET).start()
    swarm_id = proc.call("swarms.create", {"task": "wait", "agents": 2, "repo": str(repo), "script": [{"sleep": 30}, {"say": "never"}]})["id"]
    deadline = time.monotonic() + 30
    while len(proc.call("swarms.get", {"id": swarm_id})["agents"]) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    rec = proc.call("swarms.stop", {"id": swarm_id})
    assert rec["state"] == "stopped"
    for agent_id in rec["agents"]:
        deadline = time.monotonic() + 20
        while proc.call("agents.get", {"id": agent_id})["state"] not in ("killed", "failed", "completed"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert proc.call("agents.get", {"id": agent_id})["state"] == "killed"
    with pytest.raises(RpcError, match="unknown strategy 'swirl'"):
        proc.call("swarms.create", {"task": "t", "strategy": "swirl", "repo": str(repo)})
    with pytest.raises(RpcError, match="no swarm 'nope'"):
        proc.call("swarms.get", {"id": "nope"})
    with pytest.raises(RpcError, match="needs a repo"):
        proc.call("swarms.create", {"task": "t"})
    bad = repo.parent / "team.yaml"
    bad.write_text("kind: Team\nmetadata: {name: x}\nspec:\n  task: t\n  initalAgents: 2\n")
    with pytest.raises(RpcError, match=r"team.yaml:5:3: spec.initalAgents: unknown key \(did you mean 'initialAgents'\?\)"):
        proc.call("swarms.create", {"file": str(bad), "repo": str(repo)})
    assert proc.stop() == 0


def test_godelctl_do_runs_a_swarm_and_shows_the_results(godeld, repo, home):
    from tests.test_godelctl import ctl, ok

    proc = godeld(env=QUIET).start()
    script = home / "script.yaml"
    script.write_text("- tool: write_file\n  args: {path: 'out-{{agent_index}}.txt', content: 'hi'}\n- say: agent {{agent_index}} done\n")
    out = ok(home, "do", "write a file", "--repo", str(repo), "-n", "2", "--script", str(script)).stdout
    assert "agent 0 done" in out and "agent 1 done" in out and "completed" in out
    assert "out-0.txt" in out and "out-1.txt" in out and "godelctl swarm merge" in out
    swarm_id = ok(home, "--json", "swarm", "list").stdout
    swarm_id = json.loads(swarm_id)[0]["id"]
    merged = ok(home, "swarm", "merge", swarm_id).stdout
    assert "merged 2 branch(es)" in merged
    assert "ROLE" in ok(home, "swarm", "show", swarm_id).stdout
    failing = home / "fail.yaml"
    failing.write_text("- fail: the model is down\n")
    result = ctl(home, "do", "x", "--repo", str(repo), "-n", "1", "--script", str(failing))
    assert result.returncode == 1 and "failed" in result.stdout
    assert proc.stop() == 0


def test_a_workflow_swarm_step_runs_a_real_swarm(godeld, repo):
    proc = godeld(env=QUIET).start()
    wf = {"name": "fan", "repo": str(repo), "steps": [
        {"id": "sum", "task": "summarize", "swarm": {"strategy": "map-reduce", "items": ["x", "y"]},
         "script": {"map": [{"say": "saw"}], "reduce": [{"say": "both seen"}]}},
        {"id": "after", "dependsOn": ["sum"], "run": "echo {{steps.sum.outputs.swarm_id}}"},
    ]}
    run_id = proc.call("workflows.run", {"definition": wf})["id"]
    deadline = time.monotonic() + 90
    while (rec := proc.call("workflows.get", {"id": run_id}))["state"] not in ("completed", "failed", "cancelled"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert rec["state"] == "completed", rec
    out = rec["steps"][0]["output"]
    assert out["results"] == ["both seen"] and len(out["agents"]) == 3
    swarm = proc.call("swarms.get", {"id": out["swarm_id"]})
    assert swarm["strategy"] == "map-reduce" and swarm["name"] == "fan/sum"
    assert rec["steps"][1]["output"]["stdout"] == out["swarm_id"]
    assert proc.stop() == 0


def test_agents_of_a_swarm_message_each_other(godeld, repo):
    proc = godeld(env=QUIET).start()
    script = {"worker": [{"tool": "send_message", "args": {"text": "hello from {{agent_index}}"}}, {"tool": "read_messages", "args": {"wait_s": 60}}, {"say": "read"}]}
    swarm_id = proc.call("swarms.create", {"task": "talk", "agents": 2, "repo": str(repo), "script": script})["id"]
    rec = wait_swarm(proc, swarm_id)
    assert rec["state"] == "completed", rec
    for index, agent_id in enumerate(rec["agents"]):
        tools = [e["data"] for e in proc.call("agents.transcript", {"id": agent_id})["entries"] if e["kind"] == "tool"]
        assert tools[0]["name"] == "send_message" and tools[0]["result"] == "sent"
        other = 1 - index
        assert tools[1]["name"] == "read_messages" and f"hello from {other}" in tools[1]["result"] and f"hello from {index}" not in tools[1]["result"]
    sent = [e["data"] for e in events_of(proc, "swarm:message") if e["data"]["swarmId"] == swarm_id]
    assert sorted(m["text"] for m in sent) == ["hello from 0", "hello from 1"]
    # A person can write to the swarm too; an agent outside a swarm has no such tools.
    assert proc.call("swarms.message", {"id": swarm_id, "text": "well done"})["seq"] > 0
    lone = proc.call("agents.spawn", {"repo": str(repo), "task": "t", "script": [{"tool": "send_message", "args": {"text": "x"}}, {"say": "ok"}]})["id"]
    deadline = time.monotonic() + 30
    while proc.call("agents.get", {"id": lone})["state"] not in ("completed", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    (tool,) = [e["data"] for e in proc.call("agents.transcript", {"id": lone})["entries"] if e["kind"] == "tool"]
    assert tool["is_error"] and "not available" in tool["result"]
    assert proc.stop() == 0


def test_merge_conflicts_can_be_handed_to_an_agent(godeld, repo):
    proc = godeld(env=QUIET).start()
    script = {
        "worker": write("shared.txt", "changed by agent {{agent_index}}\n"),
        "resolver": [{"tool": "run_command", "args": {"command": "git merge --no-edit {{branch}} >/dev/null 2>&1; printf 'both sides\\n' > shared.txt; git add shared.txt; git -c user.name=r -c user.email=r@r commit -qm 'resolve {{files}}'"}},
                     {"say": "resolved {{files}}"}],
    }
    swarm_id = proc.call("swarms.create", {"task": "edit", "strategy": "parallel", "agents": 2, "repo": str(repo), "script": script})["id"]
    assert wait_swarm(proc, swarm_id)["state"] == "completed"
    merged = proc.call("swarms.merge", {"id": swarm_id, "resolve": True})
    assert merged["conflicts"] == [] and len(merged["merged"]) == 2, merged
    (resolved,) = merged["resolved"]
    assert resolved["files"] == ["shared.txt"]
    assert git(repo, "show", f"{merged['branch']}:shared.txt") == "both sides\n"
    rec = proc.call("swarms.get", {"id": swarm_id})
    assert rec["roles"][resolved["agent"]] == "resolver" and rec["merge"]["resolved"] == merged["resolved"]
    # Both agents' branches are in the integration branch now.
    for agent_id in rec["agents"][:2]:
        branch = proc.call("agents.get", {"id": agent_id})["branch"]
        assert subprocess.run(["git", "-C", str(repo), "merge-base", "--is-ancestor", branch, merged["branch"]]).returncode == 0
    assert proc.stop() == 0


def test_a_pool_swarm_serves_the_task_queue_and_scales_with_its_depth(godeld, repo):
    proc = godeld(env=QUIET).start()
    swarm_id = proc.call("swarms.create", {
        "name": "builders", "task": "work on the queue", "strategy": "pool", "repo": str(repo), "max_agents": 3,
        "script": [{"sleep": 0.4}, {"say": "did {{agent_index}}"}],
        "options": {"until_empty": True, "interval_s": 0.1, "scaling": {"minAgents": 1, "maxAgents": 3, "scaleUpThreshold": 2, "scaleDownCooldown": 0.5}},
    })["id"]
    ids = [proc.call("tasks.submit", {"task": f"job {i}", "swarm": "builders", "repo": str(repo)})["id"] for i in range(8)]
    rec = wait_swarm(proc, swarm_id, timeout=120)
    assert rec["state"] == "completed", rec
    assert sorted(r["task"] for r in rec["results"]) == sorted(ids) and all(r["state"] == "completed" for r in rec["results"])
    for task_id in ids:
        task = proc.call("tasks.get", {"id": task_id})
        assert task["state"] == "completed" and task["agent_id"] in rec["agents"], task
    scaled = [e["data"]["agents"] for e in events_of(proc, "swarm:scaled") if e["data"]["swarmId"] == swarm_id]
    assert scaled[0] == 1 and max(scaled) == 3 and scaled[-1] == 1, scaled  # up with the queue, down after the cooldown
    # Never more than maxAgents agents of the swarm at once.
    live, peak = set(), 0
    for e in events_of(proc, "agent:*"):
        if e["data"].get("agentId") in rec["agents"]:
            if e["type"] == "agent:start":
                live.add(e["data"]["agentId"])
            elif e["type"] in ("agent:complete", "agent:error", "agent:killed"):
                live.discard(e["data"]["agentId"])
            peak = max(peak, len(live))
    assert 2 <= peak <= 3, peak
    assert proc.stop() == 0


def test_parallel_picks_the_best_agent_with_a_quality_gate(godeld, repo):
    proc = godeld(env=QUIET).start()
    # Only agent 1 writes a file that makes the gate's command pass.
    script = [{"tool": "run_command", "args": {"command": "[ {{agent_index}} = 1 ] && echo ok > result.txt || true"}}, {"say": "agent {{agent_index}}"}]
    swarm_id = proc.call("swarms.create", {"task": "try", "agents": 3, "repo": str(repo), "script": script,
                                           "options": {"select": [{"command": "test -f result.txt"}, {"regex": "agent"}]}})["id"]
    rec = wait_swarm(proc, swarm_id)
    assert rec["state"] == "completed", rec
    assert rec["results"] == ["agent 1"] and rec["best"] == rec["agents"][1]
    assert [s["passed"] for s in rec["selection"]] == [1, 2, 1]
    assert proc.stop() == 0


def test_a_swarm_goes_on_after_kill_9_of_godeld_without_new_agents(godeld, repo):
    """The strategy runs again after the restart; each spawn it repeats gets back the agent it
    started before: re-adopted if it still runs, resumed if it died with godeld."""
    import os
    import signal

    proc = godeld().start()  # agents outlive godeld (the default), so they are re-adopted
    script = {"map": [{"sleep": 2}, {"say": "mapped {{item}}"}], "reduce": [{"say": "reduced {{results}}"}]}
    swarm_id = proc.call("swarms.create", {"task": "t", "strategy": "map-reduce", "repo": str(repo), "script": script, "options": {"items": ["a", "b"]}})["id"]
    deadline = time.monotonic() + 30
    while len(proc.call("swarms.get", {"id": swarm_id})["agents"]) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    maps = proc.call("swarms.get", {"id": swarm_id})["agents"]
    first = proc.call("agents.get", {"id": maps[0]})
    while first["state"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
        first = proc.call("agents.get", {"id": maps[0]})
    proc.kill9()
    os.killpg(first["pid"], signal.SIGKILL)  # one map agent dies with godeld; the other lives on
    proc = godeld().start()
    rec = wait_swarm(proc, swarm_id)
    assert rec["state"] == "completed", (rec["error"], [proc.call("agents.get", {"id": a}) for a in rec["agents"]])
    assert rec["agents"][:2] == maps and len(rec["agents"]) == 3  # the same two maps, then the reducer
    assert rec["results"] == ['reduced ["mapped a", "mapped b"]']
    resumed = [e for e in events_of(proc, "swarm:resumed") if e["data"]["swarmId"] == swarm_id]
    assert len(resumed) == 1
    assert proc.stop() == 0
