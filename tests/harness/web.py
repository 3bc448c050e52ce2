"""Clients of the web door on real sockets: a WebSocket client (websockets' sans-I/O ClientProtocol over a plain
socket, so a test controls every byte and every read) and one-shot HTTP requests. Every read has a deadline."""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Response
from websockets.typing import Origin
from websockets.uri import parse_uri

from harness.clients import WAIT

Event = dict[str, Any]


@dataclass
class HttpAnswer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes
    raw: bytes = field(repr=False, default=b"")


def http_request(host: str, port: int, request: bytes, timeout: float = WAIT,
                 tls: ssl.SSLContext | None = None) -> HttpAnswer:
    """Send raw request bytes (over TLS with a `tls` context); read the answer until the server closes (it answers
    one request per connection)."""
    with socket.create_connection((host, port), timeout=timeout) as raw, \
            (tls.wrap_socket(raw, server_hostname=host) if tls else raw) as sock:
        sock.sendall(request)
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, ssl.SSLEOFError):
                break
            if not chunk:
                break
            data += chunk
    return parse_answer(data)


def http_get(host: str, port: int, path: str = "/", method: str = "GET", headers: dict[str, str] | None = None,
             timeout: float = WAIT, tls: ssl.SSLContext | None = None) -> HttpAnswer:
    fields = {"Host": f"{host}:{port}", **(headers or {})}
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n"
    return http_request(host, port, head.encode(), timeout, tls)


def parse_answer(data: bytes) -> HttpAnswer:
    head, _, body = data.partition(b"\r\n\r\n")
    if not head:
        return HttpAnswer(0, {}, b"", data)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return HttpAnswer(status, headers, body, data)


class WebSocketClient:
    """A WebSocket client of the chat's web door (over TLS, wss://, when given a `tls` context). `response` is the
    handshake's answer; when it is not 101 the connection is over (`closed`)."""

    def __init__(self, host: str, port: int, origin: str | None = None, path: str = "/ws",
                 extra_headers: dict[str, str] | None = None, timeout: float = WAIT,
                 receive_buffer: int | None = None, tls: ssl.SSLContext | None = None) -> None:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        if receive_buffer:  # before connect, so the TCP window is small from the start (a slow reader)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.settimeout(timeout)
        sock.connect((host, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = tls.wrap_socket(sock, server_hostname=host) if tls else sock  # handshakes here, with timeout
        scheme = "wss" if tls else "ws"
        self.protocol = ClientProtocol(parse_uri(f"{scheme}://{host}:{port}{path}"),
                                       origin=Origin(origin) if origin else None, max_size=None)
        self.seen: list[Event] = []  # every event received, in order
        self.frames: list[Frame] = []  # every frame received (data and control)
        self.closed = False
        self.close_frame: Close | None = None
        self.nick: str | None = None
        self._cursor = 0  # events before it were passed over by expect()
        self._response: Response | None = None
        request = self.protocol.connect()
        for name, value in (extra_headers or {}).items():
            request.headers[name] = value
        self.protocol.send_request(request)
        self._flush()
        self.response: Response = self._wait_response(time.monotonic() + timeout)

    # ------------------------------------------------------------------------------------------ sending

    def _flush(self) -> None:
        # one write: a burst of frames reaches the server together, as a flooder's would (frame by frame, the
        # server could end the connection between two writes, and the next one would meet a reset)
        data = b"".join(self.protocol.data_to_send())
        if data:
            self.sock.sendall(data)

    def send(self, *lines: str) -> None:
        """Each line as its own text message."""
        for line in lines:
            self.protocol.send_text(line.encode())
        self._flush()

    def send_text(self, text: str) -> None:
        self.protocol.send_text(text.encode())
        self._flush()

    def send_binary(self, data: bytes) -> None:
        self.protocol.send_binary(data)
        self._flush()

    def send_fragments(self, *parts: bytes) -> None:
        """One text message in several frames."""
        self.protocol.send_text(parts[0], fin=len(parts) == 1)
        for i, part in enumerate(parts[1:], 2):
            self.protocol.send_continuation(part, fin=i == len(parts))
        self._flush()

    def ping(self, data: bytes = b"p") -> None:
        self.protocol.send_ping(data)
        self._flush()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close_handshake(self, code: int = 1000, reason: str = "") -> None:
        self.protocol.send_close(code, reason)
        self._flush()

    # ------------------------------------------------------------------------------------------ reading

    def _receive(self, deadline: float) -> bool:
        """Read once; False at EOF."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"nothing in time; last events: {self.seen[-5:]}")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return True
        except (ConnectionResetError, ssl.SSLEOFError):  # TLS: a peer that closed without close_notify
            data = b""
        if data:
            self.protocol.receive_data(data)
        else:
            self.protocol.receive_eof()
            self.closed = True
        for event in self.protocol.events_received():
            if isinstance(event, Response):
                self._response = event
            elif isinstance(event, Frame):
                self.frames.append(event)
                if event.opcode is Opcode.TEXT:
                    self.seen.append(json.loads(bytes(event.data)))
                elif event.opcode is Opcode.CLOSE:
                    self.close_frame = Close.parse(event.data)
        self._flush()  # pongs, the close echo
        return bool(data)

    def _wait_response(self, deadline: float) -> Response:
        while self._response is None:
            if not self._receive(deadline) and self._response is None:
                raise AssertionError("the server closed the connection without answering the handshake")
        if self._response.status_code != 101:
            self.closed = True
        return self._response

    def expect(self, test: Callable[[Event], bool], timeout: float = WAIT) -> Event:
        """Read events until one satisfies `test` (those before it are passed over, as LineClient does)."""
        deadline = time.monotonic() + timeout
        while True:
            while self._cursor < len(self.seen):
                event = self.seen[self._cursor]
                self._cursor += 1
                if test(event):
                    return event
            if self.closed:
                raise AssertionError(f"connection closed while waiting; last events: {self.seen[-5:]}")
            self._receive(deadline)

    def events_until(self, type_: str, timeout: float = WAIT, **fields: Any) -> list[Event]:
        start = self._cursor
        self.expect_event(type_, timeout, **fields)
        return self.seen[start:self._cursor]

    def expect_event(self, type_: str, timeout: float = WAIT, **fields: Any) -> Event:
        return self.expect(lambda e: e.get("type") == type_ and all(e.get(k) == v for k, v in fields.items()),
                           timeout)

    def expect_closed(self, timeout: float = WAIT) -> Close | None:
        """Read until the server closes the TCP connection; return its close frame (None if it sent none)."""
        deadline = time.monotonic() + timeout
        while not self.closed:
            self._receive(deadline)
        return self.close_frame

    def register(self, nick: str) -> None:
        self.expect_event("hello")
        self.send(nick)
        self.expect_event("joined")
        self.nick = nick

    def sync(self, token: str = "sync") -> None:
        self.send(f"/ping {token}")
        self.expect_event("pong", token=token)

    def close(self) -> None:
        self.sock.close()
