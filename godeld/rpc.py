"""The JSON-RPC server on a Unix socket: listener, framing, per-connection dispatch, subscriptions.

Each connection is isolated: a bad frame gets an error response and the connection goes on; a
line over the cap is answered and discarded without being held in memory; a client that vanishes
takes down only its own connection. Requests to plain `def` handlers are answered inline; `async`
handlers and batches run as tasks, at most `max_inflight_per_connection` at a time per connection
(reading pauses beyond that, which is the back-pressure).
"""

from __future__ import annotations

import errno
import itertools
from collections import deque
import logging
import os
import socket as stdlib_socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from godeld import dispatch
from godeld import protocol as p
from godeld.errors import GodelError, InvalidRequest, NotFound, ParseError, ShuttingDown, StartupError
from godeld.events import SubscriberLagged, Subscription

if TYPE_CHECKING:
    from godeld.daemon import Daemon

log = logging.getLogger("godeld.rpc")

_READ_SIZE = 65536
_ACCEPT_RETRY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
MAX_SUBSCRIPTIONS_PER_CONNECTION = 256
SUBSCRIPTION_FLUSH_S = 2.0


class ConnectionGone(Exception):
    pass


class SendLock:
    """Mutual exclusion for a connection's writes that costs no scheduling round-trip when
    uncontended (trio.Lock always checkpoints, which was a third of a small request's cost).
    Waiters are served in FIFO order; ownership is handed over directly on release."""

    def __init__(self) -> None:
        self._busy = False
        self._waiters: deque[trio.Event] = deque()

    async def acquire(self) -> None:
        if not self._busy:
            self._busy = True
            return
        turn = trio.Event()
        self._waiters.append(turn)
        try:
            await turn.wait()
        except BaseException:
            if turn.is_set():
                self.release()  # it was handed to us as we were cancelled: pass it on
            else:
                self._waiters.remove(turn)
            raise

    def release(self) -> None:
        if self._waiters:
            self._waiters.popleft().set()  # stays busy: the next waiter owns it now
        else:
            self._busy = False


def probe_socket(path: Path, timeout: float = 1.0) -> str:
    """'absent', 'stale' (a file nobody listens on) or 'live'."""
    if not os.path.lexists(path):
        return "absent"
    sock = stdlib_socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(os.fspath(path))
    except (ConnectionRefusedError, FileNotFoundError):
        return "stale"
    except OSError as exc:
        if exc.errno in (errno.ENOTSOCK, errno.ECONNREFUSED):
            return "stale"
        return "live"  # a timeout or a full backlog: somebody is there
    finally:
        sock.close()
    return "live"


def check_socket_path(path: Path) -> None:
    if len(os.fsencode(path)) > p.MAX_SOCKET_PATH_BYTES:
        raise StartupError(f"socket path is too long for a Unix socket ({len(os.fsencode(path))} bytes, at most {p.MAX_SOCKET_PATH_BYTES}): {path}; choose a shorter --socket")


class RpcServer:
    def __init__(self, daemon: "Daemon", socket_path: Path, *, listen_fd: int | None = None):
        self.daemon = daemon
        self.socket_path = socket_path
        self.listen_fd = listen_fd
        self.connections: set[Connection] = set()
        self.draining = False
        self._listener: trio.SocketListener | None = None
        self._inflight = 0
        self._idle = trio.Event()
        self._idle.set()
        self._progress = trio.Event()
        self._ids = itertools.count(1)
        self._socket_inode: int | None = None

    @property
    def methods(self):
        return self.daemon.plugins.registries.rpc_methods

    def settings(self, key: str) -> Any:
        return self.daemon.config.get(f"rpc.{key}")

    # -- listening -------------------------------------------------------------------------

    async def bind(self) -> None:
        """Listen on the socket (or take systemd's). Done before any nursery is opened, so a
        failure is a plain StartupError, not one wrapped in an ExceptionGroup."""
        self._listener = await self._make_listener()

    async def _make_listener(self) -> trio.SocketListener:
        if self.listen_fd is not None:  # systemd socket activation: the socket is already bound
            sock = trio.socket.from_stdlib_socket(stdlib_socket.socket(fileno=self.listen_fd))
            return trio.SocketListener(sock)
        path = self.socket_path
        check_socket_path(path)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Bind under a temporary name, restrict it, then rename over the final name: the socket is
        # never reachable with looser permissions, and a stale file is replaced atomically.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        sock = trio.socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
        try:
            await sock.bind(os.fspath(tmp))
            os.chmod(tmp, 0o600)
            sock.listen(512)
            os.rename(tmp, path)
        except OSError as exc:
            sock.close()
            try:
                tmp.unlink()
            except OSError:
                pass
            raise StartupError(f"cannot listen on {path}: {exc.strerror or exc}") from None
        self._socket_inode = os.stat(path).st_ino
        return trio.SocketListener(sock)

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        listener = self._listener
        assert listener is not None, "bind() first"
        try:
            async with trio.open_nursery() as connections:
                task_status.started()
                await self._accept_loop(listener, connections)
                # Listener closed by drain(): connections finish under the nursery, then are cancelled.
                await trio.sleep_forever()
        finally:
            self._remove_socket_file()

    async def _accept_loop(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        while True:
            try:
                stream = await listener.accept()
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                return
            except OSError as exc:
                if exc.errno in _ACCEPT_RETRY_ERRNOS:
                    log.error("accept failed (%s); retrying shortly", exc)
                    await trio.sleep(0.1)  # back off while file descriptors are exhausted
                    continue
                raise
            if len(self.connections) >= self.settings("max_connections"):
                nursery.start_soon(self._refuse, stream)
                continue
            nursery.start_soon(self._run_connection, stream)

    async def _refuse(self, stream: trio.SocketStream) -> None:
        error = dispatch.error_response(None, GodelError(f"too many connections (max {self.settings('max_connections')})", {"reason": "max_connections"}))
        with trio.move_on_after(1):
            try:
                await stream.send_all(error + b"\n")
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
        await trio.aclose_forcefully(stream)

    async def _run_connection(self, stream: trio.SocketStream) -> None:
        conn = Connection(self, stream, next(self._ids))
        self.connections.add(conn)
        try:
            await conn.run()
        except Exception:  # noqa: BLE001 - a bug in one connection must end only that connection
            log.exception("connection %d failed", conn.id)
        finally:
            self.connections.discard(conn)
            await trio.aclose_forcefully(stream)

    def close(self) -> None:
        """Stop listening and remove our socket file (idempotent; for a start-up that failed)."""
        if self._listener is not None:
            self._listener.socket.close()
        self._remove_socket_file()

    def _remove_socket_file(self) -> None:
        # Only our own socket: a newer daemon may already have replaced it.
        if self._socket_inode is None:
            return
        try:
            if os.stat(self.socket_path).st_ino == self._socket_inode:
                os.unlink(self.socket_path)
        except OSError:
            pass

    # -- in-flight accounting and drain ------------------------------------------------------

    def _begin(self) -> None:
        self._inflight += 1
        if self._inflight == 1:
            self._idle = trio.Event()

    def _end(self) -> None:
        self._inflight -= 1
        if self._inflight == 0:
            self._idle.set()

    @property
    def inflight(self) -> int:
        return self._inflight

    async def drain(self, timeout: float) -> bool:
        """Stop accepting, answer new requests with 'shutting down', and wait up to `timeout` for
        in-flight requests. Returns True if they all finished."""
        self.draining = True
        if self._listener is not None:
            await self._listener.aclose()
        self._remove_socket_file()
        with trio.move_on_after(timeout) as scope:
            self.daemon._drain_scope = scope
            await self._idle.wait()
            # Subscribers get every event committed before the stop, then the notice; a client
            # that does not read (a paused pager) may hold the stop only briefly.
            with trio.move_on_after(SUBSCRIPTION_FLUSH_S):
                await self._subscriptions_flushed()
        finished = not scope.cancelled_caught and self._inflight == 0
        if not finished:
            log.warning("drain deadline reached with %d request(s) in flight; cancelling them", self._inflight)
        stopping = dispatch.notification(p.STOPPING_NOTIFICATION, {"reason": self.daemon.stop_reason})
        async with trio.open_nursery() as nursery:
            for conn in list(self.connections):
                if conn.subscriptions:
                    nursery.start_soon(conn.try_send, stopping, 1.0)
        return finished

    def _note_progress(self) -> None:
        self._progress.set()

    async def _subscriptions_flushed(self) -> None:
        while any(not conn.subscriptions_flushed() for conn in self.connections):
            self._progress = trio.Event()
            await self._progress.wait()


class Connection:
    def __init__(self, server: RpcServer, stream: trio.SocketStream, conn_id: int):
        self.server = server
        self.stream = stream
        self.id = conn_id
        self.subscriptions: dict[str, tuple[Subscription, trio.CancelScope]] = {}
        self._send_lock = SendLock()
        self._slots = trio.Semaphore(server.settings("max_inflight_per_connection"))
        self._nursery: trio.Nursery | None = None
        self._sub_ids = itertools.count(1)
        self._sending: set[str] = set()  # subscriptions with a notification being written

    def subscriptions_flushed(self) -> bool:
        return not self._sending and all(sub.idle for sub, _ in self.subscriptions.values())

    async def run(self) -> None:
        # ConnectionGone never crosses the nursery: every task that can meet it ends quietly, so a
        # client vanishing is not an error (trio would wrap it in an ExceptionGroup).
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                try:
                    await self._read_loop()
                except ConnectionGone:
                    nursery.cancel_scope.cancel()  # nobody to answer: end requests and subscriptions
                    return
                # EOF: let in-flight requests answer, then end subscriptions and the connection.
                for _, scope in self.subscriptions.values():
                    scope.cancel()
        finally:
            for subscription, _ in self.subscriptions.values():
                subscription.close()
            self.subscriptions.clear()

    async def _read_loop(self) -> None:
        max_line = self.server.settings("max_line_bytes")
        pending = bytearray()
        discarding = False
        while True:
            try:
                data = await self.stream.receive_some(_READ_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                raise ConnectionGone from None
            if not data:
                return
            start = 0
            while True:
                end = data.find(b"\n", start)
                if end < 0:
                    rest = len(data) - start
                    if discarding or not rest:
                        break
                    if len(pending) + rest > max_line:
                        pending.clear()
                        discarding = True
                        await self._reject_long_line(max_line)
                    else:
                        pending += data[start:]
                    break
                if discarding:  # the tail of a line already rejected
                    discarding = False
                    start = end + 1
                    continue
                if pending:
                    pending += data[start:end]
                    line = bytes(pending)
                    pending.clear()
                else:
                    line = data[start:end]
                start = end + 1
                if len(line) > max_line:
                    await self._reject_long_line(max_line)
                    continue
                await self._handle_line(line)

    async def _reject_long_line(self, max_line: int) -> None:
        await self.send(dispatch.error_response(None, InvalidRequest(f"request line exceeds {max_line} bytes; it was discarded", {"max_line_bytes": max_line})))

    async def _handle_line(self, line: bytes) -> None:
        if not line.strip():
            return  # blank lines are allowed between frames (handy with nc/socat)
        try:
            message = dispatch.decode(line)
        except ParseError as exc:
            await self.send(dispatch.error_response(None, exc))
            return
        if isinstance(message, list):
            if not message:
                await self.send(dispatch.error_response(None, InvalidRequest("an empty batch is not a request")))
                return
            await self._spawn(self._run_batch, message)
            return
        call = dispatch.prepare(message, self.server.methods)
        if call is None:
            return
        if isinstance(call, bytes):
            await self.send(call)
            return
        if self.server.draining:
            if not call.notification:
                await self.send(dispatch.error_response(call.id, ShuttingDown("godeld is shutting down")))
            return
        ctx = dispatch.Context(self.server.daemon, self, call.id, call.spec.name)
        if call.spec.is_async:
            await self._spawn(self._run_async_call, call, ctx)
            return
        response = dispatch.run_sync(call, ctx)
        if response is not None:
            await self.send(response)
        ctx.run_deferred()

    async def _spawn(self, fn, *args: Any) -> None:
        await self._slots.acquire()  # back-pressure: stop reading while the connection is at its limit
        self.server._begin()
        assert self._nursery is not None
        self._nursery.start_soon(self._guarded, fn, *args)

    async def _guarded(self, fn, *args: Any) -> None:
        try:
            await fn(*args)
        except ConnectionGone:
            pass  # the client left; send() has already ended the connection
        finally:
            self._slots.release()
            self.server._end()

    async def _run_async_call(self, call: dispatch.Call, ctx: dispatch.Context) -> None:
        response = await dispatch.run_async(call, ctx)
        if response is not None:
            await self.send(response)
        ctx.run_deferred()

    async def _run_batch(self, items: list[Any]) -> None:
        responses: list[bytes | None] = [None] * len(items)
        contexts: list[dispatch.Context] = []

        async def run_one(index: int, call: dispatch.Call, ctx: dispatch.Context) -> None:
            responses[index] = await dispatch.run_async(call, ctx)

        async with trio.open_nursery() as nursery:
            for index, item in enumerate(items):
                call = dispatch.prepare(item, self.server.methods)
                if call is None or isinstance(call, bytes):
                    responses[index] = call
                    continue
                if self.server.draining:
                    if not call.notification:
                        responses[index] = dispatch.error_response(call.id, ShuttingDown("godeld is shutting down"))
                    continue
                ctx = dispatch.Context(self.server.daemon, self, call.id, call.spec.name)
                contexts.append(ctx)
                if call.spec.is_async:
                    nursery.start_soon(run_one, index, call, ctx)
                else:
                    responses[index] = dispatch.run_sync(call, ctx)
        parts = [r for r in responses if r is not None]
        if parts:  # a batch of notifications gets no response at all
            await self.send(b"[" + b",".join(parts) + b"]")
        for ctx in contexts:
            ctx.run_deferred()

    async def send(self, data: bytes) -> None:
        lock = self._send_lock
        if lock._busy:
            await lock.acquire()
        else:
            lock._busy = True  # uncontended: take it without a coroutine round-trip
        try:
            await self.stream.send_all(data + b"\n")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            # The client went away mid-reply: end this connection only.
            if self._nursery is not None:
                self._nursery.cancel_scope.cancel()
            raise ConnectionGone from None
        finally:
            self._send_lock.release()

    async def try_send(self, data: bytes, timeout: float) -> None:
        with trio.move_on_after(timeout):
            try:
                await self.send(data)
            except ConnectionGone:
                pass

    # -- subscriptions -----------------------------------------------------------------------

    def add_subscription(self, subscription: Subscription, ctx: dispatch.Context, *, once: bool = False) -> str:
        if len(self.subscriptions) >= MAX_SUBSCRIPTIONS_PER_CONNECTION:
            subscription.close()
            raise GodelError(f"too many subscriptions on this connection (max {MAX_SUBSCRIPTIONS_PER_CONNECTION})")
        sub_id = f"{self.id}.{next(self._sub_ids)}"
        scope = trio.CancelScope()
        self.subscriptions[sub_id] = (subscription, scope)
        assert self._nursery is not None
        nursery = self._nursery
        # Notifications start only after the {subscription} reply has been written.
        ctx.after_reply(lambda: nursery.start_soon(self._deliver, sub_id, subscription, scope, once))
        return sub_id

    def remove_subscription(self, sub_id: str) -> None:
        entry = self.subscriptions.pop(sub_id, None)
        if entry is None:
            raise NotFound(f"no subscription {sub_id!r} on this connection", {"subscription": sub_id})
        subscription, scope = entry
        subscription.close()
        scope.cancel()

    async def _deliver(self, sub_id: str, subscription: Subscription, scope: trio.CancelScope, once: bool) -> None:
        with scope:
            try:
                while True:
                    self._sending.discard(sub_id)
                    self.server._note_progress()
                    try:
                        event = await subscription.next()
                    except SubscriberLagged as lag:
                        await self.send(dispatch.notification(p.LAGGED_NOTIFICATION, {"subscription": sub_id, "last_seq": lag.last_seq, "closed": True}))
                        return
                    except trio.EndOfChannel:
                        return
                    self._sending.add(sub_id)
                    lagged_at = subscription.take_lag()
                    if lagged_at is not None:
                        await self.send(dispatch.notification(p.LAGGED_NOTIFICATION, {"subscription": sub_id, "last_seq": lagged_at, "closed": False}))
                    wire = event.wire
                    if wire is None:
                        params = event.to_dict()
                        wire = event.wire = dispatch.notification(p.EVENT_NOTIFICATION, params)
                    # One encoding per event, shared by all subscribers; each adds its id to params.
                    await self.send(wire[:-2] + b',"subscription":"' + sub_id.encode() + b'"}}')
                    if once:
                        return
            except ConnectionGone:
                return
            finally:
                subscription.close()
                self.subscriptions.pop(sub_id, None)
                self._sending.discard(sub_id)
                self.server._note_progress()
