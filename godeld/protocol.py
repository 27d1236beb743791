"""The wire contract between godeld and its clients. Standard library only: godelctl imports it.

Framing: one JSON text per line (UTF-8, newline-delimited), JSON-RPC 2.0 messages.
"""

from __future__ import annotations

import os
from pathlib import Path

PROTOCOL_VERSION = 1
JSONRPC_VERSION = "2.0"

# JSON-RPC 2.0 standard errors.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

# Application errors: -32000..-32099.
APPLICATION_ERROR = -32000
NOT_FOUND = -32001
CONFLICT = -32002
SHUTTING_DOWN = -32003
STORAGE_ERROR = -32004
CONFIG_ERROR = -32005
PLUGIN_ERROR = -32006
BUDGET_EXCEEDED = -32010
SAFETY_BLOCKED = -32011

ERROR_NAMES = {
    PARSE_ERROR: "parse error",
    INVALID_REQUEST: "invalid request",
    METHOD_NOT_FOUND: "method not found",
    INVALID_PARAMS: "invalid params",
    INTERNAL_ERROR: "internal error",
    APPLICATION_ERROR: "application error",
    NOT_FOUND: "not found",
    CONFLICT: "conflict",
    SHUTTING_DOWN: "shutting down",
    STORAGE_ERROR: "storage error",
    CONFIG_ERROR: "config error",
    PLUGIN_ERROR: "plugin error",
    BUDGET_EXCEEDED: "budget exceeded",
    SAFETY_BLOCKED: "blocked by safety rule",
}

DEFAULT_MAX_LINE_BYTES = 1 << 20

# Server-to-client notifications.
EVENT_NOTIFICATION = "events.event"
LAGGED_NOTIFICATION = "events.lagged"
STOPPING_NOTIFICATION = "daemon.stopping"

# The longest path an AF_UNIX socket address can hold on Linux (108 bytes incl. the NUL).
MAX_SOCKET_PATH_BYTES = 107


def default_home() -> Path:
    """$GODEL_HOME, else ~/.godel."""
    env = os.environ.get("GODEL_HOME")
    return Path(env).expanduser() if env else Path.home() / ".godel"


def default_socket(home: Path | None = None) -> Path:
    """$GODEL_SOCKET, else <home>/godeld.sock."""
    env = os.environ.get("GODEL_SOCKET")
    if env:
        return Path(env).expanduser()
    return (home or default_home()) / "godeld.sock"
