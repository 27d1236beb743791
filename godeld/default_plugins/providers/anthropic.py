"""The `anthropic` provider: the Messages API over httpx, streaming, with tool use and usage.

Usage: `input_tokens` is Anthropic's uncached input; `cache_read_input_tokens` and
`cache_creation_input_tokens` are counted as cache_read_tokens and cache_write_tokens.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from godeld import hookimpl
from godeld.agents.llm import ProviderError, ToolCall, ToolSpec, Turn, Usage, resolve_api_key
from godeld.default_plugins.providers.openai import _error, _parse_args

DEFAULT_BASE_URL = "https://api.anthropic.com"
VERSION = "2023-06-01"


def to_anthropic(messages: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """(system, messages): system text goes top-level; tool results become user messages with
    tool_result blocks; consecutive messages of one role are merged, as the API requires."""
    system = "\n\n".join(m.get("content", "") for m in messages if m["role"] == "system")
    out: list[dict[str, Any]] = []
    for m in messages:
        if m["role"] == "system":
            continue
        if m["role"] == "assistant":
            blocks: list[dict[str, Any]] = [{"type": "text", "text": m["content"]}] if m.get("content") else []
            blocks += [{"type": "tool_use", "id": c["id"], "name": c["name"], "input": c.get("args") or {}} for c in m.get("tool_calls") or []]
            role = "assistant"
        elif m["role"] == "tool":
            blocks = [{"type": "tool_result", "tool_use_id": m["tool_call_id"], "content": m.get("content", ""), "is_error": bool(m.get("is_error"))}]
            role = "user"
        else:
            blocks = [{"type": "text", "text": m.get("content", "")}]
            role = "user"
        if not blocks:
            continue
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return system, out


class AnthropicSession:
    def __init__(self, *, model: str, options: dict[str, Any]):
        import httpx

        self.model = model
        self.options = options
        base_url = str(options.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
        key = resolve_api_key(options, "ANTHROPIC_API_KEY")
        if not key and base_url == DEFAULT_BASE_URL:
            raise ProviderError("anthropic: no API key: set ANTHROPIC_API_KEY, or provider_options.api_key_env")
        headers = {"content-type": "application/json", "anthropic-version": VERSION, **{str(k): str(v) for k, v in (options.get("extra_headers") or {}).items()}}
        if key:
            headers["x-api-key"] = key
        self.client = httpx.Client(base_url=base_url, headers=headers, timeout=httpx.Timeout(float(options.get("timeout_s") or 300), connect=10.0))

    def complete(self, messages, tools: list[ToolSpec], on_text: Callable[[str], None] | None = None) -> Turn:
        import httpx

        system, msgs = to_anthropic(messages)
        body: dict[str, Any] = {"model": self.model, "messages": msgs, "max_tokens": int(self.options.get("max_tokens") or 4096), "stream": True}
        if system:
            body["system"] = system
        if tools:
            body["tools"] = [{"name": t.name, "description": t.description, "input_schema": t.parameters} for t in tools]
        if self.options.get("temperature") is not None:
            body["temperature"] = self.options["temperature"]
        try:
            with self.client.stream("POST", "/v1/messages", json=body) as response:
                if response.status_code >= 400:
                    raise _error(response.status_code, response.read(), "anthropic")
                return self._from_stream(response.iter_lines(), on_text)
        except httpx.TimeoutException:
            raise ProviderError("anthropic: the request timed out", retryable=True) from None
        except httpx.TransportError as exc:
            raise ProviderError(f"anthropic: cannot reach {self.client.base_url}: {type(exc).__name__}", retryable=True) from None
        except ValueError as exc:
            raise ProviderError(f"anthropic: unreadable answer: {exc}", retryable=True) from None

    def _from_stream(self, lines, on_text) -> Turn:
        turn = Turn(model=self.model)
        blocks: dict[int, dict[str, Any]] = {}
        event = ""
        for line in lines:
            if line.startswith("event:"):
                event = line[6:].strip()
                continue
            if not line.startswith("data:"):
                continue
            data = json.loads(line[5:].strip())
            kind = data.get("type", event)
            if kind == "error":
                err = data.get("error") or {}
                retryable = err.get("type") in ("overloaded_error", "api_error", "rate_limit_error")
                raise ProviderError(f"anthropic: {err.get('type', 'error')}: {err.get('message', '')}", retryable=retryable)
            if kind == "message_start":
                msg = data.get("message") or {}
                turn.model = msg.get("model") or turn.model
                u = msg.get("usage") or {}
                turn.usage = Usage(input_tokens=int(u.get("input_tokens") or 0), output_tokens=int(u.get("output_tokens") or 0),
                                   cache_read_tokens=int(u.get("cache_read_input_tokens") or 0), cache_write_tokens=int(u.get("cache_creation_input_tokens") or 0))
            elif kind == "content_block_start":
                block = data.get("content_block") or {}
                blocks[int(data.get("index", len(blocks)))] = {"type": block.get("type"), "id": block.get("id", ""), "name": block.get("name", ""), "text": block.get("text", ""), "json": ""}
            elif kind == "content_block_delta":
                delta = data.get("delta") or {}
                slot = blocks.setdefault(int(data.get("index", 0)), {"type": "text", "id": "", "name": "", "text": "", "json": ""})
                if delta.get("type") == "text_delta":
                    slot["text"] += delta.get("text", "")
                    if on_text:
                        on_text(delta.get("text", ""))
                elif delta.get("type") == "input_json_delta":
                    slot["json"] += delta.get("partial_json", "")
            elif kind == "message_delta":
                turn.stop_reason = (data.get("delta") or {}).get("stop_reason") or turn.stop_reason
                u = data.get("usage") or {}
                if "output_tokens" in u:
                    turn.usage.output_tokens = int(u["output_tokens"])
            elif kind == "message_stop":
                break
        turn.text = "".join(b["text"] for _, b in sorted(blocks.items()) if b["type"] == "text")
        turn.tool_calls = [ToolCall(id=b["id"], name=b["name"], args=_parse_args(b["json"])) for _, b in sorted(blocks.items()) if b["type"] == "tool_use"]
        return turn

    def close(self) -> None:
        self.client.close()


class AnthropicProvider:
    kind = "api"
    default_model = ""

    def open(self, *, model: str | None, options: dict[str, Any]) -> AnthropicSession:
        model = model or options.get("model")
        if not model:
            raise ProviderError("anthropic: no model given (agents.spawn model, or providers.anthropic.model in the config)")
        return AnthropicSession(model=model, options=options)


@hookimpl
def register_providers(register):
    register("anthropic", AnthropicProvider())
