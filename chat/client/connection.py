"""One TCP connection to a chat server, as lines, on asyncio; over TLS when given a context (`tls_context`).

Reading never trusts the server: a line longer than `max_line` is cut off and reported instead of growing
the buffer without bound, and a reset or vanished socket is simply the end of the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl

from chat.client.events import TOO_LONG

MAX_LINE = 1 << 20  # bytes: far beyond any line the server sends (its history lines are one message each)


class LineConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, max_line: int) -> None:
        self._reader = reader
        self._writer = writer
        self._max_line = max_line
        self._buffer = b""
        self._skipping = False  # inside a line that was too long: drop bytes until its end

    @classmethod
    async def open(cls, host: str, port: int, timeout: float = 10.0, max_line: int = MAX_LINE,
                   tls: ssl.SSLContext | None = None) -> LineConnection:
        """Connect (and with `tls`, shake hands, checking the server's certificate against `host`), or raise
        OSError (TimeoutError and ssl.SSLError included) saying why not."""
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=tls, ssl_handshake_timeout=timeout if tls else None), timeout)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        return cls(reader, writer, max_line)

    async def read_lines(self) -> list[bytes] | None:
        """The next complete lines (without newlines), at least one; None at the end of the stream."""
        while True:
            try:
                data = await self._reader.read(65536)
            except (OSError, asyncio.IncompleteReadError):
                data = b""
            if not data:
                return None
            lines = self._split(data)
            if lines:
                return lines

    def _split(self, data: bytes) -> list[bytes]:
        lines: list[bytes] = []
        self._buffer += data
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > self._max_line:
                    if not self._skipping:
                        lines.append(TOO_LONG)
                    self._skipping = True
                    self._buffer = b""
                return lines
            line, self._buffer = self._buffer[:end], self._buffer[end + 1:]
            if self._skipping:
                self._skipping = False  # the end of the line that was too long
                continue
            lines.append(line)

    def write(self, lines: list[str]) -> None:
        """Queue lines to send (a chat client's lines are few and short: no need to wait for the socket)."""
        if lines and not self._writer.is_closing():
            data = "".join(line.replace("\n", " ") + "\n" for line in lines).encode("utf-8", "replace")
            self._writer.write(data)

    async def drain(self) -> None:
        with contextlib.suppress(OSError):
            await self._writer.drain()

    def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            self._writer.close()

    def abort(self) -> None:
        """Drop the connection at once (the peer stopped answering)."""
        transport = self._writer.transport
        with contextlib.suppress(OSError, RuntimeError):
            transport.abort()


def tls_context(ca_file: str | None = None, insecure: bool = False) -> ssl.SSLContext:
    """How the client speaks TLS: TLS 1.2 at least, the server's certificate checked against the system's
    trusted CAs (or only `ca_file`'s) and against the host name or address connected to. `insecure` checks
    nothing (a self-signed test server): the caller must say so to the user. Raises OSError for a CA file
    that cannot be read."""
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def describe_os_error(error: OSError) -> str:
    """Why a connection failed, in a few words ("Connection refused", "timed out")."""
    if isinstance(error, TimeoutError):
        return "no answer (timed out)"
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"the server's TLS certificate is not trusted ({error.verify_message}); see --ca"
    if isinstance(error, ssl.SSLError):  # its errno is OpenSSL's, not the system's
        reason = (error.reason or "").lower().replace("_", " ")
        return f"TLS failed ({reason or error})" + ("; is that port TLS?" if "wrong version" in reason else "")
    if error.errno:
        return os.strerror(error.errno)
    return error.strerror or str(error) or type(error).__name__
