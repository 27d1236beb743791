"""Agents: each one a real process in its own git worktree, driven by a provider."""
