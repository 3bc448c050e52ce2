"""The event loop: one thread owns every socket and all chat state.

Each pass: wait for socket events (epoll), read what arrived and hand complete frames to the chat services,
hand the outbox to the storage writer (or deliver it at once when it stores nothing), deliver what the writer
has committed and answer what the reader has read, and write queued output without ever blocking. A client
that reads slowly only fills its own bounded queue; when that overflows, it alone is disconnected.

Several front doors (listeners) feed the same loop: each accepted socket gets the door's transport and codec
(chat.server.connection). The loop knows transports and codecs only through their small interfaces.
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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chat.protocol.codec import Codec, Frame, Reply
from chat.protocol.commands import Command, Say
from chat.protocol.errors import ChatError, ErrorCode
from chat.protocol.events import Bye, DeliveryState, Error
from chat.protocol.native import NativeCodec
from chat.server.account_worker import AccountJob, AccountWorkers
from chat.server.addresses import limit_key
from chat.server.config import ServerConfig
from chat.server.connection import Connection, Phase
from chat.server.delivery import Deliverer
from chat.server.member import Member
from chat.server.outbox import CloseAfterFlush, Outbox
from chat.server.reads import (
    HistoryRequest,
    HolderRead,
    InboxRead,
    RoomEventsRead,
    RoomListRead,
    RoomLookup,
    SearchRequest,
    StorageRead,
    TargetRead,
    TargetsRead,
)
from chat.server.service import ChatService
from chat.server.state import ChatState
from chat.server.storage_worker import StorageJob, StorageReader, StorageWorker
from chat.server.transport import SocketTransport, Transport, TransportError

if TYPE_CHECKING:
    from chat.server.cluster import Cluster

log = logging.getLogger("chat.server")

ACCEPT_BATCH = 512  # connections accepted per pass, so a connect storm cannot starve the chatting clients
HELD_BYTES_MAX = 65536  # input waiting to be handled past which a client is not read (TCP slows the sender)
PENDING_MAX = 20_000  # deliveries waiting for a commit past which no input is read until storage catches up
PENDING_TEXT_MAX = 16 << 20  # ... or bytes of message text waiting for it
READS_IN_FLIGHT = 64  # reads handed to the reader at once: what pages being read or sent may cost in memory
LINGER = 5.0  # seconds a closing connection may take to take its last lines
STALLED_LINGER = 1.0  # ... or one whose send queue overflowed: it is not reading, its goodbye is a courtesy
SHUTDOWN_FLUSH = 3.0  # seconds to send the last lines to everyone at shutdown
SWEEP_EVERY = 1.0
PRESENCE_DELAY = 0.25  # seconds a connection's queue of only joins, leaves and quits may wait to be sent
SEND_SLICE = 1 << 18  # bytes joined for one send(); more than a socket buffer usually takes at once

_IN = select.EPOLLIN | select.EPOLLRDHUP
_OUT = select.EPOLLOUT
_GONE = select.EPOLLHUP | select.EPOLLERR | select.EPOLLRDHUP

Storage = tuple[StorageWorker, StorageReader]


@dataclass(slots=True, eq=False)
class Door:
    """A listening socket and what its connections speak: `codec()` and `transport(sock)` make each one's."""

    name: str
    sock: socket.socket
    codec: Callable[[], Codec]
    transport: Callable[[socket.socket], Transport] = SocketTransport

    @property
    def address(self) -> tuple[str, int]:
        return self.sock.getsockname()[:2]

    @property
    def secure(self) -> bool:
        """Its connections speak TLS (the factory says so): nothing may be said to them in clear."""
        return bool(getattr(self.transport, "secure", False))


class EventLoop:
    def __init__(
        self,
        config: ServerConfig,
        state: ChatState,
        service: ChatService,
        storage: Callable[[Callable[[], None]], Storage],
        monotonic: Callable[[], float] = time.monotonic,
        accounts: Callable[[Callable[[], None]], AccountWorkers] | None = None,
    ) -> None:
        self.config = config
        self.state = state
        self.service = service
        self.monotonic = monotonic
        self.epoll = select.epoll()
        self.connections: dict[int, Connection] = {}  # fd -> connection
        self.per_ip: dict[str, int] = {}  # limit key -> open connections
        self.unregistered: set[Connection] = set()
        self.handshaking: set[Connection] = set()  # their transport's handshake (TLS) is not done yet
        self.waiting: set[Connection] = set()  # connections with input held back, or draining
        self.paused: set[Connection] = set()  # not read while storage is far behind
        self.ending: set[Connection] = set()  # ENDING or FLUSHING: closed at their deadline at the latest
        self.current = Outbox()  # what the services produce now
        self.in_flight: Outbox | None = None  # what the storage writer is committing
        self.unsaved = Outbox()  # room, topic and nick writes of failed commits, written again with the next one
        self.reads: deque[StorageRead] = deque()  # committed-after reads waiting for a place at the reader
        self.reads_in_flight = 0
        self.commits = 0  # committed batches so far (a room lookup notes it: ChatState.rows_written_lately)
        self.lookups_in_flight = 0  # room lookups at the reader (reads of other kinds never clear the notes)
        self.behind = False  # storage is far behind: no input is handled until it catches up
        self.reply_room = config.sendq // 2  # a client's next line waits while more than this is unsent to it
        self.deliverer = Deliverer(config.sendq, self._overflowed)
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.epoll.register(self._wake_r, select.EPOLLIN)
        self.writer, self.reader = storage(self.wake)
        self.accounts = accounts(self.wake) if accounts else None  # password hashing, off this thread
        self.doors: dict[int, Door] = {}  # listening fd -> door
        self._stop = False
        self._released = False  # a held connection may go on (its read was answered, its queue drained)
        self._next_id = 1
        self._next_sweep = 0.0
        self._next_idle_sweep = 0.0
        self._presence_due: float | None = None  # when the connections with only presence lines queued get them
        self._accept_paused_until = 0.0
        self._calls: deque[tuple[Callable[[], Any], Future[Any]]] = deque()
        self.cluster: Cluster | None = None  # a clustered node's (chat.server.cluster): set before run()

    # ------------------------------------------------------------------------------------------ control

    @property
    def address(self) -> tuple[str, int]:
        """Where the native door listens (the first door opened, when there is no plain native door)."""
        doors = list(self.doors.values())
        return next((d.address for d in doors if d.name == "native"), doors[0].address)

    def door_address(self, name: str) -> tuple[str, int]:
        """Where the door called `name` listens; KeyError when there is none (or no more: after shutdown)."""
        for door in self.doors.values():
            if door.name == name:
                return door.address
        raise KeyError(name)

    def listen(self) -> tuple[str, int]:
        """Open the native door on the configured address."""
        config = self.config
        return self.add_door("native", config.host, config.port, lambda: NativeCodec(config.max_line))

    def add_door(self, name: str, host: str, port: int, codec: Callable[[], Codec],
                 transport: Callable[[socket.socket], Transport] = SocketTransport) -> tuple[str, int]:
        """Listen on another front door (IRC, WebSocket, TLS twins), served by this same loop."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:  # `::` takes IPv4 clients too, whatever the system's bindv6only says
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind((host, port))
            sock.listen(self.config.listen_backlog)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        door = Door(name, sock, codec, transport)
        self.doors[sock.fileno()] = door
        self.epoll.register(sock.fileno(), select.EPOLLIN)
        return door.address

    def wake(self) -> None:
        """Interrupt the wait for events (from any thread, or a signal handler). After the loop has ended it does
        nothing: its descriptor may belong to another file by then."""
        fd = self._wake_w
        if fd < 0:
            return
        with contextlib.suppress(BlockingIOError, OSError):  # a full pipe wakes the loop anyway
            os.write(fd, b"\0")

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
        self.writer.start()
        self.reader.start()
        if self.accounts:
            self.accounts.start()
        if self.cluster is not None and self.cluster.link is not None:
            self.cluster.link.start()
        try:
            while not self._stop:
                self._pass()
            self._shutdown()
        finally:
            if self.cluster is not None and self.cluster.link is not None:
                self.cluster.link.stop()
            self.writer.stop()
            self.reader.stop()
            if self.accounts:
                self.accounts.stop()
            self.epoll.close()
            wake_r, wake_w = self._wake_r, self._wake_w
            self._wake_r = self._wake_w = -1
            os.close(wake_r)
            os.close(wake_w)

    # ---------------------------------------------------------------------------------------- one pass

    def _pass(self) -> None:
        events = self.epoll.poll(self._timeout())
        now = self.monotonic()
        connections = self.connections
        for fd, mask in events:
            c = connections.get(fd)
            if c is not None:
                if mask & _OUT:
                    self._flush(c)
                if mask & (select.EPOLLIN | _GONE) and c.phase is not Phase.CLOSED:
                    self._read(c, now)
            elif fd in self.doors:
                self._accept(self.doors[fd], now)
            elif fd == self._wake_r:
                self._drain_wake()
        if self.waiting:
            self._released = False
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
        self._flush_dirty(now)

    def _timeout(self) -> float:
        if (self.deliverer.dirty or self.writer.done or self.reader.done or self._released
                or (self.accounts and self.accounts.done)
                or (self.cluster is not None and self.cluster.link is not None
                    and (self.cluster.link.inbox or self.cluster.link.private))):
            return 0
        now = self.monotonic()
        timeout = max(0.0, self._next_sweep - now)
        if self._presence_due is not None:
            timeout = min(timeout, max(0.0, self._presence_due - now))
        if self.waiting and self.config.rate:
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
        """Deliver what the writer finished and answer what the reader read; start the next commit; deliver at
        once what needs no storage."""
        while self.writer.done:
            self._committed(self.writer.done.popleft())
        while self.reader.done:
            self._answered(self.reader.done.popleft())
        cluster = self.cluster
        if cluster is not None and cluster.link is not None:
            if cluster.link.inbox or cluster.link.private:
                cluster.take_inbox(self._ask_cluster)
            if cluster.link.lost and not cluster.rejoining:
                self._node_lost()
        if self.accounts:
            self._hand_over_jobs()
        current = self.current
        if current.early_reads:  # they need no commit before them: to the reader now
            self.reads.extend(current.early_reads)
            current.early_reads = []
            self._start_reads()
        behind = self.in_flight is not None and (
            len(current.deliveries) > PENDING_MAX or current.text_bytes > PENDING_TEXT_MAX)
        if behind != self.behind:
            self.behind = behind
            if behind:
                log.warning("storage is behind: not reading input until it catches up",
                            extra={"event": "storage_behind"})
            else:
                self._resume_paused()
        if self.in_flight is None and current:
            outbox, self.current = current, Outbox()
            if outbox.needs_storage:
                self._submit(outbox)
            else:
                self.deliverer.deliver(outbox)
                self._queue_reads(outbox)

    def _submit(self, outbox: Outbox) -> None:
        self._carry_unsaved(outbox)
        outbox.writes.rooms = [r.stored() for r in outbox.new_rooms.values()]
        self.in_flight = outbox
        self.writer.done_event.clear()
        self.writer.submit(StorageJob(outbox))

    def _committed(self, job: StorageJob) -> None:
        outbox = job.outbox
        state = DeliveryState.FAILED if job.error else DeliveryState.STORED
        for message, _room_id in outbox.writes.messages:
            message.state = state
        unsaved_rooms = self.state.unsaved_rooms
        if job.error is None:
            self.commits += 1
            for room in outbox.new_rooms.values():
                room.persisted = True
                if self.lookups_in_flight:
                    self.state.rows_written_lately[room.key] = self.commits
                if unsaved_rooms.get(room.key) is room:
                    del unsaved_rooms[room.key]
        else:  # its messages are gone (their senders are told); its rooms, topics and nicks are live already
            self.unsaved.writes.keep_lasting(outbox.writes)
            self.unsaved.new_rooms.update(outbox.new_rooms)
            for room in outbox.new_rooms.values():
                unsaved_rooms[room.key] = room
        self.in_flight = None
        if job.cluster is not None and self.cluster is not None:  # other nodes' events before this batch first
            self.deliverer.deliver(self.cluster.committed(job.cluster, outbox, self._ask_cluster))
            if outbox.writes.rejoin and job.error is None:
                self.cluster.rejoined()
        self.deliverer.deliver(outbox)
        self._queue_reads(outbox)

    def _node_lost(self) -> None:
        """Clustered: the other nodes reaped this one (its heartbeat went stale: it was paused, or cut from the
        database, for longer than --node-timeout) and it is still running. It starts clean, as a node restarted
        under its name does: every session ends with a goodbye saying why (`node_lost`; clients reconnect,
        through the balancer, to any node), its rooms leave memory, and its next commit announces gone whatever
        it wrote since the reaping and makes its row again (chat.storage.cluster: WriteBatch.rejoin)."""
        assert self.cluster is not None
        message = ("This server lost touch with the rest of the chat for too long, and the others announced you "
                   "gone. Please reconnect.")
        for c in list(self.connections.values()):
            if c.phase < Phase.ENDING:
                self.service.node_lost(c.member, message, self.current)
                self._ending(c, "node lost")
        self.cluster.start_clean()
        self.current.writes.rejoin = True

    def _ask_cluster(self, read: RoomEventsRead | InboxRead) -> None:
        self.reads.append(read)
        self._start_reads()

    def _carry_unsaved(self, outbox: Outbox) -> None:
        """Put what failed commits left unsaved at the head of `outbox`'s writes (newer changes then win)."""
        if not self.unsaved.needs_storage:
            return
        carried, self.unsaved = self.unsaved, Outbox()
        outbox.writes.put_first(carried.writes)
        for room in carried.new_rooms.values():
            outbox.store_room(room)

    def _queue_reads(self, outbox: Outbox) -> None:
        """The writes before these reads are committed: they may run now, as places at the reader free up."""
        self.reads.extend(outbox.reads)
        self._start_reads()

    def _start_reads(self) -> None:
        while self.reads and self.reads_in_flight < READS_IN_FLIGHT and not self._stop:
            read = self.reads.popleft()
            if read.cancelled:
                self._answered(read, ran=False)
                continue
            self.reads_in_flight += 1
            if type(read) is RoomLookup:
                read.handed_over_after = self.commits
                self.lookups_in_flight += 1
            self.reader.submit(read)

    def _answered(self, read: StorageRead, ran: bool = True) -> None:
        if ran:
            self.reads_in_flight -= 1
        match read:
            case HistoryRequest():
                members = [read.member]
                if not read.member.gone:
                    self.deliverer.push(read.member, self.service.history_read(read))
            case RoomLookup():
                members = read.members
                if ran:
                    self.lookups_in_flight -= 1
                self.service.room_found(read, self.current)
            case SearchRequest():
                members = [read.member]
                if not read.member.gone:
                    self.deliverer.push(read.member, self.service.search_read(read))
            case RoomEventsRead():
                members = []
                assert self.cluster is not None
                self.deliverer.deliver(self.cluster.fetched(read, self._ask_cluster))
            case InboxRead():
                members = []
                assert self.cluster is not None
                self.deliverer.deliver(self.cluster.inbox_fetched(read, self._ask_cluster))
            case TargetsRead():
                members = [read.member]
                if not read.member.gone:
                    self.deliverer.push(read.member, self.service.targets_read(read))
            case RoomListRead():
                members = [read.member]
                if not read.member.gone:
                    self.deliverer.push(read.member, self.service.rooms_read(read))
            case HolderRead():
                members = [read.member]
                if not read.member.gone:
                    self.deliverer.push(read.member, self.service.holder_read(read))
            case TargetRead():
                members = [read.member]
                if not read.member.gone:
                    self.service.moderation.target_read(read, self.current)
            case _:  # accounts' reads: private history, offline messages, what is known of a nick
                members = read.members
                self.service.account_read(read, self.current)
        for m in members:
            self._release(m, read)
        if not self.lookups_in_flight:  # no lookup at the reader can have read before these rows were written
            self.state.rows_written_lately.clear()
        self._start_reads()

    def _release(self, m: Member, item: StorageRead | AccountJob) -> None:
        with contextlib.suppress(ValueError):
            m.waiting.remove(item)
        if m.registered:  # a nick is taken once the database says it is not registered (or after a login)
            self.unregistered.discard(m.conn)
        if m.conn.phase <= Phase.DRAINING:
            self.waiting.add(m.conn)  # its held lines may go on now
            self._released = True

    def _hand_over_jobs(self) -> None:
        """Answer the account jobs the workers finished; hand them the ones the services asked for meanwhile."""
        accounts = self.accounts
        assert accounts is not None
        while accounts.done:
            job = accounts.done.popleft()
            accounts.taken_back(job)
            self.service.account_done(job, self.current)
            self._release(job.member, job)
        jobs, self.current.jobs = self.current.jobs, []
        for job in jobs:
            accounts.submit(job)

    def _resume_paused(self) -> None:
        for c in self.paused:
            if c.phase is Phase.OPEN and not c.reading and c.held_bytes <= HELD_BYTES_MAX // 2:
                c.reading = True
                self._rearm(c)
        self.paused.clear()

    # ------------------------------------------------------------------------------------------ accept

    def _accept(self, door: Door, now: float) -> None:
        if now < self._accept_paused_until:
            return
        for _ in range(ACCEPT_BATCH):
            try:
                sock, address = door.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.error("accept: %s; not accepting for 1 s", e.strerror)
                    self._accept_paused_until = now + 1.0
                    for fd in self.doors:
                        self.epoll.modify(fd, 0)
                    return
                log.warning("accept: %s", e)
                continue
            self._admit(door, sock, address, now)

    def _admit(self, door: Door, sock: socket.socket, address: tuple[str, int], now: float) -> None:
        ip = address[0]
        peer = f"[{ip}]:{address[1]}" if ":" in ip else f"{ip}:{address[1]}"
        if len(self.connections) >= self.config.max_clients:
            self._refuse(door, sock, peer, ErrorCode.SERVER_FULL, "The server is full; please try again later.")
            return
        exempt = self.config.is_exempt(ip)
        key = limit_key(ip)  # an IPv4-mapped address as its IPv4 address, an IPv6 one as its /64
        if not exempt and self.per_ip.get(key, 0) >= self.config.max_per_ip:
            self._refuse(door, sock, peer, ErrorCode.TOO_MANY_CONNECTIONS,
                         f"Too many connections from {key} (at most {self.config.max_per_ip}).")
            return
        try:
            sock.setblocking(False)
            _tune_socket(sock, self.config.keepalive)
            transport = door.transport(sock)
        except OSError as e:  # it went away between accept and now
            log.info("connect %s failed: %s", peer, e)
            sock.close()
            return
        c = Connection(self._next_id, transport, door.codec(), peer, ip, "" if exempt else key, door.name,
                       self.config.burst, now, self.config.new_rooms_burst)
        self._next_id += 1
        self.connections[c.fd] = c
        if c.limit_key:
            self.per_ip[c.limit_key] = self.per_ip.get(c.limit_key, 0) + 1
        self.unregistered.add(c)
        self.epoll.register(c.fd, _IN)
        if transport.established:
            self._log_connect(c)
        else:  # logged once the handshake is done: a failed one is one line, its disconnect
            self.handshaking.add(c)
        greeting = Outbox()  # the first thing it gets: nothing before it to wait for, whatever storage is doing
        self.service.connected(c.member, greeting)  # (a TLS transport keeps it until the handshake is done)
        self.deliverer.deliver(greeting)

    def _log_connect(self, c: Connection) -> None:
        security = c.transport.version
        log.info("connect %s%s", c.label, f" {security}" if security else "",
                 extra={"event": "connect", "session": c.id, "peer": c.peer, "door": c.door, "tls": security or None})

    def _refuse(self, door: Door, sock: socket.socket, peer: str, code: ErrorCode, message: str) -> None:
        """Close a connection over a limit at once, saying why where it can be said without a handshake."""
        log.warning("refused %s: %s", peer, code.value, extra={"event": "refused", "peer": peer, "code": code.value})
        if not door.secure:  # a TLS client would take the words for a broken handshake; it is just closed
            try:
                sock.setblocking(False)
                sock.send(door.codec().render([Bye(message, code)]))  # in the door's own words (an HTTP 503)
            except OSError:
                pass
        sock.close()

    # -------------------------------------------------------------------------------------------- read

    def _read(self, c: Connection, now: float) -> None:
        # storage is far behind: let TCP hold this client's input (a TLS handshake goes on: it has a deadline)
        if self.behind and c.phase is Phase.OPEN and c.transport.established:
            if c.reading:
                c.reading = False
                self._rearm(c)
                self.paused.add(c)
            return
        transport = c.transport
        try:
            data = transport.recv()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self._drop(c, _socket_reason(e))
            return
        if self.handshaking and transport.established and c in self.handshaking:
            self.handshaking.discard(c)
            self._log_connect(c)
        if transport.pending_output and not c.writing:  # its own records (TLS handshake, key update, greeting)
            self._flush(c)
            if c.phase is Phase.CLOSED:
                return
        if data is None:  # the transport's own traffic (a TLS handshake record): nothing for the codec
            return
        if not data:
            self._end_of_input(c)
            return
        c.heard_at = now  # (per read, not per line: the ping timeout's sweep reads it)
        c.pinged = False
        if c.phase is not Phase.OPEN:
            return  # it said goodbye; what it sends now is not read
        rate = self.config.rate
        member = c.member
        for frame in c.codec.frames(data):
            if (c.held or member.waiting or c.out_bytes > self.reply_room
                    or (rate and not _take_token(c, now, rate, self.config.burst))):
                self._hold(c, frame)
            else:
                self._handle(c, frame)
            if c.phase is not Phase.OPEN:
                return
        if transport.at_end:  # a TLS close_notify came with the data: no socket event will say so again
            self._end_of_input(c)

    def _end_of_input(self, c: Connection) -> None:
        """The peer sent EOF. It may still read (`printf ... | nc` does), so answer what it sent, then close."""
        if c.phase is not Phase.OPEN:
            if c.reading:
                c.reading = False
                self._rearm(c)
            else:  # EPOLLHUP: it is gone both ways
                self._close(c, c.reason or "dropped")
            return
        c.phase = Phase.DRAINING
        c.reading = False
        self._rearm(c)
        self.paused.discard(c)
        if not c.held and not c.member.waiting:  # else: once its last lines are handled
            self._finish(c)
        else:
            self.waiting.add(c)

    def _finish(self, c: Connection) -> None:
        """A draining connection's last lines are handled: it left without /quit."""
        self.service.disconnected(c.member, "connection closed", self.current)
        self.current.reply(c.member, CloseAfterFlush())
        self._ending(c, "dropped")

    def _handle(self, c: Connection, frame: Frame) -> None:
        m = c.member
        out = self.current
        was_registered = m.registered
        try:
            if isinstance(frame, ChatError):
                self.service.refused(m, frame, out)
            else:  # a line, or the codec's own control frame
                for item in c.codec.decode(frame):
                    # a plain line first: isinstance() against a pydantic model's base class goes through ABCMeta
                    # (0.25 us, paid on every line)
                    if type(item) is Say or isinstance(item, Command):
                        self.service.handle(m, item, out)
                    else:
                        out.reply(m, item)  # the codec answers it itself
                    if m.gone:
                        break
        except ChatError as e:
            self.service.refused(m, e, out)
        except Exception:  # a bug must cost one line, not the server (and never log a password)
            log.exception("error handling a line from %s: %.200r", c.label, self.service.loggable(m, frame))
            out.reply(m, Error(ErrorCode.SERVER_ERROR, "The server failed to handle that line (logged)."))
        if m.registered and not was_registered:
            self.unregistered.discard(c)
        if m.gone and c.phase < Phase.ENDING:
            self._ending(c, "quit")

    def _hold(self, c: Connection, frame: Frame) -> None:
        """Keep the frame until the client may be served again: flood control's bucket has a token, its read is
        answered, its output queue has room, storage has caught up."""
        c.held.append(frame)
        c.held_bytes += len(frame) if type(frame) is str else 0
        self.waiting.add(c)
        if self.config.rate and len(c.held) > self.config.flood_limit:
            self._kill(c, "flood", ErrorCode.FLOOD,
                       f"Too many lines too fast (more than {self.config.flood_limit} waiting).")
        elif c.held_bytes > HELD_BYTES_MAX and c.reading:
            c.reading = False
            self._rearm(c)

    def _release_held(self, now: float) -> None:
        rate, burst, room = self.config.rate, self.config.burst, self.reply_room
        behind = self.behind
        for c in list(self.waiting):
            m = c.member
            while (c.held and c.phase <= Phase.DRAINING and not m.waiting and c.out_bytes <= room and not behind
                   and (not rate or _take_token(c, now, rate, burst))):
                frame = c.held.popleft()
                c.held_bytes -= len(frame) if type(frame) is str else 0
                self._handle(c, frame)
            if c.phase >= Phase.ENDING:
                self.waiting.discard(c)
                continue
            if not c.reading and c.phase is Phase.OPEN and c.held_bytes <= HELD_BYTES_MAX // 2 and not behind:
                c.reading = True  # what it sent is being handled: read on
                self._rearm(c)
            if m.waiting:  # a read or a password check is in flight for it: `_release` puts it back once answered
                self.waiting.discard(c)  # (a login storm must not cost every pass a walk over all who wait)
            elif not c.held:
                self.waiting.discard(c)
                if c.phase is Phase.DRAINING:
                    self._finish(c)

    # ------------------------------------------------------------------------------------------- write

    def _flush_dirty(self, now: float | None = None) -> None:
        """Send what is queued. Connections with only presence lines queued (Deliverer.lazy) get them at most
        PRESENCE_DELAY later, with whatever else they get meanwhile, or at once when `now` is None."""
        dirty = self.deliverer.dirty
        lazy = self.deliverer.lazy
        if not lazy:
            self._presence_due = None  # those waiting have gone (closed): no wake-up is due for them
        else:
            if now is None or (self._presence_due is not None and now >= self._presence_due):
                dirty.update(lazy)
                lazy.clear()
                self._presence_due = None
            elif self._presence_due is None:
                self._presence_due = now + PRESENCE_DELAY
        if not dirty:
            return
        connections = list(dirty)
        dirty.clear()
        for c in connections:
            if c.phase is not Phase.CLOSED and not c.writing:
                self._flush(c)

    def _flush(self, c: Connection) -> None:
        out = c.out
        transport = c.transport
        while out:
            # join a slice, not the whole queue: the chunks are shared with every other recipient
            n, size = 1, len(out[0])
            # a partly sent chunk goes alone, so what is left of it stays the tail of one rendered chunk (a codec
            # finds its frame boundaries from the chunk's start when the queue is cut: Codec.resume_point)
            while n < len(out) and size < SEND_SLICE and type(out[0]) is not memoryview:
                size += len(out[n])
                n += 1
            data = out[0] if n == 1 else b"".join(out[:n])
            try:
                sent = transport.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as e:
                self._drop(c, _socket_reason(e))
                return
            c.out_bytes -= sent
            if sent < len(data):
                out[:n] = [memoryview(data)[sent:]]
                if c.out_bytes > self.config.sendq:  # more than its socket took and its queue may hold
                    self._overflowed(c)
                    return
                self._want_write(c, True)
                return
            del out[:n]
        c.out_bytes = 0
        if transport.pending_output:  # TLS records of its own still to go out
            try:
                transport.flush_pending()
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as e:
                self._drop(c, _socket_reason(e))
                return
            if transport.pending_output:
                self._want_write(c, True)
                return
        if c.writing:  # (checked here: this runs once per recipient of every fan-out)
            self._want_write(c, False)
        if c.phase is Phase.FLUSHING:
            self._close(c, c.reason or "quit")
        elif c.held and c.phase <= Phase.DRAINING:
            self.waiting.add(c)  # its queue has room again: its next lines may go
            self._released = True

    def _want_write(self, c: Connection, want: bool) -> None:
        if c.writing is not want:
            c.writing = want
            self._rearm(c)

    def _rearm(self, c: Connection) -> None:
        mask = (_IN if c.reading else 0) | (_OUT if c.writing else 0)
        self.epoll.modify(c.fd, mask)

    # --------------------------------------------------------------------------------- ends of sessions

    def _overflowed(self, c: Connection) -> None:
        c.cut_output()  # what it did not read is dropped, but never half a line
        self._kill(c, "send queue exceeded", ErrorCode.SENDQ_EXCEEDED,
                   f"You were sent more than {self.config.sendq} bytes you did not read.", STALLED_LINGER)

    def _drop(self, c: Connection, reason: str) -> None:
        """The peer's socket failed: close now and tell its rooms."""
        self._close(c, reason, "connection lost")

    def _kill(self, c: Connection, reason: str, code: ErrorCode, message: str, linger: float = LINGER) -> None:
        """End a client's session for cause: its rooms are told now; it gets the echoes of what was accepted from
        it, then a goodbye saying why, then the close."""
        if c.phase >= Phase.ENDING:  # it was already going and still fails: give up on it
            self._close(c, c.reason or reason)
            return
        self.service.end(c.member, message, code, reason, self.current)
        self._ending(c, reason, linger)

    def _ending(self, c: Connection, reason: str, linger: float = LINGER) -> None:
        """No more input: its last output goes through the outbox, after the echoes of what it sent."""
        c.phase = Phase.ENDING
        c.reason = c.reason or reason
        c.linger = linger  # its deadline starts once its goodbye is queued (FLUSHING): the outbox may take a while
        c.held.clear()
        c.held_bytes = 0
        self.waiting.discard(c)
        self.paused.discard(c)
        self.ending.add(c)
        if c.reading:
            c.reading = False
            self._rearm(c)

    def _close(self, c: Connection, reason: str, detail: str | None = None) -> None:
        if c.phase is Phase.CLOSED:
            return
        m = c.member
        if m.registered or m.account is not None:  # (an IRC client may log in before it has a nick)
            self.service.disconnected(m, detail or reason, self.current)
        m.gone = True  # its reads are skipped, its deliveries dropped
        m.waiting.clear()
        c.phase = Phase.CLOSED
        with contextlib.suppress(OSError, ValueError):
            self.epoll.unregister(c.fd)
        del self.connections[c.fd]
        c.transport.close()
        c.out.clear()
        c.out_bytes = 0
        c.held.clear()
        if c.limit_key in self.per_ip:
            left = self.per_ip[c.limit_key] - 1
            if left:
                self.per_ip[c.limit_key] = left
            else:
                del self.per_ip[c.limit_key]
        for group in (self.unregistered, self.handshaking, self.waiting, self.paused, self.ending):
            group.discard(c)
        self.deliverer.dirty.pop(c, None)
        self.deliverer.lazy.pop(c, None)
        seconds = self.monotonic() - c.connected_at
        log.info("disconnect %s reason=%s after %.1fs", c.label, reason, seconds,
                 extra={"event": "disconnect", "session": c.id, "peer": c.peer, "nick": m.nick or None,
                        "reason": reason, "seconds": round(seconds, 3)})

    def _sweep(self, now: float) -> None:
        """Once a second: handshake and nickname timeouts, goodbyes that take too long, a paused accept."""
        self._next_sweep = now + SWEEP_EVERY
        limit = self.config.tls_handshake_timeout
        for c in [c for c in self.handshaking if now - c.connected_at > limit]:
            self._close(c, f"TLS handshake timeout ({limit:g} s)")  # nothing can be said to it: it has no TLS yet
        timeout = self.config.nick_timeout
        for c in [c for c in self.unregistered if now - c.connected_at > timeout and c.phase is Phase.OPEN]:
            self._kill(c, "registration timeout", ErrorCode.REGISTRATION_TIMEOUT,
                       f"No nickname was chosen within {timeout:g} seconds.")
        for c in list(self.ending):
            if c.phase is Phase.FLUSHING:
                if not c.deadline:
                    c.deadline = now + c.linger
                elif now > c.deadline:
                    self._close(c, c.reason or "quit")
        if self._accept_paused_until and now >= self._accept_paused_until:
            self._accept_paused_until = 0.0
            for fd in self.doors:
                self.epoll.modify(fd, select.EPOLLIN)
        if self.config.ping_timeout and now >= self._next_idle_sweep:
            self._idle_sweep(now)

    def _idle_sweep(self, now: float) -> None:
        """Every eighth of --ping-timeout (at least once a second): a registered client silent for the timeout is
        sent its codec's PING (IRC's), one silent for twice the timeout is closed with a goodbye (IRC's ERROR).
        One pass over the connections, no timer per connection, nothing per message."""
        limit = self.config.ping_timeout
        self._next_idle_sweep = now + max(SWEEP_EVERY, limit / 8)
        for c in list(self.connections.values()):
            idle = now - c.heard_at
            if idle < limit or c.phase is not Phase.OPEN or not c.member.registered:
                continue
            if c.pinged:
                if idle >= 2 * limit:
                    seconds = f"Ping timeout: {int(idle)} seconds"
                    self._kill(c, seconds, ErrorCode.PING_TIMEOUT, seconds)
                continue
            ping = c.codec.keepalive_ping()
            if ping is not None:
                c.pinged = True
                self.deliverer.push(c.member, Reply(ping))

    # ---------------------------------------------------------------------------------------- shutdown

    def _shutdown(self) -> None:
        for fd, door in list(self.doors.items()):
            self.epoll.unregister(fd)
            door.sock.close()
        self.doors.clear()
        # lines already read but held back were accepted too: they are handled now
        for c in list(self.connections.values()):  # (not only `waiting`: those behind a read are not in it)
            while c.held and c.phase <= Phase.DRAINING:
                frame = c.held.popleft()
                self._handle(c, frame)
        self.waiting.clear()
        self._carry_unsaved(self.current)  # a last try for what failed commits left unsaved
        # everything accepted so far is stored and delivered before anyone is told goodbye
        while self.in_flight is not None or self.current.needs_storage or self.current.deliveries:
            if self.in_flight is not None:
                self.writer.done_event.wait(0.1)
            self._advance()
        self.reads.clear()  # pages nobody will read now
        farewell = "The server is shutting down. Goodbye!"
        for c in list(self.connections.values()):
            if c.phase < Phase.ENDING:
                self._ending(c, "server shutdown")
            if c.phase < Phase.FLUSHING:
                self.deliverer.push(c.member, Bye(farewell, ErrorCode.SERVER_SHUTDOWN, c.member.last_stored_id()))
                c.phase = Phase.FLUSHING
        deadline = self.monotonic() + SHUTDOWN_FLUSH
        self._flush_dirty()
        while self.connections and self.monotonic() < deadline:
            for fd, mask in self.epoll.poll(0.05):
                waiting = self.connections.get(fd)
                if waiting is not None and mask & (_OUT | _GONE):
                    self._flush(waiting)
        for c in list(self.connections.values()):
            self._close(c, "server shutdown")
        self.current = Outbox()  # the quits of this shutdown need no delivery


def _socket_reason(e: OSError) -> str:
    """Why a client's socket failed, in the log's words: a peer that reset the connection dropped it; one that
    stopped answering (keepalive, unacknowledged data) timed out; a transport's own failure says why itself;
    anything else is an error."""
    if isinstance(e, TransportError):
        return str(e)
    if e.errno in (errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED):
        return "dropped (connection reset)"
    if e.errno in (errno.ETIMEDOUT, errno.EHOSTUNREACH, errno.ENETUNREACH):
        return f"timeout ({e.strerror})"
    return f"error: {e.strerror or e}"


def _take_token(c: Connection, now: float, rate: float, burst: int) -> bool:
    tokens = c.tokens + (now - c.last_refill) * rate
    if tokens > burst:
        tokens = burst
    c.last_refill = now
    if tokens >= 1.0:
        c.tokens = tokens - 1.0
        return True
    c.tokens = tokens
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
