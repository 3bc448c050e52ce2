"""Test helpers: a real server on 127.0.0.1:0 in a thread, and line clients on real sockets.

Every wait has a deadline; nothing sleeps and hopes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from chat.server.app import ChatServer
from chat.server.config import ServerConfig

WAIT = 10.0  # seconds any single expectation may take


class ServerThread:
    """A ChatServer serving from a thread. `stop()` shuts it down the way SIGTERM does and joins."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.server = ChatServer(config)
        self.host, self.port = self.server.start()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, name="chat-server", daemon=True)
        self.thread.start()
        assert self.server.ready.wait(WAIT)

    def _serve(self) -> None:
        try:
            self.server.serve_forever()
        except BaseException as e:  # surfaced by stop()
            self.error = e
            raise

    @property
    def loop(self) -> Any:
        return self.server.loop

    def client(self, nick: str | None = None, **kwargs: Any) -> LineClient:
        c = LineClient(self.host, self.port, **kwargs)
        if nick:
            c.register(nick)
        return c

    def stop(self) -> None:
        self.server.stop()
        self.thread.join(30)
        assert not self.thread.is_alive(), "server did not stop within 30 s"
        if self.error:
            raise self.error


def server_config(db: str, **overrides: Any) -> ServerConfig:
    """Defaults for tests: any free port, no flood control (tests send fast), keepalive as in production."""
    base = ServerConfig(host="127.0.0.1", port=0, db=db, rate=0)
    return replace(base, **overrides)


class LineClient:
    """A client on a real socket, reading lines with deadlines."""

    def __init__(self, host: str, port: int, json_mode: bool = False) -> None:
        self.sock = socket.create_connection((host, port), timeout=WAIT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
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


# ---------------------------------------------------------------------------------------- subprocesses


def chat_command() -> list[str]:
    """The installed `chat` command next to this Python, or `python -m chat`."""
    script = Path(sys.executable).with_name("chat")
    return [str(script)] if script.exists() else [sys.executable, "-m", "chat"]


@contextmanager
def serve_process(db: str, *args: str, env: dict[str, str] | None = None,
                  cwd: str | None = None) -> Iterator[ServeProcess]:
    proc = ServeProcess(db, *args, env=env, cwd=cwd)
    try:
        yield proc
    finally:
        proc.kill()


class ServeProcess:
    """`chat serve` as a real process on a free port; reads the port from its first line."""

    def __init__(self, db: str, *args: str, env: dict[str, str] | None = None, cwd: str | None = None) -> None:
        cmd = [*chat_command(), "serve", "--db", db, "--port", "0", *args]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
            cwd=cwd,
        )
        self.stderr_lines: list[str] = []
        self._stderr_thread = threading.Thread(target=self._read_stderr, daemon=True)
        self._stderr_thread.start()
        line = self._first_line()
        self.banner = line
        self.port = int(line.split(" listening on ")[1].split()[0].rsplit(":", 1)[1])
        self.host = "127.0.0.1"

    def _first_line(self) -> str:
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(self.proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(WAIT * 3)
        if not result or not result[0]:
            self.kill()
            raise AssertionError(f"chat serve did not start: {''.join(self.stderr_lines)}")
        return result[0]

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:  # type: ignore[union-attr]
            self.stderr_lines.append(line)

    @property
    def log(self) -> str:
        return "".join(self.stderr_lines)

    def client(self, nick: str | None = None, **kwargs: Any) -> LineClient:
        c = LineClient(self.host, self.port, **kwargs)
        if nick:
            c.register(nick)
        return c

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self._stderr_thread.join(5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._stderr_thread.join(5)
