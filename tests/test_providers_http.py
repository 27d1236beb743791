"""The `openai` and `anthropic` providers against a real local HTTP server.

The server speaks HTTP/1.1 with chunked transfer encoding, as the real APIs do, and writes the
streaming formats byte for byte: `data: {...}\\n\\n` for OpenAI, `event: X\\ndata: {...}\\n\\n`
for Anthropic, often in small pieces that split lines and events across TCP writes. It records
each request (path, headers, JSON body) and answers from a queue. Nothing here reaches the internet.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from godeld.agents.llm import ProviderError, ToolSpec
from godeld.default_plugins.providers import anthropic as anthropic_plugin
from godeld.default_plugins.providers import openai as openai_plugin
from godeld.default_plugins.providers._sse import Event, SSEParser, parse_events
from godeld.default_plugins.providers.anthropic import AnthropicProvider
from godeld.default_plugins.providers.openai import OpenAIProvider

KEY = "sk-godel-test-KEY-3f9a1c77e2"
TOOLS = [
    ToolSpec("read_file", "Read a file.", {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}),
    ToolSpec("run_command", "Run a command.", {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}),
]
USER = [{"role": "user", "content": "hi"}]

# A conversation in godel's neutral form (godeld.agents.llm): two parallel tool calls with their
# results (one an error), user input after the results, and an assistant turn without text.
CONVERSATION = [
    {"role": "system", "content": "You are a coding agent."},
    {"role": "user", "content": "Fix the bug."},
    {"role": "assistant", "content": "Looking.", "tool_calls": [{"id": "call_a", "name": "read_file", "args": {"path": "a.py"}}, {"id": "call_b", "name": "read_file", "args": {"path": "b.py"}}]},
    {"role": "tool", "tool_call_id": "call_a", "name": "read_file", "content": "print(1)", "is_error": False},
    {"role": "tool", "tool_call_id": "call_b", "name": "read_file", "content": "no such file: b.py", "is_error": True},
    {"role": "user", "content": "Also add a test."},
    {"role": "assistant", "content": "", "tool_calls": [{"id": "call_c", "name": "run_command", "args": {"command": "pytest -q"}}]},
    {"role": "tool", "tool_call_id": "call_c", "name": "run_command", "content": "1 passed", "is_error": False},
]


# -- the local server --------------------------------------------------------------------------


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/event-stream"
    headers: dict[str, str] = field(default_factory=dict)
    piece: int = 0  # write the body in pieces of this many bytes, each flushed (0: one write)
    stall_s: float = 0.0  # after the first piece, go silent this long
    cut: bool = False  # drop the connection before the body's end


class LLMServer:
    def __init__(self, base_path: str = ""):
        self.answers: list[Answer] = []
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive and chunked bodies, like the real APIs

            def log_message(self, *args):
                pass

            def handle(self):
                try:
                    super().handle()
                except ConnectionError:
                    pass  # the client hung up mid-answer, as several tests make it do

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                server.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": json.loads(raw)})
                answer = server.answers.pop(0) if server.answers else Answer(500, b'{"error": {"message": "no answer scripted"}}', "application/json")
                self.send(answer)

            def send(self, answer: Answer):
                self.send_response(answer.status)
                self.send_header("content-type", answer.content_type)
                for k, v in answer.headers.items():
                    self.send_header(k, v)
                if answer.content_type != "text/event-stream" and not answer.piece:
                    self.send_header("content-length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                    return
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                size = answer.piece or max(1, len(answer.body))
                pieces = [answer.body[i : i + size] for i in range(0, len(answer.body), size)]
                for n, piece in enumerate(pieces):
                    if answer.cut and n == len(pieces) // 2:
                        self.close_connection = True
                        return
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.flush()
                    if n == 0 and answer.stall_s:
                        time.sleep(answer.stall_s)
                self.wfile.write(b"0\r\n\r\n")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}{base_path}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def answer(self, *answers: Answer) -> "LLMServer":
        self.answers.extend(answers)
        return self

    @property
    def body(self) -> dict[str, Any]:
        return self.requests[-1]["body"]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def openai_server():
    server = LLMServer("/v1")
    yield server
    server.close()


@pytest.fixture
def anthropic_server():
    server = LLMServer()
    yield server
    server.close()


@pytest.fixture
def open_session():
    """open_session(provider, model=..., **options): a session closed after the test."""
    opened = []

    def open_(provider, model="test-model", **options):
        options.setdefault("max_retries", 0)  # one request per answer the test scripts, unless it says
        session = provider.open(model=model, options=options)
        opened.append(session)
        return session

    yield open_
    for session in opened:
        session.close()


def refused_url(path: str = "") -> str:
    with socket.socket() as s:  # a port that was just free: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


def json_answer(status: int, payload: Any, **kw) -> Answer:
    return Answer(status, json.dumps(payload).encode(), "application/json", **kw)


# -- OpenAI wire format ------------------------------------------------------------------------


def oa_chunk(delta: dict | None = None, finish: str | None = None, model: str = "gpt-test-2025") -> dict:
    return {"id": "chatcmpl-9x", "object": "chat.completion.chunk", "created": 1732500000, "model": model, "system_fingerprint": "fp_1",
            "choices": [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish}]}


def oa_usage(prompt: int, completion: int, cached: int | None = None) -> dict:
    usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached, "audio_tokens": 0}
        usage["completion_tokens_details"] = {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
    return {"id": "chatcmpl-9x", "object": "chat.completion.chunk", "created": 1732500000, "model": "gpt-test-2025", "choices": [], "usage": usage}


def oa_sse(chunks: list[dict], *, done: bool = True) -> bytes:
    out = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks)
    return out + (b"data: [DONE]\n\n" if done else b"")


def oa_text_stream(*texts: str, usage: dict | None = None) -> bytes:
    chunks = [oa_chunk({"role": "assistant", "content": ""})]
    chunks += [oa_chunk({"content": t}) for t in texts]
    chunks.append(oa_chunk({}, "stop"))
    return oa_sse(chunks + ([usage] if usage else []))


def oa_tool_chunks(index: int, call_id: str, name: str, arguments: str, step: int) -> list[dict]:
    """A tool call as OpenAI streams it: id and name first, then the arguments in fragments."""
    first = {"tool_calls": [{"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}]}
    rest = [{"tool_calls": [{"index": index, "function": {"arguments": arguments[i : i + step]}}]} for i in range(0, len(arguments), step)]
    return [oa_chunk(first), *(oa_chunk(r) for r in rest)]


# -- Anthropic wire format ---------------------------------------------------------------------


def an_sse(events: list[dict], *, newline: str = "\n") -> bytes:
    return b"".join(f"event: {e['type']}{newline}data: {json.dumps(e)}{newline}{newline}".encode() for e in events)


def an_start(input_tokens=25, cache_read=0, cache_write=0, model="claude-test-4-5") -> dict:
    return {"type": "message_start", "message": {"id": "msg_01X", "type": "message", "role": "assistant", "content": [], "model": model, "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "cache_creation_input_tokens": cache_write, "cache_read_input_tokens": cache_read, "output_tokens": 1}}}


def an_text_block(index: int, *texts: str) -> list[dict]:
    return [{"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
            *({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": t}} for t in texts),
            {"type": "content_block_stop", "index": index}]


def an_tool_block(index: int, tool_id: str, name: str, partial_json: str, step: int) -> list[dict]:
    return [{"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": tool_id, "name": name, "input": {}}},
            *({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": partial_json[i : i + step]}} for i in range(0, len(partial_json), step)),
            {"type": "content_block_stop", "index": index}]


def an_end(stop_reason="end_turn", output_tokens=15, **usage) -> list[dict]:
    return [{"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None}, "usage": {"output_tokens": output_tokens, **usage}}, {"type": "message_stop"}]


# == openai ====================================================================================


def test_openai_streams_text_deltas_in_order(openai_server, open_session):
    openai_server.answer(Answer(body=oa_text_stream("Hel", "lo, ", "wor", "ld!"), piece=7))
    session = open_session(OpenAIProvider(), model="gpt-test", base_url=openai_server.url, api_key=KEY)
    deltas = []
    turn = session.complete(USER, [], on_text=deltas.append)
    assert deltas == ["Hel", "lo, ", "wor", "ld!"]
    assert (turn.text, turn.stop_reason, turn.model, turn.tool_calls) == ("Hello, world!", "stop", "gpt-test-2025", [])
    request = openai_server.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["authorization"] == f"Bearer {KEY}" and request["headers"]["content-type"] == "application/json"
    assert request["body"] == {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}], "stream": True, "stream_options": {"include_usage": True}}


def test_openai_tool_call_arguments_split_across_many_chunks(openai_server, open_session):
    args = {"command": "grep -rn 'def main' src/ | head -5", "nested": {"list": [1, 2, {"x": "é\"q"}]}}
    arguments = json.dumps(args)
    chunks = [oa_chunk({"role": "assistant", "content": None}), *oa_tool_chunks(0, "call_Z1", "run_command", arguments, step=3), oa_chunk({}, "tool_calls")]
    openai_server.answer(Answer(body=oa_sse(chunks), piece=11))
    turn = open_session(OpenAIProvider(), base_url=openai_server.url).complete(USER, TOOLS)
    assert len(chunks) > 20
    assert [(c.id, c.name, c.args) for c in turn.tool_calls] == [("call_Z1", "run_command", args)]
    assert turn.stop_reason == "tool_calls" and turn.text == ""


def test_openai_two_parallel_tool_calls_are_assembled_by_index(openai_server, open_session):
    a = oa_tool_chunks(0, "call_A", "read_file", json.dumps({"path": "a.py"}), step=4)
    b = oa_tool_chunks(1, "call_B", "read_file", json.dumps({"path": "b.py"}), step=4)
    interleaved = [c for pair in zip(a, b) for c in pair]  # fragments of both calls alternate
    openai_server.answer(Answer(body=oa_sse([oa_chunk({"content": "Reading both."}), *interleaved, oa_chunk({}, "tool_calls"), oa_usage(10, 5)])))
    deltas = []
    turn = open_session(OpenAIProvider(), base_url=openai_server.url).complete(USER, TOOLS, on_text=deltas.append)
    assert [(c.id, c.name, c.args) for c in turn.tool_calls] == [("call_A", "read_file", {"path": "a.py"}), ("call_B", "read_file", {"path": "b.py"})]
    assert deltas == ["Reading both."] and turn.text == "Reading both."


def test_openai_whole_tool_calls_without_index_or_id(openai_server, open_session):
    # Some compatible servers send each call whole in one chunk, without `index`, some without `id`.
    calls = [{"id": "c1", "type": "function", "function": {"name": "read_file", "arguments": '{"path": "a"}'}},
             {"type": "function", "function": {"name": "read_file", "arguments": '{"path": "b"}'}}]
    openai_server.answer(Answer(body=oa_sse([oa_chunk({"tool_calls": [calls[0]]}), oa_chunk({"tool_calls": [calls[1]]}), oa_chunk({}, "tool_calls")])))
    turn = open_session(OpenAIProvider(), base_url=openai_server.url).complete(USER, TOOLS)
    assert [c.args for c in turn.tool_calls] == [{"path": "a"}, {"path": "b"}]
    assert turn.tool_calls[0].id == "c1" and turn.tool_calls[1].id.startswith("call_") and len(turn.tool_calls[1].id) > 10


def test_openai_usage_counts_cached_tokens_apart_from_input(openai_server, open_session):
    openai_server.answer(Answer(body=oa_text_stream("ok", usage=oa_usage(1000, 50, cached=600))))
    turn = open_session(OpenAIProvider(), base_url=openai_server.url).complete(USER, [])
    u = turn.usage
    # input_tokens is the uncached part: each prompt token is priced once, at input or cache-read price
    assert (u.input_tokens, u.cache_read_tokens, u.cache_write_tokens, u.output_tokens, u.cost_usd) == (400, 600, 0, 50, None)


def test_openai_server_without_usage_or_done_gives_zero_usage(openai_server, open_session):
    # llama.cpp-like: no usage chunk; and the stream just ends after the finish_reason
    body = oa_sse([oa_chunk({"content": "fine"}), oa_chunk({}, "stop")], done=False)
    openai_server.answer(Answer(body=body))
    turn = open_session(OpenAIProvider(), base_url=openai_server.url).complete(USER, [])
    assert turn.text == "fine" and turn.usage.to_dict() == {"input_tokens": 0, "output_tokens": 0, "cache_read_tokens": 0, "cache_write_tokens": 0, "cost_usd": None}


def test_openai_conversation_round_trip(openai_server, open_session):
    openai_server.answer(Answer(body=oa_text_stream("Done.")))
    session = open_session(OpenAIProvider(), model="local-coder", base_url=openai_server.url, max_tokens=512, temperature=0.2,
                           extra_headers={"X-Trace": "t-1"}, extra_body={"top_k": 20, "stream_options": None})
    session.complete(CONVERSATION, TOOLS)
    request = openai_server.requests[0]
    assert request["headers"]["x-trace"] == "t-1" and "authorization" not in request["headers"]  # a local server, no key
    body = request["body"]
    assert body["messages"] == [
        {"role": "system", "content": "You are a coding agent."},
        {"role": "user", "content": "Fix the bug."},
        {"role": "assistant", "content": "Looking.", "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "read_file", "arguments": '{"path": "a.py"}'}},
            {"id": "call_b", "type": "function", "function": {"name": "read_file", "arguments": '{"path": "b.py"}'}}]},
        {"role": "tool", "tool_call_id": "call_a", "content": "print(1)"},
        {"role": "tool", "tool_call_id": "call_b", "content": "error: no such file: b.py"},
        {"role": "user", "content": "Also add a test."},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_c", "type": "function", "function": {"name": "run_command", "arguments": '{"command": "pytest -q"}'}}]},
        {"role": "tool", "tool_call_id": "call_c", "content": "1 passed"},
    ]
    assert body["tools"] == [{"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}} for t in TOOLS]
    # a compatible server gets max_tokens; extra_body adds top_k and its null removes stream_options
    assert (body["max_tokens"], body["temperature"], body["top_k"], body["stream"]) == (512, 0.2, 20, True)
    assert "stream_options" not in body and "max_completion_tokens" not in body


def test_openai_own_api_gets_max_completion_tokens(open_session):
    session = open_session(OpenAIProvider(), api_key=KEY, max_tokens=100)  # the default base_url; no request is sent
    assert session.url == "https://api.openai.com/v1/chat/completions"
    body = session.request_body(USER, [])
    assert body["max_completion_tokens"] == 100 and "max_tokens" not in body
    assert "max_tokens" in open_session(OpenAIProvider(), api_key=KEY, max_tokens=100, max_tokens_param="max_tokens").request_body(USER, [])


def test_openai_malformed_tool_arguments_become_raw(openai_server, open_session):
    broken = '{"path": "a.py", '  # cut off: the model ran out of tokens mid-call
    chunks = [*oa_tool_chunks(0, "call_1", "read_file", broken, step=5), *oa_tool_chunks(1, "call_2", "read_file", "[1, 2]", step=5), oa_chunk({}, "length")]
    openai_server.answer(Answer(body=oa_sse(chunks)), Answer(body=oa_text_stream("ok")))
    session = open_session(OpenAIProvider(), base_url=openai_server.url)
    turn = session.complete(USER, TOOLS)
    assert [c.args for c in turn.tool_calls] == [{"_raw": broken}, {"_raw": "[1, 2]"}] and turn.stop_reason == "length"
    # sent back, the arguments are valid JSON again
    session.complete([*USER, {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "name": "read_file", "args": {"_raw": broken}}]}], TOOLS)
    sent = openai_server.body["messages"][1]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(sent) == {"_raw": broken}


def test_openai_non_streaming_json_answer_is_accepted(openai_server, open_session):
    completion = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "llama-3-8b",
                  "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": "Let me look.",
                               "tool_calls": [{"id": "call_q", "type": "function", "function": {"name": "read_file", "arguments": "{\"path\": \"x\"}"}}]}}],
                  "usage": {"prompt_tokens": 30, "completion_tokens": 9, "total_tokens": 39}}
    openai_server.answer(json_answer(200, completion))
    deltas = []
    turn = open_session(OpenAIProvider(), base_url=openai_server.url).complete(USER, TOOLS, on_text=deltas.append)
    assert deltas == ["Let me look."] and turn.model == "llama-3-8b" and turn.stop_reason == "tool_calls"
    assert [(c.id, c.name, c.args) for c in turn.tool_calls] == [("call_q", "read_file", {"path": "x"})]
    assert (turn.usage.input_tokens, turn.usage.output_tokens) == (30, 9)


@pytest.mark.parametrize("status,retryable", [(400, False), (401, False), (403, False), (404, False), (422, False),
                                              (408, True), (409, True), (429, True), (500, True), (502, True), (503, True), (529, True)])
def test_openai_http_errors_are_classified(openai_server, open_session, status, retryable):
    openai_server.answer(json_answer(status, {"error": {"message": f"the API says no ({status})", "type": "some_error", "param": None, "code": None}}))
    with pytest.raises(ProviderError) as info:
        open_session(OpenAIProvider(), base_url=openai_server.url, api_key=KEY).complete(USER, [])
    err = info.value
    assert (err.retryable, err.status) == (retryable, status)
    assert str(err).startswith(f"openai: HTTP {status}") and f"the API says no ({status})" in str(err)
    assert KEY not in str(err) and KEY not in repr(err)
    assert len(openai_server.requests) == 1  # max_retries 0: no retries


def test_openai_unauthorized_shows_the_api_message(openai_server, open_session):
    openai_server.answer(json_answer(401, {"error": {"message": "Incorrect API key provided: sk-godel-***********c77e2.", "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}}))
    with pytest.raises(ProviderError) as info:
        open_session(OpenAIProvider(), base_url=openai_server.url, api_key=KEY).complete(USER, [])
    assert not info.value.retryable and info.value.status == 401
    assert str(info.value) == "openai: HTTP 401 Unauthorized: Incorrect API key provided: sk-godel-***********c77e2. (invalid_request_error) — check the API key"


def test_openai_connection_refused_is_retryable(open_session):
    with pytest.raises(ProviderError) as info:
        open_session(OpenAIProvider(), base_url=refused_url("/v1"), api_key=KEY).complete(USER, [])
    assert info.value.retryable and info.value.status is None and "cannot reach" in str(info.value)


def test_openai_error_inside_the_stream_is_retryable(openai_server, open_session):
    body = oa_sse([oa_chunk({"content": "par"}), {"error": {"message": "The server had an error while processing your request.", "type": "server_error"}}], done=False)
    openai_server.answer(Answer(body=body))
    with pytest.raises(ProviderError, match="server had an error") as info:
        open_session(OpenAIProvider(), base_url=openai_server.url).complete(USER, [])
    assert info.value.retryable


def test_openai_an_answer_of_the_wrong_shape_is_a_provider_error(openai_server, open_session):
    openai_server.answer(Answer(body=oa_sse([{"id": "x", "choices": "not a list"}])))
    with pytest.raises(ProviderError, match="cannot understand the answer"):
        open_session(OpenAIProvider(), base_url=openai_server.url).complete(USER, [])


def test_openai_truncated_stream_is_retryable(openai_server, open_session):
    openai_server.answer(Answer(body=oa_sse([oa_chunk({"content": "half an answ"})], done=False)),
                         Answer(body=oa_text_stream("a long answer " * 20), piece=16, cut=True))
    session = open_session(OpenAIProvider(), base_url=openai_server.url)
    for _ in range(2):  # a clean end without finish_reason, then a dropped connection
        with pytest.raises(ProviderError) as info:
            session.complete(USER, [])
        assert info.value.retryable


def test_openai_retries_with_retry_after_until_it_succeeds(openai_server, open_session):
    openai_server.answer(json_answer(429, {"error": {"message": "Rate limit reached"}}, headers={"retry-after": "0"}),
                         json_answer(503, {"error": {"message": "busy"}}, headers={"retry-after-ms": "10"}),
                         Answer(body=oa_text_stream("finally")))
    turn = open_session(OpenAIProvider(), base_url=openai_server.url, max_retries=2).complete(USER, [])
    assert turn.text == "finally" and len(openai_server.requests) == 3


def test_by_default_a_transient_failure_is_retried_twice(openai_server):
    openai_server.answer(json_answer(429, {"error": {"message": "Rate limit reached"}}, headers={"retry-after": "0"}),
                         json_answer(503, {"error": {"message": "busy"}}, headers={"retry-after": "0"}),
                         json_answer(503, {"error": {"message": "still busy"}}, headers={"retry-after": "0"}))
    session = OpenAIProvider().open(model="m", options={"base_url": openai_server.url})
    try:
        with pytest.raises(ProviderError, match="still busy"):
            session.complete(USER, [])
    finally:
        session.close()
    assert len(openai_server.requests) == 3  # the first try and two retries


def test_openai_does_not_retry_once_text_was_streamed(openai_server, open_session):
    openai_server.answer(Answer(body=oa_sse([oa_chunk({"content": "partial"})], done=False)), Answer(body=oa_text_stream("again")))
    deltas = []
    with pytest.raises(ProviderError):
        open_session(OpenAIProvider(), base_url=openai_server.url, max_retries=3).complete(USER, [], on_text=deltas.append)
    assert deltas == ["partial"] and len(openai_server.requests) == 1  # a retry would repeat the text


def test_openai_a_silent_server_times_out(openai_server, open_session):
    openai_server.answer(Answer(body=oa_text_stream("slow"), piece=8, stall_s=2.0))
    started = time.monotonic()
    with pytest.raises(ProviderError) as info:
        open_session(OpenAIProvider(), base_url=openai_server.url, timeout_s=0.3).complete(USER, [])
    assert info.value.retryable and "timeout_s=0.3" in str(info.value) and time.monotonic() - started < 1.5


def test_openai_key_options(openai_server, open_session, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ProviderError, match="set OPENAI_API_KEY or provider_options.api_key_env") as info:
        OpenAIProvider().open(model="gpt-4o", options={})
    assert not info.value.retryable
    with pytest.raises(ProviderError, match="set MY_OPENAI_KEY"):
        OpenAIProvider().open(model="gpt-4o", options={"api_key_env": "MY_OPENAI_KEY"})
    monkeypatch.setenv("MY_OPENAI_KEY", KEY)
    openai_server.answer(Answer(body=oa_text_stream("a")), Answer(body=oa_text_stream("b")))
    open_session(OpenAIProvider(), base_url=openai_server.url, api_key_env="MY_OPENAI_KEY").complete(USER, [])
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-default-env")
    open_session(OpenAIProvider(), base_url=openai_server.url).complete(USER, [])
    assert [r["headers"]["authorization"] for r in openai_server.requests] == [f"Bearer {KEY}", "Bearer sk-from-default-env"]


def test_openai_model_and_option_checks():
    with pytest.raises(ProviderError, match="no model given"):
        OpenAIProvider().open(model=None, options={"base_url": "http://127.0.0.1:1/v1"})
    settings = OpenAIProvider().open(model=None, options={"base_url": "http://127.0.0.1:1/v1", "model": "from-options", "timeout_s": "30"}).settings
    assert (settings.model, settings.timeout_s) == ("from-options", 30)
    for bad in ({"timeout_s": "soon"}, {"timeout_s": 0}, {"timeout_s": float("inf")}, {"max_tokens": 1.5}, {"max_retries": -1}, {"extra_headers": ["x"]}, {"temperature": True}, {"max_tokens_param": "tokens"}):
        with pytest.raises(ProviderError, match="provider_options") as info:
            OpenAIProvider().open(model="m", options={"base_url": "http://127.0.0.1:1/v1", **bad})
        assert not info.value.retryable


def test_options_given_as_text_like_godelctl_option_gives_them(anthropic_server, open_session):
    session = open_session(AnthropicProvider(), base_url=anthropic_server.url, max_tokens="2048", temperature="0.5", timeout_s="60",
                           prompt_cache="false", extra_body='{"top_k": 5}', extra_headers='{"x-a": "1"}')
    body = session.request_body(USER, [])
    assert (body["max_tokens"], body["temperature"], body["top_k"], session.settings.timeout_s, session.prompt_cache) == (2048, 0.5, 5, 60, False)
    assert session.settings.extra_headers == {"x-a": "1"}
    with pytest.raises(ProviderError, match="prompt_cache must be true or false"):
        AnthropicProvider().open(model="m", options={"base_url": anthropic_server.url, "prompt_cache": "maybe"})


# == anthropic =================================================================================


def test_anthropic_streams_text_with_usage_and_headers(anthropic_server, open_session):
    events = [an_start(input_tokens=1200, cache_read=3000, cache_write=450), {"type": "ping"}, *an_text_block(0, "Hi", " there", ", friend."), *an_end("end_turn", output_tokens=9)]
    anthropic_server.answer(Answer(body=an_sse(events), piece=9))
    deltas = []
    turn = open_session(AnthropicProvider(), model="claude-sonnet-4-5", api_key=KEY, base_url=anthropic_server.url).complete(
        [{"role": "system", "content": "Be brief."}, *USER], [], on_text=deltas.append)
    assert deltas == ["Hi", " there", ", friend."] and turn.text == "Hi there, friend."
    assert (turn.stop_reason, turn.model) == ("end_turn", "claude-test-4-5")
    u = turn.usage
    assert (u.input_tokens, u.cache_read_tokens, u.cache_write_tokens, u.output_tokens) == (1200, 3000, 450, 9)
    request = anthropic_server.requests[0]
    assert request["path"] == "/v1/messages"
    headers = request["headers"]
    assert (headers["x-api-key"], headers["anthropic-version"], headers["content-type"]) == (KEY, "2023-06-01", "application/json") and "authorization" not in headers
    assert request["body"] == {"model": "claude-sonnet-4-5", "max_tokens": 4096, "stream": True, "system": "Be brief.", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}


def test_anthropic_tool_use_with_input_split_across_many_deltas(anthropic_server, open_session):
    args = {"command": "pytest -q tests/test_x.py::test_y", "env": {"A": "1"}}
    events = [an_start(), *an_text_block(0, "Running it."), *an_tool_block(1, "toolu_01A", "run_command", json.dumps(args), step=2), *an_end("tool_use", 40)]
    anthropic_server.answer(Answer(body=an_sse(events), piece=13))
    turn = open_session(AnthropicProvider(), base_url=anthropic_server.url).complete(USER, TOOLS)
    assert [(c.id, c.name, c.args) for c in turn.tool_calls] == [("toolu_01A", "run_command", args)]
    assert (turn.text, turn.stop_reason) == ("Running it.", "tool_use")


def test_anthropic_two_parallel_tool_uses(anthropic_server, open_session):
    events = [an_start(), *an_tool_block(0, "toolu_1", "read_file", '{"path": "a.py"}', 5), *an_tool_block(1, "toolu_2", "read_file", '{"path": "b.py"}', 5),
              *an_tool_block(2, "toolu_3", "list_dir", "", 5), *an_end("tool_use")]
    anthropic_server.answer(Answer(body=an_sse(events)))
    turn = open_session(AnthropicProvider(), base_url=anthropic_server.url).complete(USER, TOOLS)
    assert [(c.id, c.args) for c in turn.tool_calls] == [("toolu_1", {"path": "a.py"}), ("toolu_2", {"path": "b.py"}), ("toolu_3", {})]
    assert turn.text == ""


def test_anthropic_conversation_round_trip(anthropic_server, open_session):
    anthropic_server.answer(Answer(body=an_sse([an_start(), *an_text_block(0, "Done."), *an_end()])))
    session = open_session(AnthropicProvider(), model="claude-haiku-4-5", base_url=anthropic_server.url, max_tokens=1000, temperature=0,
                           extra_headers={"anthropic-beta": "some-beta"})
    session.complete([{"role": "system", "content": "Rules."}, *CONVERSATION], TOOLS)
    request = anthropic_server.requests[0]
    assert request["headers"]["anthropic-beta"] == "some-beta" and "x-api-key" not in request["headers"]
    body = request["body"]
    assert body["system"] == "Rules.\n\nYou are a coding agent."
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Fix the bug."}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Looking."},
                                          {"type": "tool_use", "id": "call_a", "name": "read_file", "input": {"path": "a.py"}},
                                          {"type": "tool_use", "id": "call_b", "name": "read_file", "input": {"path": "b.py"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_a", "content": "print(1)", "is_error": False},
                                     {"type": "tool_result", "tool_use_id": "call_b", "content": "no such file: b.py", "is_error": True},
                                     {"type": "text", "text": "Also add a test."}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "call_c", "name": "run_command", "input": {"command": "pytest -q"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_c", "content": "1 passed", "is_error": False}]},
    ]
    assert body["tools"] == [{"name": t.name, "description": t.description, "input_schema": t.parameters} for t in TOOLS]
    assert (body["max_tokens"], body["temperature"], body["model"]) == (1000, 0, "claude-haiku-4-5")


def test_anthropic_prompt_cache_marks_breakpoints(anthropic_server, open_session):
    session = open_session(AnthropicProvider(), base_url=anthropic_server.url, prompt_cache=True)
    body = session.request_body(CONVERSATION, TOOLS)
    assert body["system"] == [{"type": "text", "text": "You are a coding agent.", "cache_control": {"type": "ephemeral"}}]
    assert body["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    marked = [b for m in body["messages"] for b in m["content"] if "cache_control" in b]
    assert len(marked) == 1 and "cache_control" not in body["tools"][-1]


def test_anthropic_cumulative_usage_in_message_delta_wins(anthropic_server, open_session):
    # Gateways send input_tokens 0 at the start and the real counts in message_delta.
    events = [an_start(input_tokens=0), *an_text_block(0, "x"), *an_end("max_tokens", 77, input_tokens=310, cache_read_input_tokens=5)]
    anthropic_server.answer(Answer(body=an_sse(events, newline="\r\n")))  # CRLF line ends are valid SSE too
    turn = open_session(AnthropicProvider(), base_url=anthropic_server.url).complete(USER, [])
    assert (turn.usage.input_tokens, turn.usage.output_tokens, turn.usage.cache_read_tokens, turn.stop_reason) == (310, 77, 5, "max_tokens")


@pytest.mark.parametrize("status,kind,retryable", [(400, "invalid_request_error", False), (401, "authentication_error", False), (403, "permission_error", False),
                                                   (404, "not_found_error", False), (429, "rate_limit_error", True), (500, "api_error", True), (529, "overloaded_error", True)])
def test_anthropic_http_errors_are_classified(anthropic_server, open_session, status, kind, retryable):
    anthropic_server.answer(json_answer(status, {"type": "error", "error": {"type": kind, "message": f"anthropic refuses ({status})"}, "request_id": "req_011"}))
    with pytest.raises(ProviderError) as info:
        open_session(AnthropicProvider(), base_url=anthropic_server.url, api_key=KEY).complete(USER, [])
    err = info.value
    assert (err.retryable, err.status) == (retryable, status)
    assert str(err).startswith(f"anthropic: HTTP {status}") and f"anthropic refuses ({status}) ({kind})" in str(err)
    assert KEY not in str(err) and KEY not in repr(err)


def test_anthropic_overloaded_error_event_mid_stream_is_retryable(anthropic_server, open_session):
    events = [an_start(), *an_text_block(0, "Start")[:2], {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}]
    anthropic_server.answer(Answer(body=an_sse(events)))
    with pytest.raises(ProviderError) as info:
        open_session(AnthropicProvider(), base_url=anthropic_server.url).complete(USER, [])
    assert info.value.retryable and str(info.value) == "anthropic: overloaded_error: Overloaded"


def test_anthropic_invalid_request_error_event_is_not_retryable(anthropic_server, open_session):
    anthropic_server.answer(Answer(body=an_sse([{"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}}])))
    with pytest.raises(ProviderError) as info:
        open_session(AnthropicProvider(), base_url=anthropic_server.url).complete(USER, [])
    assert not info.value.retryable


def test_anthropic_connection_refused_and_truncated_stream_are_retryable(anthropic_server, open_session):
    with pytest.raises(ProviderError) as info:
        open_session(AnthropicProvider(), base_url=refused_url()).complete(USER, [])
    assert info.value.retryable
    anthropic_server.answer(Answer(body=an_sse([an_start(), *an_text_block(0, "no end")])))
    with pytest.raises(ProviderError, match="ended before the answer was complete") as info:
        open_session(AnthropicProvider(), base_url=anthropic_server.url).complete(USER, [])
    assert info.value.retryable


def test_anthropic_malformed_tool_input_becomes_raw(anthropic_server, open_session):
    events = [an_start(), *an_tool_block(0, "toolu_9", "read_file", '{"path": "a.py"', 4), *an_end("max_tokens")]
    anthropic_server.answer(Answer(body=an_sse(events)))
    turn = open_session(AnthropicProvider(), base_url=anthropic_server.url).complete(USER, TOOLS)
    assert [(c.id, c.args) for c in turn.tool_calls] == [("toolu_9", {"_raw": '{"path": "a.py"'})]


def test_anthropic_base_url_with_v1_and_key_options(anthropic_server, open_session, monkeypatch):
    anthropic_server.answer(Answer(body=an_sse([an_start(), *an_end()])))
    open_session(AnthropicProvider(), base_url=anthropic_server.url + "/v1/").complete(USER, [])
    assert anthropic_server.requests[0]["path"] == "/v1/messages"
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ProviderError, match="set ANTHROPIC_API_KEY or provider_options.api_key_env"):
        AnthropicProvider().open(model="claude-sonnet-4-5", options={})
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    assert AnthropicProvider().open(model="claude-sonnet-4-5", options={}).url == "https://api.anthropic.com/v1/messages"


# == both ======================================================================================


def _error_paths(server: LLMServer, provider: str) -> list[tuple[dict, list[Answer]]]:
    """(extra options, answers) that drive every error path; servers echo the key where they can."""
    echo = f"invalid x-api-key {KEY}"
    if provider == "openai":
        mid_stream = Answer(body=oa_sse([oa_chunk({"content": "a"}), {"error": {"message": echo}}], done=False))
        broken = Answer(body=b"data: {not json " + KEY.encode() + b"\n\n")
    else:
        mid_stream = Answer(body=an_sse([an_start(), {"type": "error", "error": {"type": "overloaded_error", "message": echo}}]))
        broken = Answer(body=b"event: message_start\ndata: {" + KEY.encode() + b"\n\n")
    return [
        ({}, [json_answer(401, {"error": {"type": "authentication_error", "message": echo}})]),
        ({}, [json_answer(429, {"error": {"message": echo}})]),
        ({}, [Answer(500, echo.encode(), "text/plain")]),
        ({}, [json_answer(529, {"type": "error", "error": {"type": "overloaded_error", "message": echo}})]),
        ({}, [mid_stream]),
        ({}, [broken]),
        ({}, [Answer(200, json.dumps({"error": {"message": echo}}).encode(), "application/json")]),
        ({"max_retries": 1}, [json_answer(503, {"error": {"message": echo}}, headers={"retry-after": "0"}), json_answer(503, {"error": {"message": echo}}, headers={"retry-after": "0"})]),
        ({"timeout_s": 0.2}, [Answer(body=b": keep-alive\n\n" * 4, piece=4, stall_s=1.0)]),
        ({"base_url": refused_url()}, []),
        ({"base_url": "ftp://127.0.0.1/"}, []),
    ]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_the_key_never_appears_in_an_error(provider, open_session):
    server = LLMServer("/v1" if provider == "openai" else "")
    plugin = OpenAIProvider() if provider == "openai" else AnthropicProvider()
    try:
        paths = _error_paths(server, provider)
        for options, answers in paths:
            server.answer(*answers)
            session = open_session(plugin, **{"base_url": server.url, "api_key": KEY, **options})
            with pytest.raises(ProviderError) as info:
                session.complete(USER, [])
            err = info.value
            for text in (str(err), repr(err), err.message, repr(err.args)):
                assert KEY not in text, (options, text)
            assert err.__cause__ is None and err.__suppress_context__, "no chained exception to print the key either"
        assert sum(KEY in r["headers"].get("authorization", r["headers"].get("x-api-key", "")) for r in server.requests) == 10  # the key did go where it belongs
    finally:
        server.close()


def test_the_plugins_register_api_providers_and_import_without_httpx():
    found = {}
    for module in (openai_plugin, anthropic_plugin):
        module.register_providers(register=lambda name, obj: found.__setitem__(name, obj))
    assert sorted(found) == ["anthropic", "openai"] and all(p.kind == "api" for p in found.values())
    code = "import sys, godeld.default_plugins.providers.openai, godeld.default_plugins.providers.anthropic; print('httpx' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_sse_parser_follows_the_event_stream_rules():
    lines = [": comment", "event: a", "data: one", "data:two", "data:  three", "id: 7", "", "", "data: x", "retry: 10", "", "event: empty", "", "data: tail"]
    assert list(parse_events(lines)) == [Event("a", "one\ntwo\n three"), Event("message", "x"), Event("message", "tail")]
    parser = SSEParser()
    assert parser.feed("data: {}") is None and parser.feed("") == Event("message", "{}") and parser.finish() is None
