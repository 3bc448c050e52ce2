"""`chat client` in a real pseudo-terminal: it goes full screen, chats with someone on a plain socket (as `nc`
would), and Ctrl-C leaves, tells the server and gives the terminal back."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import termios
import threading
from pathlib import Path
from typing import Any

import pytest

from harness import WAIT, ServerThread, chat_command, wait_for

ALT_SCREEN_OFF = b"\x1b[?1049l"  # leaving the alternate screen: the terminal is given back


class TerminalClient:
    """`chat client` with a pseudo-terminal as stdin, stdout and stderr; what it draws is collected raw."""

    def __init__(self, server: ServerThread, *args: str, env: dict[str, str] | None = None) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 110, 0, 0))
        command = [*chat_command(), "client", "--host", server.host, "--port", str(server.port), *args]
        environment = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "110", "LINES": "30", **(env or {})}
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

    def wait_for_output(self, text: bytes, timeout: float = WAIT) -> None:
        wait_for(lambda: text in self.output, timeout, what=f"{text!r} on the terminal")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(WAIT)
        os.close(self.master)
        self._reader.join(WAIT)


def test_in_a_terminal_it_is_full_screen_chats_with_nc_and_ctrl_c_restores_the_terminal(
        server: ServerThread) -> None:
    pytest.importorskip("textual")
    bob = server.client("bob", json_mode=True)  # bob is on a raw socket, as on nc
    client = TerminalClient(server, "--nick", "alice")
    try:
        bob.expect_event("join", nick="alice")
        client.wait_for_output(b"Message #lobby")  # the input line's placeholder: the screen is drawn
        bob.send("hello from nc")
        client.wait_for_output(b"hello from nc")
        client.type(b"hello from the terminal\r")
        assert bob.expect_event("message", text="hello from the terminal")["nick"] == "alice"
        client.type(b"\x03")  # Ctrl-C
        assert client.proc.wait(WAIT) == 0
        assert bob.expect_event("quit", nick="alice")["reason"] == "leaving"
        wait_for(lambda: ALT_SCREEN_OFF in client.output, what="the terminal given back")
        assert b"Traceback" not in client.output
    finally:
        client.close()
        bob.close()


def test_without_textual_it_says_so_and_works_line_by_line(server: ServerThread, tmp_path: Path) -> None:
    blocker = tmp_path / "no-textual" / "textual"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('textual is not installed', name='textual')\n")
    env: dict[str, Any] = {"PYTHONPATH": os.pathsep.join(filter(None, [str(blocker.parent),
                                                                      os.environ.get("PYTHONPATH")]))}
    bob = server.client("bob", json_mode=True)
    client = TerminalClient(server, "--nick", "alice", env=env)
    try:
        client.wait_for_output(b"full-screen mode needs Textual")
        client.wait_for_output(b"Welcome, alice")
        client.type(b"hi, line by line\n")
        bob.expect_event("message", text="hi, line by line")
        client.type(b"\x04")  # Ctrl-D: the end of input
        assert client.proc.wait(WAIT) == 0
        bob.expect_event("quit", nick="alice")
        assert b"Traceback" not in client.output
    finally:
        client.close()
        bob.close()
