"""CLI agents end to end through godeld: a fake `claude` / `codex` program (tests/fake_cli) printing
the real stream formats runs as an agent in its own worktree; its streamed usage is metered and a
budget stops it; an interrupted CLI agent resumes with the program's own session flag."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.agent_helpers import events_of, git, group_members, make_repo, wait_state

FAKE = Path(__file__).resolve().parent / "fake_cli"
NO_LINGER = {"GODEL_AGENTS__KEEP_RUNNING_ON_SHUTDOWN": "false", "GODEL_AGENTS__KILL_GRACE_S": "1"}


@pytest.fixture
def repo(home) -> Path:
    return make_repo(home / "repo", {"README.md": "# demo\n"})


def spawn_cli(proc, repo: Path, program: str, env: dict[str, str], **params):
    return proc.call("agents.spawn", {
        "repo": str(repo), "task": params.pop("task", "write hello.txt"), "provider": program,
        "provider_options": {"executable": str(FAKE / program)}, "env": env, **params,
    })


@pytest.mark.parametrize("program", ["claude", "codex"])
def test_a_cli_agent_runs_in_its_worktree_and_its_usage_is_metered(godeld, repo, program):
    proc = godeld(env=NO_LINGER).start()
    agent_id = spawn_cli(proc, repo, program, {"FAKE_CLI_STEPS": "3", "FAKE_CLI_WRITE": "hello.txt"})["id"]
    rec = wait_state(proc, agent_id)
    assert rec["state"] == "completed", rec
    assert rec["final"].startswith("Done: 2 ") and "wrote hello.txt" in rec["final"]
    assert rec["session_id"], "the program's session id is recorded for a later resume"
    # The file the program wrote is committed on the agent's branch; the main checkout is untouched.
    assert git(repo, "show", f"{rec['branch']}:hello.txt") == f"written by fake {program}\n"
    assert not (repo / "hello.txt").exists()
    # Three model calls of 100 input tokens each (some served from the cache) were metered.
    usage = rec["usage"]
    assert usage["input_tokens"] + usage["cache_read_tokens"] + usage["cache_write_tokens"] >= 300 and usage["output_tokens"] > 0
    report = proc.call("budget.report", {"group_by": "agent"})
    row = next(r for r in report["rows"] if r["agent"] == agent_id)
    assert row["input_tokens"] == rec["usage"]["input_tokens"]
    complete = events_of(proc, "agent:complete", agent_id)
    assert len(complete) == 1
    # Its reasoning trace comes from the parsed stream: tool uses as decisions, their results as outcomes.
    steps = proc.call("agents.trace", {"id": agent_id})["steps"]
    calls = [t for s in steps for t in s["decision"].get("tools", [])]
    outcomes = [o for s in steps for o in s["outcomes"]]
    assert len(calls) == 2 and len(outcomes) == 2 and steps[-1]["decision"] == {"answer": True}, steps
    assert proc.stop() == 0


def test_a_cli_agent_over_budget_is_killed_from_its_streamed_usage(godeld, repo):
    proc = godeld(env=NO_LINGER).start()
    env = {"FAKE_CLI_STEPS": "50", "FAKE_CLI_SLEEP": "0.2", "FAKE_CLI_TOKENS_IN": "100"}
    agent_id = spawn_cli(proc, repo, "claude", env, budget={"max_tokens": 600})["id"]
    rec = wait_state(proc, agent_id, timeout=60)
    assert rec["state"] == "killed" and "budget exceeded" in rec["error"], rec
    (exceeded,) = events_of(proc, "budget:exceeded", agent_id)
    assert exceeded["data"]["scope"] == "agent"
    # Killed long before its 50 steps: the process group is gone.
    assert rec["usage"]["input_tokens"] < 50 * 100
    deadline = time.monotonic() + 10
    while group_members(rec["pid"]) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert group_members(rec["pid"]) == []
    assert proc.stop() == 0


def test_an_interrupted_cli_agent_resumes_its_own_session(godeld, repo):
    proc = godeld(env=NO_LINGER).start()
    env = {"FAKE_CLI_STEPS": "3", "FAKE_CLI_SLEEP": "1.5"}
    agent_id = spawn_cli(proc, repo, "claude", env)["id"]
    rec = wait_state(proc, agent_id, "running")
    deadline = time.monotonic() + 30
    while not proc.call("agents.get", {"id": agent_id}).get("session_id"):
        assert time.monotonic() < deadline, "the session id never arrived"
        time.sleep(0.05)
    session = proc.call("agents.get", {"id": agent_id})["session_id"]
    proc.kill9()
    os.killpg(rec["pid"], signal.SIGKILL)  # the machine lost the agent too
    proc = godeld(env=NO_LINGER).start()
    assert proc.call("agents.get", {"id": agent_id})["state"] == "interrupted"
    resumed = proc.call("agents.resume", {"id": agent_id})
    assert resumed["state"] in ("pending", "starting", "running")
    rec = wait_state(proc, agent_id, timeout=60)
    assert rec["state"] == "completed", rec
    # The fake, like the real claude, keeps the session id it was resumed with (`--resume ID`).
    assert rec["session_id"] == session
    (event,) = [e for e in events_of(proc, "agent:resumed", agent_id) if e["data"].get("restarted")]
    assert event["data"]["session_id"] == session
    assert proc.stop() == 0


def test_aider_scratch_files_stay_out_of_the_commit(godeld, repo):
    # Real aider keeps a repo-map cache in .aider.tags.cache.v4/; the fake writes one there.
    proc = godeld(env=NO_LINGER).start()
    agent_id = spawn_cli(proc, repo, "aider", {"FAKE_CLI_STEPS": "2", "FAKE_CLI_WRITE": ".aider.tags.cache.v4/cache.db"})["id"]
    rec = wait_state(proc, agent_id)
    assert rec["state"] == "completed", rec
    committed = git(repo, "ls-tree", "-r", "--name-only", rec["branch"]).split()
    assert not [name for name in committed if name.startswith(".aider")], committed
    assert rec["artifacts"]["commits"] == []  # nothing but scratch: no commit at all
    # The cache is still there in the worktree for whoever looks.
    assert (Path(rec["worktree"]) / ".aider.tags.cache.v4" / "cache.db").exists()
    assert proc.stop() == 0
