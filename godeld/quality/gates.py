"""Quality gates, run after an agent's run (agents.spawn {gates}) or a workflow step (`gates:`).

    {command: "pytest -q", timeout_s: 600}     passes when the command exits 0 (run in the worktree)
    {regex: "PATTERN", negate: false}          passes when the answer matches (or, negated, does not)
    {json_schema: {...}}                       passes when the JSON in the answer fits the schema
    {judge: "CRITERIA", provider?, model?, script?}
                                               an LLM judge answers PASS or FAIL (first word), then why

A failing gate's output is fed into the retry: the agent goes on in the same worktree with the
gate's report as a new message (agents), or the next attempt's task carries it (workflow steps).
"""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import trio

from godeld.quality.schema import problems

KINDS = ("command", "regex", "json_schema", "judge")
MAX_OUTPUT = 4000
JUDGE_SYSTEM = (
    "You are a strict reviewer of a coding agent's work. Decide whether the work meets the criteria. "
    "Answer with PASS or FAIL as the first word, then one short paragraph saying why."
)
_JSON_BLOCK = re.compile(r"```(?:json)?\s*(\{.*?\}|\[.*?\])\s*```", re.S)


def check_gates(gates: Any) -> list[dict[str, Any]]:
    """The gates, validated; ValueError naming the gate and field."""
    if gates is None:
        return []
    if not isinstance(gates, list):
        raise ValueError("gates must be a list of gates like {command: 'pytest -q'}")
    out = []
    for i, gate in enumerate(gates):
        if not isinstance(gate, dict):
            raise ValueError(f"gates[{i}] must be an object")
        kinds = [k for k in KINDS if k in gate]
        if len(kinds) != 1:
            raise ValueError(f"gates[{i}] must have exactly one of {', '.join(KINDS)}")
        kind = kinds[0]
        if kind in ("command", "regex", "judge") and not (isinstance(gate[kind], str) and gate[kind].strip()):
            raise ValueError(f"gates[{i}].{kind} must be a non-empty string")
        if kind == "regex":
            try:
                re.compile(gate["regex"])
            except re.error as exc:
                raise ValueError(f"gates[{i}].regex: {exc}") from None
        if kind == "json_schema" and not isinstance(gate["json_schema"], (dict, bool)):
            raise ValueError(f"gates[{i}].json_schema must be a JSON Schema object")
        out.append({"kind": kind, **gate, "name": gate.get("name") or f"{kind}:{str(gate[kind])[:40]}" if kind != "json_schema" else gate.get("name") or "json_schema"})
    return out


def json_in(answer: str) -> Any:
    """The JSON value of an answer: the whole text, else its last ```json block; ValueError if none."""
    text = answer.strip()
    try:
        return json.loads(text)
    except ValueError:
        pass
    blocks = _JSON_BLOCK.findall(answer)
    if not blocks:
        raise ValueError("the answer holds no JSON (neither the whole text nor a ```json block)")
    return json.loads(blocks[-1])


async def run_gate(gate: dict[str, Any], *, cwd: str, answer: str, task: str, daemon: Any, env: dict[str, str] | None = None) -> dict[str, Any]:
    """{name, kind, passed, output}; `usage` too for a judge."""
    kind = gate["kind"]
    result: dict[str, Any] = {"name": gate["name"], "kind": kind}
    if kind == "command":
        import os

        with trio.move_on_after(float(gate.get("timeout_s", 600))) as limit:
            proc = await trio.run_process(["/bin/sh", "-c", gate["command"]], cwd=cwd, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
                                          capture_stdout=True, stderr=subprocess.STDOUT, check=False, start_new_session=True)
        if limit.cancelled_caught:
            return {**result, "passed": False, "output": f"`{gate['command']}` took longer than {gate.get('timeout_s', 600)}s"}
        text = proc.stdout.decode(errors="replace")
        tail = text if len(text) <= MAX_OUTPUT else "…" + text[-MAX_OUTPUT:]
        return {**result, "passed": proc.returncode == 0, "output": f"`{gate['command']}` exited {proc.returncode}\n{tail}".rstrip()}
    if kind == "regex":
        found = re.search(gate["regex"], answer or "") is not None
        passed = not found if gate.get("negate") else found
        what = "must not match" if gate.get("negate") else "must match"
        return {**result, "passed": passed, "output": "" if passed else f"the answer {what} /{gate['regex']}/"}
    if kind == "json_schema":
        try:
            value = json_in(answer or "")
        except ValueError as exc:
            return {**result, "passed": False, "output": str(exc)}
        found = problems(value, gate["json_schema"])
        return {**result, "passed": not found, "output": "; ".join(found[:20])}
    return await _judge(gate, result, answer=answer, task=task, daemon=daemon)


async def _judge(gate: dict[str, Any], result: dict[str, Any], *, answer: str, task: str, daemon: Any) -> dict[str, Any]:
    from godeld.agents.llm import ProviderError

    registries = daemon.plugins.registries
    name = gate.get("provider") or daemon.config.get("agents.default_provider")
    if name not in registries.providers or getattr(registries.providers[name], "kind", "api") != "api":
        return {**result, "passed": False, "output": f"judge provider {name!r} is not an API provider godeld knows"}
    providers = daemon.config.get("providers") or {}
    options = {**(providers.get(name) or {}), **({"script": gate["script"]} if gate.get("script") is not None else {})}
    messages = [
        {"role": "system", "content": JUDGE_SYSTEM},
        {"role": "user", "content": f"Task:\n{task}\n\nCriteria:\n{gate['judge']}\n\nThe agent's answer:\n{answer}"},
    ]

    def ask() -> Any:
        session = registries.providers[name].open(model=gate.get("model") or options.get("model"), options=options)
        try:
            return session.complete(messages, [])
        finally:
            session.close()

    try:
        turn = await trio.to_thread.run_sync(ask)
    except ProviderError as exc:
        return {**result, "passed": False, "output": f"the judge ({name}) failed: {exc.message}"}
    verdict = (turn.text or "").strip()
    passed = verdict.split(None, 1)[0].strip(".:!").upper() == "PASS" if verdict else False
    return {**result, "passed": passed, "output": verdict[:MAX_OUTPUT], "usage": {"provider": name, "model": turn.model or "", "usage": turn.usage.to_dict()}}


def feedback(results: list[dict[str, Any]]) -> str:
    """What a retry is told about the gates that failed."""
    failed = [r for r in results if not r["passed"]]
    lines = ["Your work did not pass the quality gates. Fix what they report, then answer again."]
    for r in failed:
        lines.append(f"\n## Gate {r['name']} failed\n{r['output']}")
    return "\n".join(lines)
