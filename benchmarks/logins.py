#!/usr/bin/env python3
"""Chat latency while a login storm runs: does hashing passwords stall anyone's chat?

    .venv/bin/python benchmarks/logins.py [--chatters 200] [--accounts 40] [--profile rfc9106-low-memory]

Starts `chat serve` on a fresh SQLite database (in a temporary folder, on a free loopback port), registers
`--accounts` accounts, connects `--chatters` clients to one room, each saying a line every `--interval` seconds,
and measures every line's latency (sent until its echo comes back, which is after it is stored). Three phases of
`--seconds` each: quiet, then with `--stormers` connections logging in and out as fast as the server answers
(right and wrong passwords: a wrong one costs the same hash), then quiet again. Prints one JSON object: the
latency percentiles of each phase, the logins done and refused (server_busy, login_throttled) and their latency,
and the server's CPU time. The storm's wrong passwords are throttled per account; each stormer uses its own
account so the throttle does not hide the hashing cost.

Loopback only; the server is killed on exit, however the script ends.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PASSWORD = "benchmark password"


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    v = sorted(values)

    def at(p: float) -> float:
        return round(v[min(len(v) - 1, int(p / 100 * len(v)))], 2)

    return {"n": len(v), "p50": at(50), "p95": at(95), "p99": at(99), "max": round(v[-1], 2)}


def chat_bin() -> list[str]:
    script = Path(sys.executable).with_name("chat")
    return [str(script)] if script.exists() else [sys.executable, "-m", "chat"]


def start_server(db: Path, profile: str, threads: int) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([*chat_bin(), "serve", "--db", str(db), "--port", "0", "--rate", "0", "--lobby", "",
                             "--password-profile", profile, "--password-threads", str(threads),
                             "--login-burst", "1000", "--login-per-minute", "100000", "--log-level", "warning"],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    match = re.search(r":(\d+) ", line)
    if not match:
        proc.kill()
        raise SystemExit(f"chat serve did not start: {line!r}")
    return proc, int(match.group(1))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Line:
    """A blocking line client."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.buf = b""

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode() + b"\n")

    def until(self, *needles: str) -> str:
        while True:
            while b"\n" in self.buf:
                raw, _, self.buf = self.buf.partition(b"\n")
                line = raw.decode(errors="replace")
                if any(n in line for n in needles):
                    return line
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed")
            self.buf += data


class Chatters:
    """`n` clients in one room, each saying a line every `interval` s; latencies by phase."""

    def __init__(self, port: int, n: int, interval: float) -> None:
        self.interval = interval
        self.phase = "quiet-before"
        self.latencies: dict[str, list[float]] = {}
        self.stop = False
        self.sel = selectors.DefaultSelector()
        self.socks: list[socket.socket] = []
        for i in range(n):
            c = Line(port)
            c.send(f"chat{i}")
            c.send("/join bench")
            c.until("You joined #bench")
            c.sock.setblocking(False)
            self.socks.append(c.sock)
            self.sel.register(c.sock, selectors.EVENT_READ, [i, c.buf])

    def run(self) -> None:
        n = len(self.socks)
        next_at = [time.monotonic() + self.interval * i / n for i in range(n)]
        pattern = re.compile(rb"\] chat(\d+): t=(\d+\.\d+)")
        while not self.stop:
            now = time.monotonic()
            for i, sock in enumerate(self.socks):
                if now >= next_at[i]:
                    next_at[i] = now + self.interval
                    sock.send(f"t={time.monotonic():.6f}\n".encode())
            for key, _ in self.sel.select(0.005):
                data = key.data
                try:
                    chunk = key.fileobj.recv(1 << 20)  # type: ignore[union-attr]
                except BlockingIOError:
                    continue
                buf = data[1] + chunk
                lines = buf.split(b"\n")
                data[1] = lines.pop()
                for line in lines:
                    m = pattern.search(line)
                    if m and int(m.group(1)) == data[0]:  # its own line's echo
                        self.latencies.setdefault(self.phase, []).append(
                            (time.monotonic() - float(m.group(2))) * 1000)


def stormer(port: int, nick: str, stop: threading.Event, stats: dict[str, list[float]], lock: threading.Lock) -> None:
    wrong = False
    while not stop.is_set():
        try:
            c = Line(port)
            start = time.monotonic()
            c.send(f"/login {nick} {PASSWORD + ('!' if wrong else '')}")
            line = c.until("You are logged in", "[error ")
            took = (time.monotonic() - start) * 1000
            code = line.split("]", 1)[0].removeprefix("[error ") if line.startswith("[error ") else "ok"
            kind = {"server_busy": "busy", "login_throttled": "throttled", "bad_password": "wrong"}.get(code, code)
            with lock:
                stats.setdefault(kind, []).append(took)
            c.send("/quit")
            c.until("Goodbye")  # the account is free again before the next login to it
            c.sock.close()
        except OSError:
            with lock:
                stats.setdefault("failed", []).append(0.0)
        wrong = not wrong


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chatters", type=int, default=200)
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between one chatter's lines")
    ap.add_argument("--accounts", type=int, default=40, help="stormers, one account each")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    ap.add_argument("--profile", default="rfc9106-low-memory")
    ap.add_argument("--threads", type=int, default=2, help="the server's --password-threads")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="chat-logins-"))
    proc, port = start_server(work / "chat.sqlite", args.profile, args.threads)
    result: dict[str, object] = {"chatters": args.chatters, "interval_s": args.interval, "stormers": args.accounts,
                                 "profile": args.profile, "password_threads": args.threads,
                                 "cores": os.cpu_count()}
    try:
        setup = time.monotonic()
        for i in range(args.accounts):  # registered through the server: the same hashing
            c = Line(port)
            c.send(f"acct{i}")
            c.until("You joined", "Welcome")
            c.send(f"/register {PASSWORD}")
            c.until("is registered to you")
            c.send("/quit")
            c.sock.close()
        result["register_s_each"] = round((time.monotonic() - setup) / max(1, args.accounts), 3)
        chatters = Chatters(port, args.chatters, args.interval)
        thread = threading.Thread(target=chatters.run, daemon=True)
        thread.start()
        cpu_start = cpu_seconds(proc.pid)
        time.sleep(args.seconds)
        stop, lock = threading.Event(), threading.Lock()
        stats: dict[str, list[float]] = {}
        storm = [threading.Thread(target=stormer, args=(port, f"acct{i}", stop, stats, lock), daemon=True)
                 for i in range(args.accounts)]
        chatters.phase = "login-storm"
        storm_start = time.monotonic()
        for t in storm:
            t.start()
        time.sleep(args.seconds)
        stop.set()
        for t in storm:
            t.join(60)
        storm_s = time.monotonic() - storm_start
        chatters.phase = "quiet-after"
        time.sleep(args.seconds)
        chatters.stop = True
        thread.join(10)
        result["server_cpu_s"] = round(cpu_seconds(proc.pid) - cpu_start, 2)
        result["chat_latency_ms"] = {phase: percentiles(v) for phase, v in chatters.latencies.items()}
        result["logins"] = {kind: percentiles(v) for kind, v in sorted(stats.items())}
        result["logins_checked_per_s"] = round(
            sum(len(v) for k, v in stats.items() if k in ("ok", "wrong")) / storm_s, 1)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
