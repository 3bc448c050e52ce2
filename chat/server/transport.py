"""Transports: bytes to and from one socket, never blocking. The event loop owns them.

`recv()` returns what the application may read (b"" at the end of input, None when the socket had nothing
for the application yet, as a TLS handshake record does); `send()` returns how much of `data` it took. Both
raise BlockingIOError when the socket is not ready, and OSError when it failed (TransportError when the
transport's own protocol did: its message is the log's reason). A transport with bytes of its own still to write
(TLS) says so in `pending_output`, and the loop keeps asking to write until they are out; one whose input ended
with the data it just returned says so in `at_end` (no socket event may follow to say it).
"""

from __future__ import annotations

import socket
from typing import Protocol

RECV_SIZE = 65536


class TransportError(OSError):
    """The transport's protocol failed (a TLS handshake with something that is not TLS, say): str() says why."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "transport error"


class Transport(Protocol):
    """What the event loop needs of a transport (SocketTransport, TLSTransport)."""

    fd: int

    @property
    def secure(self) -> bool: ...  # encrypted (TLS)

    @property
    def established(self) -> bool: ...  # its handshake, if it has one, is done

    @property
    def at_end(self) -> bool: ...

    @property
    def version(self) -> str: ...  # what protects it, for the log ("TLSv1.3 TLS_AES_256_GCM_SHA384"; "" plain)

    def recv(self) -> bytes | None: ...

    def send(self, data: bytes | memoryview) -> int: ...

    @property
    def pending_output(self) -> bool: ...

    def flush_pending(self) -> None: ...

    def close(self) -> None: ...


class SocketTransport:
    __slots__ = ("fd", "sock")

    secure = False
    established = True  # no handshake to wait for
    at_end = False  # the end of input is a socket event (EOF) here
    version = ""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.fd = sock.fileno()

    def recv(self) -> bytes | None:
        return self.sock.recv(RECV_SIZE)

    def send(self, data: bytes | memoryview) -> int:
        return self.sock.send(data)

    pending_output = False  # no bytes of its own, ever (a class attribute: the loop asks after every flush)

    def flush_pending(self) -> None:
        """Write the transport's own pending bytes (none here)."""

    def close(self) -> None:
        self.sock.close()
