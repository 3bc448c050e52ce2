"""The TLS transport alone on a real loopback connection, the way the event loop drives it: its fast write path,
its own pending bytes across many WANT_WRITEs, and reads that end exactly where the peer's bytes end.

The peer is a client-side `ssl.SSLObject` over the raw socket, so a test decides exactly which bytes arrive in
one TCP segment (two records and a close_notify together, half a record...)."""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import time
from collections.abc import Iterator

import pytest

from chat.server.tls import ServerTLS, TLSTransport
from harness import WAIT, TLSFiles


class Peer:
    """The client end: TLS in memory, bytes on a blocking socket, so the test chooses every segment."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext) -> None:
        self.sock = sock
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname="localhost")
        self.plaintext = bytearray()

    def handshake_step(self) -> bool:
        try:
            self.tls.do_handshake()
            done = True
        except ssl.SSLWantReadError:
            done = False
        self.flush()
        return done

    def flush(self) -> None:
        if self.outgoing.pending:
            self.sock.sendall(self.outgoing.read())

    def records(self, *chunks: bytes, close_notify: bool = False) -> bytes:
        """The TLS bytes of these chunks (one or more records each), and a close_notify after them if asked."""
        for chunk in chunks:
            self.tls.write(chunk)
        if close_notify:
            with contextlib.suppress(ssl.SSLWantReadError):  # it would wait for the server's close_notify
                self.tls.unwrap()
        return self.outgoing.read()

    def read_some(self, timeout: float = WAIT) -> None:
        """One read of what the socket has (waiting up to `timeout` for something), decrypted."""
        self.sock.settimeout(timeout)
        data = self.sock.recv(65536)
        assert data, f"the server closed after {len(self.plaintext)} bytes"
        self.incoming.write(data)
        while True:
            try:
                self.plaintext += self.tls.read(65536)
            except ssl.SSLWantReadError:
                break
        self.flush()  # (a TLS 1.3 client owes nothing here, but never leave an answer unsent)

    def read_until(self, size: int) -> bytes:
        """Read and decrypt until `size` bytes of plaintext have come (or fail at the deadline)."""
        deadline = time.monotonic() + WAIT
        while len(self.plaintext) < size:
            assert time.monotonic() < deadline, f"only {len(self.plaintext)} of {size} bytes came"
            self.read_some(max(0.01, deadline - time.monotonic()))
        return bytes(self.plaintext[:size])


@pytest.fixture
def pair(tls_files: TLSFiles) -> Iterator[tuple[TLSTransport, Peer]]:
    """A server transport, shaken hands with a Peer, the server side non-blocking as the loop has it."""
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)  # before connect: a small window, so a burst
    client.settimeout(WAIT)  # fills the socket buffers soon
    client.connect(listener.getsockname())
    server_sock, _ = listener.accept()
    listener.close()
    server_sock.setblocking(False)
    transport = ServerTLS(tls_files.cert, tls_files.key)(server_sock)
    peer = Peer(client, tls_files.client_context())
    deadline = time.monotonic() + WAIT
    peer_done = peer.handshake_step()
    while not (peer_done and transport.established):
        assert time.monotonic() < deadline, "the handshake did not finish"
        select.select([server_sock], [], [], 0.05)
        with contextlib.suppress(BlockingIOError):
            transport.recv()
        if not peer_done:
            client.settimeout(0.05)
            with contextlib.suppress(TimeoutError):
                peer.incoming.write(client.recv(65536))
            client.settimeout(WAIT)
            peer_done = peer.handshake_step()
    while transport.pending_output:  # the session tickets
        select.select([], [server_sock], [], 0.05)
        transport.flush_pending()
    yield transport, peer
    transport.close()
    client.close()


def server_recv(transport: TLSTransport) -> bytes | None:
    """One recv() as the loop makes it once epoll says the socket is readable."""
    assert select.select([transport.sock], [], [], WAIT)[0], "nothing came to the server"
    return transport.recv()


def test_a_burst_written_across_many_want_writes_arrives_whole_and_in_order(pair: tuple[TLSTransport, Peer]) -> None:
    """The loop's way: send() until the transport refuses (BlockingIOError: its own records are still waiting
    for the socket), then flush_pending() when writable; `pending_output` says true exactly while it holds bytes.
    Far more than the socket buffers hold, so the slow path runs hundreds of times."""
    transport, peer = pair
    transport.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    lines = [b"%06d %s\n" % (i, b"q" * (i % 300)) for i in range(20_000)]  # ~3 MB in lines of 8 to 307 bytes
    expected = b"".join(lines)
    refusals = holds = 0
    i = 0
    deadline = time.monotonic() + 2 * WAIT
    while i < len(lines):
        assert time.monotonic() < deadline, f"stuck at line {i}"
        try:
            taken = transport.send(lines[i])
        except BlockingIOError:
            refusals += 1
            assert transport.pending_output
            peer.read_some()  # the reader comes back for a moment
            transport.flush_pending()
            continue
        assert taken == len(lines[i])  # a TLS send takes all it accepts: what the socket refused stays its own
        holds += transport.pending_output
        i += 1
    while transport.pending_output:
        select.select([], [transport.sock], [], WAIT)
        transport.flush_pending()
        peer.read_some()
    assert peer.read_until(len(expected)) == expected
    assert refusals > 100 and holds > 100  # the burst really went through the slow path, many times


def test_two_records_and_a_close_notify_in_one_segment_are_read_and_seen_as_the_end(
        pair: tuple[TLSTransport, Peer]) -> None:
    """One recv() decrypts everything that came, and sees the close_notify behind the data at once (no socket
    event would say so later: the peer keeps its TCP connection open)."""
    transport, peer = pair
    peer.sock.sendall(peer.records(b"first line\n", b"second line\n", close_notify=True))
    assert server_recv(transport) == b"first line\nsecond line\n"
    assert transport.at_end
    assert transport.recv() == b""


def test_a_record_cut_in_two_by_tcp_is_read_once_it_is_whole(pair: tuple[TLSTransport, Peer]) -> None:
    transport, peer = pair
    wire = peer.records(b"a line that arrives in two halves\n")
    peer.sock.sendall(wire[:10])
    assert server_recv(transport) is None  # nothing to decrypt yet: the loop hands nothing to the codec
    assert not transport.at_end
    peer.sock.sendall(wire[10:] + peer.records(b"and one more\n"))
    assert server_recv(transport) == b"a line that arrives in two halves\nand one more\n"
    assert not transport.at_end


def test_a_tcp_fin_after_the_last_record_is_the_end(pair: tuple[TLSTransport, Peer]) -> None:
    transport, peer = pair
    peer.sock.sendall(peer.records(b"last words\n"))
    assert server_recv(transport) == b"last words\n"
    peer.sock.shutdown(socket.SHUT_WR)  # no close_notify: a client that just closes
    assert server_recv(transport) == b""
