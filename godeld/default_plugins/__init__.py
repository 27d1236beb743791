"""Built-in plugins: registered through the same hooks as any third-party plugin."""

DEFAULT_PLUGINS = (
    "godeld.default_plugins.sqlite",
    "godeld.default_plugins.daemon_rpc",
    "godeld.default_plugins.plugins_rpc",
    "godeld.default_plugins.events_rpc",
    "godeld.default_plugins.worktree",
    "godeld.default_plugins.scripted",
    "godeld.default_plugins.safety",
    "godeld.default_plugins.providers.openai",
    "godeld.default_plugins.providers.anthropic",
    "godeld.default_plugins.cli_agents",
    "godeld.default_plugins.agents_rpc",
    "godeld.default_plugins.tasks_rpc",
    "godeld.default_plugins.steps.shell",
    "godeld.default_plugins.steps.agent",
    "godeld.default_plugins.steps.approval",
    "godeld.default_plugins.steps.workflow",
    "godeld.default_plugins.steps.notify",
    "godeld.default_plugins.steps.swarm",
    "godeld.default_plugins.workflows_rpc",
)
