"""Workflows end to end: a real godeld runs YAML DAGs of real shell commands, scripted agents in
real git worktrees, approvals and sub-workflows; runs survive kill -9 of godeld."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import yaml

from godelctl.client import RpcError
from godeld.workflows.engine import backoff_ms
from tests.agent_helpers import events_of, make_repo
from tests.test_godelctl import ctl, ok
from tests.helpers import shared_fixtures, wait_for

FIXTURES = shared_fixtures() / "godel" / "workflows"
FINAL = ("completed", "failed", "cancelled")
QUIET = {"GODEL_AGENTS__KEEP_RUNNING_ON_SHUTDOWN": "false", "GODEL_AGENTS__KILL_GRACE_S": "1"}


def wait_run(proc, run_id: str, states=FINAL, timeout: float = 60.0) -> dict:
    states = {states} if isinstance(states, str) else set(states)

    def reached() -> dict | None:
        rec = proc.call("workflows.get", {"id": run_id})
        return rec if rec["state"] in states else None

    return wait_for(proc, ["workflow:*"], "workflowId", run_id, reached, timeout)


def wait_step(proc, run_id: str, step: str, pred, timeout: float = 30.0) -> dict:
    def reached() -> dict | None:
        s = next(s for s in proc.call("workflows.get", {"id": run_id})["steps"] if s["id"] == step)
        return s if pred(s) else None

    return wait_for(proc, ["workflow:*"], "workflowId", run_id, reached, timeout)


def steps(rec: dict) -> dict[str, dict]:
    return {s["id"]: s for s in rec["steps"]}


def run(proc, definition: dict, **params) -> str:
    return proc.call("workflows.run", {"definition": definition, **params})["id"]


def test_backoff_kinds():
    assert [backoff_ms({"backoff": "fixed", "delay_ms": 100}, a) for a in (1, 2, 3)] == [100, 100, 100]
    assert [backoff_ms({"backoff": "linear", "delay_ms": 100}, a) for a in (1, 2, 3)] == [100, 200, 300]
    assert [backoff_ms({"backoff": "exponential", "delay_ms": 100}, a) for a in (1, 2, 3, 4)] == [100, 200, 400, 800]
    assert backoff_ms({"backoff": "exponential", "delay_ms": 100, "max_delay_ms": 250}, 4) == 250


@pytest.mark.parametrize("name", ["workflow.yaml", "data-pipeline.yaml"])
def test_the_godel_fixture_workflows_validate_and_run_with_the_scripted_provider(godeld, home, name):
    proc = godeld(env=QUIET).start()
    repo = make_repo(home / "repo")
    file = str(FIXTURES / name)
    checked = proc.call("workflows.validate", {"file": file})
    assert checked["valid"] and checked["errors"] == [], checked
    run_id = proc.call("workflows.run", {"file": file, "repo": str(repo)})["id"]
    rec = wait_run(proc, run_id, timeout=120)
    assert rec["state"] == "completed", rec
    by_id = steps(rec)
    assert set(by_id) == {"extract", "validate", "transform", "load", "analyze", "notify", "report"}
    assert all(s["state"] == "completed" and s["attempts"] == 1 for s in by_id.values()), by_id
    # Each step ran as an agent of this workflow, in its own worktree; {{variables}} were filled in.
    agents = proc.call("agents.list", {})["agents"]
    mine = [a for a in agents if a.get("workflow_id") == run_id]
    assert len(mine) == 7
    extract = next(a for a in mine if a["id"] == by_id["extract"]["agent_id"])
    assert "https://api.example.com/data" in extract["task"] and "1000" in extract["task"]
    # Order: a step starts only after everything it depends on completed.
    events = events_of(proc, "workflow:step:*")
    seq = {(e["type"], e["data"]["stepId"]): e["seq"] for e in events if e["data"].get("workflowId") == run_id}
    for step, needs in {"validate": ["extract"], "transform": ["extract"], "load": ["validate", "transform"], "report": ["analyze", "notify"]}.items():
        for need in needs:
            assert seq[("workflow:step:complete", need)] < seq[("workflow:step:start", step)]
    (start,) = [e for e in events_of(proc, "workflow:start") if e["data"]["workflowId"] == run_id]
    assert start["data"]["name"] == "data-pipeline"
    (complete,) = [e for e in events_of(proc, "workflow:complete") if e["data"]["workflowId"] == run_id]
    assert complete["data"]["status"] == "completed"
    assert proc.stop() == 0


def test_a_false_condition_skips_the_step_and_its_dependents_still_run(godeld, home):
    proc = godeld(env=QUIET).start()
    repo = make_repo(home / "repo")
    run_id = proc.call("workflows.run", {"file": str(FIXTURES / "workflow.yaml"), "repo": str(repo), "variables": {"enableAnalytics": False}})["id"]
    rec = wait_run(proc, run_id, timeout=120)
    by_id = steps(rec)
    assert rec["state"] == "completed", rec
    assert by_id["validate"]["state"] == "skipped" and by_id["analyze"]["state"] == "skipped"
    assert by_id["validate"]["attempts"] == 0 and "condition" in by_id["validate"]["reason"]
    assert by_id["load"]["state"] == "completed" and by_id["report"]["state"] == "completed"
    assert proc.stop() == 0


def test_outputs_flow_to_dependents_and_expressions_decide(godeld, home):
    proc = godeld().start()
    wf = {
        "name": "outputs", "variables": {"greeting": "hello"},
        "steps": [
            {"id": "count", "run": "echo files=3 >> \"$GODEL_OUTPUT\"; printf 'line one\\nline two\\n'", "outputs": ["files"]},
            {"id": "json", "run": "echo '{\"size\": 42, \"ok\": true}'", "outputs": ["size"]},
            {"id": "use", "dependsOn": ["count", "json"], "run": "echo \"{{greeting}} {{steps.count.outputs.files}} {{steps.json.outputs.size}}\""},
            {"id": "big", "dependsOn": ["count"], "condition": "int(steps.count.outputs.files) > 2", "run": "echo big"},
            {"id": "small", "dependsOn": ["count"], "condition": {"variable": "steps.count.outputs.files", "equals": "1"}, "run": "echo small"},
        ],
    }
    rec = wait_run(proc, run(proc, wf))
    by_id = steps(rec)
    assert rec["state"] == "completed", rec
    assert by_id["count"]["output"]["files"] == "3" and by_id["count"]["output"]["stdout"] == "line one\nline two"
    assert by_id["json"]["output"]["size"] == 42
    assert by_id["use"]["output"]["stdout"] == "hello 3 42"
    assert by_id["big"]["state"] == "completed" and by_id["small"]["state"] == "skipped"
    assert proc.stop() == 0


def test_independent_steps_run_in_parallel(godeld, home):
    # Each step waits for the other's file: only concurrent steps can both finish.
    proc = godeld().start()
    d = home / "rendezvous"
    d.mkdir()
    wait_for = "for i in $(seq 200); do [ -e {other} ] && exit 0; sleep 0.05; done; exit 1"
    wf = {"name": "parallel", "steps": [
        {"id": "a", "run": f"touch {d}/a; " + wait_for.format(other=f"{d}/b")},
        {"id": "b", "run": f"touch {d}/b; " + wait_for.format(other=f"{d}/a")},
        {"id": "join", "dependsOn": ["a", "b"], "run": "true"},
    ]}
    rec = wait_run(proc, run(proc, wf))
    assert rec["state"] == "completed", rec
    # maxParallel 1: one step at a time, so the same rendezvous cannot succeed.
    for f in d.iterdir():
        f.unlink()
    short = wait_for.replace("seq 200", "seq 20")
    rec = wait_run(proc, run(proc, {"name": "serial", "maxParallel": 1, "steps": [
        {"id": "a", "run": f"touch {d}/a; " + short.format(other=f"{d}/b")},
        {"id": "b", "run": f"touch {d}/b; " + short.format(other=f"{d}/a")},
    ]}))
    states = sorted(s["state"] for s in rec["steps"])
    assert rec["state"] == "failed" and states == ["cancelled", "failed"], rec
    assert len(list(d.iterdir())) == 1  # the second step never started
    assert proc.stop() == 0


def test_retries_happen_with_backoff_and_the_attempts_are_visible(godeld, home):
    proc = godeld().start()
    counter = home / "tries"
    wf = {"name": "flaky", "steps": [{
        "id": "flaky", "retry": {"maxAttempts": 4, "backoff": "exponential", "delayMs": 50},
        "run": f"n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; [ $n -ge 3 ] || {{ echo try $n failed >&2; exit 3; }}",
    }]}
    run_id = run(proc, wf)
    rec = wait_run(proc, run_id)
    assert rec["state"] == "completed", rec
    assert steps(rec)["flaky"]["attempts"] == 3 and counter.read_text().strip() == "3"
    failed = [e["data"] for e in events_of(proc, "workflow:step:failed") if e["data"]["workflowId"] == run_id]
    assert [(f["attempt"], f["will_retry"]) for f in failed] == [(1, True), (2, True)]
    assert "exit code 3: try 1 failed" in failed[0]["error"]
    retries = [e["data"] for e in events_of(proc, "workflow:step:retry") if e["data"]["workflowId"] == run_id]
    assert [(r["attempt"], r["delay_ms"]) for r in retries] == [(2, 50), (3, 100)]
    # Out of attempts: the step and the run fail with the last error.
    counter.write_text("-10")
    rec = wait_run(proc, run(proc, {**wf, "steps": [{**wf["steps"][0], "retry": {"maxAttempts": 2, "delayMs": 10}}]}))
    assert rec["state"] == "failed" and steps(rec)["flaky"]["attempts"] == 2
    assert "step flaky failed: exit code 3" in rec["error"]
    assert proc.stop() == 0


def test_step_timeout_kills_the_command_and_counts_as_a_failed_attempt(godeld, home):
    proc = godeld().start()
    pidfile = home / "pid"
    wf = {"name": "slow", "steps": [{"id": "slow", "timeout": "300ms", "run": f"sleep 30 & echo $! > {pidfile}; wait"}]}
    rec = wait_run(proc, run(proc, wf))
    assert rec["state"] == "failed" and "timed out after 0.3s" in steps(rec)["slow"]["error"]
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[-1][:3]
    # A workflow timeout ends the whole run.
    rec = wait_run(proc, run(proc, {"name": "slow-wf", "timeout": 400, "steps": [{"id": "s", "run": "sleep 30"}]}))
    assert rec["state"] == "failed" and "timed out" in rec["error"] and steps(rec)["s"]["state"] == "cancelled"
    assert proc.stop() == 0


def test_on_failure_stop_and_continue(godeld, home):
    proc = godeld().start()
    base = [
        {"id": "bad", "run": "exit 1"},
        {"id": "after_bad", "dependsOn": ["bad"], "run": "true"},
        {"id": "other", "run": "sleep 0.5; echo fine"},
    ]
    rec = wait_run(proc, run(proc, {"name": "continue", "onFailure": "continue", "steps": base}))
    by_id = steps(rec)
    assert rec["state"] == "failed"
    assert by_id["bad"]["state"] == "failed" and by_id["other"]["state"] == "completed"
    assert by_id["after_bad"]["state"] == "skipped" and "needs bad" in by_id["after_bad"]["reason"]
    rec = wait_run(proc, run(proc, {"name": "stop", "onFailure": "stop", "steps": [{**base[2], "run": "sleep 30"}, *base[:2]]}))
    by_id = steps(rec)
    assert rec["state"] == "failed" and "step bad failed" in rec["error"]
    assert by_id["other"]["state"] == "cancelled" and by_id["after_bad"]["state"] == "cancelled"
    assert proc.stop() == 0


def test_cancel_stops_running_steps_and_resume_goes_on_from_there(godeld, home):
    proc = godeld().start()
    marker = home / "first"
    wf = {"name": "cancel-me", "steps": [
        {"id": "first", "run": f"echo x >> {marker}"},
        {"id": "long", "dependsOn": ["first"], "run": "sleep ${SLEEP:-30}", "env": {"SLEEP": "{{sleep}}"}},
    ], "variables": {"sleep": 30}}
    run_id = run(proc, wf)
    wait_step(proc, run_id, "long", lambda s: s["state"] == "running")
    rec = proc.call("workflows.cancel", {"id": run_id})
    assert rec["state"] == "cancelled" and steps(rec)["long"]["state"] == "cancelled"
    with pytest.raises(RpcError, match="already cancelled"):
        proc.call("workflows.cancel", {"id": run_id})
    # Resume: the completed step is kept, the cancelled one runs again (this time quickly).
    with pytest.raises(RpcError, match="no workflow run 'nope'"):
        proc.call("workflows.resume", {"id": "nope"})
    proc.call("workflows.resume", {"id": run_id})
    rec = proc.call("workflows.get", {"id": run_id})
    assert rec["state"] == "running"
    proc.call("workflows.cancel", {"id": run_id})
    assert marker.read_text() == "x\n"
    assert proc.stop() == 0


def test_approval_waits_for_a_person(godeld, home):
    proc = godeld().start()
    wf = {"name": "deploy", "steps": [
        {"id": "build", "run": "echo built"},
        {"id": "gate", "dependsOn": ["build"], "approval": {"message": "Ship it?"}},
        {"id": "ship", "dependsOn": ["gate"], "run": "echo 'shipped by {{steps.gate.outputs.by}}'"},
    ]}
    run_id = run(proc, wf)
    gate = wait_step(proc, run_id, "gate", lambda s: s.get("waiting") == "approval")
    assert gate["state"] == "running"
    with pytest.raises(RpcError, match="has no step 'nope'"):
        proc.call("workflows.approve", {"id": run_id, "step": "nope"})
    with pytest.raises(RpcError, match="not an approval"):
        proc.call("workflows.approve", {"id": run_id, "step": "build"})
    (asked,) = [e for e in events_of(proc, "workflow:step:approval") if e["data"]["workflowId"] == run_id]
    assert asked["data"]["message"] == "Ship it?"
    proc.call("workflows.approve", {"id": run_id, "step": "gate", "by": "ana", "comment": "go"})
    rec = wait_run(proc, run_id)
    assert rec["state"] == "completed" and steps(rec)["ship"]["output"]["stdout"] == "shipped by ana"
    # Rejected: the gate fails without retries; a timeout takes the default.
    run_id = run(proc, wf)
    wait_step(proc, run_id, "gate", lambda s: s.get("waiting") == "approval")
    proc.call("workflows.reject", {"id": run_id, "step": "gate", "comment": "not today"})
    rec = wait_run(proc, run_id)
    assert rec["state"] == "failed" and "rejected" in steps(rec)["gate"]["error"] and "not today" in steps(rec)["gate"]["error"]
    assert steps(rec)["gate"]["attempts"] == 1
    timed = {**wf, "steps": [wf["steps"][0], {**wf["steps"][1], "approval": {"timeout": "200ms", "default": "approve"}}, wf["steps"][2]]}
    rec = wait_run(proc, run(proc, timed))
    assert rec["state"] == "completed" and steps(rec)["ship"]["output"]["stdout"] == "shipped by timeout"
    assert proc.stop() == 0


def test_sub_workflow_runs_and_its_outputs_come_back(godeld, home):
    proc = godeld().start()
    flows = home / "flows"
    flows.mkdir()
    (flows / "child.yaml").write_text(yaml.safe_dump({"name": "child", "variables": {"who": "nobody"}, "steps": [
        {"id": "hello", "run": "echo hello {{who}}"}]}))
    (flows / "parent.yaml").write_text(yaml.safe_dump({"name": "parent", "steps": [
        {"id": "sub", "workflow": "child.yaml", "variables": {"who": "parent"}},
        {"id": "after", "dependsOn": ["sub"], "run": "echo got {{steps.sub.outputs.run_id}}"},
    ]}))
    run_id = proc.call("workflows.run", {"file": str(flows / "parent.yaml")})["id"]
    rec = wait_run(proc, run_id)
    assert rec["state"] == "completed", rec
    sub = steps(rec)["sub"]
    assert sub["output"]["outputs"]["hello"]["stdout"] == "hello parent"
    child = proc.call("workflows.get", {"id": sub["output"]["run_id"]})
    assert child["parent_id"] == run_id and child["state"] == "completed"
    assert steps(rec)["after"]["output"]["stdout"] == f"got {child['id']}"
    assert proc.stop() == 0


def test_agent_step_outputs_come_from_the_answer(godeld, home):
    proc = godeld(env=QUIET).start()
    repo = make_repo(home / "repo")
    wf = {"name": "agent-out", "repo": str(repo), "steps": [
        {"id": "write", "task": "write the file", "outputs": ["lines"], "script": [
            {"tool": "write_file", "args": {"path": "out.txt", "content": "a\nb\n"}},
            {"say": "Done.\n```json\n{\"lines\": 2}\n```"}]},
        {"id": "check", "dependsOn": ["write"], "run": "echo {{steps.write.outputs.lines}} {{steps.write.outputs.branch}}"},
    ]}
    rec = wait_run(proc, run(proc, wf), timeout=90)
    assert rec["state"] == "completed", rec
    out = steps(rec)["write"]["output"]
    assert out["lines"] == 2 and out["files"] == ["out.txt"] and out["branch"].startswith("godel/")
    assert steps(rec)["check"]["output"]["stdout"] == f"2 {out['branch']}"
    assert proc.stop() == 0


def test_a_run_survives_kill_9_of_godeld(godeld, home):
    """Completed steps are not run again; the step that was running is retried as its next
    attempt; its orphaned command is stopped first."""
    proc = godeld().start()
    d = home / "marks"
    d.mkdir()
    wf = {"name": "durable", "steps": [
        {"id": "one", "run": f"echo run >> {d}/one"},
        {"id": "two", "dependsOn": ["one"], "run": f"echo $GODEL_ATTEMPT >> {d}/two; if [ $GODEL_ATTEMPT = 1 ]; then echo $$ > {d}/pid; sleep 60; fi"},
        {"id": "three", "dependsOn": ["two"], "run": f"echo run >> {d}/three"},
    ]}
    run_id = run(proc, wf)
    deadline = time.monotonic() + 30
    while not (d / "pid").exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    orphan = int((d / "pid").read_text())
    proc.kill9()
    assert Path(f"/proc/{orphan}").exists()  # the step's command outlived godeld
    proc = godeld().start()
    rec = wait_run(proc, run_id)
    assert rec["state"] == "completed", rec
    by_id = steps(rec)
    assert (d / "one").read_text() == "run\n"  # not run again
    assert (d / "two").read_text().split() == ["1", "2"]
    assert by_id["two"]["attempts"] == 2 and by_id["three"]["attempts"] == 1
    assert (d / "three").read_text() == "run\n"
    deadline = time.monotonic() + 10
    while Path(f"/proc/{orphan}").exists() and "Z" not in Path(f"/proc/{orphan}/stat").read_text().rsplit(")", 1)[-1][:3]:
        assert time.monotonic() < deadline, "the orphaned command of the interrupted attempt still runs"
        time.sleep(0.05)
    resumed = [e for e in events_of(proc, "workflow:resumed") if e["data"]["workflowId"] == run_id]
    assert len(resumed) == 1
    assert proc.stop() == 0


def test_an_approval_keeps_waiting_across_a_restart(godeld, home):
    proc = godeld().start()
    run_id = run(proc, {"name": "gate", "steps": [{"id": "gate", "approval": "ok?"}, {"id": "after", "dependsOn": ["gate"], "run": "echo after"}]})
    wait_step(proc, run_id, "gate", lambda s: s.get("waiting") == "approval")
    proc.kill9()
    proc = godeld().start()
    gate = wait_step(proc, run_id, "gate", lambda s: s.get("waiting") == "approval")
    assert gate["attempts"] == 1
    proc.call("workflows.approve", {"id": run_id, "step": "gate"})
    rec = wait_run(proc, run_id)
    assert rec["state"] == "completed" and steps(rec)["gate"]["attempts"] == 1
    assert proc.stop() == 0


def test_invalid_workflows_are_refused_with_every_error(godeld, home):
    proc = godeld().start()
    bad = home / "bad.yaml"
    bad.write_text("name: bad\nsteps:\n  - id: a\n    run: echo {{nope}}\n  - id: b\n    dependsOn: [c]\n    run: true\n  - id: a\n    run: true\n")
    result = proc.call("workflows.validate", {"file": str(bad)})
    assert not result["valid"] and len(result["errors"]) >= 3
    assert all(e["line"] for e in result["errors"]), result
    with pytest.raises(RpcError) as info:
        proc.call("workflows.run", {"file": str(bad)})
    assert f"invalid workflow: {bad}:" in info.value.message and info.value.data["errors"] == result["errors"]
    with pytest.raises(RpcError, match="cannot read workflow file"):
        proc.call("workflows.run", {"file": str(home / "missing.yaml")})
    with pytest.raises(RpcError, match="either file"):
        proc.call("workflows.run", {})
    with pytest.raises(RpcError, match="no workflow run 'x'"):
        proc.call("workflows.get", {"id": "x"})
    assert proc.call("workflows.list", {})["runs"] == []
    kinds = {k["name"] for k in proc.call("workflows.kinds", {})["kinds"]}
    assert kinds >= {"agent", "shell", "approval", "workflow", "notify", "swarm"}
    assert proc.stop() == 0


def test_notify_step_publishes_a_notification(godeld, home):
    proc = godeld().start()
    run_id = run(proc, {"name": "n", "variables": {"who": "team"}, "steps": [{"id": "tell", "notify": {"message": "done for {{who}}", "level": "warning"}}]})
    rec = wait_run(proc, run_id)
    assert rec["state"] == "completed"
    (note,) = [e for e in events_of(proc, "notification") if e["data"].get("workflowId") == run_id]
    assert note["data"]["message"] == "done for team" and note["data"]["level"] == "warning"
    assert proc.stop() == 0


def test_godelctl_workflow_commands(godeld, home):
    proc = godeld().start()
    good = home / "good.yaml"
    good.write_text(yaml.safe_dump({"name": "cli", "variables": {"n": 1}, "steps": [
        {"id": "a", "run": "echo a{{n}}"}, {"id": "b", "dependsOn": ["a"], "run": "echo b"}]}))
    out = ok(home, "workflow", "validate", str(good)).stdout
    assert "valid (2 steps)" in out
    bad = home / "bad.yaml"
    bad.write_text("name: bad\nsteps:\n  - id: a\n    dependOn: [b]\n    run: true\n")
    result = ctl(home, "workflow", "validate", str(bad))
    assert result.returncode == 1
    assert f"{bad}:4:5: steps[0].dependOn" in result.stderr and "did you mean 'dependsOn'" in result.stderr
    result = ok(home, "workflow", "run", str(good), "--var", "n=7", "--follow")
    assert "✓ a" in result.stdout and "✓ b" in result.stdout and "completed" in result.stdout
    run_id = result.stdout.split()[0]
    assert proc.call("workflows.get", {"id": run_id})["steps"][0]["output"]["stdout"] == "a7"
    table = ok(home, "workflow", "show", run_id).stdout
    assert "STEP" in table and "ATTEMPT" in table and "completed" in table
    assert run_id in ok(home, "workflow", "list").stdout
    failing = home / "failing.yaml"
    failing.write_text(yaml.safe_dump({"name": "f", "steps": [{"id": "x", "run": "exit 4"}]}))
    result = ctl(home, "workflow", "run", str(failing), "-f")
    assert result.returncode == 1 and "✗ x: exit code 4" in result.stdout
    proc.stop()
    result = ctl(home, "workflow", "validate", str(good))
    assert result.returncode == 0 and "godeld is not running" in result.stderr
    result = ctl(home, "workflow", "list")
    assert result.returncode == 3 and "godeld is not running" in result.stderr


def test_hook_register_step_kinds_in_a_workflow(godeld, home):
    """A drop-in plugin's step kind (the example of docs/plugin-hooks.md) is validated and run."""
    import re

    doc = (Path(__file__).resolve().parent.parent / "docs" / "plugin-hooks.md").read_text()
    example = re.search(r"```python\n(import trio\n.*?)```", doc, re.S).group(1)
    (home / "plugins").mkdir(exist_ok=True)
    (home / "plugins" / "pause.py").write_text(example)
    proc = godeld().start()
    wf = {"name": "paced", "steps": [{"id": "wait", "kind": "pause", "seconds": 0.05}, {"id": "after", "dependsOn": ["wait"], "run": "echo {{steps.wait.outputs.paused}}"}]}
    rec = wait_run(proc, run(proc, wf))
    assert rec["state"] == "completed", rec
    assert steps(rec)["wait"]["output"] == {"paused": 0.05} and steps(rec)["after"]["output"]["stdout"] == "0.05"
    bad = proc.call("workflows.validate", {"definition": {"name": "x", "steps": [{"id": "w", "kind": "pause", "secnds": 1}]}})
    assert not bad["valid"] and "did you mean 'seconds'" in bad["errors"][0]["message"]
    rec = wait_run(proc, run(proc, {"name": "neg", "steps": [{"id": "w", "kind": "pause", "seconds": -1, "retry": {"maxAttempts": 3}}]}))
    assert rec["state"] == "failed" and steps(rec)["w"]["attempts"] == 1 and "must not be negative" in steps(rec)["w"]["error"]
    assert proc.stop() == 0


def test_step_quality_gates_fail_the_attempt_and_feed_the_retry(godeld, home):
    proc = godeld().start()
    # The first attempt prints a wrong answer; the retry sees the gate's report in $GODEL_FEEDBACK.
    wf = {"name": "gated", "steps": [{
        "id": "answer", "retry": {"maxAttempts": 2, "delayMs": 10},
        "run": "if [ -n \"$GODEL_FEEDBACK\" ]; then echo '{\"answer\": 42}'; else echo 'forty-two'; fi",
        "gates": [{"json_schema": {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "integer"}}}},
                  {"command": "true"}],
    }]}
    run_id = run(proc, wf)
    rec = wait_run(proc, run_id)
    assert rec["state"] == "completed", rec
    step = steps(rec)["answer"]
    assert step["attempts"] == 2 and step["output"]["stdout"] == '{"answer": 42}'
    gates = [(e["data"]["attempt"], e["data"]["kind"], e["data"]["passed"]) for e in events_of(proc, "workflow:step:gate") if e["data"]["workflowId"] == run_id]
    assert gates == [(1, "json_schema", False), (1, "command", True), (2, "json_schema", True), (2, "command", True)]
    (failed,) = [e["data"] for e in events_of(proc, "workflow:step:failed") if e["data"]["workflowId"] == run_id]
    assert "quality gates failed: json_schema" in failed["error"]
    bad = proc.call("workflows.validate", {"definition": {"name": "x", "steps": [{"id": "a", "run": "true", "gates": [{"lint": 1}]}]}})
    assert not bad["valid"] and bad["errors"][0]["path"] == "steps[0].gates"
    assert proc.stop() == 0
