"""`chat client` in a real terminal: a pseudo-terminal whose output is collected raw, or a tmux session.

Both run the installed `chat` command, so what is tested is what a user runs: Textual's real driver, the key
parser, the escape sequences that reach the terminal.
"""

from __future__ import annotations

import fcntl
import os
import pty
import shutil
import struct
import subprocess
import termios
import threading
import uuid
from pathlib import Path

from harness.clients import WAIT, wait_for
from harness.process import chat_command


class TerminalClient:
    """`chat client` with a pseudo-terminal as stdin, stdout and stderr; what it draws is collected raw."""

    def __init__(self, host: str, port: int, *args: str, env: dict[str, str] | None = None,
                 size: tuple[int, int] = (110, 30)) -> None:
        columns, rows = size
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        command = [*chat_command(), "client", "--host", host, "--port", str(port), *args]
        environment = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TERM_PROGRAM", "COLORTERM")}
        environment.update({"TERM": "xterm-256color", "COLUMNS": str(columns), "LINES": str(rows), **(env or {})})
        self.proc = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, env=environment,
                                     start_new_session=True)
        os.close(slave)
        self.master = master
        self.output = bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            self.output.extend(data)

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def wait_for_output(self, text: bytes, timeout: float = WAIT, start: int = 0) -> int:
        """Wait until `text` is in the output (after byte `start`); return where it ends."""
        wait_for(lambda: text in self.output[start:], timeout, what=f"{text!r} on the terminal")
        return self.output.index(text, start) + len(text)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(WAIT)
        os.close(self.master)
        self._reader.join(WAIT)


def tmux_available() -> bool:
    return shutil.which("tmux") is not None


class TmuxSession:
    """A tmux server of its own (its own socket, no user config) running `chat client` in window 0."""

    def __init__(self, host: str, port: int, *args: str, env: dict[str, str] | None = None,
                 tmp: Path | None = None) -> None:
        self.socket = f"chat-test-{uuid.uuid4().hex[:12]}"
        assignments = [f"{k}={v}" for k, v in {"TERM": "xterm-256color", **(env or {})}.items()]
        client = ["env", *assignments, *chat_command(), "client", "--host", host, "--port", str(port), *args]
        self.tmux("new-session", "-d", "-s", "chat", "-x", "100", "-y", "30", subprocess.list2cmdline(client))

    def tmux(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, "-f", os.devnull, *args], capture_output=True,
                              text=True, timeout=WAIT)
        if done.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def window_flag(self, window: int, flag: str) -> str:
        return self.tmux("display-message", "-p", "-t", f"chat:{window}", f"#{{{flag}}}").strip()

    def screen(self, window: int = 0) -> str:
        return self.tmux("capture-pane", "-p", "-t", f"chat:{window}")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=WAIT)
