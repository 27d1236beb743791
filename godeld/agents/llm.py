"""The provider-neutral vocabulary of an agent's conversation with an LLM.

Providers (`register_providers`) translate it to and from their wire formats. Kept import-light
(stdlib only): the agent worker process imports it, and providers run inside that worker.

Messages, in order, as plain dicts:
  {"role": "system", "content": str}
  {"role": "user", "content": str}
  {"role": "assistant", "content": str, "tool_calls": [{"id": str, "name": str, "args": dict}]}
  {"role": "tool", "tool_call_id": str, "name": str, "content": str, "is_error": bool}
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Literal, Protocol


class ProviderError(Exception):
    """A provider could not answer. `retryable` errors (rate limits, 5xx, connection failures)
    let the fallback chain try the next provider; others (bad request, bad key) do too, but the
    message says so. `status` is the HTTP status when there was one."""

    def __init__(self, message: str, *, retryable: bool = False, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float | None = None  # only when the provider itself reports a cost (CLI agents)

    def add(self, other: "Usage") -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cache_read_tokens += other.cache_read_tokens
        self.cache_write_tokens += other.cache_write_tokens
        if other.cost_usd is not None:
            self.cost_usd = (self.cost_usd or 0.0) + other.cost_usd

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "Usage":
        data = data or {}
        return cls(
            input_tokens=int(data.get("input_tokens") or 0),
            output_tokens=int(data.get("output_tokens") or 0),
            cache_read_tokens=int(data.get("cache_read_tokens") or 0),
            cache_write_tokens=int(data.get("cache_write_tokens") or 0),
            cost_usd=data.get("cost_usd"),
        )


@dataclass
class ToolCall:
    id: str
    name: str
    args: dict[str, Any]


@dataclass
class Turn:
    """One model response: its text, the tools it wants called, and what it cost."""

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    stop_reason: str = ""  # the provider's own word: "stop", "end_turn", "tool_use", "length", ...


@dataclass(frozen=True)
class ToolSpec:
    """A tool offered to the model; `parameters` is a JSON Schema object."""

    name: str
    description: str
    parameters: dict[str, Any]


class ProviderSession(Protocol):
    def complete(self, messages: list[dict[str, Any]], tools: list[ToolSpec], on_text: Callable[[str], None] | None = None) -> Turn:
        """Send the conversation; stream text deltas to `on_text` as they arrive; return the turn.
        Raises ProviderError. Blocking: the worker process is synchronous."""

    def close(self) -> None: ...


class Provider(Protocol):
    """An API provider, registered with `register_providers`: `register(name, provider)`.

    `kind` is "api" for providers driven by godel's own tool loop (this protocol) and "cli" for
    CLI agents (see godeld.agents.cli). `open` is called inside the agent's worker process.
    `options` are the spawn's `provider_options` merged over the config's `providers.<name>`
    (e.g. base_url, api_key_env, api_key, timeout_s, max_tokens)."""

    kind: Literal["api"]

    def open(self, *, model: str | None, options: dict[str, Any]) -> ProviderSession: ...


def resolve_api_key(options: dict[str, Any], default_env: str) -> str | None:
    """The API key: `api_key` (already resolved from config's {"$env": NAME}), else the env var
    named by `api_key_env`, else `default_env`. Never logged."""
    import os

    if options.get("api_key"):
        return str(options["api_key"])
    return os.environ.get(str(options.get("api_key_env") or default_env)) or None
