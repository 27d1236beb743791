"""Logging for godeld: stderr always (journald adds its own timestamps), optionally a file."""

from __future__ import annotations

import logging
import os

_FORMAT = "%(levelname)s %(name)s: %(message)s"


def setup_logging(level: str = "info", file: str | None = None) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_godel", False):
            root.removeHandler(handler)
    stderr = logging.StreamHandler()
    # Under systemd, journald timestamps every line; elsewhere we do.
    stderr.setFormatter(logging.Formatter(_FORMAT if os.environ.get("JOURNAL_STREAM") else "%(asctime)s " + _FORMAT))
    handlers: list[logging.Handler] = [stderr]
    if file:
        file_handler = logging.FileHandler(file)
        file_handler.setFormatter(logging.Formatter("%(asctime)s " + _FORMAT))
        handlers.append(file_handler)
    for handler in handlers:
        handler._godel = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    set_level(level)


def set_level(level: str) -> None:
    logging.getLogger().setLevel(getattr(logging, level.upper(), logging.INFO))
