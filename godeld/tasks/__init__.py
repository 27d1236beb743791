"""The task queue: a persistent priority queue of commands and agent tasks, claimed with leases.

queue.py is the service (submit, claim, heartbeat, complete, fail, cancel, retry, sweep), store.py
what it needs from storage, runner.py the in-daemon worker that executes claimed tasks.
"""
