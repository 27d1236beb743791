"""Built-in workflow step kinds, one plugin module each (registered with register_step_kinds)."""
