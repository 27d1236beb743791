"""The `tools` rule: which tools an agent may use at all.

`policy.allowed_tools` (None: any), `policy.denied_tools` (wins over the allow list) and
`policy.ask_tools` (these wait for a person's approval).
"""

from __future__ import annotations

from godeld.safety import Action, Decision, Policy

NAME = "tools"


class ToolListRule:
    name = NAME

    def check(self, action: Action, policy: Policy) -> Decision | None:
        tool = action.tool
        if not isinstance(tool, str) or not tool:
            return Decision("deny", f"the tool name must be a non-empty string (got {tool!r})", NAME)
        if tool in policy.denied_tools:
            return Decision("deny", f"the tool {tool} is denied by policy (safety.denied_tools)", NAME)
        if policy.allowed_tools is not None and tool not in policy.allowed_tools:
            allowed = ", ".join(sorted(policy.allowed_tools)) or "none"
            return Decision("deny", f"the tool {tool} is not among this agent's tools ({allowed})", NAME)
        if tool in policy.ask_tools:
            return Decision("ask", f"the tool {tool} needs a person's approval (safety.ask_tools)", NAME)
        return None
