"""Quality gates: checks run after an agent or a workflow step, whose failures feed a retry."""
