"""Transports: bytes to and from one socket, never blocking. The event loop owns them.

`recv()` returns what the application may read (b"" at the end of input, None when the socket had nothing
for the application yet, as a TLS handshake record does); `send()` returns how much of `data` it took. Both
raise BlockingIOError when the socket is not ready, and OSError when it failed. A transport with bytes of its
own still to write (TLS) says so in `pending_output`, and the loop keeps asking to write until they are out.
"""

from __future__ import annotations

import socket

RECV_SIZE = 65536


class SocketTransport:
    __slots__ = ("fd", "sock")

    secure = False
    established = True  # no handshake to wait for

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.fd = sock.fileno()

    def recv(self) -> bytes | None:
        return self.sock.recv(RECV_SIZE)

    def send(self, data: bytes | memoryview) -> int:
        return self.sock.send(data)

    @property
    def pending_output(self) -> bool:
        return False

    def flush_pending(self) -> None:
        """Write the transport's own pending bytes (none here)."""

    def close(self) -> None:
        self.sock.close()
