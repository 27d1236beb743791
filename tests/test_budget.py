"""Budgets: the ledger, costs from the price table, thresholds and the hard stop, with real agents."""

from __future__ import annotations

import time

import pytest

from godelctl.client import RpcError
from godeld.agents.budget import PriceTable
from godeld.agents.llm import Usage
from tests.agent_helpers import events_of, make_repo, wait_state

PRICES = {"GODEL_BUDGET__PRICES": '{"scripted": {"input": 1000, "output": 2000}}', "GODEL_AGENTS__KEEP_RUNNING_ON_SHUTDOWN": "false"}


@pytest.fixture
def repo(home):
    return make_repo(home / "repo")


def test_price_table_matches_the_longest_prefix_and_counts_cache_tokens():
    table = PriceTable({"my-model": {"input": 1.0, "output": 2.0, "cache_read": 0.5}}, "v1")
    assert table.price("gpt-4o-mini-2024-07-18") == table.prices["gpt-4o-mini"]
    assert table.price("openai/gpt-4o") == table.prices["gpt-4o"]
    cost, priced = table.cost("my-model", Usage(input_tokens=1_000_000, output_tokens=500_000, cache_read_tokens=2_000_000))
    assert priced and cost == pytest.approx(1.0 + 1.0 + 1.0)
    assert table.cost("unknown-model", Usage(input_tokens=10, cost_usd=0.25)) == (0.25, True)
    assert table.cost("unknown-model", Usage(input_tokens=10)) == (0.0, False)


def test_usage_is_metered_and_reported(godeld, repo):
    proc = godeld(env=PRICES).start()
    script = [{"say": "a", "usage": {"input_tokens": 100, "output_tokens": 10}}, {"tool": "list_dir", "args": {}}, {"say": "b", "usage": {"input_tokens": 300, "output_tokens": 20, "cache_read_tokens": 50}}]
    rec = wait_state(proc, proc.call("agents.spawn", {"repo": str(repo), "task": "t", "script": script})["id"])
    assert rec["state"] == "completed"
    # 400 in * $1000/M + 30 out * $2000/M + 50 cache read at the input price
    expected = (400 * 1000 + 30 * 2000 + 50 * 1000) / 1e6
    assert rec["usage"]["cost_usd"] == pytest.approx(expected)
    report = proc.call("budget.report", {"group_by": "agent"})
    (row,) = report["rows"]
    assert row["agent"] == rec["id"] and row["calls"] == 2 and row["input_tokens"] == 400 and row["cost_usd"] == pytest.approx(expected)
    by_model = proc.call("budget.report", {"group_by": "model"})["rows"]
    assert by_model[0]["model"] == "scripted"
    status = proc.call("budget.get", {"scope": "global"})
    assert status["spent_usd"] == pytest.approx(expected) and status["tokens"] == 480
    # The ledger survives a restart: totals are rebuilt from it.
    assert proc.stop() == 0
    proc = godeld(env=PRICES).start()
    assert proc.call("budget.get", {"scope": "global"})["spent_usd"] == pytest.approx(expected)
    assert proc.call("agents.get", {"id": rec["id"]})["usage"]["cost_usd"] == pytest.approx(expected)
    assert proc.stop() == 0


def test_dry_run_projects_the_cost_without_spawning(godeld, repo):
    proc = godeld(env=PRICES).start()
    script = [{"say": "x", "usage": {"input_tokens": 1000, "output_tokens": 100}}, {"say": "y", "usage": {"input_tokens": 2000, "output_tokens": 100}}]
    result = proc.call("agents.spawn", {"repo": str(repo), "task": "t", "script": script, "dry_run": True})
    assert result["projected"]["input_tokens"] == 3000 and result["projected"]["output_tokens"] == 200
    assert result["projected"]["cost_usd"] == pytest.approx((3000 * 1000 + 200 * 2000) / 1e6)
    assert proc.call("agents.list")["agents"] == []
    assert proc.stop() == 0


def test_an_agent_over_its_budget_is_killed(godeld, repo):
    proc = godeld(env=PRICES).start()
    script = [{"say": f"step {i}", "usage": {"input_tokens": 100, "output_tokens": 0}} for i in range(3)]
    script = [s for step in script for s in (step, {"tool": "list_dir", "args": {}}, {"sleep": 0.2})] + [{"sleep": 30}, {"say": "never"}]
    agent_id = proc.call("agents.spawn", {"repo": str(repo), "task": "t", "script": script, "budget": {"max_tokens": 250}})["id"]
    rec = wait_state(proc, agent_id, timeout=30)
    assert rec["state"] == "killed" and "budget exceeded" in rec["error"], rec
    assert rec["final"] != "never"
    warnings = [e["data"]["level"] for e in events_of(proc, "budget:warning", agent_id)]
    assert warnings == [75]  # 100 of 250 tokens = 40%, then 200 = 80%: 50 is passed on the way to 75
    (exceeded,) = events_of(proc, "budget:exceeded", agent_id)
    assert exceeded["data"]["scope"] == "agent" and exceeded["data"]["used_pct"] >= 100
    assert proc.stop() == 0


def test_a_budget_over_90_percent_blocks_new_spawns(godeld, repo):
    proc = godeld(env=PRICES).start()
    proc.call("budget.set", {"scope": "global", "max_tokens": 1000})
    rec = wait_state(proc, proc.call("agents.spawn", {"repo": str(repo), "task": "t", "script": [{"say": "big", "usage": {"input_tokens": 920}}]})["id"])
    assert rec["state"] == "completed"
    levels = [e["data"]["level"] for e in events_of(proc, "budget:warning")]
    assert levels == [90] and events_of(proc, "budget:warning")[0]["data"]["spawns_blocked"] is True
    with pytest.raises(RpcError, match=r"global budget is 92.0% used") as info:
        proc.call("agents.spawn", {"repo": str(repo), "task": "t", "script": [{"say": "x"}]})
    assert info.value.code == -32010
    proc.call("budget.set", {"scope": "global"})  # cleared
    assert proc.call("budget.get", {"scope": "global"})["limit"] is None
    wait_state(proc, proc.call("agents.spawn", {"repo": str(repo), "task": "t", "script": [{"say": "x"}]})["id"])
    assert proc.stop() == 0


def test_a_swarm_limit_stops_every_agent_of_the_swarm(godeld, repo):
    proc = godeld(env=PRICES).start()
    proc.call("budget.set", {"scope": "swarm", "id": "sw1", "max_cost_usd": 0.25})
    slow = proc.call("agents.spawn", {"repo": str(repo), "task": "t", "swarm_id": "sw1", "script": [{"sleep": 30}]})["id"]
    wait_state(proc, slow, "running")
    spender = proc.call("agents.spawn", {"repo": str(repo), "task": "t", "swarm_id": "sw1", "script": [{"say": "spend", "usage": {"input_tokens": 300}}, {"tool": "list_dir", "args": {}}, {"sleep": 30}]})["id"]
    for agent_id in (slow, spender):
        rec = wait_state(proc, agent_id, timeout=30)
        assert rec["state"] == "killed" and "swarm budget sw1" in rec["error"]
    assert proc.stop() == 0
