"""The `openai` provider: OpenAI Chat Completions, and every server that speaks it (vLLM,
llama.cpp's llama-server, Ollama, LM Studio, OpenRouter, ...) through `base_url`.

It streams (`stream: true` with `stream_options.include_usage`) and also accepts a server that
ignores `stream` and answers one JSON body. Tool calls arrive as fragments keyed by `index`;
their JSON arguments are assembled across chunks.

Usage: `input_tokens` is the prompt *minus* its cached part (`prompt_tokens_details.cached_tokens`,
counted as `cache_read_tokens`), so that each prompt token is priced once, at the input or the
cache-read price. OpenAI caches automatically and does not bill cache writes: cache_write_tokens
is 0. A server that reports no usage gives zeros. See docs/providers.md.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Callable

from godeld import hookimpl
from godeld.agents.llm import ProviderError, ToolCall, ToolSpec, Turn, Usage
from godeld.default_plugins.providers._http import Reply, Settings, Transport, count, is_retryable_status, load_json, merge_body, parse_tool_args, read_settings

NAME = "openai"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"


# -- requests ----------------------------------------------------------------------------------


def to_openai_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """godel's messages (see godeld.agents.llm) in Chat Completions form."""
    out = []
    for m in messages:
        if m["role"] == "assistant":
            msg: dict[str, Any] = {"role": "assistant", "content": m.get("content") or None}  # null, not "", beside tool calls
            if m.get("tool_calls"):
                msg["tool_calls"] = [_tool_call(c) for c in m["tool_calls"]]
            out.append(msg)
        elif m["role"] == "tool":
            out.append({"role": "tool", "tool_call_id": m["tool_call_id"], "content": _tool_result(m)})
        else:
            out.append({"role": m["role"], "content": m.get("content") or ""})
    return out


def _tool_call(call: dict[str, Any]) -> dict[str, Any]:
    # Arguments always go back as valid JSON, even the {"_raw": ...} of a malformed call:
    # some servers parse them and would reject the whole conversation otherwise.
    return {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": json.dumps(call.get("args") or {})}}


def _tool_result(m: dict[str, Any]) -> str:
    # Chat Completions has no is_error flag (Anthropic's tool_result has): say it in the text.
    content = m.get("content") or ""
    return f"error: {content}" if m.get("is_error") else content


def to_openai_tools(tools: list[ToolSpec]) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}} for t in tools]


# -- answers -----------------------------------------------------------------------------------


def parse_usage(data: dict[str, Any] | None) -> Usage:
    if not data:
        return Usage()
    cached = count((data.get("prompt_tokens_details") or {}).get("cached_tokens"))
    prompt = count(data.get("prompt_tokens"))
    return Usage(input_tokens=max(0, prompt - cached), output_tokens=count(data.get("completion_tokens")), cache_read_tokens=cached)


def raise_stream_error(error: Any) -> None:
    """An error object sent inside a 200 stream or body (OpenAI, vLLM and llama.cpp do this)."""
    if isinstance(error, dict):
        code = error.get("code")
        status = code if isinstance(code, int) else None
        message = error.get("message") or json.dumps(error)
    else:
        status, message = None, str(error)
    # Without a status it is most likely the server failing mid-answer: worth another try.
    raise ProviderError(f"{NAME}: error in the answer: {message}", retryable=status is None or is_retryable_status(status), status=status)


class ChunkAccumulator:
    """Builds a Turn from streamed `chat.completion.chunk` objects."""

    def __init__(self, model: str, on_text: Callable[[str], None]):
        self.turn = Turn(model=model)
        self.on_text = on_text
        self.texts: list[str] = []
        self.calls: dict[int, dict[str, str]] = {}
        self.finished = False

    def feed(self, chunk: Any) -> None:
        if not isinstance(chunk, dict):
            raise ProviderError(f"{NAME}: a stream chunk is not an object: {str(chunk)[:200]}", retryable=True)
        if chunk.get("error"):
            raise_stream_error(chunk["error"])
        self.turn.model = chunk.get("model") or self.turn.model
        if chunk.get("usage"):
            self.turn.usage = parse_usage(chunk["usage"])  # the last one wins: some servers send running totals
        for choice in chunk.get("choices") or []:  # [] or null on the final usage chunk
            if choice.get("index", 0) == 0:
                self._choice(choice)

    def _choice(self, choice: dict[str, Any]) -> None:
        delta = choice.get("delta") or {}
        if delta.get("content"):
            self.texts.append(delta["content"])
            self.on_text(delta["content"])
        for fragment in delta.get("tool_calls") or []:
            self._tool_fragment(fragment)
        if choice.get("finish_reason"):
            self.turn.stop_reason = choice["finish_reason"]
            self.finished = True

    def _tool_fragment(self, fragment: dict[str, Any]) -> None:
        index = fragment.get("index")
        if not isinstance(index, int):
            index = self._index_of(fragment)
        slot = self.calls.setdefault(index, {"id": "", "name": "", "args": ""})
        slot["id"] = slot["id"] or fragment.get("id") or ""
        function = fragment.get("function") or {}
        slot["name"] = slot["name"] or function.get("name") or ""
        slot["args"] += function.get("arguments") or ""

    def _index_of(self, fragment: dict[str, Any]) -> int:
        """Where a fragment without `index` belongs (servers that send each call whole): a new
        call when it brings a new id or a name, else a continuation of the last call."""
        if not self.calls:
            return 0
        last = max(self.calls)
        known = {slot["id"] for slot in self.calls.values()}
        new_id = bool(fragment.get("id")) and fragment["id"] not in known
        new_name = bool((fragment.get("function") or {}).get("name")) and bool(self.calls[last]["name"])
        return last + 1 if new_id or new_name else last

    def result(self) -> Turn:
        self.turn.text = "".join(self.texts)
        self.turn.tool_calls = [ToolCall(id=c["id"] or new_call_id(), name=c["name"], args=parse_tool_args(c["args"])) for _, c in sorted(self.calls.items())]
        return self.turn


def new_call_id() -> str:
    # Some servers send calls without an id; the tool loop needs one to pair each result with
    # its call, unique across the conversation.
    return f"call_{uuid.uuid4().hex[:24]}"


def turn_from_completion(data: Any, model: str, on_text: Callable[[str], None]) -> Turn:
    """A Turn from a whole (non-streamed) `chat.completion` body."""
    if not isinstance(data, dict):
        raise ProviderError(f"{NAME}: the answer is not a chat completion: {str(data)[:200]}", retryable=True)
    if data.get("error"):
        raise_stream_error(data["error"])
    choice = (data.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    text = message.get("content") or ""
    if text:
        on_text(text)
    calls = []
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        arguments = function.get("arguments")
        raw = arguments if isinstance(arguments, str) else json.dumps(arguments or {})  # Ollama has sent objects
        calls.append(ToolCall(id=call.get("id") or new_call_id(), name=function.get("name") or "", args=parse_tool_args(raw)))
    return Turn(text=text, tool_calls=calls, usage=parse_usage(data.get("usage")), model=data.get("model") or model, stop_reason=choice.get("finish_reason") or "")


# -- the session -------------------------------------------------------------------------------


class OpenAISession:
    def __init__(self, settings: Settings, *, max_tokens_param: str):
        self.settings = settings
        self.max_tokens_param = max_tokens_param
        headers = {"content-type": "application/json", "accept": "text/event-stream"}
        if settings.api_key:
            headers["authorization"] = f"Bearer {settings.api_key}"
        self.transport = Transport(settings, headers)
        self.url = f"{settings.base_url}/chat/completions"

    def request_body(self, messages: list[dict[str, Any]], tools: list[ToolSpec]) -> dict[str, Any]:
        s = self.settings
        body: dict[str, Any] = {"model": s.model, "messages": to_openai_messages(messages), "stream": True, "stream_options": {"include_usage": True}}
        if tools:
            body["tools"] = to_openai_tools(tools)
        if s.max_tokens is not None:
            body[self.max_tokens_param] = s.max_tokens
        if s.temperature is not None:
            body["temperature"] = s.temperature
        return merge_body(body, s.extra_body)

    def complete(self, messages: list[dict[str, Any]], tools: list[ToolSpec], on_text: Callable[[str], None] | None = None) -> Turn:
        return self.transport.post(self.url, self.request_body(messages, tools), self._read, on_text)

    def _read(self, reply: Reply, on_text: Callable[[str], None]) -> Turn:
        if reply.is_json:
            return turn_from_completion(reply.json(), self.settings.model, on_text)
        acc = ChunkAccumulator(self.settings.model, on_text)
        done = seen = False
        for event in reply.events():
            seen = True
            if event.data.strip() == "[DONE]":
                done = True
                break
            acc.feed(load_json(NAME, event.data))
        if not (done or acc.finished):
            where = "" if seen else f" (no event at all; content-type {reply.content_type or 'none'}: is base_url right?)"
            raise ProviderError(f"{NAME}: the stream ended before the answer was complete{where}", retryable=True)
        return acc.result()

    def close(self) -> None:
        self.transport.close()


class OpenAIProvider:
    kind = "api"
    default_model = ""

    def open(self, *, model: str | None, options: dict[str, Any]) -> OpenAISession:
        settings = read_settings(NAME, model=model, options=options, default_base_url=DEFAULT_BASE_URL, default_key_env=DEFAULT_KEY_ENV)
        return OpenAISession(settings, max_tokens_param=max_tokens_param(settings.base_url, options))


def max_tokens_param(base_url: str, options: dict[str, Any]) -> str:
    """OpenAI's own API wants `max_completion_tokens` (reasoning models reject `max_tokens`);
    compatible servers mostly know only `max_tokens`. `max_tokens_param` overrides."""
    chosen = options.get("max_tokens_param") or ("max_completion_tokens" if base_url == DEFAULT_BASE_URL else "max_tokens")
    if chosen not in ("max_tokens", "max_completion_tokens"):
        raise ProviderError(f"{NAME}: provider_options.max_tokens_param must be max_tokens or max_completion_tokens")
    return chosen


@hookimpl
def register_providers(register):
    register(NAME, OpenAIProvider())
