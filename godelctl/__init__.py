"""godelctl: the command-line client of godeld (synchronous; no trio, no pluggy)."""
