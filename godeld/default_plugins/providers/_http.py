"""What the HTTP providers share: their options, one streaming POST with its errors mapped to
ProviderError, optional retries, and the rule that the API key never appears in an error.

httpx is imported when a session opens (inside the agent worker), not when godeld loads the
plugins: it costs a tenth of a second and memory the daemon does not need.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping
from urllib.parse import urlsplit, urlunsplit

from godeld.agents.llm import ProviderError, Turn, resolve_api_key
from godeld.default_plugins.providers._sse import Event, parse_events

if TYPE_CHECKING:
    import httpx

DEFAULT_TIMEOUT_S = 300.0
CONNECT_TIMEOUT_S = 10.0
MAX_RETRY_WAIT_S = 30.0
RETRYABLE_STATUSES = frozenset({408, 409, 429})  # and every 5xx, Anthropic's 529 included


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUSES or status >= 500


class HttpProviderError(ProviderError):
    """A ProviderError that may carry the server's Retry-After, in seconds."""

    def __init__(self, message: str, *, retryable: bool = False, status: int | None = None, retry_after: float | None = None):
        super().__init__(message, retryable=retryable, status=status)
        self.retry_after = retry_after


# -- options -----------------------------------------------------------------------------------


DEFAULT_MAX_RETRIES = 2


@dataclass(frozen=True)
class Settings:
    name: str  # the provider's name, first word of every error message
    model: str
    base_url: str
    api_key: str | None = field(repr=False)
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_retries: int = 2
    max_tokens: int | None = None
    temperature: float | None = None
    extra_headers: dict[str, str] = field(default_factory=dict)
    extra_body: dict[str, Any] = field(default_factory=dict)


def read_settings(name: str, *, model: str | None, options: dict[str, Any], default_base_url: str, default_key_env: str, default_max_tokens: int | None = None) -> Settings:
    """The provider's settings from `model` and the merged provider options; ProviderError (not
    retryable) naming the option when one is missing or malformed."""
    model = model or options.get("model")
    if not model:
        raise ProviderError(f"{name}: no model given (agents.spawn model, or providers.{name}.model in the config)")
    base_url = str(options.get("base_url") or default_base_url).rstrip("/")
    api_key = resolve_api_key(options, default_key_env)
    if not api_key and base_url == default_base_url.rstrip("/"):
        # Only the vendor's own endpoint surely needs a key; local servers usually take none.
        env = options.get("api_key_env") or default_key_env
        raise ProviderError(f"{name}: no API key: set {env} or provider_options.api_key_env (or providers.{name}.api_key in the config)")
    return Settings(
        name=name,
        model=str(model),
        base_url=base_url,
        api_key=api_key,
        timeout_s=_number(name, options, "timeout_s", DEFAULT_TIMEOUT_S, positive=True),
        # 2, like the vendors' own SDKs: a 429 or a dropped connection is usually gone a second later
        max_retries=int(_number(name, options, "max_retries", DEFAULT_MAX_RETRIES, integer=True)),
        max_tokens=_optional_int(name, options, "max_tokens", default_max_tokens),
        temperature=_optional_number(name, options, "temperature"),
        extra_headers=_str_dict(name, options, "extra_headers"),
        extra_body=_dict(name, options, "extra_body"),
    )


def _bad(name: str, key: str, what: str) -> ProviderError:
    return ProviderError(f"{name}: provider_options.{key} must be {what}")


def _number(name: str, options: dict[str, Any], key: str, default: float, *, positive: bool = False, integer: bool = False) -> float:
    value = options.get(key)
    if value is None:
        return default
    if isinstance(value, str):
        try:
            value = float(value)  # options set through environment variables arrive as text
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or (integer and value != int(value)):
        raise _bad(name, key, "an integer" if integer else "a number")
    if (positive and value <= 0) or value < 0:
        raise _bad(name, key, "positive" if positive else "zero or more")
    return value


def _optional_int(name: str, options: dict[str, Any], key: str, default: int | None) -> int | None:
    if options.get(key) is None:
        return default
    return int(_number(name, options, key, 0, positive=True, integer=True))


def _optional_number(name: str, options: dict[str, Any], key: str) -> float | None:
    return None if options.get(key) is None else _number(name, options, key, 0)


def flag(name: str, options: dict[str, Any], key: str, default: bool) -> bool:
    """A yes/no option; `godelctl agents spawn --option K=V` gives text."""
    value = options.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise _bad(name, key, "true or false")


def _dict(name: str, options: dict[str, Any], key: str) -> dict[str, Any]:
    value = options.get(key)
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)  # `--option 'extra_body={"top_k": 20}'`
        except ValueError:
            pass
    if not isinstance(value, dict):
        raise _bad(name, key, "an object")
    return dict(value)


def _str_dict(name: str, options: dict[str, Any], key: str) -> dict[str, str]:
    value = _dict(name, options, key)
    if not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value.values()):
        raise _bad(name, key, "an object of strings")
    return {str(k): str(v) for k, v in value.items()}


def merge_body(body: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`extra_body` over the request body; a null in it removes the field (for servers that
    reject one, e.g. stream_options)."""
    merged = {**body, **extra}
    return {k: v for k, v in merged.items() if v is not None}


# -- parsing helpers ---------------------------------------------------------------------------


def parse_tool_args(text: str) -> dict[str, Any]:
    """A tool call's arguments from the model's JSON text. Text that is not a JSON object becomes
    {"_raw": text}: the tool loop answers the model with an error instead of crashing."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {"_raw": text}
    return value if isinstance(value, dict) else {"_raw": text}


def count(value: Any) -> int:
    """A token count from a usage object; servers send null or omit fields."""
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


def api_error_message(body: bytes) -> str:
    """The API's own words from an error body: OpenAI, Anthropic, vLLM, Ollama and FastAPI shapes."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return " ".join(text.split())[:300] or "(empty body)"
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            kind = err.get("type") or err.get("code")
            return f"{err['message']} ({kind})" if isinstance(kind, str) and kind else str(err["message"])
        for candidate in (err, data.get("message"), data.get("detail")):
            if isinstance(candidate, str) and candidate:
                return candidate
    return " ".join(text.split())[:300]


def status_error(name: str, status: int, body: bytes, headers: Mapping[str, str]) -> HttpProviderError:
    try:
        phrase = f" {HTTPStatus(status).phrase}"
    except ValueError:
        phrase = ""  # 529 and other non-standard codes
    hint = {401: " — check the API key", 403: " — check the API key's permissions", 404: " — check base_url and the model name"}.get(status, "")
    if 300 <= status < 400:
        hint = f" — redirected to {headers.get('location', '?')}: check base_url"
    message = f"{name}: HTTP {status}{phrase}: {api_error_message(body)}{hint}"
    return HttpProviderError(message, retryable=is_retryable_status(status), status=status, retry_after=_retry_after(headers))


def _retry_after(headers: Mapping[str, str]) -> float | None:
    for key, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            return max(0.0, float(headers[key]) * scale)
        except (KeyError, ValueError):
            continue  # absent, or an HTTP date: the backoff decides
    return None


def redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "[redacted]") if secret else text


# -- the request -------------------------------------------------------------------------------


class Reply:
    """A successful response, handed to the provider's reader: an event stream or a JSON body."""

    def __init__(self, response: "httpx.Response", name: str, deadline: float, timeout_s: float):
        self._response = response
        self._name = name
        self._deadline = deadline
        self._timeout_s = timeout_s
        self.content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def is_json(self) -> bool:
        return self.content_type.endswith("json")  # a server that ignored stream: true

    def events(self) -> Iterator[Event]:
        return parse_events(self._lines())

    def _lines(self) -> Iterator[str]:
        # httpx's read timeout bounds silence between chunks; this bounds the whole answer.
        for line in self._response.iter_lines():
            if time.monotonic() > self._deadline:
                raise HttpProviderError(f"{self._name}: the answer took longer than timeout_s={self._timeout_s:g}s", retryable=True)
            yield line

    def json(self) -> Any:
        return load_json(self._name, self._response.read().decode("utf-8", errors="replace"))


def load_json(name: str, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        # Usually a cut-off answer; worth another try.
        raise HttpProviderError(f"{name}: unreadable JSON in the answer: {text[:200]!r}", retryable=True) from None


Reader = Callable[[Reply, Callable[[str], None]], Turn]


class Transport:
    """One keep-alive httpx client per agent session, POSTing one request per model turn."""

    def __init__(self, settings: Settings, headers: dict[str, str]):
        import httpx

        self._httpx = httpx
        self.name = settings.name
        self.timeout_s = settings.timeout_s
        self.max_retries = settings.max_retries
        self._secret = settings.api_key
        timeout = httpx.Timeout(settings.timeout_s, connect=min(CONNECT_TIMEOUT_S, settings.timeout_s))
        self.client = httpx.Client(headers={**headers, **settings.extra_headers}, timeout=timeout, follow_redirects=False)

    def post(self, url: str, body: dict[str, Any], read: Reader, on_text: Callable[[str], None] | None) -> Turn:
        """POST `body` and let `read` turn the reply into a Turn. Retryable failures are tried
        again up to max_retries times, but only while no text has reached `on_text` (a retry
        would repeat it)."""
        emitted = False

        def relay(text: str) -> None:
            nonlocal emitted
            emitted = True
            if on_text is not None:
                on_text(text)

        for attempt in range(self.max_retries + 1):
            try:
                return self._attempt(url, body, read, relay)
            except ProviderError as exc:
                error = self._scrubbed(exc)
                if not error.retryable or emitted or attempt == self.max_retries:
                    raise error from None
            time.sleep(_backoff(attempt, getattr(error, "retry_after", None)))
        raise AssertionError("unreachable")

    def _attempt(self, url: str, body: dict[str, Any], read: Reader, on_text: Callable[[str], None]) -> Turn:
        httpx = self._httpx
        deadline = time.monotonic() + self.timeout_s
        try:
            with self.client.stream("POST", url, json=body) as response:
                if not response.is_success:
                    raise status_error(self.name, response.status_code, response.read(), response.headers)
                return read(Reply(response, self.name, deadline, self.timeout_s), on_text)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, url) from None
        except httpx.InvalidURL as exc:
            raise ProviderError(f"{self.name}: invalid base_url: {exc}") from None
        except (TypeError, KeyError, AttributeError, ValueError) as exc:
            # An answer of an unexpected shape (a loosely compatible server): the worker only
            # handles ProviderError, and the fallback chain should get its chance.
            raise ProviderError(f"{self.name}: cannot understand the answer: {type(exc).__name__}: {exc}") from None

    def _transport_error(self, exc: "httpx.HTTPError", url: str) -> ProviderError:
        httpx = self._httpx
        where = _safe_url(url)
        if isinstance(exc, httpx.ConnectTimeout):
            return HttpProviderError(f"{self.name}: connecting to {where} timed out", retryable=True)
        if isinstance(exc, httpx.TimeoutException):
            return HttpProviderError(f"{self.name}: {where} sent nothing for timeout_s={self.timeout_s:g}s", retryable=True)
        if isinstance(exc, (httpx.UnsupportedProtocol, httpx.LocalProtocolError)):
            return ProviderError(f"{self.name}: cannot send to {where}: {exc}")
        return HttpProviderError(f"{self.name}: cannot reach {where}: {type(exc).__name__}: {exc}", retryable=True)

    def _scrubbed(self, exc: ProviderError) -> ProviderError:
        """The error without the API key: a server may echo it, and the message is logged,
        stored in the transcript and shown to users."""
        if not self._secret or self._secret not in exc.message:
            return exc
        return HttpProviderError(redact(exc.message, self._secret), retryable=exc.retryable, status=exc.status, retry_after=getattr(exc, "retry_after", None))

    def close(self) -> None:
        self.client.close()


def _safe_url(url: str) -> str:
    """The URL for a message: without user:password@ or a query, where secrets could hide."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def _backoff(attempt: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(retry_after, MAX_RETRY_WAIT_S)
    return min(8.0, 0.5 * 2**attempt) * random.uniform(0.8, 1.2)  # jitter spreads out 500 agents
