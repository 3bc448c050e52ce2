#!/usr/bin/env python3
"""What one write and one read cost the server's thread, plain against TLS, without the rest of the server.

    .venv/bin/python benchmarks/tls_micro.py [--seconds 1.0]

The server's transports (chat.server.transport.SocketTransport, chat.server.tls.TLSTransport) on one end of a
real TCP connection over loopback, a client on the other end reading (or writing) as fast as it can in another
thread. For each size, the CPU time of the transport's thread per call (`time.thread_time`, so the other
programs on a shared machine and the client thread barely move it), and what that makes per byte. The sizes are
what the loop hands a transport: a lone message (~100 B), a small batch, a socket's worth (64 KiB), and its send
slice (256 KiB). Standard library plus the project itself.
"""

from __future__ import annotations

import argparse
import contextlib
import select
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from tls import SELF_SIGNED  # noqa: E402  (the README's one-liner)

from chat.server.tls import ServerTLS, TLSTransport  # noqa: E402
from chat.server.transport import SocketTransport  # noqa: E402

SIZES = (100, 1000, 65536, 262144)


def pair(tls: ServerTLS | None, cert: str) -> tuple[socket.socket, socket.socket | ssl.SSLSocket, object]:
    """A server-side transport and its client socket, connected (and shaken hands) over loopback."""
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    listener.close()
    server.setblocking(False)
    transport: object = SocketTransport(server)
    if tls is not None:
        context = ssl.create_default_context(cafile=cert)
        wrapped: dict[str, ssl.SSLSocket] = {}
        done = threading.Thread(target=lambda: wrapped.update(c=context.wrap_socket(client,
                                                                                     server_hostname="127.0.0.1")))
        done.start()
        transport = tls(server)
        assert isinstance(transport, TLSTransport)
        while not transport.established:
            select.select([server], [], [], 1.0)
            with contextlib.suppress(BlockingIOError):
                transport.recv()
        done.join(5)
        return server, wrapped["c"], transport
    return server, client, transport


def writes(transport: object, server: socket.socket, size: int, seconds: float) -> tuple[float, int]:
    """CPU µs per send() of `size` bytes while the client reads everything."""
    data = b"x" * (size - 1) + b"\n"
    calls = 0
    cpu0 = time.thread_time()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            transport.send(data)  # type: ignore[attr-defined]
            calls += 1
        except BlockingIOError:
            select.select([], [server], [], 1.0)
            with contextlib.suppress(BlockingIOError):
                transport.flush_pending()  # type: ignore[attr-defined]
    return (time.thread_time() - cpu0) / calls * 1e6, calls


def reads(transport: object, server: socket.socket, seconds: float) -> tuple[float, float]:
    """CPU µs per recv() and per MiB read, while the client writes 64 KiB at a time."""
    got = calls = 0
    cpu0 = time.thread_time()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        select.select([server], [], [], 1.0)
        try:
            data = transport.recv()  # type: ignore[attr-defined]
        except BlockingIOError:
            continue
        calls += 1
        got += len(data or b"")
    cpu = time.thread_time() - cpu0
    return cpu / calls * 1e6, cpu / (got / (1 << 20)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="per measurement")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="chat-tls-micro-"))
    cert, key = str(work / "cert.pem"), str(work / "key.pem")
    subprocess.run(SELF_SIGNED.format(cert=cert, key=key).split(), check=True, capture_output=True, timeout=60)
    tls = ServerTLS(cert, key)

    print("| write of | plain µs/call | TLS µs/call | TLS extra, µs per KiB |")
    print("|--:|--:|--:|--:|")
    for size in SIZES:
        row = []
        for mode in (None, tls):
            server, client, transport = pair(mode, cert)
            stop = threading.Event()

            def drain(c: socket.socket | ssl.SSLSocket = client, stop: threading.Event = stop) -> None:
                c.settimeout(0.5)
                while not stop.is_set():
                    with contextlib.suppress(TimeoutError, ssl.SSLError):
                        c.recv(1 << 20)

            reader = threading.Thread(target=drain, daemon=True)
            reader.start()
            row.append(writes(transport, server, size, args.seconds)[0])
            stop.set()
            reader.join(2)
            client.close()
            server.close()
        extra = (row[1] - row[0]) / (size / 1024)
        print(f"| {size:,} B | {row[0]:.2f} | {row[1]:.2f} | {extra:.2f} |")

    print()
    print("| reading (the client writes 64 KiB at a time) | µs/call | µs per MiB |")
    print("|---|--:|--:|")
    for name, mode in (("plain", None), ("TLS", tls)):
        server, client, transport = pair(mode, cert)
        stop = threading.Event()

        def flood(c: socket.socket | ssl.SSLSocket = client, stop: threading.Event = stop) -> None:
            block = (b"y" * 99 + b"\n") * 655
            with contextlib.suppress(OSError):
                while not stop.is_set():
                    c.sendall(block)

        writer = threading.Thread(target=flood, daemon=True)
        writer.start()
        per_call, per_mib = reads(transport, server, args.seconds)
        stop.set()
        server.close()
        writer.join(2)
        client.close()
        print(f"| {name} | {per_call:.2f} | {per_mib:,.0f} |")


if __name__ == "__main__":
    main()
