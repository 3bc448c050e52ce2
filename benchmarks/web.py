"""Web clients against native clients: 1,000 WebSocket clients in one room, deliveries per second, beside 1,000
native clients in the same run (the target: WebSocket at least half the native rate).

    .venv/bin/python benchmarks/web.py                      # 1000 clients, 3 reps of each kind, ~1 minute
    .venv/bin/python benchmarks/web.py --clients 200 --reps 1

Each run starts a fresh `chat serve` (fresh SQLite database, `--rate 0`: no flood control) with `--web-port`,
connects N clients of one kind, all in #lobby, and lets S of them send M messages each as fast as the server
takes them (at most W of a sender's own not yet echoed). Every client counts the messages it receives; a run
ends when every client has all S*M (a message reaches its sender too). deliveries/s = N*S*M / the time from the
first message sent to the last received. The kinds alternate inside each rep:

  native-json   `/format json` over TCP: the same JSON events the WebSocket clients get, one per line
  native-text   the text lines nc users get
  websocket     the web client's protocol: each JSON event in one WebSocket text frame

One process drives all the clients of a run (selectors, non-blocking sockets; a receiver only counts the
message marker in what it reads, without copying it, so the client's cost per byte is small: it is paid more by
the kinds that move more bytes, and would skew their ratio). Everything is on
127.0.0.1 and every wait has a deadline. Prints a table; `--json FILE` writes the figures.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import resource
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from websockets.frames import Frame, Opcode

LOOPBACK = "127.0.0.1"
MARK = b"WEBBENCH:"
KINDS = ("native-json", "native-text", "websocket")


@dataclass
class Run:
    kind: str
    clients: int
    messages: int
    setup_s: float = 0.0
    elapsed_s: float = 0.0
    received: int = 0
    expected: int = 0
    bytes_read: int = 0  # by all the clients during the measured part
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def deliveries_per_s(self) -> float:
        return self.received / self.elapsed_s if self.elapsed_s else 0.0


class Client:
    __slots__ = ("bytes_read", "carry", "count", "joined", "out", "outstanding", "sent", "sock", "upgraded")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.out = bytearray()
        self.carry = b""  # the end of the last read: a marker may be cut between two reads
        self.count = 0  # markers received
        self.bytes_read = 0
        self.joined = False
        self.upgraded = False
        self.sent = 0
        self.outstanding = 0


def serve(db: str) -> tuple[subprocess.Popen[str], int, int]:
    chat = Path(sys.executable).with_name("chat")
    cmd = [str(chat) if chat.exists() else sys.executable, *([] if chat.exists() else ["-m", "chat"]),
           "serve", "--db", db, "--port", "0", "--web-port", "0", "--rate", "0", "--max-clients", "20000",
           "--log-level", "warning", "--sendq", str(8 << 20)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    native = int(proc.stdout.readline().split(" listening on ")[1].split()[0].rsplit(":", 1)[1])
    web = int(proc.stdout.readline().rstrip("/\n").rsplit(":", 1)[1])
    return proc, native, web


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def frame(text: str) -> bytes:
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=True, extensions=())  # clients mask their frames


def run_once(kind: str, clients: int, senders: int, messages: int, window: int, timeout: float) -> Run:
    run = Run(kind, clients, messages, expected=clients * senders * messages)
    with tempfile.TemporaryDirectory() as tmp:
        proc, native_port, web_port = serve(os.path.join(tmp, "bench.sqlite"))
        try:
            measure(run, proc.pid, native_port, web_port, senders, window, timeout)
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
    return run


def measure(run: Run, pid: int, native_port: int, web_port: int, senders: int, window: int,
            timeout: float) -> None:
    websocket = run.kind == "websocket"
    port = web_port if websocket else native_port
    encode = frame if websocket else (lambda line: line.encode() + b"\n")
    joined = b'"type":"joined"' if run.kind != "native-text" else b"You joined #lobby"
    sel = selectors.DefaultSelector()
    everyone: list[Client] = []
    deadline = time.monotonic() + timeout
    t0 = time.monotonic()

    def pump(wait: float) -> None:
        for key, mask in sel.select(wait):
            c: Client = key.data
            if mask & selectors.EVENT_WRITE and c.out:
                with contextlib.suppress(BlockingIOError):
                    del c.out[:c.sock.send(c.out)]
            if mask & selectors.EVENT_READ:
                receive(c)
            sel.modify(c.sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if c.out else 0), c)

    def receive(c: Client) -> None:
        try:
            data = c.sock.recv(1 << 18)
        except BlockingIOError:
            return
        if not data:
            raise RuntimeError(f"the server closed a {run.kind} client")
        if not c.upgraded:  # the 101's head, before the frames
            head, sep, data = data.partition(b"\r\n\r\n")
            assert sep and head.startswith(b"HTTP/1.1 101"), head[:100]
            c.upgraded = True
        c.bytes_read += len(data)
        if not c.joined and joined in c.carry + data:
            c.joined = True
        # each byte is looked at once, never copied: the markers in `data`, then one cut between two reads (the
        # carry is shorter than a marker, so no marker lies in it alone, nor in the joint's part of `data`)
        c.count += data.count(MARK) + (c.carry + data[:len(MARK) - 1]).count(MARK)
        c.carry = (c.carry + data)[-(len(MARK) - 1):] if len(data) < len(MARK) else data[-(len(MARK) - 1):]

    for i in range(run.clients):
        sock = socket.create_connection((LOOPBACK, port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        c = Client(sock)
        if websocket:
            key = base64.b64encode(os.urandom(16)).decode()
            c.out += (f"GET /ws HTTP/1.1\r\nHost: {LOOPBACK}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
            c.out += frame(f"w{i}")
        else:
            c.upgraded = True
            if run.kind == "native-json":
                c.out += b"/format json\n"
            c.out += f"n{i}\n".encode()
        everyone.append(c)
        sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
        if i % 50 == 49:
            pump(0)
    while not all(c.joined for c in everyone):
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {sum(c.joined for c in everyone)} of {run.clients} joined in time")
        pump(0.05)
    quiet = time.monotonic() + 0.5  # the joins' announcements are read: nothing waits in the server's queues
    while time.monotonic() < quiet:
        pump(0.05)
    for c in everyone:
        c.count = c.bytes_read = 0
    talkers = everyone[:senders]
    cpu0, server0 = time.process_time(), cpu_seconds(pid)
    run.setup_s = time.monotonic() - t0
    start = time.monotonic()
    total = senders * run.messages
    while True:
        for n, c in enumerate(talkers):  # keep each sender's window full (its own echo counts it done)
            c.outstanding = c.sent - c.count
            while c.outstanding < window and c.sent < run.messages:
                c.out += encode(f"{MARK.decode()}{n}:{c.sent} hello everyone in the room")
                c.sent += 1
                c.outstanding += 1
            if c.out:
                sel.modify(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
        pump(0.01)
        if all(c.count >= total for c in everyone):
            break
        if time.monotonic() > deadline:
            run.problems.append("timed out")
            break
    run.elapsed_s = time.monotonic() - start
    run.received = sum(min(c.count, total) for c in everyone)
    run.bytes_read = sum(c.bytes_read for c in everyone)
    run.client_cpu_s = time.process_time() - cpu0
    run.server_cpu_s = cpu_seconds(pid) - server0
    if run.received < run.expected:
        run.problems.append(f"{run.expected - run.received} deliveries missing")
    for c in everyone:
        c.sock.close()
    sel.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument("--messages", type=int, default=100, help="per sender")
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per run")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    kinds = args.kinds.split(",")
    runs: list[Run] = []
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    print(f"load average before: {' '.join(load)}; {args.clients} clients, {args.senders} senders x "
          f"{args.messages} messages, window {args.window}, {args.reps} reps", flush=True)
    for rep in range(args.reps):
        for kind in kinds if rep % 2 == 0 else reversed(kinds):
            run = run_once(kind, args.clients, args.senders, args.messages, args.window, args.timeout)
            runs.append(run)
            print(f"rep {rep + 1} {kind:<12} {run.deliveries_per_s:>10,.0f} deliveries/s  "
                  f"({run.received:,} in {run.elapsed_s:.2f} s; server CPU {run.server_cpu_s:.2f} s, "
                  f"client CPU {run.client_cpu_s:.2f} s; {run.bytes_read / run.received:.0f} bytes each; "
                  f"setup {run.setup_s:.1f} s)"
                  f"{'  ' + '; '.join(run.problems) if run.problems else ''}", flush=True)
    print()
    print(f"| kind | deliveries/s (median of {args.reps}) | min | max | server CPU s per 1M deliveries "
          "| bytes per delivery | MB/s read |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    medians = {}
    for kind in kinds:
        mine = [r for r in runs if r.kind == kind]
        rates = [r.deliveries_per_s for r in mine]
        medians[kind] = statistics.median(rates)
        cpu = statistics.median(r.server_cpu_s / r.received * 1e6 for r in mine if r.received)
        size = statistics.median(r.bytes_read / r.received for r in mine if r.received)
        mbs = statistics.median(r.bytes_read / r.elapsed_s / 1e6 for r in mine if r.elapsed_s)
        print(f"| {kind} | {medians[kind]:,.0f} | {min(rates):,.0f} | {max(rates):,.0f} | {cpu:.2f} | {size:.0f} "
              f"| {mbs:.0f} |")
    if "websocket" in medians and "native-json" in medians:
        print(f"\nwebsocket / native-json: {medians['websocket'] / medians['native-json']:.2f}")
    if "websocket" in medians and "native-text" in medians:
        print(f"websocket / native-text: {medians['websocket'] / medians['native-text']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps([r.__dict__ | {"deliveries_per_s": r.deliveries_per_s}
                                               for r in runs], indent=2))


if __name__ == "__main__":
    main()
