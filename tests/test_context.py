"""The context manager (godeld.agents.context): token estimates, context windows, and `fit`."""

from __future__ import annotations

import copy
import json
import random

import pytest

from godeld.agents.context import (
    MIN_RESULT_TOKENS,
    Plan,
    context_window,
    count_tokens,
    cut_middle,
    fit,
    message_tokens,
    tools_tokens,
)
from godeld.agents.llm import ToolSpec
from godeld.agents.tools import TOOL_SPECS

# Approximate cl100k_base counts (tiktoken) of a few samples. The estimate must stay within the
# factors the module docstring documents: never below 0.9×, at most 1.6× (2.2× for CJK, where
# BPE merges whole words).
KNOWN = {
    "Hello, world!": 4,
    "The quick brown fox jumps over the lazy dog.": 10,
    "def add(a, b):\n    return a + b\n": 12,
    '{"name": "godel", "version": 1}': 12,
    "for i in range(10):\n    print(i)\n": 13,
}
CJK = {"你好，世界": 3, "今日は良い天気です。": 7}

PROSE = (
    "Large language models process text as tokens, which are common sequences of characters found in "
    "a set of text. The models learn to understand the statistical relationships between these tokens, "
    "and excel at producing the next token in a sequence of tokens. A helpful rule of thumb is that one "
    "token generally corresponds to about four characters of text for common English text. This "
    "translates to roughly three quarters of a word, so one hundred tokens is about seventy five words."
)
CODE = (
    "def fit(messages: list[dict], *, window: int) -> Plan:\n"
    "    costs = [message_tokens(m) for m in messages]\n"
    "    if sum(costs) <= window:\n"
    "        return Plan(messages=list(messages), tokens=sum(costs))\n"
    "    raise ValueError(f\"too long: {sum(costs)} > {window}\")\n"
)


# -- counting ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text,known", list(KNOWN.items()))
def test_count_tokens_close_to_bpe(text, known):
    assert 0.9 * known <= count_tokens(text) <= 1.6 * known


@pytest.mark.parametrize("text,known", list(CJK.items()))
def test_count_tokens_cjk_errs_high_within_2x(text, known):
    assert known <= count_tokens(text) <= 2.2 * known


def test_count_tokens_prose_and_code_rates():
    # English prose: ≈4 characters and ≈0.75 words per token; code: ≈3-3.5 characters per token.
    assert len(PROSE) / 4 * 0.85 <= count_tokens(PROSE) <= len(PROSE) / 4 * 1.3
    assert len(PROSE.split()) / 0.75 * 0.85 <= count_tokens(PROSE) <= len(PROSE.split()) / 0.75 * 1.3
    assert len(CODE) / 4 <= count_tokens(CODE) <= len(CODE) / 2.5
    # Code costs more per character than prose does.
    assert count_tokens(CODE) / len(CODE) > count_tokens(PROSE) / len(PROSE)


def test_count_tokens_basics():
    assert count_tokens("") == 0
    assert count_tokens("a") >= 1
    assert count_tokens("1234567") > count_tokens("123")  # digits go by groups of three
    assert count_tokens("getUserName") > count_tokens("getusername")  # camelCase humps split
    assert count_tokens("😀😀") >= 4  # emoji are several byte tokens
    assert count_tokens(PROSE) == count_tokens(PROSE)  # deterministic


@pytest.mark.parametrize("text", [PROSE, CODE, "你好，世界 hello 😀 Привет ABCdef __init__ 12345 \n\n    x", json.dumps({"a": [1, 2, {"b": "c d"}]})])
def test_count_tokens_monotonic_over_prefixes(text):
    counts = [count_tokens(text[:n]) for n in range(len(text) + 1)]
    assert all(a <= b for a, b in zip(counts, counts[1:]))
    assert counts[-1] > counts[len(text) // 2] > 0


def test_count_tokens_grows_with_length():
    sizes = [count_tokens(PROSE * n) for n in (1, 2, 4, 8)]
    assert sizes == sorted(sizes) and len(set(sizes)) == 4
    assert sizes[3] >= 7 * sizes[0]  # roughly linear


def test_message_tokens_counts_calls_and_overhead():
    plain = {"role": "assistant", "content": "ok"}
    with_call = {**plain, "tool_calls": [{"id": "c1", "name": "read_file", "args": {"path": "src/a.py"}}]}
    assert message_tokens(plain) == count_tokens("ok") + 4
    assert message_tokens(with_call) > message_tokens(plain) + count_tokens('{"path": "src/a.py"}')
    assert message_tokens({"role": "assistant", "content": None}) == 4
    tool = {"role": "tool", "tool_call_id": "c1", "name": "read_file", "content": "x = 1\n" * 50, "is_error": False}
    assert message_tokens(tool) > count_tokens(tool["content"])


def test_tools_tokens():
    assert tools_tokens(None) == 0 and tools_tokens([]) == 0
    one = tools_tokens(TOOL_SPECS[:1])
    assert one > count_tokens(TOOL_SPECS[0].description)
    assert tools_tokens(TOOL_SPECS) > tools_tokens(TOOL_SPECS[:3]) > one
    spec = ToolSpec("x", "does x", {"type": "object"})
    assert tools_tokens([spec]) == tools_tokens([{"name": "x", "description": "does x", "parameters": {"type": "object"}}])


# -- context windows ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model,window",
    [
        ("claude-sonnet-4-5-20250929", 200_000),
        ("Claude-3-Opus", 200_000),
        ("anthropic/claude-3.5-sonnet", 200_000),
        ("gpt-4o-mini", 128_000),
        ("gpt-4", 8_192),
        ("gpt-4-turbo-2024-04-09", 128_000),
        ("gpt-4.1-mini", 1_047_576),
        ("o3-mini", 200_000),
        ("o4-mini", 200_000),
        ("gpt-5-codex", 400_000),
        ("gemini-2.5-pro", 1_048_576),
        ("gemini-1.5-flash", 1_048_576),
        ("qwen2.5-coder:7b", 32_768),
        ("llama-3.1-8b-instruct", 131_072),
        ("deepseek-chat", 128_000),
        ("scripted", 200_000),
    ],
)
def test_context_window_by_longest_prefix(model, window):
    assert context_window(model) == window


def test_context_window_default_and_override():
    assert context_window("my-local-model") == 128_000
    assert context_window("my-local-model", default=4096) == 4096
    assert context_window("", default=1000) == 1000
    assert context_window("my-local-model-q4", windows={"my-local-model": 16_384}) == 16_384
    # The explicit mapping wins, even over a longer built-in prefix.
    assert context_window("gpt-4o-mini", windows={"gpt": 64_000}) == 64_000
    assert context_window("claude-opus-4", windows={"gpt": 64_000}) == 200_000


# -- conversations -----------------------------------------------------------------------------


def base(system: str = "You are a coding agent.", task: str = "Fix the failing test in src/a.py") -> list[dict]:
    return [{"role": "system", "content": system}, {"role": "user", "content": task}]


def step(k: int, result: str = "line\n" * 40, text: str = "") -> list[dict]:
    """One assistant turn calling read_file and run_command, with both results."""
    return [
        {"role": "assistant", "content": text or f"Looking at step {k}.", "tool_calls": [
            {"id": f"r{k}", "name": "read_file", "args": {"path": f"src/f{k}.py"}},
            {"id": f"c{k}", "name": "run_command", "args": {"command": "pytest -q"}},
        ]},
        {"role": "tool", "tool_call_id": f"r{k}", "name": "read_file", "content": result, "is_error": False},
        {"role": "tool", "tool_call_id": f"c{k}", "name": "run_command", "content": "FAILED test_a\nexit code: 1", "is_error": False},
    ]


def conversation(steps: int, **kw) -> list[dict]:
    msgs = base()
    for k in range(steps):
        msgs += step(k, **kw)
    return msgs


def total(msgs: list[dict]) -> int:
    return sum(message_tokens(m) for m in msgs)


def test_fitting_conversation_is_returned_unchanged():
    msgs = conversation(3)
    before = copy.deepcopy(msgs)
    plan = fit(msgs, window=total(msgs) + 4096 + tools_tokens(TOOL_SPECS), tools=TOOL_SPECS)
    assert plan.messages == msgs and plan.messages is not msgs
    assert plan.kept == list(range(len(msgs))) and plan.dropped == [] and plan.summarized == []
    assert plan.tokens == total(msgs) <= plan.budget
    assert plan.truncated == {} and plan.summary_at is None and not plan.changed
    assert plan.parts["tools"] == tools_tokens(TOOL_SPECS)
    assert msgs == before


def test_over_long_drops_oldest_units_first():
    msgs = conversation(20)
    before = copy.deepcopy(msgs)
    budget = total(msgs) // 3
    plan = fit(msgs, window=budget + 1000, reserve=1000, summarize=False)
    assert plan.budget == budget and plan.tokens <= budget
    assert plan.dropped and plan.kept[:2] == [0, 1]
    history = plan.kept[2:]
    assert history == list(range(history[0], len(msgs)))  # a contiguous run up to the newest
    assert max(plan.dropped) < history[0]  # everything dropped is older than everything kept
    assert plan.messages[-1] is msgs[-1] and plan.messages[2]["role"] == "assistant"
    assert msgs == before  # pure
    # A bigger window keeps more of the history.
    assert len(fit(msgs, window=2 * budget + 1000, reserve=1000, summarize=False).kept) > len(plan.kept)


def random_conversation(rng: random.Random) -> list[dict]:
    msgs = base(system="System prompt. " * rng.randint(1, 40), task="Task: " + "do it " * rng.randint(1, 40))
    for k in range(rng.randint(0, 25)):
        kind = rng.random()
        if kind < 0.2:
            msgs.append({"role": "user", "content": "please also " * rng.randint(1, 30)})
        elif kind < 0.3:
            msgs.append({"role": "assistant", "content": "thinking " * rng.randint(1, 50), "tool_calls": []})
        else:
            calls = [{"id": f"t{k}_{j}", "name": rng.choice(["read_file", "run_command", "search"]), "args": {"path": f"f{j}.py"}} for j in range(rng.randint(1, 4))]
            msgs.append({"role": "assistant", "content": rng.choice(["", "let me look"]), "tool_calls": calls})
            for call in calls:
                size = rng.choice([1, 10, 100, 1000, 5000])
                msgs.append({"role": "tool", "tool_call_id": call["id"], "name": call["name"], "content": "data line\n" * size, "is_error": rng.random() < 0.1})
    return msgs


def check_invariants(msgs: list[dict], plan: Plan, pinned: int = 2) -> None:
    out = plan.messages
    assert plan.tokens == total(out)
    assert sorted(plan.kept + plan.dropped) == list(range(len(msgs)))
    assert set(plan.summarized) <= set(plan.dropped)
    # The task is sent, whole and unchanged, right after the system message.
    assert out[1] is msgs[1]
    assert 1 not in plan.truncated
    # Within the budget, unless only the pinned messages remain.
    if plan.tokens > plan.budget:
        assert plan.kept == list(range(pinned)) and plan.summary_at is None
    # Every sent tool result answers a call of a sent assistant message before it; every sent call
    # has its result sent.
    calls_sent: set[str] = set()
    results_sent = {m["tool_call_id"] for m in out if m["role"] == "tool"}
    for m in out:
        if m["role"] == "assistant":
            calls_sent |= {c["id"] for c in m.get("tool_calls") or []}
        if m["role"] == "tool":
            assert m["tool_call_id"] in calls_sent
    assert calls_sent == results_sent
    # The kept history is a contiguous run up to the newest message, in order.
    history = plan.kept[pinned:]
    assert history == list(range(history[0], len(msgs))) if history else True
    assert all(i < history[0] for i in plan.dropped) if history else True
    if plan.summary_at is not None:
        assert plan.summary_at == pinned and out[pinned]["role"] == "user" and plan.summarized == plan.dropped
    assert json.loads(json.dumps(plan.to_dict())) == plan.to_dict()


def test_random_conversations_keep_invariants():
    rng = random.Random(20240611)
    shrunk = summarized = only_pinned = 0
    for _ in range(250):
        msgs = random_conversation(rng)
        before = copy.deepcopy(msgs)
        window, reserve, summarize = rng.choice([300, 800, 2000, 5000, 20_000, 200_000]), rng.choice([0, 100, 500]), rng.random() < 0.7
        plan = fit(msgs, window=window, reserve=reserve, summarize=summarize)
        check_invariants(msgs, plan)
        assert msgs == before
        again = fit(msgs, window=window, reserve=reserve, summarize=summarize)  # deterministic
        assert again.messages == plan.messages and again.to_dict() == plan.to_dict()
        shrunk += bool(plan.dropped)
        summarized += plan.summary_at is not None
        only_pinned += plan.kept == [0, 1] and len(msgs) > 2
    # The seeded sample exercises every path.
    assert shrunk > 50 and summarized > 20 and only_pinned > 5


def test_task_is_never_dropped_or_truncated():
    task = "Implement the feature described here. " * 500
    msgs = base(system="Rules. " * 2000, task=task) + step(0) + step(1)
    plan = fit(msgs, window=count_tokens(task) + 1000, reserve=200)
    assert plan.messages[1]["content"] == task and plan.messages[1] is msgs[1]
    assert 1 not in plan.truncated and 1 in plan.kept


def test_pinned_too_large_truncates_the_system_message_only():
    system = "SYSTEM-HEAD " + "Follow these rules carefully. " * 3000 + " SYSTEM-TAIL"
    msgs = base(system=system) + step(0)
    before = copy.deepcopy(msgs)
    plan = fit(msgs, window=2000, reserve=500)
    assert plan.kept == [0, 1] and plan.dropped == [2, 3, 4]
    sent_system = plan.messages[0]["content"]
    assert sent_system.startswith("SYSTEM-HEAD") and sent_system.endswith("SYSTEM-TAIL")
    assert "tokens of context left out …]" in sent_system and len(sent_system) < len(system)
    assert plan.truncated[0] > 0 and list(plan.truncated) == [0]
    assert plan.messages[1] is msgs[1]
    assert plan.tokens <= plan.budget
    assert any("system message 0 cut" in note for note in plan.notes)
    assert msgs == before


def test_pinned_too_large_without_system_keeps_the_task_whole():
    msgs = [{"role": "user", "content": "task " * 5000}, {"role": "user", "content": "more"}]
    plan = fit(msgs, window=1000, reserve=0)
    assert plan.messages == msgs and plan.truncated == {}
    assert plan.tokens > plan.budget and any("never cut" in note for note in plan.notes)


def test_summary_replaces_dropped_span_and_names_the_tools():
    long = "line\n" * 400
    msgs = base() + step(0, text="I will read the module first.", result=long) + [{"role": "user", "content": "Also update the changelog."}]
    msgs += [m for k in range(1, 15) for m in step(k, result=long)]
    plan = fit(msgs, window=total(msgs) // 2 + 1000, reserve=1000)
    assert plan.dropped and plan.summarized == plan.dropped and plan.summary_at == 2
    summary = plan.messages[2]
    assert summary["role"] == "user" and summary not in msgs
    text = summary["content"]
    assert f"({len(plan.dropped)} messages left out" in text
    assert "read_file(path=src/f0.py)" in text and "→ 400 lines" in text
    assert "run_command(command=pytest -q) → exit 1, 1 line of output" in text
    assert "I will read the module first." in text and "Also update the changelog." in text
    assert plan.summary_tokens == message_tokens(summary) <= plan.budget // 10
    assert plan.tokens <= plan.budget and plan.parts["history"] >= plan.summary_tokens
    # The message after the summary is the oldest kept one: no gap, no duplicate.
    assert plan.messages[3] is msgs[plan.kept[2]]
    check_invariants(msgs, plan)


def test_summary_keeps_most_recent_steps_when_capped():
    msgs = conversation(60)
    plan = fit(msgs, window=total(msgs) // 10 + 500, reserve=500)
    text = plan.messages[plan.summary_at]["content"]
    assert "earlier steps not listed" in text
    newest_dropped = max(plan.dropped)
    assert msgs[newest_dropped]["role"] == "tool"
    assert plan.summary_tokens <= plan.budget // 10


def test_no_summary_without_room_or_when_disabled():
    msgs = conversation(10)
    plan = fit(msgs, window=total(msgs) // 2, reserve=0, summarize=False)
    assert plan.dropped and plan.summary_at is None and plan.summarized == []
    assert all(m in msgs for m in plan.messages)
    tiny = fit(msgs, window=total(msgs[:2]) + 10, reserve=0)  # a tenth of the budget is too little
    assert tiny.dropped and tiny.summary_at is None and tiny.summarized == []
    assert any("no room for a summary" in note for note in tiny.notes)


def test_long_newest_tool_result_is_cut_from_the_middle_to_stay():
    huge = "HEAD-LINE\n" + "x = compute(1, 2)\n" * 20_000 + "TAIL-LINE\n"
    msgs = conversation(3) + step(3, result=huge)
    read_result = len(msgs) - 2
    plan = fit(msgs, window=6000, reserve=1000)
    check_invariants(msgs, plan)
    assert read_result in plan.kept and read_result in plan.truncated
    content = plan.messages[plan.kept.index(read_result) + (plan.summary_at is not None)]["content"]
    assert content.startswith("HEAD-LINE") and content.rstrip().endswith("TAIL-LINE")
    assert "tokens of output left out …]" in content
    assert MIN_RESULT_TOKENS <= count_tokens(content) < count_tokens(huge) // 10
    assert msgs[read_result]["content"] == huge  # the input is untouched
    # The short run_command result of the same unit is kept whole.
    assert plan.messages[-1] is msgs[-1]


def test_unit_that_cannot_shrink_enough_is_dropped_with_everything_older():
    msgs = conversation(2) + step(2, result="y\n" * 50_000)
    plan = fit(msgs, window=total(msgs[:2]) + MIN_RESULT_TOKENS + 50, reserve=0, summarize=False)
    assert plan.kept == [0, 1] and plan.truncated == {}
    check_invariants(msgs, plan)


def test_cut_middle():
    text = "\n".join(f"line {n}" for n in range(2000))
    out, left_out = cut_middle(text, 300)
    assert count_tokens(out) <= 300 and left_out > 0
    assert out.startswith("line 0\n") and out.endswith("line 1999")
    assert f"[… {left_out} tokens of context left out …]" in out
    assert cut_middle("short", 100) == ("short", 0)


def test_parts_use_the_labeller():
    msgs = base() + [{"role": "system", "content": "skill: use pytest"}, {"role": "user", "content": "file src/a.py:\n" + "a = 1\n" * 30}] + step(0)
    labels = {0: "system", 1: "task", 2: "skills", 3: "files"}
    plan = fit(msgs, window=100_000, tools=TOOL_SPECS, part_of=lambda i, m: labels.get(i, "history"))
    assert set(plan.parts) == {"system", "task", "skills", "files", "history", "tools"}
    assert plan.parts["skills"] == message_tokens(msgs[2]) and plan.parts["files"] == message_tokens(msgs[3])
    assert sum(v for k, v in plan.parts.items() if k != "tools") == plan.tokens
    default = fit(msgs, window=100_000)
    assert set(default.parts) == {"system", "task", "history", "tools"}
    assert default.parts["task"] == message_tokens(msgs[1])


def test_plan_to_dict_is_json():
    msgs = conversation(12) + step(12, result="z\n" * 30_000)
    plan = fit(msgs, window=5000, reserve=1000, tools=TOOL_SPECS)
    record = json.loads(json.dumps(plan.to_dict()))
    assert record["dropped"] == plan.dropped and record["kept"] == plan.kept
    assert record["truncated"] and all(isinstance(k, str) for k in record["truncated"])
    assert record["prompt_tokens"] == plan.tokens + tools_tokens(TOOL_SPECS)
    assert record["window"] == 5000 and record["reserve"] == 1000 and record["budget"] == plan.budget
    assert record["parts"] == plan.parts and record["summary_at"] == plan.summary_at
    assert "messages" in record and isinstance(record["messages"], int)


def test_tool_results_of_a_pinned_call_stay_pinned():
    msgs = base() + step(0) + [m for k in range(1, 20) for m in step(k)]
    plan = fit(msgs, window=total(msgs[:5]) + 300, reserve=0, pinned=3, summarize=False)
    assert plan.kept[:5] == [0, 1, 2, 3, 4]  # the pinned call at 2 keeps its results 3 and 4
    assert plan.dropped and plan.tokens <= plan.budget
    check_invariants(msgs, plan, pinned=5)
