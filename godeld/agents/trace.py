"""Reasoning traces: an agent's run as steps of plan → decision → outcome, built from its stored
transcript (so any agent, old or live, API or CLI, has one) and announced live as `agent:step`
events.

A step starts at each assistant message: its text is the *plan*; the *decision* is the tools it
called (or, with none, the final answer); the *outcomes* are those tools' results (and whether
safety let them run)."""

from __future__ import annotations

from typing import Any

MAX_TEXT = 4000


def _short(text: Any, limit: int = MAX_TEXT) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text) - limit} more characters)"


def build_trace(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    by_call: dict[str, dict[str, Any]] = {}
    for entry in entries:
        kind, data = entry.get("kind"), entry.get("data") or {}
        if kind == "assistant":
            calls = [{"id": c.get("id"), "tool": c.get("name"), "args": c.get("args")} for c in data.get("tool_calls") or []]
            current = {"step": len(steps) + 1, "ts": entry.get("ts"), "plan": _short(data.get("content")), "decision": {"tools": calls} if calls else {"answer": True},
                       "outcomes": [], "model": data.get("model"), "usage": data.get("usage")}
            steps.append(current)
            for call in calls:
                if call["id"]:
                    by_call[call["id"]] = current
        elif kind in ("tool", "tool_result") and current is None or kind == "tool" and "result" not in data and current["decision"].get("answer"):
            # A CLI agent that acts without saying anything first (codex runs commands): a step
            # with no plan.
            current = {"step": len(steps) + 1, "ts": entry.get("ts"), "plan": "", "decision": {"tools": []}, "outcomes": [], "model": None, "usage": None}
            steps.append(current)
            if kind == "tool" and "result" not in data:
                call = {"id": data.get("id"), "tool": data.get("name"), "args": data.get("args")}
                current["decision"]["tools"].append(call)
                if call["id"]:
                    by_call[call["id"]] = current
        elif kind == "tool" and current is not None:
            if "result" in data:  # API agents: the call and its result in one entry
                step = by_call.get(data.get("id")) or current
                decision = data.get("decision") or {}
                step["outcomes"].append({"tool": data.get("name"), "ok": not data.get("is_error"), "result": _short(data.get("result"), 1000),
                                         **({"blocked": decision.get("reason")} if decision.get("verdict") not in (None, "allow") else {})})
            else:  # CLI agents: the tool use now, its result in a later tool_result entry
                call = {"id": data.get("id"), "tool": data.get("name"), "args": data.get("args")}
                current["decision"] = {"tools": [*current["decision"].get("tools", []), call]}
                if call["id"]:
                    by_call[call["id"]] = current
        elif kind == "tool_result" and current is not None:
            step = by_call.get(data.get("id")) or current
            step["outcomes"].append({"tool": next((c["tool"] for c in step["decision"].get("tools", []) if c["id"] == data.get("id")), None),
                                     "ok": not data.get("is_error"), "result": _short(data.get("result"), 1000)})
        elif kind == "error" and current is not None:
            current["outcomes"].append({"error": _short(data.get("error"), 1000)})
    return steps
