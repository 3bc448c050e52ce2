"""The plain line client: the classic tutorial's two threads, done right.

One thread prints what the server sends as it arrives; the main thread reads your lines and sends them.
At the end of input (Ctrl-D, or the end of a pipe) or on Ctrl-C it sends /quit and waits for the server's
goodbye, so everything typed before was accepted (and stored) before it exits.
"""

from __future__ import annotations

import socket
import sys
import threading
from typing import TextIO

QUIT_WAIT = 30.0  # seconds to wait for the server to take our last lines and say goodbye


def run_plain(host: str, port: int, nick: str | None, room: str | None, *, json: bool = False,
              stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> int:
    try:
        sock = socket.create_connection((host, port), timeout=10)
    except OSError as e:
        print(f"chat client: cannot connect to {host}:{port}: {e.strerror or e}", file=sys.stderr)
        return 1
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    closed = threading.Event()

    def receive() -> None:
        with sock.makefile("r", encoding="utf-8", errors="replace", newline="\n") as lines:
            try:
                for line in lines:
                    stdout.write(line)
                    stdout.flush()
            except OSError:
                pass
        closed.set()

    reader = threading.Thread(target=receive, name="chat-receive", daemon=True)
    reader.start()
    first = []
    if json:
        first.append("/format json")
    if nick:
        first.append(f"/nick {nick}")
    if room:
        first.append(f"/join {room}")
    quitting = False
    try:
        for line in first:
            sock.sendall(line.encode() + b"\n")
        for line in stdin:
            if closed.is_set():
                break
            sock.sendall(line.rstrip("\r\n").encode("utf-8", "replace") + b"\n")
            if line.strip().lower().split(" ", 1)[0] in ("/quit", "/disconnect", "/exit", "/bye", "!disconnect"):
                quitting = True
                break
        if not quitting and not closed.is_set():
            sock.sendall(b"/quit\n")
            quitting = True
    except KeyboardInterrupt:
        try:
            sock.sendall(b"/quit\n")
            quitting = True
        except OSError:
            pass
    except OSError as e:
        print(f"chat client: connection lost: {e.strerror or e}", file=sys.stderr)
    try:
        sock.shutdown(socket.SHUT_WR)  # nothing more from us; the server still answers what we sent
    except OSError:
        pass
    finished = closed.wait(QUIT_WAIT if quitting else 1.0)
    sock.close()
    if not quitting:
        print("chat client: the server closed the connection", file=sys.stderr)
        return 1
    return 0 if finished else 1
