"""Built-in godelctl commands, one module per noun, each exposing register_commands(cli)."""
