"""`chat serve` as a real process on a free port."""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.clients import WAIT, LineClient


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
        self.port = int(line.split(" listening on ")[1].split()[0].rsplit(":", 1)[1])  # the first door's
        tls = re.search(r":(\d+) \(TLS\)", line)
        self.tls_port = int(tls.group(1)) if tls else None
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

    def tls_client(self, tls: ssl.SSLContext, nick: str | None = None, **kwargs: Any) -> LineClient:
        assert self.tls_port is not None, f"no TLS door: {self.banner}"
        c = LineClient(self.host, self.tls_port, tls=tls, **kwargs)
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
