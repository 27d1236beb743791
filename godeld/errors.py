"""One exception tree. Each class carries its JSON-RPC error code, so any GodelError raised in a
handler reaches the client as a proper error object, and anything else becomes -32603."""

from __future__ import annotations

from typing import Any

from godeld import protocol as p


class GodelError(Exception):
    code: int = p.APPLICATION_ERROR

    def __init__(self, message: str, data: Any = None):
        super().__init__(message)
        self.message = message
        self.data = data

    def to_error(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


class ParseError(GodelError):
    code = p.PARSE_ERROR


class InvalidRequest(GodelError):
    code = p.INVALID_REQUEST


class MethodNotFound(GodelError):
    code = p.METHOD_NOT_FOUND


class InvalidParams(GodelError):
    code = p.INVALID_PARAMS


class InternalError(GodelError):
    code = p.INTERNAL_ERROR


class NotFound(GodelError):
    code = p.NOT_FOUND


class Conflict(GodelError):
    code = p.CONFLICT


class ShuttingDown(GodelError):
    code = p.SHUTTING_DOWN


class StorageError(GodelError):
    code = p.STORAGE_ERROR


class ConfigError(GodelError):
    """Bad configuration. `data["errors"]` lists each problem with file, line, column and path."""

    code = p.CONFIG_ERROR


class PluginError(GodelError):
    code = p.PLUGIN_ERROR


class StartupError(Exception):
    """The daemon cannot start; the message says why and what to do. Not an RPC error."""


class BudgetExceeded(GodelError):
    code = p.BUDGET_EXCEEDED


class SafetyBlocked(GodelError):
    code = p.SAFETY_BLOCKED
