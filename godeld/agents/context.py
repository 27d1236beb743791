"""The context manager: builds each prompt within the model's context window.

Before each model call the worker passes the whole conversation (see `godeld.agents.llm` for the
message format) to `fit`, which returns a `Plan`: the messages to send, what was kept, dropped,
summarized or cut, and the estimated tokens by part. `Plan.to_dict()` is stored with the call.

Stdlib only: the agent worker process imports it.

Counting tokens
---------------
There is no tokenizer library here, so `count_tokens` estimates. It splits the text with one
regular expression into pieces much like the pre-tokenizer of OpenAI's BPE tokenizers
(cl100k_base, o200k_base) does, and charges each piece what BPE typically spends on it:

=====================================  ===============================================
piece                                  tokens
=====================================  ===============================================
ASCII word, split at camelCase humps   1 per started 7 letters ("the" 1, "tokenizer" 2)
number                                 1 per started 3 digits (BPE splits digit groups of 3)
ASCII punctuation run (``_`` included)  1 per started 2 characters ("):" 1, "!" 1)
CJK, kana, hangul, full-width forms    1 per character
other letters (Cyrillic, Greek, ...)   1 per started 3 letters
emoji and other astral characters      2 each; any other character 1
whitespace                             a single space 0 (BPE glues it to the next word);
                                       +1 if it holds a newline, +1 if it holds 2 or more
                                       spaces/tabs (indentation), +1 per 64 characters
=====================================  ===============================================

The sum is then raised by 10% (rounded up) as a safety margin. Calibrated against cl100k_base,
the estimate is typically 5-40% *above* the real count for English prose (≈0.75 words per
token), code and JSON (tests/test_context.py checks samples stay within 0.9-1.6×), and up to
about 2× above for Chinese and Japanese, whose common
words BPE merges into one token (o200k_base counts fewer tokens still). It can be below the real
count for text BPE handles badly (random base64, rare scripts); the `reserve` kept for the
answer absorbs that. Erring high keeps prompts within the window at the cost of a little unused
room. The estimate is deterministic and monotonic: a text never counts fewer tokens than any of
its prefixes. Providers' own usage figures, not this estimate, are what the budget bills.

A message costs its content, the names and JSON arguments of its tool calls (3 each), its tool
call id and name, plus 4 tokens of per-message overhead; a tool spec costs its name, description
and JSON schema plus 8.

Fitting
-------
`fit` keeps the `pinned` leading messages (system prompt, then the task) always, then as much of
the history as fits, newest first, in units: an assistant message with tool calls and the tool
results that follow it go or stay together, since providers reject a tool result without its
call. When the newest unit that does not fit holds long tool results, they are cut from the
middle (head and tail kept, each at least MIN_RESULT_TOKENS) so that the unit can stay; if it
still does not fit, it and everything older is dropped. The dropped span is replaced by one
user message summarizing it (calls, their outcomes, what was said), built without an LLM and
capped at a tenth of the budget. If the pinned messages alone exceed the budget, system messages
are cut from the middle; the task is never cut or dropped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Iterable, Mapping

MESSAGE_OVERHEAD = 4  # role and separators of each message in the provider's chat template
CALL_OVERHEAD = 3  # per tool call: its framing in the provider's format
TOOL_OVERHEAD = 8  # per tool spec: the function/type framing around name, description, schema
MARGIN_PERCENT = 10  # safety margin added to every count_tokens estimate
MIN_RESULT_TOKENS = 200  # a tool result is never cut below this (head + marker + tail)
MIN_SUMMARY_TOKENS = 40  # below this, a summary says too little to be worth its room
SUMMARY_SHARE = 10  # the summary may take at most 1/SUMMARY_SHARE of the budget
SAID_CHARS = 200  # how much of each dropped text the summary quotes

# Known context windows, matched by the longest prefix of the model name (lower-cased, and with
# any "provider/" prefix as in OpenRouter names also tried without it).
WINDOWS: dict[str, int] = {
    "scripted": 200_000,
    "claude-": 200_000,
    "claude-2.0": 100_000,
    "claude-instant": 100_000,
    "gpt-3.5-turbo": 16_385,
    "gpt-4": 8_192,
    "gpt-4-32k": 32_768,
    "gpt-4-turbo": 128_000,
    "gpt-4-1106": 128_000,
    "gpt-4-0125": 128_000,
    "gpt-4o": 128_000,
    "gpt-4.1": 1_047_576,
    "gpt-4.5": 128_000,
    "gpt-5": 400_000,
    "gpt-oss": 131_072,
    "o1": 200_000,
    "o1-mini": 128_000,
    "o1-preview": 128_000,
    "o3": 200_000,
    "o4": 200_000,
    "codex-mini": 200_000,
    "gemini-": 1_048_576,
    "gemini-1.0": 32_760,
    "gemini-pro": 32_760,
    "gemini-1.5": 1_048_576,
    "gemini-2": 1_048_576,
    "qwen2.5": 32_768,
    "qwen2.5-coder": 32_768,
    "qwen3": 32_768,
    "qwen3-coder": 262_144,
    "llama3": 8_192,
    "llama-3": 8_192,
    "llama3.1": 131_072,
    "llama-3.1": 131_072,
    "llama3.2": 131_072,
    "llama-3.2": 131_072,
    "llama3.3": 131_072,
    "llama-3.3": 131_072,
    "deepseek": 128_000,
    "mistral": 32_768,
    "mistral-large": 128_000,
    "mixtral": 32_768,
    "codestral": 256_000,
    "grok-3": 131_072,
    "grok-4": 256_000,
}

# -- counting ----------------------------------------------------------------------------------

_CJK = "\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"
_PIECES = re.compile(
    rf"(?P<cjk>[{_CJK}])"
    r"|(?P<word>[A-Z]?[a-z]+|[A-Z]+(?![a-z]))"  # camelCase and snake_case split like BPE does
    r"|(?P<num>\d+)"
    r"|(?P<space>\s{2,}|[^\S ])"  # a lone space matches nothing: it is free, and skipping it is fast
    r"|(?P<punct>[!-/:-@\[-`{-~]+)"
    rf"|(?P<letters>[^\W\d_A-Za-z{_CJK}]+)"
    r"|(?P<astral>[\U00010000-\U0010ffff])"
    r"|(?P<other>[^ ])",
    re.S,
)


def _space_cost(run: str) -> int:
    newlines = run.count("\n") + run.count("\r")
    # Every term only grows as the run grows, which keeps the estimate monotonic.
    return (1 if newlines else 0) + (1 if len(run) - newlines >= 2 else 0) + len(run) // 64


def _raw(text: str) -> int:
    """The sum of the pieces' costs, before the margin (see the module docstring)."""
    raw = 0
    for m in _PIECES.finditer(text):
        kind = m.lastgroup
        if kind == "word":
            raw += (m.end() - m.start() + 6) // 7
        elif kind == "punct":
            raw += (m.end() - m.start() + 1) // 2
        elif kind == "space":
            raw += _space_cost(m.group())
        elif kind == "num" or kind == "letters":
            raw += (m.end() - m.start() + 2) // 3
        elif kind == "astral":
            raw += 2
        else:  # cjk, other
            raw += 1
    return raw


def _with_margin(raw: int) -> int:
    return (raw * (100 + MARGIN_PERCENT) + 99) // 100


def _estimate(text: str) -> int:
    """The uncached estimate."""
    return _with_margin(_raw(text))


@lru_cache(maxsize=4096)
def _cached(text: str) -> int:
    # The worker re-fits the same (growing) conversation every turn: its strings hit the cache.
    return _estimate(text)


def count_tokens(text: str) -> int:
    """Estimated tokens of `text`; deterministic, monotonic, errs high (see the module docstring)."""
    if not text:
        return 0
    if not isinstance(text, str):
        text = _json(text)
    return _cached(text)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    return content if isinstance(content, str) else _json(content)


def message_tokens(message: Mapping[str, Any]) -> int:
    """Estimated tokens of one message: content, tool calls (name and JSON args), ids, overhead."""
    n = MESSAGE_OVERHEAD + count_tokens(_content_text(message.get("content")))
    n += count_tokens(str(message.get("name") or "")) + count_tokens(str(message.get("tool_call_id") or ""))
    for call in message.get("tool_calls") or []:
        n += CALL_OVERHEAD + count_tokens(str(call.get("name") or "")) + count_tokens(str(call.get("id") or ""))
        n += count_tokens(_json(call.get("args") or {}))
    return n


def _tool_fields(tool: Any) -> tuple[str, str, Any]:
    if isinstance(tool, Mapping):
        return str(tool.get("name") or ""), str(tool.get("description") or ""), tool.get("parameters") or {}
    return str(tool.name), str(tool.description), tool.parameters


def tools_tokens(tools: Iterable[Any] | None) -> int:
    """Estimated tokens of the tool specs offered with a call (ToolSpec objects or dicts)."""
    total = 0
    for tool in tools or []:
        name, description, parameters = _tool_fields(tool)
        total += TOOL_OVERHEAD + count_tokens(name) + count_tokens(description) + count_tokens(_json(parameters))
    return total


def context_window(model: str, default: int = 128_000, windows: Mapping[str, int] | None = None) -> int:
    """The context window of `model` by the longest matching name prefix; `windows` (e.g. from
    config) is consulted first and wins over the built-in table; `default` when nothing matches."""
    name = (model or "").strip().lower()
    names = [name] + ([name.rsplit("/", 1)[1]] if "/" in name else [])
    for table in ([{k.lower(): v for k, v in windows.items()}] if windows else []) + [WINDOWS]:
        for candidate in names:
            matches = [prefix for prefix in table if candidate.startswith(prefix)]
            if matches:
                return int(table[max(matches, key=len)])
    return default


# -- cutting -----------------------------------------------------------------------------------


def _marker(n: int, what: str) -> str:
    return f"\n[… {n} tokens of {what} left out …]\n"


def cut_middle(text: str, target: int, what: str = "context") -> tuple[str, int]:
    """`text` cut from its middle to at most `target` tokens (head and tail kept, at line breaks
    when near), with a marker saying how many tokens were left out; returns (text, left_out).
    Only the marker remains when `target` is too small for any text, which may exceed it."""
    total = count_tokens(text)
    if total <= target:
        return text, 0
    marker_raw = _raw(_marker(total, what))
    chars = len(text) * max(0, target - _with_margin(marker_raw)) // total
    while chars > 0:
        head, tail = _head(text, chars // 2), _tail(text, chars - chars // 2)
        kept_raw = _raw(head) + _raw(tail)
        # Joining can merge whitespace runs across the two seams: at most 2 raw tokens each.
        if _with_margin(kept_raw + marker_raw + 4) <= target:
            left_out = max(1, total - _with_margin(kept_raw))
            return head + _marker(left_out, what) + tail, left_out
        # Shrink in proportion to the overshoot (the estimate is not linear in characters).
        over = _with_margin(kept_raw + marker_raw + 4) / target
        chars = min(chars - 1, int(chars / over * 0.97))
    return _marker(total, what).strip(), total


def _head(text: str, n: int) -> str:
    head = text[:n]
    cut = head.rfind("\n")
    return head[:cut] if cut > n // 2 else head  # end on a line break when one is near


def _tail(text: str, n: int) -> str:
    tail = text[len(text) - n:] if n > 0 else ""
    cut = tail.find("\n")
    return tail[cut + 1:] if 0 <= cut < n // 2 else tail


# -- the plan ----------------------------------------------------------------------------------


@dataclass
class Plan:
    """What `fit` chose. Indices refer to the input list; `tokens` is the estimate of `messages`
    (≤ `budget` unless only the pinned messages remain); `parts` adds up the sent messages by part
    (system, skills, task, files, history — the summary counts as history) plus "tools"."""

    messages: list[dict[str, Any]]
    tokens: int
    window: int
    reserve: int
    kept: list[int]
    dropped: list[int]
    summarized: list[int]
    parts: dict[str, int]
    budget: int = 0  # window - reserve - tools: the room for the messages
    truncated: dict[int, int] = field(default_factory=dict)  # index → tokens left out of it
    summary_tokens: int = 0
    summary_at: int | None = None  # position of the summary in `messages`
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.dropped or self.truncated or self.summary_at is not None)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able record of the choice, stored with the call (without the messages)."""
        return {
            "window": self.window,
            "reserve": self.reserve,
            "budget": self.budget,
            "tokens": self.tokens,
            "prompt_tokens": self.tokens + self.parts.get("tools", 0),
            "messages": len(self.messages),
            "kept": list(self.kept),
            "dropped": list(self.dropped),
            "summarized": list(self.summarized),
            "truncated": {str(i): n for i, n in sorted(self.truncated.items())},
            "summary_tokens": self.summary_tokens,
            "summary_at": self.summary_at,
            "parts": dict(self.parts),
            "notes": list(self.notes),
        }


def default_part(index: int, message: Mapping[str, Any]) -> str:
    return "system" if index == 0 else "task" if index == 1 else "history"


# -- fitting -----------------------------------------------------------------------------------

_Sent = dict[int, tuple[dict[str, Any], int]]  # input index → (message as sent, its tokens)


def fit(
    messages: list[dict[str, Any]],
    *,
    window: int,
    reserve: int = 4096,
    tools: list[Any] | None = None,
    pinned: int = 2,
    summarize: bool = True,
    part_of: Callable[[int, dict[str, Any]], str] | None = None,
) -> Plan:
    """Choose the messages to send within `window` (see the module docstring). Pure: neither
    `messages` nor its dicts are changed; cut messages are copies, the others the same dicts."""
    tool_cost = tools_tokens(tools)
    budget = window - reserve - tool_cost
    costs = [message_tokens(m) for m in messages]
    head = _pinned_count(messages, pinned)
    sent: _Sent = {}  # index → (message as sent, its tokens)
    truncated: dict[int, int] = {}
    notes: list[str] = []

    if sum(costs) <= budget:  # the common case: everything fits as it is
        sent = {i: (m, costs[i]) for i, m in enumerate(messages)}
        return _plan(messages, sent, None, window, reserve, budget, tool_cost, truncated, [], notes, part_of, head)

    for i in range(head):
        sent[i] = (messages[i], costs[i])
    pinned_cost = sum(costs[:head])
    if pinned_cost > budget:
        pinned_cost = _cut_pinned(messages, sent, head, pinned_cost - budget, truncated, notes)

    room = budget - pinned_cost
    summary_room = max(0, min(budget // SUMMARY_SHARE, room)) if summarize else 0
    units = _units(messages, head)
    kept_from = _keep_newest(messages, costs, units, room - summary_room, sent, truncated, notes)
    dropped = [i for unit in units[:kept_from] for i in unit]

    summary = None
    if dropped:
        notes.append(f"{len(dropped)} older messages left out to fit the window")
        if summarize:
            summary = _summary_message(messages, dropped, summary_room)
            if summary is None:
                notes.append("no room for a summary of them")
    summarized = dropped if summary is not None else []
    if len(sent) == head < len(messages):
        notes.append("only the pinned messages fit")
    return _plan(messages, sent, summary, window, reserve, budget, tool_cost, truncated, summarized, notes, part_of, head)


def _pinned_count(messages: list[dict[str, Any]], pinned: int) -> int:
    head = max(0, min(pinned, len(messages)))
    # Tool results right after the pinned prefix answer a pinned call: they stay with it.
    while head and head < len(messages) and messages[head].get("role") == "tool":
        head += 1
    return head


def _units(messages: list[dict[str, Any]], start: int) -> list[list[int]]:
    """The history from `start` in units, oldest first: a tool result joins the unit before it,
    so an assistant message and its tool results are never separated."""
    units: list[list[int]] = []
    for i in range(start, len(messages)):
        if messages[i].get("role") == "tool" and units:
            units[-1].append(i)
        else:
            units.append([i])
    return units


def _cut_pinned(messages: list[dict[str, Any]], sent: _Sent, head: int, excess: int, truncated: dict[int, int], notes: list[str]) -> int:
    """Cut pinned system messages (largest first, never the task) by `excess` tokens; returns
    the pinned messages' new total."""
    systems = sorted((i for i in range(head) if messages[i].get("role") == "system"), key=lambda i: -sent[i][1])
    for i in systems:
        if excess <= 0:
            break
        message, cost = sent[i]
        text = _content_text(message.get("content"))
        content_cost = count_tokens(text)
        new_text, left_out = cut_middle(text, max(0, content_cost - excess), "context")
        if not left_out:
            continue  # nothing to cut in this one
        new = {**message, "content": new_text}
        new_cost = message_tokens(new)
        sent[i] = (new, new_cost)
        truncated[i] = left_out
        excess -= cost - new_cost
        notes.append(f"the pinned messages exceed the budget: system message {i} cut by {left_out} tokens")
    if excess > 0:
        notes.append(f"the pinned messages exceed the budget by {excess} tokens even so; the task is never cut")
    return sum(sent[i][1] for i in range(head))


def _keep_newest(messages: list[dict[str, Any]], costs: list[int], units: list[list[int]], room: int, sent: _Sent, truncated: dict[int, int], notes: list[str]) -> int:
    """Keep units newest first while they fit in `room` (cutting the long tool results of the
    first one that does not fit, if that lets it stay); returns the index of the oldest kept unit."""
    kept_from = len(units)
    for u in range(len(units) - 1, -1, -1):
        unit = units[u]
        if messages[unit[0]].get("role") == "tool":
            break  # a tool result without its call (malformed input) is never sent
        cost = sum(costs[i] for i in unit)
        if cost <= room:
            sent.update({i: (messages[i], costs[i]) for i in unit})
            room -= cost
            kept_from = u
            continue
        cut = _shrink_unit(messages, costs, unit, room)
        if cut is None:
            break
        for i in unit:
            sent[i] = cut[i][:2] if i in cut else (messages[i], costs[i])
            room -= sent[i][1]
        for i, (_, new_cost, left_out) in cut.items():
            truncated[i] = left_out
            notes.append(f"tool result {i} cut by {left_out} tokens")
        kept_from = u
    return kept_from


def _shrink_unit(messages: list[dict[str, Any]], costs: list[int], unit: list[int], room: int) -> dict[int, tuple[dict[str, Any], int, int]] | None:
    """Cut the unit's longest tool results to one common cap c (water-filling: results shorter
    than c stay whole) so the unit fits in `room`; None if c would fall below MIN_RESULT_TOKENS."""
    results = [i for i in unit if messages[i].get("role") == "tool"]
    if not results:
        return None
    sizes = {i: count_tokens(_content_text(messages[i].get("content"))) for i in results}
    available = room - (sum(costs[i] for i in unit) - sum(sizes.values()))
    ordered = sorted(sizes.values())
    whole = 0
    cap = None
    for k, size in enumerate(ordered):
        share = (available - whole) // (len(ordered) - k)
        if share < size:
            cap = share
            break
        whole += size
    if cap is None or cap < MIN_RESULT_TOKENS:
        return None
    cut: dict[int, tuple[dict[str, Any], int, int]] = {}
    for i in results:
        if sizes[i] > cap:
            text, left_out = cut_middle(_content_text(messages[i].get("content")), cap, "output")
            new = {**messages[i], "content": text}
            cut[i] = (new, message_tokens(new), left_out)
    return cut


# -- the summary -------------------------------------------------------------------------------


def _short(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else _json(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _call_text(call: Mapping[str, Any]) -> str:
    args = call.get("args") or {}
    if isinstance(args, Mapping):
        shown = ", ".join(f"{k}={_short(v, 60)}" for k, v in args.items())
    else:
        shown = _short(args, 60)
    return f"{call.get('name') or '?'}({shown})"


_EXIT = re.compile(r"exit code: (-?\d+)\s*$")


def _outcome(result: Mapping[str, Any] | None) -> str:
    if result is None:
        return "no result"
    text = _content_text(result.get("content")).strip()
    if result.get("is_error"):
        return "error: " + _short(text.splitlines()[0] if text else "", 100)
    lines = text.count("\n") + 1 if text else 0
    exit_code = _EXIT.search(text)
    if exit_code:
        return f"exit {exit_code.group(1)}, {_plural(lines - 1, 'line')} of output"
    if lines <= 1 and len(text) <= 80:
        return text or "(empty)"
    return _plural(lines, "line")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _summary_lines(messages: list[dict[str, Any]], indices: list[int]) -> list[str]:
    results = {m.get("tool_call_id"): m for m in (messages[i] for i in indices) if m.get("role") == "tool"}
    lines: list[str] = []
    for i in indices:
        m = messages[i]
        role, text = m.get("role"), _content_text(m.get("content")).strip()
        if role == "assistant":
            if text:
                lines.append("you said: " + _short(text, SAID_CHARS))
            lines.extend(f"you called {_call_text(c)} → {_outcome(results.get(c.get('id')))}" for c in m.get("tool_calls") or [])
        elif role == "user" and text:
            lines.append("the user said: " + _short(text, SAID_CHARS))
        elif role == "system" and text:
            lines.append("note: " + _short(text, SAID_CHARS))
    return lines


def _summary_message(messages: list[dict[str, Any]], dropped: list[int], cap: int) -> dict[str, Any] | None:
    """One user message summarizing the dropped messages within `cap` tokens, the most recent
    steps first to stay when it must be shortened; None when it does not fit."""
    if cap < MIN_SUMMARY_TOKENS:
        return None
    header = f"Earlier in this session ({len(dropped)} messages left out to fit the context window):"
    lines = _summary_lines(messages, dropped)
    left = cap - message_tokens({"role": "user", "content": header}) - 16  # 16: the "not listed" line
    chosen = 0
    for line in reversed(lines):
        cost = count_tokens("\n- " + line) + 1
        if cost > left:
            break
        left -= cost
        chosen += 1
    while True:  # the per-line sum is an estimate of the joined text: check, and shorten if needed
        shown = lines[len(lines) - chosen:] if chosen else []
        omitted = len(lines) - chosen
        body = ([f"({omitted} earlier steps not listed)"] if omitted else []) + shown
        message = {"role": "user", "content": header + "".join("\n- " + line for line in body)}
        if message_tokens(message) <= cap:
            return message
        if chosen == 0:
            return None
        chosen -= 1


def _plan(
    messages: list[dict[str, Any]],
    sent: _Sent,
    summary: dict[str, Any] | None,
    window: int,
    reserve: int,
    budget: int,
    tool_cost: int,
    truncated: dict[int, int],
    summarized: list[int],
    notes: list[str],
    part_of: Callable[[int, dict[str, Any]], str] | None,
    head: int,
) -> Plan:
    label = part_of or default_part
    order = sorted(sent)
    out = [sent[i][0] for i in order]
    parts: dict[str, int] = {}
    for i in order:
        part = label(i, messages[i])
        parts[part] = parts.get(part, 0) + sent[i][1]
    summary_at, summary_tokens = None, 0
    if summary is not None:  # right after the pinned messages, where the dropped span was
        summary_at, summary_tokens = head, message_tokens(summary)
        out.insert(head, summary)
        parts["history"] = parts.get("history", 0) + summary_tokens
    parts["tools"] = tool_cost
    kept = set(order)
    return Plan(
        messages=out,
        tokens=sum(cost for _, cost in sent.values()) + summary_tokens,
        window=window,
        reserve=reserve,
        kept=order,
        dropped=[i for i in range(len(messages)) if i not in kept],
        summarized=list(summarized),
        parts=parts,
        budget=budget,
        truncated=dict(truncated),
        summary_tokens=summary_tokens,
        summary_at=summary_at,
        notes=notes,
    )
