"""LLM API providers, one plugin module each."""
