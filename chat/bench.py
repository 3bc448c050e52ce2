"""`chat bench`: load-test a running chat server from one process, and summarise what it saw.

Clients connect, name themselves, join their room (client i joins room i % rooms), then every sender sends its
messages as fast as the server takes them, with at most `window` of its own messages not yet echoed back
(the server sends a room message to its sender too, after storing it); or, paced (`rate`), the senders take
turns to send `rate` messages a second in all, as the shared load generator's paced mode does (its W4).
Each message carries its sender, a
sequence number and the time it was sent, so every receiver checks that it got each message once and in order,
and measures latency. Standard library only; one thread, non-blocking sockets; TLS with `tls` (a client
context: every client shakes hands before it names itself).

This is a Python client: past some load it, not the server, is the bottleneck (watch its CPU in the summary).
For the figures in docs/PERFORMANCE.md the C load generator in ../shared/bench is used (benchmarks/run.sh).
"""

from __future__ import annotations

import ipaddress
import os
import selectors
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

TOKEN = b"BENCH:"
_NOT_READY = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


@dataclass(slots=True)
class BenchConfig:
    host: str = "127.0.0.1"
    port: int = 33000
    clients: int = 100
    rooms: int = 1
    senders: int | None = None  # clients 0..senders-1 send; None: all
    messages: int = 100  # per sender
    window: int = 32  # a sender's messages not yet echoed back to it, at most
    size: int = 0  # pad each message to this many bytes
    concurrency: int = 100  # clients connecting at once
    timeout: float = 60.0
    prefix: str = "bench"
    rate: float = 0.0  # paced: messages per second over all senders, in turn (0: as fast as the window allows)
    tls: ssl.SSLContext | None = None


@dataclass(slots=True)
class BenchResult:
    clients: int = 0
    joined: int = 0
    connect_failed: int = 0
    setup_s: float = 0.0
    sent: int = 0
    expected: int = 0
    deliveries: int = 0
    echoes: int = 0
    dups: int = 0
    reordered: int = 0
    elapsed_s: float = 0.0
    disconnects: int = 0
    timed_out: bool = False
    cpu_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return max(0, self.expected - self.deliveries)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.dups or self.disconnects or self.timed_out or self.connect_failed)

    def percentile(self, p: float) -> float | None:
        if not self.latencies_ms:
            return None
        values = sorted(self.latencies_ms)
        return values[min(len(values) - 1, int(p / 100 * len(values)))]

    def rows(self) -> list[tuple[str, str]]:
        def ms(v: float | None) -> str:
            return "-" if v is None else f"{v:.2f} ms"

        per_s = (lambda n: f"{n / self.elapsed_s:,.0f}") if self.elapsed_s > 0 else (lambda n: "-")
        return [
            ("clients joined", f"{self.joined} of {self.clients}" + (f" ({self.connect_failed} could not connect)"
                                                                     if self.connect_failed else "")),
            ("setup", f"{self.setup_s:.2f} s"),
            ("messages sent", f"{self.sent:,}"),
            ("deliveries (to other members)", f"{self.deliveries:,} of {self.expected:,}"),
            ("time to the last delivery", f"{self.elapsed_s:.3f} s"),
            ("messages / s", per_s(self.sent)),
            ("deliveries / s", per_s(self.deliveries)),
            ("latency p50 / p90 / p99", " / ".join(ms(self.percentile(p)) for p in (50, 90, 99))),
            ("latency max", ms(max(self.latencies_ms) if self.latencies_ms else None)),
            ("lost / duplicated / out of order", f"{self.lost} / {self.dups} / {self.reordered}"),
            ("disconnected", str(self.disconnects)),
            ("this client's CPU", f"{self.cpu_s:.2f} s" + (f" ({100 * self.cpu_s / self.elapsed_s:.0f}% of the run)"
                                                          if self.elapsed_s > 0 else "")),
            ("result", "ok" if self.ok else ("timed out" if self.timed_out else "PROBLEMS (see above)")),
        ]


class _Client:
    __slots__ = ("buf", "i", "joined", "last_seen", "next_seq", "out", "outstanding", "room", "seen", "sock",
                 "stage")

    def __init__(self, i: int, room: int, sock: socket.socket) -> None:
        self.i, self.room, self.sock = i, room, sock
        self.buf = b""
        self.out = bytearray()
        self.stage = 0  # 0 connecting, 1 joining, 2 joined
        self.joined = False
        self.next_seq = 0
        self.outstanding = 0
        self.last_seen: dict[int, int] = {}  # sender -> highest sequence number received
        self.seen: dict[int, bytearray] = {}  # sender -> one bit per sequence number received


def is_loopback(host: str) -> bool:
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def run_bench(cfg: BenchConfig, progress: Callable[[str, float], None] | None = None) -> BenchResult:
    """Run the whole benchmark; `progress(phase, fraction)` is called about ten times a second."""
    res = BenchResult(clients=cfg.clients)
    senders = cfg.clients if cfg.senders is None else min(cfg.senders, cfg.clients)
    members = [0] * cfg.rooms
    for i in range(cfg.clients):
        members[i % cfg.rooms] += 1
    res.expected = sum(cfg.messages * (members[i % cfg.rooms] - 1) for i in range(senders))
    sel = selectors.DefaultSelector()
    clients: list[_Client] = []
    cpu0 = time.process_time()
    t0 = time.monotonic()
    deadline = t0 + cfg.timeout
    joined_marker = b"You joined #"
    last_report = 0.0

    def report(phase: str, fraction: float) -> None:
        nonlocal last_report
        now = time.monotonic()
        if progress and (now - last_report > 0.1 or fraction >= 1.0):
            last_report = now
            progress(phase, fraction)

    def flush(c: _Client) -> None:
        if c.out:
            try:  # (TLS: after a send it could not finish, the same bytes come first again, as OpenSSL asks)
                n = c.sock.send(c.out)
                del c.out[:n]
            except _NOT_READY:
                pass
            except OSError:
                drop(c)
                return
        sel.modify(c.sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if c.out else 0), c)

    def drop(c: _Client) -> None:
        if c.stage >= 0:
            res.disconnects += 1
            c.stage = -1
            sel.unregister(c.sock)
            c.sock.close()

    def queue_one(c: _Client, now_ns: int) -> None:
        token = f"BENCH:{c.i}:{c.next_seq}:{now_ns}"
        if cfg.size > len(token):
            token += " " + "x" * (cfg.size - len(token) - 1)
        c.out += token.encode() + b"\n"
        c.next_seq += 1
        c.outstanding += 1
        res.sent += 1

    def fill(c: _Client, now_ns: int) -> None:
        """Queue messages up to the window (paced: the schedule decides instead)."""
        if c.i >= senders or cfg.rate:
            return
        while c.outstanding < cfg.window and c.next_seq < cfg.messages:
            queue_one(c, now_ns)

    paced_next = 0  # paced: the index of the next message due, over all senders
    paced_total = senders * cfg.messages

    def paced(start_ns: int, now_ns: int) -> float:
        """Queue and send the messages due by now; seconds until the next one is due."""
        nonlocal paced_next
        while paced_next < paced_total:
            due_ns = start_ns + int(paced_next * 1e9 / cfg.rate)
            if due_ns > now_ns:
                return (due_ns - now_ns) / 1e9
            c = clients[paced_next % senders]
            paced_next += 1
            if c.stage == 2 and c.next_seq < cfg.messages:
                queue_one(c, now_ns)
                flush(c)
        return 0.05

    def receive(c: _Client, sending: bool) -> None:
        try:
            data = c.sock.recv(1 << 18)
            while data and isinstance(c.sock, ssl.SSLSocket) and c.sock.pending():  # decrypted, not yet read
                data += c.sock.recv(1 << 18)
        except _NOT_READY:
            return
        except OSError:
            data = b""
        if not data:
            drop(c)
            return
        lines = (c.buf + data).split(b"\n")
        c.buf = lines.pop()
        now_ns = time.monotonic_ns()
        for line in lines:
            if c.stage == 1 and joined_marker in line and f"#{cfg.prefix}{c.room}".encode() in line:
                c.stage = 2
                c.joined = True
                res.joined += 1
                continue
            at = line.find(TOKEN)
            if at < 0 or not sending:
                continue
            try:
                sender_s, seq_s, sent_s = line[at + len(TOKEN):].split(b" ", 1)[0].split(b":")
                sender, seq, sent_ns = int(sender_s), int(seq_s), int(sent_s)
            except ValueError:
                continue
            if sender == c.i:
                res.echoes += 1
                c.outstanding -= 1
                continue
            bits = c.seen.get(sender)
            if bits is None:
                bits = c.seen[sender] = bytearray(cfg.messages // 8 + 1)
            if not 0 <= seq < cfg.messages:
                continue
            byte, bit = divmod(seq, 8)
            if bits[byte] & (1 << bit):
                res.dups += 1
                continue
            bits[byte] |= 1 << bit
            if seq < c.last_seen.get(sender, -1):
                res.reordered += 1
            else:
                c.last_seen[sender] = seq
            res.deliveries += 1
            res.latencies_ms.append((now_ns - sent_ns) / 1e6)
        if sending and c.i < senders:
            fill(c, now_ns)
            if c.out:
                flush(c)

    # ---- setup: connect, name, join, `concurrency` at a time
    next_i = 0
    while res.joined + res.connect_failed + res.disconnects < cfg.clients and time.monotonic() < deadline:
        in_setup = sum(1 for c in clients if c.stage == 1)
        while next_i < cfg.clients and in_setup < cfg.concurrency:
            try:
                s = socket.create_connection((cfg.host, cfg.port), timeout=10)
                if cfg.tls is not None:
                    s = cfg.tls.wrap_socket(s, server_hostname=cfg.host)
            except OSError:
                res.connect_failed += 1
                next_i += 1
                continue
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setblocking(False)
            c = _Client(next_i, next_i % cfg.rooms, s)
            c.out += f"/nick {cfg.prefix}{next_i}\n/join {cfg.prefix}{c.room}\n".encode()
            c.stage = 1
            clients.append(c)
            sel.register(s, selectors.EVENT_READ, c)
            flush(c)
            next_i += 1
            in_setup += 1
        for key, mask in sel.select(0.05):
            c = key.data
            if mask & selectors.EVENT_WRITE:
                flush(c)
            if mask & selectors.EVENT_READ and c.stage >= 0:
                receive(c, sending=False)
        report("joining", (res.joined + res.connect_failed) / max(1, cfg.clients))
    res.setup_s = time.monotonic() - t0
    if res.joined < cfg.clients - res.connect_failed:
        res.timed_out = True
    # ---- the messages
    if not res.timed_out and cfg.messages > 0:
        time.sleep(0.2)  # let the join announcements settle
        for c in clients:  # what arrived meanwhile (others' joins) is not part of the run
            try:
                while c.sock.recv(1 << 18):
                    pass
            except (BlockingIOError, InterruptedError, OSError):
                pass
            c.buf = b""
        if progress:
            progress("sending", 0.0)  # at once, unthrottled: the message phase starts now
        start = time.monotonic()
        start_ns = now_ns = time.monotonic_ns()
        for c in clients:
            if c.stage == 2:
                fill(c, now_ns)
                flush(c)
        last_delivery = last_progress = start
        wait = 0.05
        while res.deliveries < res.expected:
            now = time.monotonic()
            if now > deadline or now - last_progress > 10.0:
                res.timed_out = True
                break
            before = res.deliveries
            if cfg.rate:
                wait = min(0.05, paced(start_ns, time.monotonic_ns()))
                if paced_next < paced_total:
                    last_progress = now  # waiting for the schedule is not a stall
            for key, mask in sel.select(wait):
                c = key.data
                if mask & selectors.EVENT_WRITE:
                    flush(c)
                if mask & selectors.EVENT_READ and c.stage >= 0:
                    receive(c, sending=True)
            if res.deliveries != before:
                last_delivery = last_progress = time.monotonic()
            report("sending", res.deliveries / max(1, res.expected))
        res.elapsed_s = last_delivery - start
        report("sending", 1.0)
    for c in clients:
        if c.stage >= 0:
            try:
                c.sock.setblocking(True)
                c.sock.settimeout(0.2)
                c.sock.sendall(b"/quit\n")
            except OSError:
                pass
            c.sock.close()
    sel.close()
    res.cpu_s = time.process_time() - cpu0
    return res


def format_table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def progress_bar(stream: object) -> Callable[[str, float], None]:
    """A one-line progress bar on a terminal (nothing when the output is not a terminal)."""
    isatty = getattr(stream, "isatty", lambda: False)()

    def show(phase: str, fraction: float) -> None:
        if not isatty:
            return
        try:
            cols = max(20, min(60, os.get_terminal_size().columns - 30))
        except OSError:
            cols = 40
        done = int(cols * min(1.0, fraction))
        end = "\n" if fraction >= 1.0 and phase == "sending" else ""
        stream.write(f"\r{phase:<8} [{'#' * done}{'.' * (cols - done)}] {100 * fraction:5.1f}%{end}")  # type: ignore[attr-defined]
        stream.flush()  # type: ignore[attr-defined]

    return show
