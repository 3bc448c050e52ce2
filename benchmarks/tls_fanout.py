#!/usr/bin/env python3
"""What one W4 fan-out costs the loop's thread: one chat line queued to 99 members and written by the loop's own
`EventLoop._flush`, plain against TLS, and this tree's code against another's, interleaved message by message.

    .venv/bin/python benchmarks/tls_fanout.py [--base SRC] [--messages 2000] [--members 99]

For each variant, `--members` real TCP connections over loopback (a TLS handshake each for the TLS variants), all
read by one child process (epoll; it decrypts the TLS ones), so the reading costs this process nothing. Then, for
each message, every variant in turn queues a 100-byte line to each of its members and flushes them with
`EventLoop._flush` (the loop's code, called with a stand-in for the loop: the transport, the queue and the
bookkeeping are the real ones); the thread's CPU time of that flush is the figure. Variants alternate at every
message (2 ms apart, as W4's), so a busy machine's slow moments hit them alike; the printout is the median and
the 10th percentile per member, over all messages after the first 100.

Variants: `plain` and `tls` from this tree; with `--base SRC` (another checkout, e.g. `git worktree` or `git
archive main | tar -x -C /tmp/base`) also `plain@base` and `tls@base`, whose transports and `_flush` come from
SRC. Standard library plus the project itself; makes a throwaway certificate with openssl.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import multiprocessing
import os
import select
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from tls import SELF_SIGNED  # noqa: E402  (the README's one-liner)

from chat.server.connection import Phase  # noqa: E402

LINE = b"<user42> BENCH:42:1234:98765432109876 hello everyone, this is a line of about a hundred bytes.\n"


def load(src: Path, module: str, alias: str) -> Any:
    """chat.server.<module> from another tree, under another name (its imports resolve in this tree)."""
    spec = importlib.util.spec_from_file_location(alias, src / "chat" / "server" / f"{module}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[alias] = mod  # (dataclasses look their module up)
    spec.loader.exec_module(mod)
    return mod


def reader(port: int, plain: int, tls: int, cafile: str) -> None:
    """Connect `plain` then `tls` clients and read everything they are sent until the parent closes them."""
    context = ssl.create_default_context(cafile=cafile)
    raw = [socket.create_connection(("127.0.0.1", port)) for _ in range(plain + tls)]  # all accepted first,
    socks: dict[int, socket.socket] = {}
    for i, s in enumerate(raw):  # then the handshakes, in the order the parent drives them
        if i >= plain:
            s = context.wrap_socket(s, server_hostname="127.0.0.1")
        s.setblocking(False)
        socks[s.fileno()] = s
    epoll = select.epoll()
    for fd in socks:
        epoll.register(fd, select.EPOLLIN)
    while socks:
        for fd, _ in epoll.poll():
            s = socks[fd]
            try:
                while True:
                    if not s.recv(65536):
                        epoll.unregister(fd)
                        del socks[fd]
                        break
            except (BlockingIOError, ssl.SSLWantReadError):
                pass
            except OSError:
                epoll.unregister(fd)
                del socks[fd]


class Variant:
    def __init__(self, name: str, flush: Any, transports: list[Any]) -> None:
        self.name = name
        self.flush = flush
        self.conns = [types.SimpleNamespace(out=[], out_bytes=0, transport=t, writing=False, phase=Phase.OPEN,
                                            held=(), fd=t.fd) for t in transports]
        loop = types.SimpleNamespace(config=types.SimpleNamespace(sendq=1 << 20), waiting=set(), _released=False)
        loop._want_write = lambda c, want: setattr(c, "writing", want)
        loop._drop = loop._overflowed = self._failed
        self.loop = loop
        self.cpu_ns: list[int] = []

    @staticmethod
    def _failed(c: Any, *why: object) -> None:
        raise RuntimeError(f"a member failed: {why}")

    def one_message(self) -> None:
        for c in self.conns:
            c.out.append(LINE)
            c.out_bytes += len(LINE)
        flush, loop = self.flush, self.loop
        start = time.thread_time_ns()
        for c in self.conns:
            flush(loop, c)
        self.cpu_ns.append(time.thread_time_ns() - start)

    def catch_up(self) -> None:
        """A member whose socket was full (the reader fell behind) gets the rest before the next message."""
        for c in self.conns:
            while c.writing:
                select.select([], [c.fd], [], 1.0)
                self.flush(self.loop, c)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", type=Path, help="another source tree to compare with (its transports and _flush)")
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--members", type=int, default=99)
    args = ap.parse_args()

    from chat.server import loop as loop_module
    from chat.server import tls as tls_module
    from chat.server import transport as transport_module
    trees = [("", loop_module, tls_module, transport_module)]
    if args.base:
        trees.append(("@base", load(args.base, "loop", "base_loop"), load(args.base, "tls", "base_tls"),
                      load(args.base, "transport", "base_transport")))

    work = Path(tempfile.mkdtemp(prefix="tls-fanout-"))
    cert, key = str(work / "cert.pem"), str(work / "key.pem")
    subprocess.run(SELF_SIGNED.format(cert=cert, key=key).split(), check=True, capture_output=True, timeout=60)
    n = args.members
    listener = socket.create_server(("127.0.0.1", 0), backlog=4 * n * len(trees))
    child = multiprocessing.Process(target=reader, args=(listener.getsockname()[1], n * len(trees),
                                                         n * len(trees), cert), daemon=True)
    child.start()
    accepted = []
    for _ in range(2 * n * len(trees)):
        sock, _ = listener.accept()
        sock.setblocking(False)
        accepted.append(sock)
    listener.close()
    plain_socks, tls_socks = accepted[:n * len(trees)], accepted[n * len(trees):]
    variants = []
    for i, (suffix, loop_mod, tls_mod, transport_mod) in enumerate(trees):
        flush = loop_mod.EventLoop._flush
        plain = [transport_mod.SocketTransport(s) for s in plain_socks[i * n:(i + 1) * n]]
        server_tls = tls_mod.ServerTLS(cert, key)
        secure = [server_tls(s) for s in tls_socks[i * n:(i + 1) * n]]
        for t in secure:
            while not t.established:
                select.select([t.sock], [], [], 1.0)
                with contextlib.suppress(BlockingIOError):
                    t.recv()
            while t.pending_output:  # the session tickets
                select.select([], [t.sock], [], 1.0)
                t.flush_pending()
        variants += [Variant(f"plain{suffix}", flush, plain), Variant(f"tls{suffix}", flush, secure)]

    load0 = os.getloadavg()
    time.sleep(0.5)
    for _ in range(args.messages):
        for v in variants:
            v.one_message()
            time.sleep(0.002)
            v.catch_up()
    load1 = os.getloadavg()
    for v in variants:
        for c in v.conns:
            c.transport.close()
    child.join(10)

    print(f"one {len(LINE)}-byte line to {n} members, {args.messages} messages per variant, interleaved; CPU µs per "
          f"member of the loop's flush; load average {load0[0]:.2f} before, {load1[0]:.2f} after")
    print("| variant | median | p10 | p90 |\n|---|--:|--:|--:|")
    for v in variants:
        cpu = sorted(v.cpu_ns[100:])
        per = [x / n / 1e3 for x in cpu]
        p10, p90 = per[len(per) // 10], per[len(per) * 9 // 10]
        print(f"| {v.name} | {statistics.median(per):.2f} | {p10:.2f} | {p90:.2f} |")


if __name__ == "__main__":
    main()
