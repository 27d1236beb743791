"""CLI agent presets: claude (Claude Code), codex (Codex CLI), aider, gemini (Gemini CLI) and a
generic `command`. Each knows its program's flags and output format; the agent worker runs the
program in the agent's worktree and feeds its stdout to the preset's parser. See
docs/cli-agents.md."""

from __future__ import annotations

from godeld import hookimpl
from godeld.default_plugins.cli_agents.aider import AiderPreset
from godeld.default_plugins.cli_agents.claude import ClaudePreset
from godeld.default_plugins.cli_agents.codex import CodexPreset
from godeld.default_plugins.cli_agents.command import CommandPreset
from godeld.default_plugins.cli_agents.gemini import GeminiPreset

PRESETS = (ClaudePreset, CodexPreset, AiderPreset, GeminiPreset, CommandPreset)


@hookimpl
def register_providers(register):
    for preset in PRESETS:
        register(preset.name, preset())
