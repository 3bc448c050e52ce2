"""A misbehaving "server" for testing what clients survive."""

from __future__ import annotations

import json
import socket
import threading

from harness.clients import WAIT


class ScriptedServer:
    """A misbehaving "server" on a real socket at 127.0.0.1:0, for testing what clients survive.

    Each connection gets `script` (raw bytes: garbage, half-valid events...) at once. Then it answers just
    enough to let a client finish: `/ping T` gets a JSON pong T, `/quit` a bye and the close. With
    `vanish=True` it closes the socket right after the script instead; with `once=True` only the first
    connection gets the script, later ones are closed at once; with `silent=True` it answers nothing at all
    (a server that hangs). Lines received are in `received`.
    """

    def __init__(self, script: bytes, vanish: bool = False, once: bool = False, silent: bool = False) -> None:
        self.script = script
        self.vanish = vanish
        self.once = once
        self.silent = silent
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.host, self.port = self.listener.getsockname()[:2]
        self.received: list[str] = []
        self.connections = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, name="scripted-server", daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        self.listener.settimeout(0.05)
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            if self.once and self.connections > 1:
                conn.close()
                continue
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        with conn:
            conn.sendall(self.script)
            if self.vanish:
                conn.shutdown(socket.SHUT_WR)  # gone without a goodbye, once the client has read it all
            buffer = b""
            conn.settimeout(WAIT)
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buffer += data
                while b"\n" in buffer:
                    raw, _, buffer = buffer.partition(b"\n")
                    line = raw.decode("utf-8", "replace")
                    self.received.append(line)
                    if self.vanish or self.silent:
                        continue
                    if line.startswith("/ping "):
                        conn.sendall(json.dumps({"type": "pong", "token": line[6:]}).encode() + b"\n")
                    elif line.startswith("/quit"):
                        conn.sendall(b'{"type":"bye","reason":"Bye.","code":null}\n')
                        return

    def close(self) -> None:
        self._stop.set()
        self.listener.close()
        self.thread.join(WAIT)
