"""Directory watching: watchdog's observer thread feeding trio.

watchdog reports several events per write (created, opened, modified, closed). We react only to
a file being closed after writing, moved into place (editors, os.replace) or deleted, and debounce,
so a change is seen once, after it is complete. Reads (closed_no_write) are ignored: loading a
plugin must not trigger its own reload.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import AsyncIterator, Iterable

import trio
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

log = logging.getLogger("godeld.watch")

_RELEVANT = {"closed", "moved", "deleted"}


class _Handler(FileSystemEventHandler):
    def __init__(self, token: trio.lowlevel.TrioToken, on_change, suffixes: tuple[str, ...]):
        self._token = token
        self._on_change = on_change
        self._suffixes = suffixes

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in _RELEVANT or event.is_directory:
            return
        paths = [event.src_path] + ([event.dest_path] if getattr(event, "dest_path", "") else [])
        paths = [p if isinstance(p, str) else p.decode() for p in paths]
        if not any(p.endswith(self._suffixes) for p in paths):
            return
        try:
            self._token.run_sync_soon(self._on_change, paths)
        except trio.RunFinishedError:
            pass


async def watch_directories(directories: Iterable[Path], *, debounce_s: float, suffixes: tuple[str, ...] = (".py",), recursive: bool = False) -> AsyncIterator[set[str]]:
    """Yield the set of changed paths after each quiet period of `debounce_s` seconds."""
    existing = [Path(d) for d in directories if Path(d).is_dir()]
    if not existing:
        await trio.sleep_forever()
    changed: set[str] = set()
    wakeup = trio.Event()

    def on_change(paths: list[str]) -> None:
        changed.update(paths)
        wakeup.set()

    observer = Observer()
    handler = _Handler(trio.lowlevel.current_trio_token(), on_change, suffixes)
    for directory in existing:
        observer.schedule(handler, str(directory), recursive=recursive)
    observer.start()
    try:
        while True:
            await wakeup.wait()
            # Debounce: wait until the directory has been quiet for a moment.
            while True:
                wakeup = trio.Event()
                with trio.move_on_after(debounce_s):
                    await wakeup.wait()
                    continue
                break
            batch, changed = set(changed), set()
            wakeup = trio.Event()
            yield batch
    finally:
        observer.stop()
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(observer.join)
