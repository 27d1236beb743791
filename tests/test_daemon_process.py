"""godeld as a real process: socket, signals, drain, reload, sd_notify, crash durability."""

from __future__ import annotations

import os
import select
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from godelctl.client import Client, ClientError, RpcError
from tests.helpers import Godeld

SLOW_PLUGIN = '''
import trio
from godeld import hookimpl


@hookimpl
def register_rpc_methods(register):
    register("test.sleep", sleep)


async def sleep(ctx, seconds: float) -> dict:
    """Sleep, announcing it first (lets a test act while this request is in flight)."""
    await ctx.daemon.bus.publish("test:sleeping", {"seconds": seconds})
    await trio.sleep(seconds)
    return {"slept": seconds}
'''


def env_without_godel() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GODEL_")}
    env["GODEL_PLUGINS__ENTRY_POINTS"] = "false"
    return env


def wait_for_event(proc: Godeld, pattern: str, since: int = 0, timeout: float = 20) -> dict:
    with Client(proc.socket, timeout=timeout) as client:
        client.call("events.subscribe", {"pattern": pattern, "since": since, "once": True})
        for message in client.notifications(timeout=timeout):
            if message["method"] == "events.event":
                return message["params"]
    raise AssertionError(f"no {pattern} event")


class NotifyListener:
    """Plays systemd's part of sd_notify: collects the states godeld sends."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.address = f"godel-notify-{os.getpid()}-{time.monotonic_ns()}"
        self.sock.bind("\0" + self.address)
        self.messages: list[str] = []

    def wait_for(self, state: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not any(state in m for m in self.messages):
            readable, _, _ = select.select([self.sock], [], [], max(0, deadline - time.monotonic()))
            if not readable:
                raise AssertionError(f"no {state} among {self.messages}")
            self.messages.append(self.sock.recv(4096).decode())


def test_socket_is_private_and_removed_on_stop(godeld, home):
    proc = godeld().start()
    mode = stat.S_IMODE(os.stat(proc.socket).st_mode)
    assert stat.S_ISSOCK(os.stat(proc.socket).st_mode)
    assert mode == 0o600, oct(mode)
    assert stat.S_IMODE(os.stat(home).st_mode) & 0o077 == 0 or home.exists()
    assert proc.call("daemon.status")["socket"] == str(proc.socket)
    assert proc.stop() == 0
    assert not proc.socket.exists()


def test_stale_socket_file_is_replaced(godeld, home):
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(home / "godeld.sock"))
    stale.close()  # the file stays, nobody listens: what a crashed daemon leaves behind
    assert (home / "godeld.sock").exists()
    proc = godeld().start()
    assert proc.call("daemon.status")["state"] == "running"


def test_second_daemon_on_a_live_socket_exits_with_a_clear_message(godeld, home):
    first = godeld().start()
    code, output = Godeld(home).run_expecting_failure()
    assert code == 1
    assert f"godeld is already running on {home / 'godeld.sock'}" in output
    assert "Traceback" not in output
    assert first.call("daemon.status")["state"] == "running"  # the first one is unharmed


def test_second_daemon_on_the_same_database_is_refused(godeld, home):
    first = godeld().start()
    code, output = Godeld(home, "--socket", str(home / "other.sock")).run_expecting_failure()
    assert code == 1
    assert f"is in use by another godeld (pid {first.proc.pid})" in output
    assert "Traceback" not in output


def test_database_that_cannot_be_opened_stops_start_up(home):
    (home / "godel.db").write_bytes(b"garbage, not a database" * 50)
    code, output = Godeld(home).run_expecting_failure()
    assert code == 1
    assert "cannot use database" in output and "file is not a database" in output
    assert not (home / "godeld.sock").exists(), "it must not serve without its database"


def test_unknown_storage_backend(home):
    code, output = Godeld(home, env={"GODEL_STORAGE__BACKEND": "nosuch"}).run_expecting_failure()
    assert code == 1
    assert "unknown storage backend 'nosuch' (available: sqlite)" in output


def test_invalid_config_names_file_line_and_key(home):
    (home / "config.yaml").write_text("rpc:\n  max_line_bytes: lots\nevents:\n  subscriber_bufer: 5\n")
    code, output = Godeld(home).run_expecting_failure()
    assert code == 2
    assert f"{home / 'config.yaml'}:2:3: rpc.max_line_bytes: expected an integer" in output
    assert f"{home / 'config.yaml'}:4:3: events.subscriber_bufer: unknown key 'subscriber_bufer' (did you mean 'subscriber_buffer'?)" in output


def test_socket_path_too_long(home):
    long_path = home / ("x" * 120) / "godeld.sock"
    code, output = Godeld(home, "--socket", str(long_path)).run_expecting_failure()
    assert code == 1
    assert "socket path is too long" in output


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_finishes_in_flight_requests_then_exits_0(godeld, home, signum):
    (home / "plugins").mkdir()
    (home / "plugins" / "slow.py").write_text(SLOW_PLUGIN)
    proc = godeld().start()
    client = Client(proc.socket, timeout=30).connect()
    client._send({"jsonrpc": "2.0", "id": 1, "method": "test.sleep", "params": {"seconds": 1.0}})
    wait_for_event(proc, "test:sleeping")
    proc.signal(signum)
    reply = client._read()
    assert reply == {"jsonrpc": "2.0", "id": 1, "result": {"slept": 1.0}}
    assert proc.wait() == 0
    # the event log records why it stopped
    restarted = godeld().start()
    events = restarted.call("events.list", {"pattern": "daemon:stop"})["events"]
    assert events[-1]["data"] == {"reason": signal.Signals(signum).name}


def test_drain_deadline_bounds_shutdown(godeld, home):
    (home / "plugins").mkdir()
    (home / "plugins" / "slow.py").write_text(SLOW_PLUGIN)
    proc = godeld(env={"GODEL_RPC__DRAIN_TIMEOUT_S": "0.2"}).start()
    client = Client(proc.socket, timeout=30).connect()
    client._send({"jsonrpc": "2.0", "id": 1, "method": "test.sleep", "params": {"seconds": 3600}})
    wait_for_event(proc, "test:sleeping")
    proc.signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    with pytest.raises(ClientError):
        client._read()


def test_requests_during_drain_are_refused_with_shutting_down(godeld, home):
    (home / "plugins").mkdir()
    (home / "plugins" / "slow.py").write_text(SLOW_PLUGIN)
    proc = godeld().start()
    busy = Client(proc.socket, timeout=30).connect()
    other = Client(proc.socket, timeout=30).connect()
    busy._send({"jsonrpc": "2.0", "id": 1, "method": "test.sleep", "params": {"seconds": 2}})
    wait_for_event(proc, "test:sleeping")
    proc.signal(signal.SIGTERM)
    with pytest.raises(RpcError) as refused:
        while True:  # the first request may still be read before the signal is handled
            other.call("daemon.status")
    assert refused.value.code == -32003
    assert busy._read()["result"] == {"slept": 2}
    assert proc.wait() == 0


def test_sd_notify_ready_reloading_and_stopping(home):
    listener = NotifyListener()
    env = env_without_godel()
    env["NOTIFY_SOCKET"] = "@" + listener.address
    proc = subprocess.Popen([sys.executable, "-m", "godeld", "run", "--home", str(home)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        listener.wait_for("READY=1")
        proc.send_signal(signal.SIGHUP)
        listener.wait_for("RELOADING=1")
        assert any("MONOTONIC_USEC=" in m for m in listener.messages)
        proc.send_signal(signal.SIGTERM)
        listener.wait_for("STOPPING=1")
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    states = [m.split("\n")[0] for m in listener.messages]
    assert states.index("READY=1") < states.index("RELOADING=1") < states.index("STOPPING=1")


def test_sighup_rereads_config_and_plugins(godeld, home):
    plugins = home / "plugins"
    plugins.mkdir()
    (plugins / "slow.py").write_text(SLOW_PLUGIN)
    proc = godeld().start()
    assert "test.sleep" in proc.call("system.listMethods")
    head = proc.call("daemon.status")["last_seq"]
    (home / "config.yaml").write_text("plugins:\n  disabled: [slow]\nlog:\n  level: debug\n")
    proc.signal(signal.SIGHUP)
    event = wait_for_event(proc, "extension:reload", since=head)
    assert event["data"]["reason"] == "SIGHUP"
    assert event["data"]["removed"] == ["slow"]
    assert "test.sleep" not in proc.call("system.listMethods")
    # a broken config is refused and the running one kept
    (home / "config.yaml").write_text("plugins:\n  disabled: [slow\n")
    with pytest.raises(RpcError) as refused:
        proc.call("daemon.reload")
    assert refused.value.code == -32005
    assert "config.yaml:3:1: invalid YAML" in refused.value.message
    assert "started at line 2, column 13" in refused.value.message
    assert proc.call("daemon.status")["state"] == "running"


def test_socket_activation(home):
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path = home / "activated.sock"
    listener.bind(str(path))
    listener.listen(16)
    notify = NotifyListener()
    env = env_without_godel()
    env["NOTIFY_SOCKET"] = "@" + notify.address
    env["LISTEN_FDS"] = "1"

    def as_systemd_does():
        os.dup2(listener.fileno(), 3)
        os.environ["LISTEN_PID"] = str(os.getpid())  # the child's own pid, as systemd sets it

    proc = subprocess.Popen([sys.executable, "-m", "godeld", "run", "--home", str(home)], env=None, pass_fds=(3, listener.fileno()), preexec_fn=lambda: (os.environ.update(env), as_systemd_does()), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        notify.wait_for("READY=1")
        with Client(path) as client:
            assert client.call("daemon.status")["pid"] == proc.pid
        assert not (home / "godeld.sock").exists(), "with an inherited socket godeld binds nothing itself"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        listener.close()


def test_kill_9_while_4_clients_publish_loses_no_acknowledged_event(godeld, home):
    proc = godeld().start()
    acked: list[list[tuple[str, int, int]]] = [[] for _ in range(4)]
    enough = threading.Barrier(5)
    errors: list[BaseException] = []

    def client_loop(n: int) -> None:
        signalled = False
        i = 0
        try:
            with Client(proc.socket, timeout=30) as client:
                while True:
                    if n % 2:  # two clients publish one event per request, two in batches of 25
                        result = client.call("events.publish", {"type": "crash:test", "data": {"client": n, "i": i}})
                        acked[n].append((result["id"], result["seq"], i))
                        i += 1
                    else:
                        results = client.batch([("events.publish", {"type": "crash:test", "data": {"client": n, "i": i + k}}) for k in range(25)])
                        for k, result in enumerate(results):
                            assert not isinstance(result, Exception), result
                            acked[n].append((result["id"], result["seq"], i + k))
                        i += 25
                    if not signalled and len(acked[n]) >= 200:
                        signalled = True
                        enough.wait()
        except (ClientError, OSError, ValueError):
            pass  # the daemon died under us: expected
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            if not signalled:
                enough.abort()

    threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    enough.wait(timeout=60)  # every client has published plenty, and still is
    proc.kill9()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors

    restarted = godeld().start()
    events = []
    since = 0
    while True:
        page = restarted.call("events.list", {"since": since, "pattern": "crash:test", "limit": 5000})
        events += page["events"]
        if len(page["events"]) < 5000:
            break
        since = page["next_since"]
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs)), "seqs must be strictly increasing"
    by_id = {}
    for event in events:
        assert event["id"] not in by_id, "an event is stored twice"
        by_id[event["id"]] = event
    total = 0
    for n, mine in enumerate(acked):
        for event_id, seq, i in mine:
            assert event_id in by_id, f"acknowledged event {event_id} of client {n} is lost"
            assert by_id[event_id]["seq"] == seq
            assert by_id[event_id]["data"] == {"client": n, "i": i}
            total += 1
    assert total >= 800
    # the log goes on after the crash with fresh seqs
    fresh = restarted.call("events.publish", {"type": "after:crash"})
    assert fresh["seq"] > max(seqs)


def test_clients_that_reset_their_connection_harm_no_one(godeld):
    proc = godeld().start()
    request = b'{"jsonrpc":"2.0","id":1,"method":"daemon.status"}\n'
    for _ in range(30):
        # Closing with unanswered requests and unread answers makes the server's next read or
        # write fail with ECONNRESET/EPIPE: that must end this connection only.
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(str(proc.socket))
        sock.sendall(request * 200)
        sock.recv(10)
        sock.close()
    assert proc.call("daemon.status")["state"] == "running"
    assert proc.stop() == 0
    assert "Traceback" not in proc.output()
