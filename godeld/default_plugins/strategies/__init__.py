"""Built-in swarm strategies, one plugin module each (registered with register_strategies)."""
