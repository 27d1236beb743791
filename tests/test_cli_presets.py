"""The CLI agent presets (godeld/default_plugins/cli_agents): parsers on sample lines in the real
programs' formats, the command lines they build, and end to end against the fake programs in
tests/fake_cli, run as real subprocesses."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from godeld.agents.cli import CliEvent
from godeld.agents.llm import Usage
from godeld.default_plugins.cli_agents import register_providers
from godeld.default_plugins.cli_agents.aider import tokens
from godeld.default_plugins.cli_agents.codex import CodexParser, thread_usage

FAKES = Path(__file__).resolve().parent / "fake_cli"


@pytest.fixture(autouse=True)
def codex_home(tmp_path_factory, monkeypatch) -> Path:
    """Codex keeps its threads under $CODEX_HOME; the parser reads the same variable in its own
    process (the worker inherits it from godeld), so both point at a fresh directory."""
    home = tmp_path_factory.mktemp("codex-home")
    monkeypatch.setenv("CODEX_HOME", str(home))
    return home


def presets() -> dict[str, Any]:
    found: dict[str, Any] = {}
    register_providers(register=lambda name, obj: found.__setitem__(name, obj))
    return found


def feed(parser: Any, lines: list[str | dict]) -> list[CliEvent]:
    events: list[CliEvent] = []
    for line in lines:
        events += parser.feed(line if isinstance(line, str) else json.dumps(line))
    return events + parser.finish()


def of(events: list[CliEvent], kind: str) -> list[CliEvent]:
    return [e for e in events if e.kind == kind]


def total(events: list[CliEvent], model: str | None = None) -> Usage:
    out = Usage()
    for e in of(events, "usage"):
        if model is None or e.model == model:
            out.add(e.usage)
    return out


def tokens_of(u: Usage) -> tuple[int, int, int, int]:
    return (u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens)


# -- registration -----------------------------------------------------------------------------
def test_the_plugin_registers_five_cli_presets():
    found = presets()
    assert sorted(found) == ["aider", "claude", "codex", "command", "gemini"]
    for name, preset in found.items():
        assert preset.kind == "cli" and preset.executable and isinstance(preset.supports_resume, bool), name
        assert callable(preset.argv) and callable(preset.parser) and callable(preset.input_line)
        parser = preset.parser()
        assert parser.feed("") == [] and isinstance(parser.finish(), list)
    assert [n for n, p in found.items() if p.supports_resume] == ["claude", "codex", "gemini"]


# -- claude: parser ---------------------------------------------------------------------------
SONNET, HAIKU = "claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001"
SID = "8f0b3c2e-5f7a-4b8e-9d61-0c2a7f4e9b11"


def claude_assistant(msg_id: str, content: list, usage: dict, model: str = SONNET) -> dict:
    return {"type": "assistant", "message": {"model": model, "id": msg_id, "type": "message", "role": "assistant", "content": content, "stop_reason": None,
            "usage": {"cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, **usage, "service_tier": "standard"}}, "parent_tool_use_id": None, "session_id": SID}


CLAUDE_STREAM = [
    {"type": "system", "subtype": "init", "cwd": "/w", "session_id": SID, "tools": ["Bash", "Read"], "mcp_servers": [], "model": SONNET, "permissionMode": "acceptEdits", "apiKeySource": "none"},
    claude_assistant("msg_1", [{"type": "text", "text": "Let me look."}], {"input_tokens": 3, "cache_creation_input_tokens": 1200, "output_tokens": 1}),
    claude_assistant("msg_1", [{"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls", "description": "List"}}], {"input_tokens": 3, "cache_creation_input_tokens": 1200, "output_tokens": 60}),
    {"type": "user", "message": {"role": "user", "content": [{"tool_use_id": "toolu_1", "type": "tool_result", "content": "a.py\nb.py", "is_error": False}]}, "parent_tool_use_id": None, "session_id": SID},
    claude_assistant("msg_2", [{"type": "thinking", "thinking": "hmm"}, {"type": "text", "text": "Two files."}], {"input_tokens": 5, "cache_read_input_tokens": 1200, "output_tokens": 12}),
    {"type": "result", "subtype": "success", "is_error": False, "duration_ms": 2100, "num_turns": 2, "result": "Two files.", "session_id": SID, "total_cost_usd": 0.01,
     "usage": {"input_tokens": 8, "cache_creation_input_tokens": 1200, "cache_read_input_tokens": 1200, "output_tokens": 72},
     "modelUsage": {SONNET: {"inputTokens": 8, "outputTokens": 72, "cacheReadInputTokens": 1200, "cacheCreationInputTokens": 1200, "costUSD": 0.0096},
                    HAIKU: {"inputTokens": 300, "outputTokens": 20, "cacheReadInputTokens": 0, "cacheCreationInputTokens": 0, "costUSD": 0.0004}}},
]


def test_claude_parser_reads_a_stream_json_run():
    events = feed(presets()["claude"].parser(), CLAUDE_STREAM)
    assert [e.session_id for e in of(events, "session")] == [SID]
    assert [e.text for e in of(events, "text")] == ["Let me look.", "Two files."]
    (tool,) = of(events, "tool_use")
    assert (tool.name, tool.args, tool.tool_id) == ("Bash", {"command": "ls", "description": "List"}, "toolu_1")
    (res,) = of(events, "tool_result")
    assert (res.tool_id, res.text, res.is_error) == ("toolu_1", "a.py\nb.py", False)
    (result,) = of(events, "result")
    assert (result.text, result.is_error) == ("Two files.", False)
    assert events[-1].kind == "result"


def test_claude_usage_is_reported_per_message_without_double_counting():
    parser = presets()["claude"].parser()
    first = feed(parser, CLAUDE_STREAM[:2])
    assert tokens_of(total(first)) == (3, 1, 0, 1200)  # reported as soon as the message is printed
    events = first + feed(parser, CLAUDE_STREAM[2:])
    # the repeated msg_1 only adds its growth (59 output tokens); the result adds only the Haiku
    # side call, which never appeared as a message
    assert tokens_of(total(events, SONNET)) == (8, 72, 1200, 1200)
    assert tokens_of(total(events, HAIKU)) == (300, 20, 0, 0)
    assert tokens_of(total(events)) == (308, 92, 1200, 1200)
    assert total(events).cost_usd == pytest.approx(0.01)
    assert all(e.usage.cost_usd is None for e in of(events, "usage")[:3])  # cost comes with the result


def test_claude_result_totals_are_running_totals_of_the_process():
    # with --input-format stream-json one process answers several prompts; each result restates
    # the process's totals so far
    parser = presets()["claude"].parser()
    turn = lambda n: [  # noqa: E731
        claude_assistant(f"msg_{n}", [{"type": "text", "text": f"answer {n}"}], {"input_tokens": 10, "output_tokens": 5}),
        {"type": "result", "subtype": "success", "is_error": False, "result": f"answer {n}", "session_id": SID, "total_cost_usd": 0.001 * n,
         "usage": {"input_tokens": 10, "output_tokens": 5}, "modelUsage": {SONNET: {"inputTokens": 10 * n, "outputTokens": 5 * n, "costUSD": 0.001 * n}}},
    ]
    events = feed(parser, turn(1) + turn(2))
    assert tokens_of(total(events)) == (20, 10, 0, 0)
    assert total(events).cost_usd == pytest.approx(0.002)


def test_claude_result_without_model_usage_settles_against_its_usage():
    # older versions: no modelUsage; the result's usage and total_cost_usd are the totals
    stream = CLAUDE_STREAM[:5] + [{**CLAUDE_STREAM[5], "modelUsage": None, "usage": {"input_tokens": 9, "cache_creation_input_tokens": 1200, "cache_read_input_tokens": 1200, "output_tokens": 72}}]
    events = feed(presets()["claude"].parser(), stream)
    assert tokens_of(total(events)) == (9, 72, 1200, 1200)
    assert total(events).cost_usd == pytest.approx(0.01)


@pytest.mark.parametrize(
    "result, text",
    [
        ({"subtype": "error_max_turns", "is_error": True, "num_turns": 3}, "claude: error_max_turns"),
        ({"subtype": "error_during_execution", "is_error": True, "errors": ["tool crashed"]}, "tool crashed"),
        ({"subtype": "success", "is_error": True, "result": "API Error: 401 invalid x-api-key"}, "API Error: 401 invalid x-api-key"),
    ],
)
def test_claude_error_results(result, text):
    events = feed(presets()["claude"].parser(), [{"type": "result", "session_id": SID, "total_cost_usd": 0, "usage": {}, **result}])
    (res,) = of(events, "result")
    assert res.is_error and res.text == text
    assert of(events, "usage") == []


def test_claude_parser_never_raises_on_odd_lines():
    parser = presets()["claude"].parser()
    odd = ["not json at all", "[1, 2]", '{"type": "assistant", "message": "oops"}', '{"type": "user", "message": {"content": "plain"}}', '{"type": "stream_event", "event": {}}',
           '{"type": "result", "usage": "x", "modelUsage": [1]}', '{"broken": ', '{"type": "system", "subtype": "compact_boundary"}', "\x00\xff"]
    events = feed(parser, odd)
    assert [e.text for e in of(events, "text")] == ["not json at all", "[1, 2]", '{"broken": ', "\x00\xff"]
    assert of(events, "result")[0].text == ""


# -- codex: parser ----------------------------------------------------------------------------
THREAD = "0199a213-81c0-7800-8aa1-bbab2a035a53"
CODEX_STREAM = [
    {"type": "thread.started", "thread_id": THREAD},
    {"type": "turn.started"},
    {"type": "item.completed", "item": {"id": "item_0", "type": "reasoning", "text": "**Scanning the repo**"}},
    {"type": "item.started", "item": {"id": "item_1", "type": "command_execution", "command": "bash -lc ls", "aggregated_output": "", "exit_code": None, "status": "in_progress"}},
    {"type": "item.completed", "item": {"id": "item_1", "type": "command_execution", "command": "bash -lc ls", "aggregated_output": "docs\nsrc\n", "exit_code": 0, "status": "completed"}},
    {"type": "item.completed", "item": {"id": "item_2", "type": "file_change", "changes": [{"path": "src/a.py", "kind": "update"}], "status": "completed"}},
    {"type": "item.started", "item": {"id": "item_3", "type": "mcp_tool_call", "server": "docs", "tool": "search", "arguments": {"q": "x"}, "result": None, "error": None, "status": "in_progress"}},
    {"type": "item.completed", "item": {"id": "item_3", "type": "mcp_tool_call", "server": "docs", "tool": "search", "arguments": {"q": "x"}, "result": None, "error": {"message": "timed out"}, "status": "failed"}},
    {"type": "item.completed", "item": {"id": "item_4", "type": "todo_list", "items": [{"text": "read", "completed": True}, {"text": "fix", "completed": False}]}},
    {"type": "item.completed", "item": {"id": "item_5", "type": "agent_message", "text": "Fixed the bug in src/a.py."}},
    {"type": "turn.completed", "usage": {"input_tokens": 24763, "cached_input_tokens": 24448, "output_tokens": 122}},
]


def test_codex_parser_reads_an_exec_json_run():
    events = feed(CodexParser(), CODEX_STREAM)
    assert [e.session_id for e in of(events, "session")] == [THREAD]
    assert [(e.name, e.args, e.tool_id) for e in of(events, "tool_use")] == [
        ("shell", {"command": "bash -lc ls"}, "item_1"),
        ("apply_patch", {"changes": [{"path": "src/a.py", "kind": "update"}]}, "item_2"),
        ("mcp:docs/search", {"q": "x"}, "item_3"),
    ]
    assert [(e.tool_id, e.text, e.is_error) for e in of(events, "tool_result")] == [("item_1", "docs\nsrc\n", False), ("item_2", "update src/a.py", False), ("item_3", "timed out", True)]
    assert [e.text for e in of(events, "text")] == ["plan: [x] read; [ ] fix", "Fixed the bug in src/a.py."]
    (usage,) = of(events, "usage")
    assert tokens_of(usage.usage) == (24763 - 24448, 122, 24448, 0)  # cached tokens counted apart
    (result,) = of(events, "result")
    assert (result.text, result.is_error) == ("Fixed the bug in src/a.py.", False)


def test_codex_usage_counts_cached_and_written_input_apart():
    # input_tokens includes cached_input_tokens (and cache_write_input_tokens where reported)
    assert tokens_of(thread_usage({"input_tokens": 100, "cached_input_tokens": 40, "cache_write_input_tokens": 60, "output_tokens": 10})) == (0, 10, 40, 60)
    assert tokens_of(thread_usage({"input_tokens": 5, "cached_input_tokens": 9})) == (0, 0, 9, 0)


def test_codex_failed_turn_and_stream_errors():
    events = feed(CodexParser(), [
        {"type": "thread.started", "thread_id": THREAD},
        {"type": "error", "message": "Reconnecting... 1/5"},
        {"type": "item.completed", "item": {"id": "item_0", "type": "error", "message": "model rerouted"}},
        {"type": "turn.failed", "error": {"message": "stream disconnected before completion"}},
    ])
    assert [e.text for e in of(events, "error")] == ["Reconnecting... 1/5", "model rerouted"]
    (result,) = of(events, "result")
    assert result.is_error and result.text == "stream disconnected before completion"


def rollout(home: Path, thread: str, totals: list[tuple[str, dict]]) -> Path:
    path = home / "sessions" / "2025" / "10" / "08" / f"rollout-2025-10-08T09-00-00-{thread}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [{"timestamp": "2025-10-08T09:00:00.000Z", "type": "session_meta", "payload": {"id": thread}}]
    lines += [{"timestamp": at, "type": "event_msg", "payload": {"type": "token_count", "info": {"total_token_usage": t, "last_token_usage": t}, "rate_limits": None}} for at, t in totals]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines) + "not json\n")
    return path


def test_codex_resumed_thread_counts_only_its_growth(codex_home):
    # a resumed thread's turn.completed total includes the earlier runs (restored from the
    # rollout); what was saved before this parser existed was counted by those runs
    earlier = {"input_tokens": 1000, "cached_input_tokens": 400, "output_tokens": 100}
    path = rollout(codex_home, THREAD, [("2025-10-08T09:00:01Z", {"input_tokens": 500, "cached_input_tokens": 0, "output_tokens": 40}), ("2025-10-08T09:00:02.500Z", earlier)])
    parser = CodexParser()
    with path.open("a") as f:  # written by this run, after the parser was made: not a baseline
        later = (parser.created + dt.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        f.write(json.dumps({"timestamp": later, "type": "event_msg", "payload": {"type": "token_count", "info": {"total_token_usage": {"input_tokens": 1500, "cached_input_tokens": 600, "output_tokens": 150}}}}) + "\n")
    events = feed(parser, [{"type": "thread.started", "thread_id": THREAD}, {"type": "turn.completed", "usage": {"input_tokens": 1800, "cached_input_tokens": 700, "output_tokens": 170}}])
    assert tokens_of(total(events)) == ((1800 - 700) - (1000 - 400), 70, 300, 0)


def test_codex_legacy_msg_format():
    events = feed(CodexParser(), [
        '{"model":"codex-mini-latest","sandbox":"read-only","reasoning effort":"medium"}',
        '{"prompt":"list files"}',
        {"id": "0", "msg": {"type": "session_configured", "session_id": "f47e4fde-f03b-498c-9abb-be8247bbd7a9", "model": "codex-mini-latest", "history_log_id": 1}},
        {"id": "1", "msg": {"type": "task_started"}},
        {"id": "1", "msg": {"type": "exec_command_begin", "call_id": "c1", "command": ["bash", "-lc", "ls"], "cwd": "/w"}},
        {"id": "1", "msg": {"type": "exec_command_end", "call_id": "c1", "stdout": "a.txt\n", "stderr": "", "exit_code": 0}},
        {"id": "1", "msg": {"type": "token_count", "input_tokens": 3804, "cached_input_tokens": 0, "output_tokens": 95, "reasoning_output_tokens": 64, "total_tokens": 3899}},
        {"id": "1", "msg": {"type": "agent_message", "message": "Here are the files."}},
        {"id": "1", "msg": {"type": "token_count", "info": {"total_token_usage": {"input_tokens": 8000, "cached_input_tokens": 3000, "output_tokens": 200}}}},
        {"id": "1", "msg": {"type": "token_count", "info": {"total_token_usage": {"input_tokens": 8000, "cached_input_tokens": 3000, "output_tokens": 200}}, "rate_limits": {}}},
        {"id": "1", "msg": {"type": "token_count", "info": None, "rate_limits": {"primary": {"used_percent": 3}}}},
        {"id": "1", "msg": {"type": "task_complete", "last_agent_message": "Here are the files."}},
    ])
    assert [(e.session_id, e.model) for e in of(events, "session")] == [("f47e4fde-f03b-498c-9abb-be8247bbd7a9", "codex-mini-latest")]
    assert [(e.name, e.args) for e in of(events, "tool_use")] == [("shell", {"command": "bash -lc ls"})]
    assert [e.text for e in of(events, "tool_result")] == ["a.txt\n"]
    # the flat count is one response; the repeated running total is counted once
    assert tokens_of(total(events)) == (5000, 200, 3000, 0)
    assert of(events, "result")[0].text == "Here are the files."
    assert of(events, "text")[0].text == "Here are the files."


# -- gemini: parser ---------------------------------------------------------------------------
def gemini(kind: str, **fields: Any) -> dict:
    return {"type": kind, "timestamp": "2025-10-10T12:00:00.000Z", **fields}


GEMINI_STREAM = [
    gemini("init", session_id="c5a3b0e2-95d1-4a36-b1c1-5c3e0c6d1f2a", model="gemini-2.5-pro"),
    gemini("message", role="user", content="List the files"),
    gemini("message", role="assistant", content="I'll list", delta=True),
    gemini("message", role="assistant", content=" them.\nFirst", delta=True),
    gemini("tool_use", tool_name="run_shell_command", tool_id="run_shell_command-1760097600000-a1b2", parameters={"command": "ls"}),
    gemini("tool_result", tool_id="run_shell_command-1760097600000-a1b2", status="success", output="a.txt"),
    gemini("tool_use", tool_name="read_file", tool_id="read_file-1", parameters={"absolute_path": "/w/missing"}),
    gemini("tool_result", tool_id="read_file-1", status="error", error={"type": "FILE_NOT_FOUND", "message": "File not found"}),
    gemini("error", severity="warning", message="Loop detected, stopping execution"),
    gemini("message", role="assistant", content="There is one ", delta=True),
    gemini("message", role="assistant", content="file: a.txt", delta=True),
    gemini("result", status="success", stats={"total_tokens": 1530, "input_tokens": 1200, "output_tokens": 300, "cached": 800, "input": 400, "duration_ms": 2100, "tool_calls": 2}),
]


def test_gemini_parser_reads_a_stream_json_run():
    events = feed(presets()["gemini"].parser(), GEMINI_STREAM)
    assert [(e.session_id, e.model) for e in of(events, "session")] == [("c5a3b0e2-95d1-4a36-b1c1-5c3e0c6d1f2a", "gemini-2.5-pro")]
    # delta chunks are logged as whole lines; the rest of a line when something else comes
    assert [e.text for e in of(events, "text")] == ["I'll list them.", "First", "There is one file: a.txt"]
    assert [(e.name, e.args) for e in of(events, "tool_use")] == [("run_shell_command", {"command": "ls"}), ("read_file", {"absolute_path": "/w/missing"})]
    assert [(e.text, e.is_error) for e in of(events, "tool_result")] == [("a.txt", False), ("File not found", True)]
    assert [e.text for e in of(events, "error")] == ["Loop detected, stopping execution"]
    (usage,) = of(events, "usage")
    assert tokens_of(usage.usage) == (400, 300 + 30, 800, 0)  # thinking tokens (total - in - out) count as output
    (result,) = of(events, "result")
    assert (result.text, result.is_error) == ("There is one file: a.txt", False)


def test_gemini_error_result_and_unfinished_text():
    parser = presets()["gemini"].parser()
    events = feed(parser, [gemini("init", session_id="s1", model="m"), gemini("message", role="assistant", content="partial", delta=True)])
    assert [e.text for e in of(events, "text")] == ["partial"]  # finish() flushes the last chunk
    failed = feed(presets()["gemini"].parser(), [gemini("result", status="error", error={"type": "MaxSessionTurnsError", "message": "Maximum session turns exceeded"},
                                                        stats={"total_tokens": 100, "input_tokens": 50, "output_tokens": 50, "cached": 0, "input": 50})])
    assert [(e.text, e.is_error) for e in of(failed, "result")] == [("Maximum session turns exceeded", True)]
    assert tokens_of(total(failed)) == (50, 50, 0, 0)


# -- aider: parser ----------------------------------------------------------------------------
@pytest.mark.parametrize("text, n", [("156", 156), ("2.1k", 2100), ("12k", 12000), ("1,234", 1234), ("3M", 3_000_000), ("", 0), ("k", 0)])
def test_aider_token_counts_as_printed(text, n):
    assert tokens(text) == n


def test_aider_parser_reads_usage_reports_and_text():
    events = feed(presets()["aider"].parser(), [
        "Aider v0.86.1",
        "Main model: anthropic/claude-sonnet-4-20250514 with diff edit format, infinite output",
        "Applied edit to src/app.py",
        "Tokens: 2.1k sent, 156 received. Cost: $0.0087 message, $0.0087 session.",
        "Tokens: 12k sent, 1.2k cache write, 3.4k cache hit, 300 received.",
        "Cost: $0.03 message, $0.04 session.",
        "Tokens: 1,234 sent, 56 received. Cost: $0.01 request, $0.05 session.",
        "litellm.RateLimitError: AnthropicException - rate limited",
        "Tokens: nonsense sent",
    ])
    usages = of(events, "usage")
    assert [tokens_of(e.usage) for e in usages] == [(2100, 156, 0, 0), (12000 - 1200 - 3400, 300, 3400, 1200), (0, 0, 0, 0), (1234, 56, 0, 0)]
    assert [e.usage.cost_usd for e in usages] == [pytest.approx(0.0087), None, pytest.approx(0.04 - 0.0087), pytest.approx(0.01)]
    assert {e.model for e in usages} == {"anthropic/claude-sonnet-4-20250514"}
    assert [(e.name, e.args) for e in of(events, "tool_use")] == [("edit", {"path": "src/app.py"})]
    assert [e.text for e in of(events, "error")] == ["litellm.RateLimitError: AnthropicException - rate limited"]
    assert [e.text for e in of(events, "text")] == ["Aider v0.86.1", "Main model: anthropic/claude-sonnet-4-20250514 with diff edit format, infinite output", "Tokens: nonsense sent"]


# -- command: parsers -------------------------------------------------------------------------
def test_command_jsonl_lines_report_usage_and_results():
    preset = presets()["command"]
    events = feed(preset.parser({"format": "jsonl"}), [
        {"type": "text", "text": "working"},
        {"type": "usage", "input_tokens": 120, "output_tokens": 30, "cache_read_tokens": 5, "cost_usd": 0.002, "model": "gpt-4o"},
        {"type": "tool_use", "name": "grep", "args": {"pattern": "x"}, "id": "t1"},
        {"type": "usage", "input_tokens": "7", "output_tokens": -3},
        {"type": "session", "session_id": "abc"},
        {"type": "error", "text": "flaky"},
        {"type": "result", "text": "all done"},
        "plain output",
        {"no": "type"},
        {"type": "mystery"},
    ])
    assert [(tokens_of(e.usage), e.usage.cost_usd, e.model) for e in of(events, "usage")] == [((120, 30, 5, 0), 0.002, "gpt-4o"), ((7, 0, 0, 0), None, "")]
    assert [e.text for e in of(events, "text")] == ["working", "plain output", '{"no": "type"}', '{"type": "mystery"}']
    assert [(e.name, e.args, e.tool_id) for e in of(events, "tool_use")] == [("grep", {"pattern": "x"}, "t1")]
    assert [e.session_id for e in of(events, "session")] == ["abc"]
    assert [e.text for e in of(events, "error")] == ["flaky"]
    assert [(e.text, e.is_error) for e in of(events, "result")] == [("all done", False)]
    # the text format keeps every line as it is, JSON or not
    assert [e.text for e in feed(preset.parser({}), ['{"type":"usage","input_tokens":1}'])] == ['{"type":"usage","input_tokens":1}']


def test_command_parser_follows_the_format_given_to_argv():
    # the worker passes options to argv() only; parser() then follows them
    preset = presets()["command"]
    preset.argv(task="t", model=None, session_id=None, options={"command": "true", "format": "jsonl"})
    assert of(feed(preset.parser(), ['{"type":"usage","input_tokens":4}']), "usage")
    preset.argv(task="t", model=None, session_id=None, options={"command": "true"})
    assert not of(feed(preset.parser(), ['{"type":"usage","input_tokens":4}']), "usage")


# -- argv -------------------------------------------------------------------------------------
def argv(name: str, task: str = "fix it", model: str | None = None, session_id: str | None = None, **options: Any) -> list[str]:
    return presets()[name].argv(task=task, model=model, session_id=session_id, options=options)


def test_claude_argv():
    assert argv("claude") == ["claude", "-p", "fix it", "--output-format", "stream-json", "--verbose", "--permission-mode", "acceptEdits"]
    assert argv("claude", model="sonnet", session_id=SID, allowed_tools=["Read", "Bash(git diff:*)"], permission_mode="plan", max_turns=5, extra_args="--add-dir '/tmp/x y'", executable="/opt/claude") == [
        "/opt/claude", "-p", "fix it", "--allowedTools", "Read", "Bash(git diff:*)", "--output-format", "stream-json", "--verbose",
        "--model", "sonnet", "--resume", SID, "--permission-mode", "plan", "--max-turns", "5", "--add-dir", "/tmp/x y",
    ]
    assert argv("claude", allowed_tools="Read, Edit", permission_mode="")[3:6] == ["--allowedTools", "Read", "Edit"]
    assert "--permission-mode" not in argv("claude", permission_mode="")
    assert argv("claude", task="--help me")[2] == " --help me"  # never read as an option


def test_codex_argv():
    assert argv("codex") == ["codex", "exec", "--json", "--sandbox", "workspace-write", "fix it"]
    assert argv("codex", model="gpt-5-codex", sandbox="danger-full-access", extra_args=["--skip-git-repo-check"]) == [
        "codex", "exec", "--json", "--model", "gpt-5-codex", "--sandbox", "danger-full-access", "--skip-git-repo-check", "fix it"]
    # resume is a subcommand of exec: options first, then `resume ID PROMPT`
    assert argv("codex", session_id=THREAD, extra_args=["--skip-git-repo-check"])[-4:] == ["--skip-git-repo-check", "resume", THREAD, "fix it"]
    assert "--sandbox" not in argv("codex", sandbox="")


def test_gemini_argv():
    assert argv("gemini") == ["gemini", "-p", "fix it", "--output-format", "stream-json", "--approval-mode", "auto_edit"]
    assert argv("gemini", model="gemini-2.5-flash", session_id="s-1", approval_mode="yolo", allowed_tools=["run_shell_command(git)", "read_file"], extra_args=["--debug"]) == [
        "gemini", "-p", "fix it", "--output-format", "stream-json", "-m", "gemini-2.5-flash", "--resume", "s-1", "--approval-mode", "yolo",
        "--allowed-tools=run_shell_command(git)", "--allowed-tools=read_file", "--debug"]


def test_aider_argv():
    base = ["aider", "--message=fix it", "--yes-always", "--no-pretty", "--no-stream", "--no-auto-commits", "--no-dirty-commits", "--no-gitignore",
            "--no-check-update", "--chat-history-file", os.devnull, "--input-history-file", os.devnull]
    assert argv("aider") == base
    assert argv("aider", task="-x", model="gpt-4o", session_id="ignored", extra_args="--auto-commits", files=["a.py"]) == [
        base[0], "--message=-x", *base[2:], "--model", "gpt-4o", "--auto-commits", "a.py"]


def test_command_argv():
    assert argv("command", task="say {hi}", model="m1", argv=["./agent", "--task={task}", "{model}", "{not-a-placeholder}"], extra_args=["-v"]) == [
        "./agent", "--task=say {hi}", "m1", "{not-a-placeholder}", "-v"]
    assert argv("command", argv=["./agent", "{model}"], executable="/usr/local/bin/agent") == ["/usr/local/bin/agent", ""]
    assert argv("command", task="t", command='echo "$GODEL_TASK"', extra_args=["a"]) == ["env", "GODEL_TASK=t", "GODEL_MODEL=", "/bin/sh", "-c", 'echo "$GODEL_TASK"', "command", "a"]
    assert presets()["command"].input_line("hello") == b"hello\n"
    assert all(presets()[n].input_line("hello") is None for n in ("claude", "codex", "gemini", "aider"))


@pytest.mark.parametrize(
    "name, options, message",
    [
        ("command", {}, "give provider_options.argv"),
        ("command", {"argv": []}, "must not be empty"),
        ("command", {"command": "true", "format": "xml"}, "format must be one of"),
        ("claude", {"allowed_tools": {"Read": True}}, "allowed_tools must be a list"),
        ("codex", {"extra_args": 5}, "extra_args must be a list"),
        ("gemini", {"approval_mode": ["yolo"]}, "approval_mode must be a string"),
    ],
)
def test_bad_options_are_refused_with_their_name(name, options, message):
    with pytest.raises(ValueError, match=message):
        argv(name, **options)


# -- end to end: the fake programs as real subprocesses ---------------------------------------
@dataclass
class Run:
    events: list[CliEvent]
    code: int
    stdout: str
    stderr: str

    def raw(self, kind: str) -> list[dict]:
        lines = [json.loads(line) for line in self.stdout.splitlines() if line.startswith("{")]
        return [obj for obj in lines if obj.get("type") == kind]


def run(name: str, cwd: Path, *, session_id: str | None = None, env: dict[str, str] | None = None, **options: Any) -> Run:
    preset = presets()[name]
    cmd = preset.argv(task="make the change", model=None, session_id=session_id, options={"executable": str(FAKES / name), **options})
    parser = preset.parser()
    proc = subprocess.run(cmd, cwd=cwd, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    events: list[CliEvent] = []
    for line in proc.stdout.splitlines():
        events += parser.feed(line)
    return Run(events + parser.finish(), proc.returncode, proc.stdout, proc.stderr)


WORK = {"FAKE_CLI_STEPS": "3", "FAKE_CLI_WRITE": "notes/out.txt", "FAKE_CLI_TOKENS_IN": "1200", "FAKE_CLI_TOKENS_OUT": "80"}


def check_work(r: Run, cwd: Path, program: str) -> None:
    assert r.code == 0, r.stderr
    assert (cwd / "notes" / "out.txt").read_text() == f"written by fake {program}\n"
    assert len(of(r.events, "session")) == (0 if program == "aider" else 1)
    (result,) = of(r.events, "result") or [None]
    assert result is None or (not result.is_error and "wrote notes/out.txt" in result.text)


def test_e2e_claude(tmp_path):
    r = run("claude", tmp_path, env=WORK)
    check_work(r, tmp_path, "claude")
    assert [e.name for e in of(r.events, "tool_use")] == ["Write", "Bash"]
    assert of(r.events, "tool_use")[0].args["file_path"] == str(tmp_path / "notes" / "out.txt")
    assert len(of(r.events, "tool_result")) == 2 and "Step 1: let me look." in [e.text for e in of(r.events, "text")]
    (result,) = r.raw("result")
    expected = Usage(cost_usd=0.0)
    for u in result["modelUsage"].values():
        expected.add(Usage(u["inputTokens"], u["outputTokens"], u["cacheReadInputTokens"], u["cacheCreationInputTokens"], u["costUSD"]))
    assert tokens_of(total(r.events)) == tokens_of(expected) and total(r.events).cost_usd == pytest.approx(result["total_cost_usd"])
    main = result["usage"]
    assert tokens_of(total(r.events, "claude-sonnet-4-5-20250929")) == (main["input_tokens"], main["output_tokens"], main["cache_read_input_tokens"], main["cache_creation_input_tokens"]) == (3600, 240, 40, 20)
    sid = of(r.events, "session")[0].session_id
    again = run("claude", tmp_path, session_id=sid)
    assert again.code == 0 and [e.session_id for e in of(again.events, "session")] == [sid]


def test_e2e_codex(tmp_path):
    r = run("codex", tmp_path, env=WORK)
    check_work(r, tmp_path, "codex")
    assert [e.name for e in of(r.events, "tool_use")] == ["apply_patch", "shell"]
    (done,) = r.raw("turn.completed")
    assert tokens_of(total(r.events)) == (done["usage"]["input_tokens"] - done["usage"]["cached_input_tokens"], done["usage"]["output_tokens"], done["usage"]["cached_input_tokens"], 0) == (3600 - 1200, 240, 1200, 0)
    assert {e.model for e in of(r.events, "usage")} == {"gpt-5-codex"}  # from the rollout: the events never name it
    thread = of(r.events, "session")[0].session_id
    again = run("codex", tmp_path, session_id=thread, env={"FAKE_CLI_STEPS": "1", "FAKE_CLI_TOKENS_IN": "500", "FAKE_CLI_TOKENS_OUT": "20"})
    assert again.code == 0, again.stderr
    assert [e.session_id for e in of(again.events, "session")] == [thread]
    assert again.raw("turn.completed")[0]["usage"] == {"input_tokens": 4100, "cached_input_tokens": 1200, "output_tokens": 260}  # the thread's total
    assert tokens_of(total(again.events)) == (500, 20, 0, 0)  # this run's share only
    assert run("codex", tmp_path, session_id="no-such-thread").code == 1


def test_e2e_gemini(tmp_path):
    r = run("gemini", tmp_path, env=WORK)
    check_work(r, tmp_path, "gemini")
    assert [e.name for e in of(r.events, "tool_use")] == ["write_file", "run_shell_command"]
    assert [e.text for e in of(r.events, "text")][:2] == ["Step 1: using a tool.", "Step 2: using a tool."]
    stats = r.raw("result")[0]["stats"]
    assert tokens_of(total(r.events)) == (stats["input"], stats["total_tokens"] - stats["input_tokens"], stats["cached"], 0)
    sid = of(r.events, "session")[0].session_id
    assert [e.session_id for e in of(run("gemini", tmp_path, session_id=sid).events, "session")] == [sid]


def test_e2e_aider(tmp_path):
    # under 1000 tokens aider prints exact counts (2.1k above: see test_aider_token_counts_as_printed)
    r = run("aider", tmp_path, env={**WORK, "FAKE_CLI_TOKENS_IN": "600"})
    check_work(r, tmp_path, "aider")
    assert of(r.events, "result") == []  # plain text: the exit code tells
    assert [(e.name, e.args) for e in of(r.events, "tool_use")] == [("edit", {"path": "notes/out.txt"})]
    # 3 calls of 600 in / 80 out; the 2nd and 3rd add 10 cache write and 40 cache hit
    assert tokens_of(total(r.events)) == (1800, 240, 80, 20)
    session_cost = [line for line in r.stdout.splitlines() if "session." in line][-1].split("$")[-1].rstrip(" session.")
    assert total(r.events).cost_usd == pytest.approx(float(session_cost))
    assert not (tmp_path / ".aider.chat.history.md").exists()


def test_e2e_command(tmp_path):
    task = "it's \"quoted\"\nand two lines"
    preset = presets()["command"]
    cmd = preset.argv(task=task, model="m9", session_id=None, options={"command": 'printf "%s\\n" "$GODEL_TASK" "model=$GODEL_MODEL" "$1"; echo hi > made.txt', "extra_args": ["arg1"]})
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=30)
    parser = preset.parser()
    assert [e.text for e in feed(parser, out.stdout.splitlines())] == ["it's \"quoted\"", "and two lines", "model=m9", "arg1"]
    assert (tmp_path / "made.txt").read_text() == "hi\n"
    script = "import json\nfor ev in ({'type':'text','text':'hello'},{'type':'usage','input_tokens':10,'output_tokens':3,'cost_usd':0.5},{'type':'result','text':'ok'}):\n    print(json.dumps(ev))\n"
    cmd = preset.argv(task="t", model=None, session_id=None, options={"argv": [sys.executable, "-c", script, "{task}"], "format": "jsonl"})
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    events = feed(preset.parser(), out.stdout.splitlines())
    assert [e.kind for e in events] == ["text", "usage", "result"] and total(events).cost_usd == 0.5


@pytest.mark.parametrize("name", ["claude", "codex", "gemini", "aider"])
def test_e2e_failure_exits_non_zero_with_an_error(name, tmp_path):
    r = run(name, tmp_path, env={"FAKE_CLI_FAIL": "1"})
    assert r.code != 0
    results = of(r.events, "result")
    if name == "aider":
        assert of(r.events, "error") and not results
    else:
        assert results and results[-1].is_error and results[-1].text


def test_usage_is_reported_while_the_program_runs(tmp_path):
    # the budget's hard stop needs each step's usage when it is printed, not at the end
    for name in ("claude", "aider"):
        preset = presets()[name]
        cmd = preset.argv(task="t", model=None, session_id=None, options={"executable": str(FAKES / name)})
        proc = subprocess.Popen(cmd, cwd=tmp_path, env={**os.environ, "FAKE_CLI_STEPS": "3", "FAKE_CLI_SLEEP": "0.4"}, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
        parser = preset.parser()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if of(parser.feed(line), "usage"):
                    break
            assert proc.poll() is None, f"{name}: the first usage came only at the end"
        finally:
            proc.kill()
            proc.wait()


def test_stdin_lines_reach_programs_that_read_them(tmp_path):
    env = {**os.environ, "FAKE_CLI_READ_STDIN": "1", "FAKE_CLI_STEPS": "2", "FAKE_CLI_SLEEP": "0.4"}
    procs = {}
    for name in ("claude", "codex", "gemini", "aider"):  # side by side: each runs for 0.8 s
        cmd = presets()[name].argv(task="t", model=None, session_id=None, options={"executable": str(FAKES / name)})
        procs[name] = proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert proc.stdin is not None
        proc.stdin.write("hello there\n")
        proc.stdin.flush()
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=30)
        assert "got: hello there" in [e.text for e in feed(presets()[name].parser(), out.splitlines()) if e.kind == "text"], name
    command = presets()["command"]
    cmd = command.argv(task="t", model=None, session_id=None, options={"command": 'read line; echo "got: $line"'})
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    out, _ = proc.communicate(command.input_line("hi"), timeout=30)
    assert [e.text for e in feed(command.parser(), out.decode().splitlines())] == ["got: hi"]


def test_programs_that_take_no_input_need_their_stdin_closed(tmp_path):
    # codex reads a piped stdin to its end before starting (claude waits 3 s, gemini 500 ms):
    # a worker must close stdin at once for presets with accepts_input False
    assert [n for n, p in presets().items() if p.accepts_input] == ["command"]
    cmd = presets()["codex"].argv(task="t", model=None, session_id=None, options={"executable": str(FAKES / "codex")})
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.5)
    assert proc.poll() is None and proc.stdout is not None  # still waiting for stdin
    assert proc.stdin is not None
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0
    assert b"Reading additional input from stdin" in proc.stderr.read()
