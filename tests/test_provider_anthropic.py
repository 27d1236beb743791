"""The anthropic provider against a local server speaking the Messages API's streaming format."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from godeld.agents.llm import ProviderError, ToolSpec
from godeld.default_plugins.providers.anthropic import AnthropicProvider
from tests.agent_helpers import git, make_repo, wait_state

KEY = "sk-ant-test-secret-0815"


def sse(events):
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


def tool_turn(text, name, args, *, input_tokens=500, output_tokens=40):
    raw = json.dumps(args)
    events = [
        {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5", "content": [], "usage": {"input_tokens": input_tokens, "output_tokens": 1, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 20}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        *({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text[i:i + 4]}} for i in range(0, len(text), 4)),
        {"type": "content_block_stop", "index": 0},
        {"type": "ping"},
    ]
    if name:
        events += [
            {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": name, "input": {}}},
            *({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": raw[i:i + 6]}} for i in range(0, len(raw), 6)),
            {"type": "content_block_stop", "index": 1},
        ]
    events += [{"type": "message_delta", "delta": {"stop_reason": "tool_use" if name else "end_turn"}, "usage": {"output_tokens": output_tokens}}, {"type": "message_stop"}]
    return sse(events)


class FakeAnthropic:
    def __init__(self, answers):
        self.answers = list(answers)
        self.requests = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                fake.requests.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(self.rfile.read(int(self.headers["content-length"])))})
                status, body = fake.answers.pop(0)
                self.send_response(status)
                self.send_header("content-type", "text/event-stream" if status == 200 else "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_streaming_tool_use_and_usage():
    with FakeAnthropic([(200, tool_turn("Writing now.", "write_file", {"path": "a.txt", "content": "hello world"}))]) as server:
        session = AnthropicProvider().open(model="claude-sonnet-4-5", options={"base_url": server.url, "api_key": KEY})
        deltas = []
        turn = session.complete([{"role": "system", "content": "be brief"}, {"role": "user", "content": "go"}], [ToolSpec("write_file", "w", {"type": "object"})], on_text=deltas.append)
    assert "".join(deltas) == turn.text == "Writing now."
    assert [(c.id, c.name, c.args) for c in turn.tool_calls] == [("toolu_1", "write_file", {"path": "a.txt", "content": "hello world"})]
    assert (turn.usage.input_tokens, turn.usage.output_tokens, turn.usage.cache_read_tokens, turn.usage.cache_write_tokens) == (500, 40, 100, 20)
    assert turn.stop_reason == "tool_use"
    request = server.requests[0]
    assert request["path"] == "/v1/messages" and request["headers"]["x-api-key"] == KEY and request["headers"]["anthropic-version"] == "2023-06-01"
    body = request["body"]
    assert body["system"] == "be brief" and body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "go"}]}]
    assert body["tools"] == [{"name": "write_file", "description": "w", "input_schema": {"type": "object"}}] and body["max_tokens"] == 4096


def test_tool_results_are_merged_into_one_user_message():
    with FakeAnthropic([(200, tool_turn("ok", None, {}))]) as server:
        AnthropicProvider().open(model="m", options={"base_url": server.url}).complete([
            {"role": "user", "content": "u"},
            {"role": "assistant", "content": "", "tool_calls": [{"id": "t1", "name": "a", "args": {}}, {"id": "t2", "name": "b", "args": {"x": 1}}]},
            {"role": "tool", "tool_call_id": "t1", "name": "a", "content": "r1", "is_error": False},
            {"role": "tool", "tool_call_id": "t2", "name": "b", "content": "r2", "is_error": True},
        ], [])
    messages = server.requests[0]["body"]["messages"]
    assert messages[1] == {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "a", "input": {}}, {"type": "tool_use", "id": "t2", "name": "b", "input": {"x": 1}}]}
    assert messages[2] == {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "r1", "is_error": False}, {"type": "tool_result", "tool_use_id": "t2", "content": "r2", "is_error": True}]}


@pytest.mark.parametrize("status,retryable", [(401, False), (429, True), (529, True)])
def test_errors_are_classified_without_the_key(status, retryable):
    body = json.dumps({"type": "error", "error": {"type": "x_error", "message": f"problem {status}"}}).encode()
    with FakeAnthropic([(status, body)]) as server:
        with pytest.raises(ProviderError) as info:
            AnthropicProvider().open(model="m", options={"base_url": server.url, "api_key": KEY, "max_retries": 0}).complete([{"role": "user", "content": "u"}], [])
    assert info.value.retryable is retryable and f"problem {status}" in str(info.value) and KEY not in str(info.value)


def test_an_error_event_mid_stream_is_retryable():
    body = sse([{"type": "message_start", "message": {"model": "m", "usage": {"input_tokens": 1}}}, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}])
    with FakeAnthropic([(200, body)]) as server:
        with pytest.raises(ProviderError, match="Overloaded") as info:
            AnthropicProvider().open(model="m", options={"base_url": server.url, "max_retries": 0}).complete([{"role": "user", "content": "u"}], [])
    assert info.value.retryable


def test_an_agent_driven_by_the_anthropic_api(godeld, home):
    repo = make_repo(home / "repo")
    answers = [(200, tool_turn("Writing.", "write_file", {"path": "c.txt", "content": "claude\n"})), (200, tool_turn("Done.", None, {}, input_tokens=800, output_tokens=5))]
    with FakeAnthropic(answers) as server:
        proc = godeld(env={"GODEL_AGENTS__KEEP_RUNNING_ON_SHUTDOWN": "false"}).start()
        agent = proc.call("agents.spawn", {"repo": str(repo), "task": "write c.txt", "provider": "anthropic", "model": "claude-sonnet-4-5", "provider_options": {"base_url": server.url, "api_key": KEY}})
        rec = wait_state(proc, agent["id"])
        assert rec["state"] == "completed" and rec["final"] == "Done."
        assert git(repo, "show", f"{rec['branch']}:c.txt") == "claude\n"
        # priced from the built-in table: claude-sonnet-4 at $3/$15 per million, cache read $0.30, write $3.75
        expected = (1300 * 3 + 45 * 15 + 200 * 0.3 + 40 * 3.75) / 1e6
        assert rec["usage"]["cost_usd"] == pytest.approx(expected)
        assert proc.stop() == 0
