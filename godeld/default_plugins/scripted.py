"""The `scripted` provider: offline and deterministic. It replays a script of steps — what the
"model" says, the tools it calls, pauses and failures — so the whole agent machinery (worktrees,
safety, budget, transcripts) runs for real without an LLM. It drives the demo and most tests.

A script is a list of steps (from agents.spawn's `script`, or a YAML file named by
provider_options.script_file):
  {"say": TEXT}                 text of the current turn
  {"tool": NAME, "args": {...}} a tool call in the current turn
  {"sleep": SECONDS}            wait (the agent is busy; pause and kill act on it)
  {"fail": MESSAGE}             the provider fails with MESSAGE
Any step may carry "usage": {"input_tokens": N, "output_tokens": M, ...}, counted like real usage.

Turns: steps are gathered into one model turn until a tool call has been gathered and the next
step is not another tool call; the turn then ends and the tools run. A turn without a tool call
is the final answer. When the script runs out, the agent ends with what was said last.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from godeld import hookimpl
from godeld.agents.llm import ProviderError, ToolCall, Turn, Usage

STEP_KINDS = ("say", "tool", "sleep", "fail")


def validate_script(script: Any) -> list[dict[str, Any]]:
    """The script as a list of steps; ValueError naming the step and field otherwise."""
    if not isinstance(script, list):
        raise ValueError("script must be a list of steps")
    for i, step in enumerate(script):
        if not isinstance(step, dict):
            raise ValueError(f"script[{i}] must be an object like {{\"say\": \"text\"}}")
        kinds = [k for k in STEP_KINDS if k in step]
        if len(kinds) != 1:
            raise ValueError(f"script[{i}] must have exactly one of {', '.join(STEP_KINDS)}")
        extra = set(step) - {kinds[0], "args", "usage", "id"}
        if extra:
            raise ValueError(f"script[{i}]: unknown field(s) {', '.join(sorted(extra))}")
        kind = kinds[0]
        if kind == "tool" and (not isinstance(step["tool"], str) or not isinstance(step.get("args", {}), dict)):
            raise ValueError(f"script[{i}]: tool must be a name and args an object")
        if kind == "sleep" and (isinstance(step["sleep"], bool) or not isinstance(step["sleep"], (int, float)) or step["sleep"] < 0):
            raise ValueError(f"script[{i}]: sleep must be a number of seconds")
        if kind in ("say", "fail") and not isinstance(step[kind], str):
            raise ValueError(f"script[{i}]: {kind} must be a string")
        if "usage" in step and not isinstance(step["usage"], dict):
            raise ValueError(f"script[{i}]: usage must be an object")
    return script


class ScriptedSession:
    def __init__(self, script: list[dict[str, Any]], model: str):
        self.steps = list(script)
        self.pos = 0
        self.model = model
        self.calls = 0

    def complete(self, messages, tools, on_text: Callable[[str], None] | None = None) -> Turn:
        turn = Turn(model=self.model, stop_reason="end_turn")
        texts = []
        while self.pos < len(self.steps):
            step = self.steps[self.pos]
            if "tool" not in step and turn.tool_calls:
                break  # the turn ends after its tool calls
            self.pos += 1
            turn.usage.add(Usage.from_dict(step.get("usage")))
            if "say" in step:
                texts.append(step["say"])
                if on_text:
                    on_text(step["say"] + "\n")
            elif "tool" in step:
                self.calls += 1
                turn.tool_calls.append(ToolCall(id=str(step.get("id") or f"call_{self.calls}"), name=step["tool"], args=dict(step.get("args") or {})))
            elif "sleep" in step:
                time.sleep(float(step["sleep"]))
            elif "fail" in step:
                raise ProviderError(step["fail"])
        turn.text = "\n".join(texts)
        if turn.tool_calls:
            turn.stop_reason = "tool_use"
        return turn

    def close(self) -> None:
        pass


class ScriptedProvider:
    kind = "api"
    default_model = "scripted"

    def open(self, *, model: str | None, options: dict[str, Any]) -> ScriptedSession:
        script = options.get("script")
        if script is None and options.get("script_file"):
            import yaml

            with open(options["script_file"]) as f:
                script = yaml.safe_load(f)
        if script is None:
            script = [{"say": "Nothing to do: the scripted provider was given no script."}]
        try:
            return ScriptedSession(validate_script(script), model or "scripted")
        except ValueError as exc:
            raise ProviderError(f"bad script: {exc}") from None


@hookimpl
def register_providers(register):
    register("scripted", ScriptedProvider())
