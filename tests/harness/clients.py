"""Line clients on real sockets, reading with deadlines, and `wait_for`. Every wait has a deadline; nothing
sleeps and hopes."""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

WAIT = 10.0  # seconds any single expectation may take

class LineClient:
    """A client on a real socket, reading lines with deadlines; over TLS with a client context in `tls`."""

    def __init__(self, host: str, port: int, json_mode: bool = False, tls: ssl.SSLContext | None = None) -> None:
        sock = socket.create_connection((host, port), timeout=WAIT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = tls.wrap_socket(sock, server_hostname=host) if tls is not None else sock
        self._buf = b""
        self.seen: list[str] = []  # every line received, in order
        self.closed = False
        self.nick: str | None = None
        if json_mode:
            self.send("/format json")
            self.expect_event("format")

    # ------------------------------------------------------------------------------------------ sending

    def send(self, *lines: str) -> None:
        self.sock.sendall("".join(line + "\n" for line in lines).encode())

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    # ------------------------------------------------------------------------------------------ reading

    def _next_line(self, deadline: float) -> str | None:
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no complete line in time; last lines: {self.seen[-5:]}")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                data = b""
            if not data:
                self.closed = True
                return None
            self._buf += data
        raw, _, self._buf = self._buf.partition(b"\n")
        line = raw.decode()
        self.seen.append(line)
        return line

    def expect(self, match: str | Callable[[str], bool], timeout: float = WAIT) -> str:
        """Read lines until one contains `match` (or satisfies it); return it."""
        test = match if callable(match) else (lambda line: match in line)
        deadline = time.monotonic() + timeout
        while True:
            line = self._next_line(deadline)
            if line is None:
                raise AssertionError(f"connection closed while waiting for {match!r}; last: {self.seen[-5:]}")
            if test(line):
                return line

    def lines_until(self, match: str | Callable[[str], bool], timeout: float = WAIT) -> list[str]:
        """All lines up to and including the first matching one."""
        start = len(self.seen)
        self.expect(match, timeout)
        return self.seen[start:]

    def expect_event(self, type_: str, timeout: float = WAIT, **fields: Any) -> dict[str, Any]:
        """JSON mode: read until an event of this type with these field values."""

        def test(line: str) -> bool:
            if not line.startswith("{"):  # text sent before /format json took effect
                return False
            obj = json.loads(line)
            return obj.get("type") == type_ and all(obj.get(k) == v for k, v in fields.items())

        return json.loads(self.expect(test, timeout))

    def events_until(self, type_: str, timeout: float = WAIT, **fields: Any) -> list[dict[str, Any]]:
        start = len(self.seen)
        self.expect_event(type_, timeout, **fields)
        return [json.loads(line) for line in self.seen[start:] if line.startswith("{")]

    def expect_closed(self, timeout: float = WAIT) -> list[str]:
        """Read until the server closes the connection; return the lines read meanwhile."""
        start = len(self.seen)
        deadline = time.monotonic() + timeout
        while self._next_line(deadline) is not None:
            pass
        return self.seen[start:]

    def register(self, nick: str) -> None:
        self.send(nick)
        self.expect(lambda line: "You joined #" in line or '"type":"joined"' in line)
        self.nick = nick

    def login(self, nick: str, password: str) -> None:
        """Log in to an account (as the first line or later) and wait until it is done."""
        self.send(f"/login {nick} {password}")
        self.expect(lambda line: f"You are logged in as {nick}" in line or '"change":"logged_in"' in line)
        self.nick = nick

    def register_account(self, nick: str, password: str) -> None:
        """Choose `nick` and register it as an account with `password`."""
        self.register(nick)
        self.send(f"/register {password}")
        self.expect(lambda line: f"{nick} is registered to you" in line or '"change":"registered"' in line)

    def sync(self, token: str = "sync") -> None:
        """Wait until the server has handled everything sent so far (it answers /ping in order)."""
        self.send(f"/ping {token}")
        self.expect(lambda line: f"pong {token}" in line or f'"token":"{token}"' in line)

    def close(self) -> None:
        self.sock.close()


def wait_for(condition: Callable[[], bool], timeout: float = WAIT, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)
