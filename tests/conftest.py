from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any, Iterable

import pytest
import trio

from godeld.config import load_config
from godeld.daemon import Daemon
from godeld.plugins import PluginHost
from tests.helpers import AsyncRpc, Godeld, cleanup_home, short_tmpdir


def processes_using(home: Path) -> list[int]:
    """Pids of processes whose command line names `home` (a leaked godeld, for instance)."""
    needle = os.fsencode(str(home))
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if needle in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


@pytest.fixture
def home() -> Iterable[Path]:
    path = short_tmpdir()
    yield path
    leaked = processes_using(path)
    for pid in leaked:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    cleanup_home(path)
    assert not leaked, f"processes left running on {path}: {leaked}"


def make_config(home: Path, overrides: dict[str, str] | None = None):
    """Config for a test daemon: defaults, no entry points, only the given env overrides."""
    environ = {"GODEL_PLUGINS__ENTRY_POINTS": "false", **(overrides or {})}
    return load_config(home=home, environ=environ)


class DaemonFactory:
    def __init__(self, nursery: trio.Nursery, home: Path):
        self.nursery = nursery
        self.home = home
        self.started: list[Daemon] = []

    async def start(self, *, plugins: Iterable[tuple[str, Any]] = (), overrides: dict[str, str] | None = None, dropin_dirs=None) -> Daemon:
        config = make_config(self.home, overrides)
        host = PluginHost(entry_points=False, dropin_dirs=dropin_dirs if dropin_dirs is not None else [self.home / "plugins"], extra=list(plugins), disabled=config.get("plugins.disabled"))
        daemon = Daemon(config, plugins=host, handle_signals=False)
        await self.nursery.start(daemon.run)
        self.started.append(daemon)
        return daemon

    async def stop(self, daemon: Daemon) -> None:
        daemon.request_stop("test")
        with trio.fail_after(30):
            await daemon.stopped.wait()


@pytest.fixture
async def daemons(nursery, home):
    factory = DaemonFactory(nursery, home)
    yield factory
    for daemon in factory.started:
        if not daemon.stopped.is_set():
            await factory.stop(daemon)


@pytest.fixture
async def daemon(daemons):
    return await daemons.start()


@pytest.fixture
async def rpc(daemon):
    client = await AsyncRpc.connect(daemon.socket_path)
    yield client
    await client.aclose()


@pytest.fixture
def godeld(home):
    """Factory for real godeld processes on the test's home; all are stopped at the end."""
    procs: list[Godeld] = []

    def factory(*args: str, **kwargs: Any) -> Godeld:
        proc = Godeld(home, *args, **kwargs)
        procs.append(proc)
        return proc

    yield factory
    for proc in procs:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.stop()
