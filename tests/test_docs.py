"""The docs are kept true by these tests: hooks, RPC methods, the example config, the README."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from godeld.config import example_yaml
from godeld.plugins import HOOK_NAMES, PluginHost

ROOT = Path(__file__).resolve().parent.parent


def headings(path: Path) -> list[str]:
    return re.findall(r"^### (\S+)\s*$", path.read_text(), flags=re.M)


def sections(path: Path) -> dict[str, str]:
    text = path.read_text()
    parts = re.split(r"^### (\S+)\s*$", text, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def test_every_hook_is_documented():
    documented = headings(ROOT / "docs" / "plugin-hooks.md")
    assert sorted(HOOK_NAMES) == sorted(documented), "docs/plugin-hooks.md must have a '### <hook>' section for exactly the hooks in hookspecs.py"


def test_every_hook_has_a_test():
    tests = set()
    for path in (ROOT / "tests").glob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_hook_"):
                tests.add(node.name.removeprefix("test_hook_"))
    missing = sorted(set(HOOK_NAMES) - tests)
    assert not missing, f"hooks without a test_hook_<name> test: {missing}"


def test_every_rpc_method_is_documented_with_its_params():
    host = PluginHost(entry_points=False)
    host.load()
    host.build_registries()
    documented = sections(ROOT / "docs" / "rpc.md")
    methods = host.registries.rpc_methods
    missing = [name for name in methods.names() if name not in documented]
    assert not missing, f"methods missing from docs/rpc.md: {missing}"
    for name in methods.names():
        for param in methods[name].params:
            assert f"`{param.name}`" in documented[name], f"docs/rpc.md: {name} does not describe its param {param.name!r}"
    stale = [name for name in documented if "." in name and name not in methods]
    assert not stale, f"docs/rpc.md documents methods that do not exist: {stale}"


def test_example_config_lists_every_key_with_its_default():
    assert (ROOT / "config" / "godel.example.yaml").read_text() == example_yaml(), "regenerate it: godeld example-config > config/godel.example.yaml"


def test_readme_has_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def _command_paths(group, prefix):
    import click

    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        yield path
        if isinstance(command, click.Group):
            yield from _command_paths(command, path)


def test_every_command_is_documented():
    from godelctl.cli import cli as godelctl_cli
    from godeld.cli import cli as godeld_cli

    documented = set(re.findall(r"^### (.+?)\s*$", (ROOT / "docs" / "cli.md").read_text(), flags=re.M))
    commands = set(_command_paths(godelctl_cli, "godelctl")) | set(_command_paths(godeld_cli, "godeld"))
    assert sorted(commands - documented) == [], "commands missing from docs/cli.md"
    assert sorted(documented - commands) == [], "docs/cli.md documents commands that do not exist"
