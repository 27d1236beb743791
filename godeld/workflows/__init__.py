"""Workflows: a durable YAML DAG engine."""
