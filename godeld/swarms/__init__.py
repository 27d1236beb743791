"""Swarms: many agents on one job, coordinated by a strategy plugin."""
