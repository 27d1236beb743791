"""The `anthropic` provider: Anthropic's Messages API, streamed, with tool use.

System messages go to the top-level `system`; tool calls are `tool_use` blocks of the assistant's
message and their results `tool_result` blocks of the next user message; consecutive messages of
one role are merged, as the API requires alternating roles.

Usage: Anthropic's `input_tokens` is already the uncached input; `cache_read_input_tokens` and
`cache_creation_input_tokens` are counted as cache_read_tokens and cache_write_tokens, each priced
at its own rate. The message_delta event's usage is cumulative and may revise message_start's
(gateways such as OpenRouter send the input count only there), so each field keeps the larger.
See docs/providers.md.
"""

from __future__ import annotations

from typing import Any, Callable

from godeld import hookimpl
from godeld.agents.llm import ProviderError, ToolCall, ToolSpec, Turn, Usage
from godeld.default_plugins.providers._http import Reply, Settings, Transport, count, flag, load_json, merge_body, parse_tool_args, read_settings

NAME = "anthropic"
DEFAULT_BASE_URL = "https://api.anthropic.com"
DEFAULT_KEY_ENV = "ANTHROPIC_API_KEY"
API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
RETRYABLE_ERROR_TYPES = frozenset({"overloaded_error", "api_error", "rate_limit_error", "timeout_error"})
EPHEMERAL = {"type": "ephemeral"}


# -- requests ----------------------------------------------------------------------------------


def to_anthropic(messages: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """(system, messages) in Messages API form: system text top-level, tool results as user
    messages with tool_result blocks, consecutive messages of one role merged into one."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system" and m.get("content"))
    out: list[dict[str, Any]] = []
    for m in messages:
        if m["role"] == "system":
            continue
        role, blocks = _blocks(m)
        if not blocks:
            continue  # the API rejects empty messages and empty text blocks
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return system, out


def _blocks(m: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    if m["role"] == "assistant":
        blocks = [{"type": "text", "text": m["content"]}] if m.get("content") else []
        # `input` must be an object; a malformed call's {"_raw": ...} is one.
        blocks += [{"type": "tool_use", "id": c["id"], "name": c["name"], "input": c.get("args") or {}} for c in m.get("tool_calls") or []]
        return "assistant", blocks
    if m["role"] == "tool":
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": m["tool_call_id"]}
        if m.get("content"):
            block["content"] = m["content"]
        block["is_error"] = bool(m.get("is_error"))
        return "user", [block]
    return "user", [{"type": "text", "text": m["content"]}] if m.get("content") else []


def to_anthropic_tools(tools: list[ToolSpec]) -> list[dict[str, Any]]:
    return [{"name": t.name, "description": t.description, "input_schema": t.parameters} for t in tools]


def add_cache_breakpoints(body: dict[str, Any]) -> None:
    """Prompt caching (option prompt_cache): mark the end of the tools-and-system prefix and the
    end of the conversation, so the next turn reads everything up to here from the cache."""
    if body.get("system"):
        body["system"] = [{"type": "text", "text": body["system"], "cache_control": EPHEMERAL}]
    elif body.get("tools"):
        body["tools"][-1] = {**body["tools"][-1], "cache_control": EPHEMERAL}
    if body["messages"]:
        content = body["messages"][-1]["content"]
        content[-1] = {**content[-1], "cache_control": EPHEMERAL}


# -- answers -----------------------------------------------------------------------------------


def merge_usage(usage: Usage, data: dict[str, Any] | None) -> None:
    """Fold a usage object into `usage`. Counts are cumulative, so the larger one is the newer."""
    data = data or {}
    usage.input_tokens = max(usage.input_tokens, count(data.get("input_tokens")))
    usage.output_tokens = max(usage.output_tokens, count(data.get("output_tokens")))
    usage.cache_read_tokens = max(usage.cache_read_tokens, count(data.get("cache_read_input_tokens")))
    usage.cache_write_tokens = max(usage.cache_write_tokens, count(data.get("cache_creation_input_tokens")))


def api_error(error: Any) -> ProviderError:
    """An `error` event in the stream (or body): overloaded and server errors are retryable."""
    error = error if isinstance(error, dict) else {"message": str(error)}
    kind = str(error.get("type") or "error")
    return ProviderError(f"{NAME}: {kind}: {error.get('message') or 'no message'}", retryable=kind in RETRYABLE_ERROR_TYPES)


class EventAccumulator:
    """Builds a Turn from the stream's events: message_start, content_block_start/_delta/_stop,
    message_delta, message_stop; ping and unknown events are ignored."""

    def __init__(self, model: str, on_text: Callable[[str], None]):
        self.turn = Turn(model=model)
        self.on_text = on_text
        self.blocks: dict[int, dict[str, Any]] = {}
        self.stopped = False

    def feed(self, kind: str, data: dict[str, Any]) -> None:
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            handler(data)

    def _on_error(self, data: dict[str, Any]) -> None:
        raise api_error(data.get("error"))

    def _on_message_start(self, data: dict[str, Any]) -> None:
        message = data.get("message") or {}
        self.turn.model = message.get("model") or self.turn.model
        merge_usage(self.turn.usage, message.get("usage"))

    def _on_content_block_start(self, data: dict[str, Any]) -> None:
        block = data.get("content_block") or {}
        # A tool_use block starts with `input: {}`; its real input streams as partial JSON.
        self.blocks[_index(data)] = {"type": block.get("type"), "id": block.get("id") or "", "name": block.get("name") or "", "text": block.get("text") or "", "json": "", "input": block.get("input")}

    def _on_content_block_delta(self, data: dict[str, Any]) -> None:
        delta = data.get("delta") or {}
        slot = self.blocks.setdefault(_index(data), {"type": "text", "id": "", "name": "", "text": "", "json": "", "input": None})
        if delta.get("type") == "text_delta" and delta.get("text"):
            slot["text"] += delta["text"]
            self.on_text(delta["text"])
        elif delta.get("type") == "input_json_delta":
            slot["json"] += delta.get("partial_json") or ""
        # thinking_delta / signature_delta: thinking is not requested, and not kept if sent

    def _on_message_delta(self, data: dict[str, Any]) -> None:
        self.turn.stop_reason = (data.get("delta") or {}).get("stop_reason") or self.turn.stop_reason
        merge_usage(self.turn.usage, data.get("usage"))

    def _on_message_stop(self, data: dict[str, Any]) -> None:
        self.stopped = True

    @property
    def complete(self) -> bool:
        return self.stopped or bool(self.turn.stop_reason)

    def result(self) -> Turn:
        ordered = [b for _, b in sorted(self.blocks.items())]
        self.turn.text = "".join(b["text"] for b in ordered if b["type"] == "text")
        self.turn.tool_calls = [ToolCall(id=b["id"], name=b["name"], args=_tool_input(b)) for b in ordered if b["type"] == "tool_use"]
        return self.turn


def _index(data: dict[str, Any]) -> int:
    index = data.get("index")
    return index if isinstance(index, int) else 0


def _tool_input(block: dict[str, Any]) -> dict[str, Any]:
    if block["json"].strip():
        return parse_tool_args(block["json"])
    given = block.get("input")
    return given if isinstance(given, dict) else {}  # sent whole by a proxy, or a tool without arguments


def turn_from_message(data: Any, model: str, on_text: Callable[[str], None]) -> Turn:
    """A Turn from a whole (non-streamed) Message body, as some proxies answer."""
    if not isinstance(data, dict):
        raise ProviderError(f"{NAME}: the answer is not a message: {str(data)[:200]}", retryable=True)
    if data.get("type") == "error" or data.get("error"):
        raise api_error(data.get("error"))
    turn = Turn(model=data.get("model") or model, stop_reason=data.get("stop_reason") or "")
    merge_usage(turn.usage, data.get("usage"))
    texts = []
    for block in data.get("content") or []:
        if block.get("type") == "text" and block.get("text"):
            texts.append(block["text"])
        elif block.get("type") == "tool_use":
            turn.tool_calls.append(ToolCall(id=block.get("id") or "", name=block.get("name") or "", args=block["input"] if isinstance(block.get("input"), dict) else {}))
    turn.text = "".join(texts)
    if turn.text:
        on_text(turn.text)
    return turn


# -- the session -------------------------------------------------------------------------------


class AnthropicSession:
    def __init__(self, settings: Settings, *, prompt_cache: bool = False):
        self.settings = settings
        self.prompt_cache = prompt_cache
        headers = {"content-type": "application/json", "accept": "text/event-stream", "anthropic-version": API_VERSION}
        if settings.api_key:
            headers["x-api-key"] = settings.api_key
        self.transport = Transport(settings, headers)  # extra_headers may override anthropic-version or add anthropic-beta
        self.url = f"{settings.base_url}/v1/messages"

    def request_body(self, messages: list[dict[str, Any]], tools: list[ToolSpec]) -> dict[str, Any]:
        s = self.settings
        system, msgs = to_anthropic(messages)
        body: dict[str, Any] = {"model": s.model, "max_tokens": s.max_tokens, "messages": msgs, "stream": True}
        if system:
            body["system"] = system
        if tools:
            body["tools"] = to_anthropic_tools(tools)
        if s.temperature is not None:
            body["temperature"] = s.temperature
        if self.prompt_cache:
            add_cache_breakpoints(body)
        return merge_body(body, s.extra_body)

    def complete(self, messages: list[dict[str, Any]], tools: list[ToolSpec], on_text: Callable[[str], None] | None = None) -> Turn:
        return self.transport.post(self.url, self.request_body(messages, tools), self._read, on_text)

    def _read(self, reply: Reply, on_text: Callable[[str], None]) -> Turn:
        if reply.is_json:
            return turn_from_message(reply.json(), self.settings.model, on_text)
        acc = EventAccumulator(self.settings.model, on_text)
        seen = False
        for event in reply.events():
            seen = True
            data = load_json(NAME, event.data)
            if not isinstance(data, dict):
                raise ProviderError(f"{NAME}: an event's data is not an object: {event.data[:200]}", retryable=True)
            acc.feed(str(data.get("type") or event.event), data)
            if acc.stopped:
                break
        if not acc.complete:
            where = "" if seen else f" (no event at all; content-type {reply.content_type or 'none'}: is base_url right?)"
            raise ProviderError(f"{NAME}: the stream ended before the answer was complete{where}", retryable=True)
        return acc.result()

    def close(self) -> None:
        self.transport.close()


class AnthropicProvider:
    kind = "api"
    default_model = ""

    def open(self, *, model: str | None, options: dict[str, Any]) -> AnthropicSession:
        base_url = str(options.get("base_url") or "").rstrip("/")
        if base_url.endswith("/v1"):
            options = {**options, "base_url": base_url[:-3]}  # the path /v1/messages is added here
        settings = read_settings(NAME, model=model, options=options, default_base_url=DEFAULT_BASE_URL, default_key_env=DEFAULT_KEY_ENV, default_max_tokens=DEFAULT_MAX_TOKENS)
        return AnthropicSession(settings, prompt_cache=flag(NAME, options, "prompt_cache", False))


@hookimpl
def register_providers(register):
    register(NAME, AnthropicProvider())
