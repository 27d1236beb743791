"""The built-in safety rules (veto model, see godeld.safety), one module each:

- `tools` (tools.py): the allowed / denied / ask tool lists;
- `paths` (paths.py): file tools and commands stay inside the agent's worktree, and away from `.git`;
- `commands` (commands.py): commands that wreck the machine, a home or protected branches;
- `network` (network.py): commands reach only the hosts in `safety.network_allow`.

Commands are analysed once per check (script.py, cached) and shared by the three command rules:
shell.py parses, script.py expands statically (seeing through wrappers, nesting and obfuscation),
interp.py reads inline interpreter code, effects.py says what a command writes.
Stdlib only: the agent worker process imports these too. See docs/safety.md.
"""

from __future__ import annotations

from godeld import hookimpl
from godeld.default_plugins.safety.commands import DangerousCommandRule
from godeld.default_plugins.safety.network import NetworkAllowRule
from godeld.default_plugins.safety.paths import PathSandboxRule
from godeld.default_plugins.safety.tools import ToolListRule

__all__ = ["DangerousCommandRule", "NetworkAllowRule", "PathSandboxRule", "ToolListRule", "register_safety_rules"]


@hookimpl
def register_safety_rules(register):
    register("tools", ToolListRule())
    register("paths", PathSandboxRule())
    register("commands", DangerousCommandRule())
    register("network", NetworkAllowRule())
