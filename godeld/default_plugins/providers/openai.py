"""The `openai` provider: OpenAI-compatible Chat Completions over httpx, streaming, with tool calls
and usage. `base_url` makes it work with vLLM, llama.cpp's server, Ollama, OpenRouter, ...

Runs inside the agent's worker process, which is synchronous: httpx's sync client.

Usage: `input_tokens` is the prompt minus its cached part (`prompt_tokens_details.cached_tokens`,
counted as `cache_read_tokens`), so each token is priced once.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from godeld import hookimpl
from godeld.agents.llm import ProviderError, ToolCall, ToolSpec, Turn, Usage, resolve_api_key

DEFAULT_BASE_URL = "https://api.openai.com/v1"
RETRYABLE = {408, 409, 429, 500, 502, 503, 504, 529}


def to_openai_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for m in messages:
        if m["role"] == "assistant":
            msg: dict[str, Any] = {"role": "assistant", "content": m.get("content") or None}
            if m.get("tool_calls"):
                msg["tool_calls"] = [{"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": json.dumps(c.get("args") or {})}} for c in m["tool_calls"]]
            out.append(msg)
        elif m["role"] == "tool":
            out.append({"role": "tool", "tool_call_id": m["tool_call_id"], "content": m.get("content", "")})
        else:
            out.append({"role": m["role"], "content": m.get("content", "")})
    return out


def _parse_args(text: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {"_raw": text}  # the loop answers the model with an error; no crash
    return value if isinstance(value, dict) else {"_raw": text}


def _usage(data: dict[str, Any] | None) -> Usage:
    if not data:
        return Usage()
    cached = int(((data.get("prompt_tokens_details") or {}).get("cached_tokens")) or 0)
    return Usage(input_tokens=max(0, int(data.get("prompt_tokens") or 0) - cached), output_tokens=int(data.get("completion_tokens") or 0), cache_read_tokens=cached)


def _error(status: int, body: bytes, name: str = "openai") -> ProviderError:
    message = body.decode(errors="replace")[:500]
    try:
        parsed = json.loads(body)
        err = parsed.get("error") if isinstance(parsed, dict) else None
        if isinstance(err, dict) and err.get("message"):
            message = str(err["message"])
        elif isinstance(err, str):
            message = err
    except ValueError:
        pass
    return ProviderError(f"{name}: HTTP {status}: {message}", retryable=status in RETRYABLE or status >= 500, status=status)


class OpenAISession:
    def __init__(self, *, model: str, options: dict[str, Any], name: str = "openai"):
        import httpx

        self.name = name
        self.model = model
        self.options = options
        base_url = str(options.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
        key = resolve_api_key(options, "OPENAI_API_KEY")
        if not key and base_url == DEFAULT_BASE_URL:
            raise ProviderError(f"{name}: no API key: set OPENAI_API_KEY, or provider_options.api_key_env")
        headers = {"content-type": "application/json", **{str(k): str(v) for k, v in (options.get("extra_headers") or {}).items()}}
        if key:
            headers["authorization"] = f"Bearer {key}"
        timeout = float(options.get("timeout_s") or 300)
        self.client = httpx.Client(base_url=base_url, headers=headers, timeout=httpx.Timeout(timeout, connect=10.0))

    def complete(self, messages, tools: list[ToolSpec], on_text: Callable[[str], None] | None = None) -> Turn:
        import httpx

        body: dict[str, Any] = {"model": self.model, "messages": to_openai_messages(messages), "stream": True, "stream_options": {"include_usage": True}}
        if tools:
            body["tools"] = [{"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}} for t in tools]
        for key in ("max_tokens", "temperature"):
            if self.options.get(key) is not None:
                body[key] = self.options[key]
        try:
            with self.client.stream("POST", "/chat/completions", json=body) as response:
                if response.status_code >= 400:
                    raise _error(response.status_code, response.read(), self.name)
                if "text/event-stream" not in response.headers.get("content-type", ""):
                    return self._from_json(json.loads(response.read()), on_text)
                return self._from_stream(response.iter_lines(), on_text)
        except httpx.TimeoutException:
            raise ProviderError(f"{self.name}: the request timed out", retryable=True) from None
        except httpx.TransportError as exc:
            raise ProviderError(f"{self.name}: cannot reach {self.client.base_url}: {type(exc).__name__}", retryable=True) from None
        except ValueError as exc:
            raise ProviderError(f"{self.name}: unreadable answer: {exc}", retryable=True) from None

    def _from_stream(self, lines, on_text) -> Turn:
        turn = Turn(model=self.model)
        texts: list[str] = []
        calls: dict[int, dict[str, Any]] = {}
        for line in lines:
            if not line.startswith("data:"):
                continue
            payload = line[5:].strip()
            if payload == "[DONE]":
                break
            chunk = json.loads(payload)
            if chunk.get("error"):
                err = chunk["error"]
                raise ProviderError(f"{self.name}: {err.get('message', err) if isinstance(err, dict) else err}", retryable=True)
            turn.model = chunk.get("model") or turn.model
            if chunk.get("usage"):
                turn.usage = _usage(chunk["usage"])
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                if delta.get("content"):
                    texts.append(delta["content"])
                    if on_text:
                        on_text(delta["content"])
                for tc in delta.get("tool_calls") or []:
                    slot = calls.setdefault(int(tc.get("index", len(calls))), {"id": "", "name": "", "args": ""})
                    slot["id"] = tc.get("id") or slot["id"]
                    fn = tc.get("function") or {}
                    slot["name"] = fn.get("name") or slot["name"]
                    slot["args"] += fn.get("arguments") or ""
                if choice.get("finish_reason"):
                    turn.stop_reason = choice["finish_reason"]
        turn.text = "".join(texts)
        turn.tool_calls = [ToolCall(id=c["id"] or f"call_{i}", name=c["name"], args=_parse_args(c["args"])) for i, c in sorted(calls.items())]
        return turn

    def _from_json(self, data: dict[str, Any], on_text) -> Turn:
        choice = (data.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        text = message.get("content") or ""
        if text and on_text:
            on_text(text)
        calls = [ToolCall(id=c.get("id") or f"call_{i}", name=(c.get("function") or {}).get("name", ""), args=_parse_args((c.get("function") or {}).get("arguments") or "")) for i, c in enumerate(message.get("tool_calls") or [])]
        return Turn(text=text, tool_calls=calls, usage=_usage(data.get("usage")), model=data.get("model") or self.model, stop_reason=choice.get("finish_reason") or "")

    def close(self) -> None:
        self.client.close()


class OpenAIProvider:
    kind = "api"
    default_model = ""

    def open(self, *, model: str | None, options: dict[str, Any]) -> OpenAISession:
        model = model or options.get("model")
        if not model:
            raise ProviderError("openai: no model given (agents.spawn model, or providers.openai.model in the config)")
        return OpenAISession(model=model, options=options)


@hookimpl
def register_providers(register):
    register("openai", OpenAIProvider())
