"""The openai provider against a local server speaking the real streaming format; and a real
agent driven by it."""

from __future__ import annotations

import json

import pytest

from godeld.agents.llm import ProviderError, ToolSpec
from godeld.default_plugins.providers.openai import OpenAIProvider
from tests.agent_helpers import git, make_repo, wait_state
from tests.fake_llm import FakeOpenAI

KEY = "sk-test-very-secret-4711"
TOOLS = [ToolSpec("write_file", "Write a file", {"type": "object", "properties": {"path": {"type": "string"}}})]


def test_streaming_text_tool_calls_and_usage():
    turn_spec = {"text": "Let me write it.", "tool_calls": [{"name": "write_file", "args": {"path": "a.txt", "content": "x" * 40}}, {"name": "list_dir", "args": {}}],
                 "usage": {"prompt_tokens": 1000, "completion_tokens": 50, "prompt_tokens_details": {"cached_tokens": 400}}}
    with FakeOpenAI([turn_spec]) as server:
        session = OpenAIProvider().open(model="gpt-4o-mini", options={"base_url": server.url, "api_key": KEY})
        deltas = []
        turn = session.complete([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}], TOOLS, on_text=deltas.append)
    assert "".join(deltas) == "Let me write it." and len(deltas) > 1
    assert turn.text == "Let me write it." and turn.stop_reason == "tool_calls"
    assert [(c.name, c.args) for c in turn.tool_calls] == [("write_file", {"path": "a.txt", "content": "x" * 40}), ("list_dir", {})]
    assert (turn.usage.input_tokens, turn.usage.cache_read_tokens, turn.usage.output_tokens) == (600, 400, 50)
    (request,) = server.requests
    assert request["path"] == "/v1/chat/completions" and request["headers"]["authorization"] == f"Bearer {KEY}"
    body = request["body"]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True} and body["model"] == "gpt-4o-mini"
    assert body["tools"][0] == {"type": "function", "function": {"name": "write_file", "description": "Write a file", "parameters": TOOLS[0].parameters}}


def test_conversation_with_tool_results_is_sent_in_openai_form():
    with FakeOpenAI([{"text": "ok"}]) as server:
        session = OpenAIProvider().open(model="m", options={"base_url": server.url})
        session.complete([
            {"role": "user", "content": "u"},
            {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "name": "read_file", "args": {"path": "x"}}]},
            {"role": "tool", "tool_call_id": "c1", "name": "read_file", "content": "data", "is_error": False},
        ], [])
    messages = server.requests[0]["body"]["messages"]
    assert messages[1] == {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "read_file", "arguments": json.dumps({"path": "x"})}}]}
    assert messages[2] == {"role": "tool", "tool_call_id": "c1", "content": "data"}
    assert "authorization" not in server.requests[0]["headers"]  # a local server without a key


@pytest.mark.parametrize("status,retryable", [(401, False), (400, False), (429, True), (500, True), (529, True)])
def test_http_errors_are_classified_and_never_show_the_key(status, retryable):
    with FakeOpenAI([{"status": status, "message": f"went wrong {status}"}]) as server:
        session = OpenAIProvider().open(model="m", options={"base_url": server.url, "api_key": KEY, "max_retries": 0})
        with pytest.raises(ProviderError) as info:
            session.complete([{"role": "user", "content": "u"}], [])
    assert info.value.retryable is retryable and info.value.status == status
    assert f"went wrong {status}" in str(info.value) and KEY not in str(info.value) and KEY not in repr(info.value)


def test_unreachable_server_is_retryable_and_missing_key_is_clear(monkeypatch):
    session = OpenAIProvider().open(model="m", options={"base_url": "http://127.0.0.1:9/v1", "api_key": KEY, "max_retries": 0})
    with pytest.raises(ProviderError) as info:
        session.complete([{"role": "user", "content": "u"}], [])
    assert info.value.retryable and KEY not in str(info.value)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ProviderError, match="set OPENAI_API_KEY"):
        OpenAIProvider().open(model="m", options={})
    with pytest.raises(ProviderError, match="no model"):
        OpenAIProvider().open(model=None, options={})


def test_an_agent_driven_by_an_openai_compatible_server(godeld, home):
    repo = make_repo(home / "repo")
    turns = [
        {"text": "Writing the file.", "tool_calls": [{"name": "write_file", "args": {"path": "out.txt", "content": "from the model\n"}}], "usage": {"prompt_tokens": 500, "completion_tokens": 30}},
        {"text": "Wrote out.txt.", "usage": {"prompt_tokens": 700, "completion_tokens": 10}},
    ]
    with FakeOpenAI(turns) as server:
        proc = godeld(env={"GODEL_AGENTS__KEEP_RUNNING_ON_SHUTDOWN": "false", "GODEL_BUDGET__PRICES": '{"local-model": {"input": 1, "output": 2}}'}).start()
        agent = proc.call("agents.spawn", {"repo": str(repo), "task": "write out.txt", "provider": "openai", "model": "local-model", "provider_options": {"base_url": server.url, "api_key": KEY}})
        rec = wait_state(proc, agent["id"])
        assert rec["state"] == "completed", rec
        assert git(repo, "show", f"{rec['branch']}:out.txt") == "from the model\n"
        assert rec["usage"]["input_tokens"] == 1200 and rec["usage"]["cost_usd"] == pytest.approx((1200 * 1 + 40 * 2) / 1e6)
        second = server.requests[1]["body"]["messages"]
        assert second[-1]["role"] == "tool" and second[-1]["content"].startswith("wrote ")
        assert all(r["headers"]["authorization"] == f"Bearer {KEY}" for r in server.requests)
        # The key is never stored: not in the record, not in the worker's spec, not in the database.
        assert KEY not in json.dumps(proc.call("agents.get", {"id": agent["id"]}))
        for path in proc.home.rglob("*"):
            if path.is_file():
                assert KEY.encode() not in path.read_bytes(), path
        assert proc.stop() == 0


def test_the_fallback_chain_tries_the_next_provider(godeld, home):
    repo = make_repo(home / "repo")
    proc = godeld(env={"GODEL_AGENTS__KEEP_RUNNING_ON_SHUTDOWN": "false", "GODEL_AGENTS__FALLBACK": "scripted"}).start()
    agent = proc.call("agents.spawn", {"repo": str(repo), "task": "t", "provider": "openai", "model": "m", "provider_options": {"base_url": "http://127.0.0.1:9/v1"}, "script": [{"say": "the fallback answered"}]})
    rec = wait_state(proc, agent["id"])
    assert rec["state"] == "completed" and rec["final"] == "the fallback answered"
    entries = proc.call("agents.transcript", {"id": agent["id"]})["entries"]
    errors = [e["data"] for e in entries if e["kind"] == "error"]
    assert errors[0]["provider"] == "openai" and errors[0]["retryable"] is True
    assert [e["data"]["provider"] for e in entries if e["kind"] == "assistant"] == ["scripted"]
    assert proc.stop() == 0
