"""An IRC client on a real socket: IRC lines out, CR LF stripped on the way in, waits with deadlines."""

from __future__ import annotations

import ssl
import time

from harness.clients import WAIT, LineClient


class IrcClient(LineClient):
    """`register(nick, caps)` does CAP LS 302 / REQ / NICK / USER / CAP END and waits for 001."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(host, port, tls=tls)
        self.caps: list[str] = []

    def send(self, *lines: str) -> None:
        self.sock.sendall("".join(line + "\r\n" for line in lines).encode())

    def _next_line(self, deadline: float) -> str | None:
        line = super()._next_line(deadline)
        if line is not None and line.endswith("\r"):
            line = line[:-1]
            self.seen[-1] = line
        return line

    def register(self, nick: str, caps: tuple[str, ...] = (), sasl: tuple[str, str] | None = None) -> None:
        if caps or sasl:
            self.send("CAP LS 302")
            self.expect(" CAP * LS ")
            wanted = " ".join((*caps, "sasl") if sasl else caps)
            self.send(f"CAP REQ :{wanted}")
            self.expect(" ACK ")
            self.caps = list(caps)
        self.send(f"NICK {nick}", f"USER {nick} 0 * :{nick} the tester")
        if sasl:
            import base64

            self.send("AUTHENTICATE PLAIN")
            self.expect("AUTHENTICATE +")
            payload = base64.b64encode(f"{sasl[0]}\0{sasl[0]}\0{sasl[1]}".encode()).decode()
            self.send(f"AUTHENTICATE {payload}")
            self.expect(lambda line: " 903 " in line or " 904 " in line)
        if caps or sasl:
            self.send("CAP END")
        self.expect(lambda line: " 001 " in line)
        self.expect(lambda line: " 422 " in line or " 376 " in line)
        self.nick = nick

    def sync(self, token: str = "sync") -> None:
        """Wait until the server has handled everything sent before (PING is answered in order)."""
        self.send(f"PING {token}")
        self.expect(lambda line: " PONG " in line and line.endswith(token))

    def collect(self, seconds: float) -> list[str]:
        """Every line that comes within `seconds` (for checking that something does NOT come, after a sync)."""
        start = len(self.seen)
        deadline = time.monotonic() + seconds
        try:
            while self._next_line(deadline) is not None:
                pass
        except TimeoutError:
            pass
        return self.seen[start:]


__all__ = ["WAIT", "IrcClient"]
