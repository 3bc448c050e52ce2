"""Many clients on real sockets, driven by one thread."""

from __future__ import annotations

import selectors
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

from harness.clients import WAIT


class SwarmClient:
    """One connection of a `Swarm`: bytes waiting to go out, and the lines received (all of them, or those
    `keep` accepts; `received` counts all)."""

    __slots__ = ("closed", "cursor", "fd", "keep", "lines", "name", "nick", "out", "partial", "received", "sock",
                 "state", "swarm")

    def __init__(self, swarm: Swarm, sock: socket.socket, name: str, keep: Callable[[str], bool] | None) -> None:
        self.swarm = swarm
        self.sock = sock
        self.fd = sock.fileno()
        self.name = name
        self.nick: str | None = None
        self.keep = keep
        self.out = bytearray()
        self.partial = b""
        self.lines: list[str] = []
        self.cursor = 0  # where the next expect() looks from
        self.received = 0
        self.closed = False
        self.state: dict[str, Any] = {}  # the test's own bookkeeping

    def send(self, *lines: str) -> None:
        self.send_raw("".join(line + "\n" for line in lines).encode())

    def send_raw(self, data: bytes) -> None:
        if self.closed:
            return
        self.out += data
        self.swarm._write(self)

    def take_new(self) -> list[str]:
        """Lines received since the last call (moves the cursor)."""
        new = self.lines[self.cursor:]
        self.cursor = len(self.lines)
        return new

    def __repr__(self) -> str:
        return f"<SwarmClient {self.name} nick={self.nick} closed={self.closed}>"


class Swarm:
    """Many clients on real sockets, driven by one thread with `selectors`: 2,000 connections need no 2,000
    threads. Clients read all the time (unless `reading` is False for one), so a server never sees them stall
    unless a test wants it to. With `tls` (a client context) every client speaks TLS: each handshake is done
    before the client joins the swarm, then its socket is non-blocking like the others."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> None:
        self.host, self.port = host, port
        self.tls = tls
        self.selector = selectors.DefaultSelector()
        self.clients: list[SwarmClient] = []
        self._by_fd: dict[int, SwarmClient] = {}
        self.bytes_in = 0

    def connect(self, count: int, prefix: str = "c", keep: Callable[[str], bool] | None = None,
                source: str | None = None) -> list[SwarmClient]:
        made = []
        for i in range(count):
            sock = socket.create_connection((self.host, self.port), timeout=WAIT,
                                            source_address=(source, 0) if source else None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_hostname=self.host)
            sock.setblocking(False)
            c = SwarmClient(self, sock, f"{prefix}{len(self.clients)}" if count > 1 or i else prefix, keep)
            self.clients.append(c)
            self._by_fd[c.fd] = c
            self.selector.register(sock, selectors.EVENT_READ, c)
            made.append(c)
            if i % 64 == 63:
                self.pump(0)  # take the greetings as they come, so no socket buffer fills while connecting
        return made

    # ----------------------------------------------------------------------------------------- events

    def _write(self, c: SwarmClient) -> None:
        try:  # (TLS: a send it could not finish is retried with the same bytes first, as OpenSSL asks)
            sent = c.sock.send(c.out)
        except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            sent = 0
        except OSError:
            self._gone(c)
            return
        del c.out[:sent]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if c.out else 0)
        self.selector.modify(c.sock, events, c)

    def _read(self, c: SwarmClient) -> None:
        try:
            data = c.sock.recv(262144)
            while isinstance(c.sock, ssl.SSLSocket) and data and c.sock.pending():  # decrypted, not yet read
                data += c.sock.recv(262144)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        except OSError:
            data = b""
        if not data:
            self._gone(c)
            return
        self.bytes_in += len(data)
        chunks = (c.partial + data).split(b"\n")
        c.partial = chunks.pop()
        c.received += len(chunks)
        keep = c.keep
        for raw in chunks:
            line = raw.decode("utf-8", "replace")
            if keep is None or keep(line):
                c.lines.append(line)

    def _gone(self, c: SwarmClient) -> None:
        if not c.closed:
            c.closed = True
            self.selector.unregister(c.sock)
            c.sock.close()

    def pump(self, timeout: float = 0.05) -> None:
        """Handle what is ready, waiting at most `timeout` for something to be."""
        for key, events in self.selector.select(timeout):
            c = key.data
            if events & selectors.EVENT_WRITE:
                self._write(c)
            if events & selectors.EVENT_READ and not c.closed:
                self._read(c)

    def run_until(self, condition: Callable[[], bool], timeout: float = WAIT, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
            self.pump(0.02)

    def run_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.pump(0.02)

    # ------------------------------------------------------------------------------------ expectations

    def expect_all(self, clients: list[SwarmClient], match: str | Callable[[str], bool], timeout: float = WAIT,
                   what: str | None = None) -> None:
        """Wait until every client has received a line containing `match` (or satisfying it), looking from
        where its previous expectation stopped."""
        test = match if callable(match) else (lambda line: match in line)
        pending = set(clients)

        def done() -> bool:
            for c in list(pending):
                lines = c.lines
                while c.cursor < len(lines):
                    c.cursor += 1
                    if test(lines[c.cursor - 1]):
                        pending.discard(c)
                        break
                else:
                    if c.closed:
                        raise AssertionError(f"{c} closed while waiting for {what or match!r}: {c.lines[-3:]}")
            return not pending

        try:
            self.run_until(done, timeout, what or repr(match))
        except AssertionError as e:
            sample = sorted(pending, key=lambda c: c.name)[:3]
            raise AssertionError(f"{e}; {len(pending)} clients still waiting, e.g. "
                                 f"{[(c.name, c.lines[-3:]) for c in sample]}") from None

    def register(self, clients: list[SwarmClient], nicks: list[str], timeout: float = WAIT * 3) -> None:
        for c, nick in zip(clients, nicks, strict=True):
            c.send(nick)
            c.nick = nick
        self.expect_all(clients, lambda line: "*** Welcome, " in line or '"type":"welcome"' in line, timeout,
                        "welcome")

    def sync(self, clients: list[SwarmClient], token: str = "sync", timeout: float = WAIT * 3) -> None:
        """Wait until the server has handled everything each client sent (it answers /ping in order)."""
        for c in clients:
            c.send(f"/ping {token}")
        self.expect_all(clients, lambda line: f"pong {token}" in line or f'"token":"{token}"' in line, timeout,
                        f"pong {token}")

    def drop(self, c: SwarmClient, reset: bool = False) -> None:
        """Close a client without a word; with `reset`, the way a crashed program's socket goes (RST)."""
        if reset and not c.closed:
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        self._gone(c)

    def close_all(self) -> None:
        for c in self.clients:
            if not c.closed:
                self._gone(c)
        self.selector.close()
