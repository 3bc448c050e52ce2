"""The event loop: one thread owns every socket and all chat state.

Each pass: wait for socket events (epoll), read what arrived and hand complete lines to the chat services,
hand the outbox to the storage writer (or deliver it at once when it stores nothing), deliver what the writer
has committed, and write queued output without ever blocking. A client that reads slowly only fills its own
bounded queue; when that overflows, it alone is disconnected.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import socket
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from chat.protocol.errors import ChatError, ErrorCode
from chat.protocol.events import Bye, DeliveryState, Error
from chat.protocol.render import render_text
from chat.server.config import ServerConfig
from chat.server.delivery import Deliverer
from chat.server.outbox import CloseAfterFlush, Outbox
from chat.server.service import ChatService
from chat.server.state import ChatState, Session
from chat.server.storage_worker import StorageJob, StorageWorker
from chat.storage.repository import StoredRoom

log = logging.getLogger("chat.server")

RECV_SIZE = 65536
ACCEPT_BATCH = 512  # connections accepted per pass, so a connect storm cannot starve the chatting clients
HELD_BYTES_MAX = 65536  # flood control: past this much waiting input, stop reading (TCP slows the sender)
PENDING_MAX = 20_000  # deliveries waiting for a commit before the loop stops reading to let storage catch up
LINGER = 5.0  # seconds a closing connection may take to take its last lines
SHUTDOWN_FLUSH = 3.0  # seconds to send the last lines to everyone at shutdown
SWEEP_EVERY = 1.0
SEND_SLICE = 1 << 18  # bytes joined for one send(); more than a socket buffer usually takes at once

_IN = select.EPOLLIN | select.EPOLLRDHUP
_OUT = select.EPOLLOUT
_GONE = select.EPOLLHUP | select.EPOLLERR | select.EPOLLRDHUP


class EventLoop:
    def __init__(
        self,
        config: ServerConfig,
        state: ChatState,
        service: ChatService,
        worker_factory: Callable[[Callable[[], None]], StorageWorker],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.state = state
        self.service = service
        self.monotonic = monotonic
        self.epoll = select.epoll()
        self.sessions: dict[int, Session] = {}  # fd -> session
        self.per_ip: dict[str, int] = {}
        self.unregistered: set[Session] = set()
        self.throttled: set[Session] = set()
        self.closing: dict[Session, float] = {}  # session -> deadline to finish sending
        self.current = Outbox()  # what the services produce now
        self.in_flight: Outbox | None = None  # what the storage writer is committing
        self.unsaved = Outbox()  # room, topic and nick writes of failed commits, written again with the next one
        self.deliverer = Deliverer(config.sendq, self._overflowed)
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.epoll.register(self._wake_r, select.EPOLLIN)
        self.worker = worker_factory(self.wake)
        self.listener: socket.socket | None = None
        self._stop = False
        self._next_id = 1
        self._next_sweep = 0.0
        self._accept_paused_until = 0.0
        self.address: tuple[str, int] = ("", 0)
        self._calls: deque[tuple[Callable[[], Any], Future[Any]]] = deque()

    # ------------------------------------------------------------------------------------------ control

    def listen(self) -> tuple[str, int]:
        host, port = self.config.host, self.config.port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(self.config.listen_backlog)
        listener.setblocking(False)
        self.listener = listener
        self.epoll.register(listener.fileno(), select.EPOLLIN)
        self.address = listener.getsockname()[:2]
        return self.address

    def wake(self) -> None:
        """Interrupt the wait for events (from any thread, or a signal handler)."""
        with contextlib.suppress(BlockingIOError):  # a full pipe wakes the loop anyway
            os.write(self._wake_w, b"\0")

    def call_soon(self, fn: Callable[[], Any]) -> Future[Any]:
        """Run `fn` on the loop thread at its next pass (from any thread); the future gets its result.
        For inspection and tests: the chat state may only be read on the loop thread."""
        future: Future[Any] = Future()
        self._calls.append((fn, future))
        self.wake()
        return future

    def request_stop(self) -> None:
        self._stop = True
        self.wake()

    def run(self) -> None:
        """Serve until request_stop(); then store and deliver everything accepted, say goodbye, close."""
        self.worker.start()
        try:
            while not self._stop:
                self._pass()
            self._shutdown()
        finally:
            self.worker.stop()
            self.epoll.close()
            os.close(self._wake_r)
            os.close(self._wake_w)

    # ---------------------------------------------------------------------------------------- one pass

    def _pass(self) -> None:
        events = self.epoll.poll(self._timeout())
        now = self.monotonic()
        listen_fd = self.listener.fileno() if self.listener else -1
        sessions = self.sessions
        for fd, mask in events:
            s = sessions.get(fd)
            if s is not None:
                if mask & _OUT:
                    self._flush(s)
                if mask & (select.EPOLLIN | _GONE) and s.fd >= 0:
                    self._read(s, now)
            elif fd == listen_fd:
                self._accept(now)
            elif fd == self._wake_r:
                self._drain_wake()
        if self.throttled:
            self._release_held(now)
        while self._calls:
            fn, future = self._calls.popleft()
            try:
                future.set_result(fn())
            except Exception as e:
                future.set_exception(e)
        if now >= self._next_sweep:
            self._sweep(now)
        self._advance()
        self._flush_dirty()

    def _timeout(self) -> float:
        if self.deliverer.dirty or self.worker.done:
            return 0
        timeout = max(0.0, self._next_sweep - self.monotonic())
        if self.throttled:
            timeout = min(timeout, 1.0 / self.config.rate)
        return timeout

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    # -------------------------------------------------------------------------------------- storage pipe

    def _advance(self) -> None:
        """Deliver what the writer finished; start the next commit; deliver at once what needs no storage."""
        while self.worker.done:
            self._committed(self.worker.done.popleft())
        if self.in_flight is not None and len(self.current.deliveries) > PENDING_MAX:
            self._wait_for_storage()  # storage is behind: stop reading until it catches up
        if self.in_flight is None and self.current:
            outbox, self.current = self.current, Outbox()
            if outbox.needs_storage:
                self._submit(outbox)
            else:
                self.deliverer.deliver(outbox)

    def _submit(self, outbox: Outbox) -> None:
        self._carry_unsaved(outbox)
        outbox.writes.rooms = [
            StoredRoom(r.id, r.name, r.topic, r.topic_by, r.topic_at, r.created_at) for r in outbox.new_rooms.values()
        ]
        self.in_flight = outbox
        self.worker.done_event.clear()
        self.worker.submit(StorageJob(outbox))

    def _committed(self, job: StorageJob) -> None:
        outbox = job.outbox
        state = DeliveryState.FAILED if job.error else DeliveryState.STORED
        for message, _room_id in outbox.writes.messages:
            message.state = state
        if job.error is None:
            for room in outbox.new_rooms.values():
                room.persisted = True
        else:  # its messages are gone (their senders are told); its rooms, topics and nicks are live already
            self.unsaved.writes.users += outbox.writes.users
            self.unsaved.writes.topics += outbox.writes.topics
            self.unsaved.new_rooms.update(outbox.new_rooms)
        self.in_flight = None
        self.deliverer.deliver(outbox)

    def _carry_unsaved(self, outbox: Outbox) -> None:
        """Put what failed commits left unsaved at the head of `outbox`'s writes (newer changes then win)."""
        if not self.unsaved.needs_storage:
            return
        carried, self.unsaved = self.unsaved, Outbox()
        outbox.writes.users[:0] = carried.writes.users
        outbox.writes.topics[:0] = carried.writes.topics
        for room in carried.new_rooms.values():
            outbox.store_room(room)

    def _wait_for_storage(self) -> None:
        while self.in_flight is not None and not self._stop:
            self.worker.done_event.wait(0.1)
            while self.worker.done:
                self._committed(self.worker.done.popleft())

    # ------------------------------------------------------------------------------------------ accept

    def _accept(self, now: float) -> None:
        if now < self._accept_paused_until or self.listener is None:
            return
        for _ in range(ACCEPT_BATCH):
            try:
                sock, address = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.error("accept: %s; not accepting for 1 s", e.strerror)
                    self._accept_paused_until = now + 1.0
                    self.epoll.modify(self.listener.fileno(), 0)
                    return
                log.warning("accept: %s", e)
                continue
            self._admit(sock, address, now)

    def _admit(self, sock: socket.socket, address: tuple[str, int], now: float) -> None:
        ip = address[0]
        peer = f"[{ip}]:{address[1]}" if ":" in ip else f"{ip}:{address[1]}"
        if len(self.sessions) >= self.config.max_clients:
            self._refuse(sock, peer, ErrorCode.SERVER_FULL, "The server is full; please try again later.")
            return
        exempt = self.config.is_exempt(ip)
        if not exempt and self.per_ip.get(ip, 0) >= self.config.max_per_ip:
            self._refuse(sock, peer, ErrorCode.TOO_MANY_CONNECTIONS,
                         f"Too many connections from {ip} (at most {self.config.max_per_ip}).")
            return
        sock.setblocking(False)
        _tune_socket(sock, self.config.keepalive)
        s = Session(self._next_id, sock, peer, ip, self.config.max_line, self.config.burst, now)
        self._next_id += 1
        self.sessions[s.fd] = s
        if not exempt:
            self.per_ip[ip] = self.per_ip.get(ip, 0) + 1
        self.unregistered.add(s)
        self.epoll.register(s.fd, _IN)
        log.info("connect %s", s.label, extra={"event": "connect", "session": s.id, "peer": peer})
        self.service.connected(s, self.current)

    def _refuse(self, sock: socket.socket, peer: str, code: ErrorCode, message: str) -> None:
        log.warning("refused %s: %s", peer, code.value, extra={"event": "refused", "peer": peer, "code": code.value})
        try:
            sock.setblocking(False)
            sock.send(render_text(Bye(message, code)).encode())
        except OSError:
            pass
        sock.close()

    # -------------------------------------------------------------------------------------------- read

    def _read(self, s: Session, now: float) -> None:
        try:
            data = s.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self._drop(s, _socket_reason(e))
            return
        if not data:
            self._end_of_input(s)
            return
        if s.closing:
            return  # it said goodbye; what it sends now is not read
        rate = self.config.rate
        for frame in s.framer.feed(data):
            if rate and (s.held or not _take_token(s, now, rate, self.config.burst)):
                self._hold(s, frame)
            else:
                self._handle(s, frame)
            if s.closing or s.fd < 0:
                return

    def _end_of_input(self, s: Session) -> None:
        """The peer sent EOF. It may still read (`printf ... | nc` does), so answer what it sent, then close."""
        if s.closing or s.eof:
            if s.reading:
                s.reading = False
                self._rearm(s)
            else:  # EPOLLHUP: it is gone both ways
                self._close(s, s.closing or "dropped")
            return
        s.eof = True
        s.reading = False
        self._rearm(s)
        if not s.held:  # else: once flood control has let its last lines through
            self._finish(s)

    def _finish(self, s: Session) -> None:
        s.closing = "dropped"  # it left without /quit
        self.service.disconnected(s, "connection closed", self.current)
        self.current.reply(s, CloseAfterFlush())

    def _handle(self, s: Session, frame: str | ChatError) -> None:
        was_registered = s.registered
        try:
            if type(frame) is str:
                self.service.line(s, frame, self.current)
            else:
                self.service.rejected(s, frame, self.current)  # type: ignore[arg-type]
        except Exception:  # a bug must cost one line, not the server
            log.exception("error handling a line from %s: %.200r", s.label, frame)
            self.current.reply(s, Error(ErrorCode.SERVER_ERROR, "The server failed to handle that line (logged)."))
        if s.registered and not was_registered:
            self.unregistered.discard(s)

    def _hold(self, s: Session, frame: str | ChatError) -> None:
        """Flood control: keep the line until the client's bucket has a token for it."""
        s.held.append(frame)  # type: ignore[arg-type]
        s.held_bytes += len(frame) if type(frame) is str else 0
        self.throttled.add(s)
        if len(s.held) > self.config.flood_limit:
            self._kill(s, "flood", ErrorCode.FLOOD,
                       f"Too many lines too fast (more than {self.config.flood_limit} waiting).")
        elif s.held_bytes > HELD_BYTES_MAX and s.reading:
            s.reading = False
            self._rearm(s)

    def _release_held(self, now: float) -> None:
        rate, burst = self.config.rate, self.config.burst
        for s in list(self.throttled):
            while s.held and s.fd >= 0 and not s.closing and _take_token(s, now, rate, burst):
                frame = s.held.popleft()
                s.held_bytes -= len(frame) if type(frame) is str else 0
                self._handle(s, frame)
            if not s.held or s.fd < 0 or s.closing:
                self.throttled.discard(s)
                if s.eof and not s.closing and s.fd >= 0:
                    self._finish(s)
            elif not s.reading and not s.eof and s.held_bytes <= HELD_BYTES_MAX // 2:
                s.reading = True
                self._rearm(s)

    # ------------------------------------------------------------------------------------------- write

    def _flush_dirty(self) -> None:
        dirty = self.deliverer.dirty
        if not dirty:
            return
        sessions = list(dirty)
        dirty.clear()
        for s in sessions:
            if s.fd >= 0 and not s.writing:
                self._flush(s)

    def _flush(self, s: Session) -> None:
        out = s.out
        while out:
            # join a slice, not the whole queue: the chunks are shared with every other recipient
            n, size = 1, len(out[0])
            while n < len(out) and size < SEND_SLICE:
                size += len(out[n])
                n += 1
            data = out[0] if n == 1 else b"".join(out[:n])
            try:
                sent = s.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as e:
                self._drop(s, _socket_reason(e))
                return
            s.out_bytes -= sent
            if sent < len(data):
                out[:n] = [memoryview(data)[sent:]]
                if s.out_bytes > self.config.sendq:  # more than its socket took and its queue may hold
                    self._overflowed(s)
                    return
                if not s.writing:
                    s.writing = True
                    self._rearm(s)
                return
            del out[:n]
        s.out_bytes = 0
        if s.writing:
            s.writing = False
            self._rearm(s)
        if s.close_after_flush:
            self._close(s, s.closing or "quit")

    def _rearm(self, s: Session) -> None:
        mask = (_IN if s.reading else 0) | (_OUT if s.writing else 0)
        self.epoll.modify(s.fd, mask)

    # --------------------------------------------------------------------------------- ends of sessions

    def _overflowed(self, s: Session) -> None:
        self._kill(s, "send queue exceeded", ErrorCode.SENDQ_EXCEEDED,
                   f"You were sent more than {self.config.sendq} bytes you did not read.")

    def _drop(self, s: Session, reason: str) -> None:
        """The peer's socket failed: close now and tell its rooms."""
        self._close(s, reason, "connection lost")

    def _kill(self, s: Session, reason: str, code: ErrorCode, message: str) -> None:
        """Disconnect a client for cause, telling it why if its socket still takes a line."""
        s.out.clear()
        s.out_bytes = 0
        self.deliverer.push(s, Bye(message, code))
        with contextlib.suppress(OSError, IndexError):
            s.sock.send(s.out[0])
        self._close(s, reason)

    def _close(self, s: Session, reason: str, detail: str | None = None) -> None:
        if s.fd < 0:
            return
        if s.registered:
            self.service.disconnected(s, detail or reason, self.current)
        with contextlib.suppress(OSError, ValueError):
            self.epoll.unregister(s.fd)
        del self.sessions[s.fd]
        s.fd = -1
        s.sock.close()
        s.out.clear()
        s.held.clear()
        if s.ip in self.per_ip:
            left = self.per_ip[s.ip] - 1
            if left:
                self.per_ip[s.ip] = left
            else:
                del self.per_ip[s.ip]
        self.unregistered.discard(s)
        self.throttled.discard(s)
        self.closing.pop(s, None)
        self.deliverer.dirty.pop(s, None)
        seconds = self.monotonic() - s.connected_at
        log.info("disconnect %s reason=%s after %.1fs", s.label, reason, seconds,
                 extra={"event": "disconnect", "session": s.id, "peer": s.peer, "nick": s.nick or None,
                        "reason": reason, "seconds": round(seconds, 3)})

    def _sweep(self, now: float) -> None:
        """Once a second: nickname timeouts, goodbyes that take too long, a paused accept."""
        self._next_sweep = now + SWEEP_EVERY
        timeout = self.config.nick_timeout
        for s in [s for s in self.unregistered if now - s.connected_at > timeout and not s.closing]:
            self._kill(s, "registration timeout", ErrorCode.REGISTRATION_TIMEOUT,
                       f"No nickname was chosen within {timeout:g} seconds.")
        for s in self.sessions.values():
            if s.close_after_flush and s not in self.closing:
                self.closing[s] = now + LINGER
        for s, deadline in list(self.closing.items()):
            if now > deadline:
                self._close(s, s.closing or "quit")
        if self._accept_paused_until and now >= self._accept_paused_until and self.listener:
            self._accept_paused_until = 0.0
            self.epoll.modify(self.listener.fileno(), select.EPOLLIN)

    # ---------------------------------------------------------------------------------------- shutdown

    def _shutdown(self) -> None:
        if self.listener is not None:
            self.epoll.unregister(self.listener.fileno())
            self.listener.close()
            self.listener = None
        # lines already read but held back by flood control were accepted too: they are handled now
        for s in list(self.throttled):
            while s.held and s.fd >= 0 and not s.closing:
                self._handle(s, s.held.popleft())
        self.throttled.clear()
        self._carry_unsaved(self.current)  # a last try for what failed commits left unsaved
        # everything accepted so far is stored and delivered before anyone is told goodbye
        while self.in_flight is not None or self.current:
            if self.in_flight is not None:
                self.worker.done_event.wait(0.1)  # (not _wait_for_storage: it returns at once when stopping)
            self._advance()
        farewell = Bye("The server is shutting down. Goodbye!", ErrorCode.SERVER_SHUTDOWN)
        for s in list(self.sessions.values()):
            s.closing = s.closing or "server shutdown"
            if s.reading:  # nothing more is read: only goodbyes are written now
                s.reading = False
                self._rearm(s)
            self.deliverer.push(s, farewell)
            s.close_after_flush = True
        deadline = self.monotonic() + SHUTDOWN_FLUSH
        self._flush_dirty()
        while self.sessions and self.monotonic() < deadline:
            for fd, mask in self.epoll.poll(0.05):
                waiting = self.sessions.get(fd)
                if waiting is not None and mask & (_OUT | _GONE):
                    self._flush(waiting)
        for s in list(self.sessions.values()):
            self._close(s, "server shutdown")
        self.current = Outbox()  # the quits of this shutdown need no delivery


def _socket_reason(e: OSError) -> str:
    """Why a client's socket failed, in the log's words: a peer that reset the connection dropped it; one that
    stopped answering (keepalive, unacknowledged data) timed out; anything else is an error."""
    if e.errno in (errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED):
        return "dropped (connection reset)"
    if e.errno in (errno.ETIMEDOUT, errno.EHOSTUNREACH, errno.ENETUNREACH):
        return f"timeout ({e.strerror})"
    return f"error: {e.strerror or e}"


def _take_token(s: Session, now: float, rate: float, burst: int) -> bool:
    tokens = s.tokens + (now - s.last_refill) * rate
    if tokens > burst:
        tokens = burst
    s.last_refill = now
    if tokens >= 1.0:
        s.tokens = tokens - 1.0
        return True
    s.tokens = tokens
    return False


def _tune_socket(sock: socket.socket, keepalive: int) -> None:
    # Without TCP_NODELAY, Nagle's algorithm holds small writes back until the peer's delayed ACK: +40 ms.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if keepalive > 0:  # finds peers that vanished without a FIN (a cable pulled, a laptop closed)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, keepalive)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, max(1, keepalive // 4))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 4)
        # and peers that stop acknowledging what we send them
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, keepalive * 2 * 1000)
