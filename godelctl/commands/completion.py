"""godelctl completion: print the shell completion script."""

from __future__ import annotations

import click


def register_commands(cli):
    cli.add_command(completion)


@click.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
@click.pass_context
def completion(ctx, shell):
    """Print the completion script for SHELL.

    \b
    bash:  eval "$(godelctl completion bash)"   (e.g. in ~/.bashrc)
    zsh:   eval "$(godelctl completion zsh)"    (e.g. in ~/.zshrc)
    fish:  godelctl completion fish > ~/.config/fish/completions/godelctl.fish
    """
    from click.shell_completion import get_completion_class

    root = ctx.find_root().command
    completer = get_completion_class(shell)(root, {}, "godelctl", "_GODELCTL_COMPLETE")
    click.echo(completer.source())
