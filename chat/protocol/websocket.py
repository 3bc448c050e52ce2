"""The web door's codec: one HTTP request (the page, its files, or the upgrade at /ws), then WebSocket frames.
Pure: no sockets.

websockets' sans-I/O `ServerProtocol` does the protocol's work: it parses the request and the frames, checks the
handshake (Upgrade, Sec-WebSocket-Key and -Version, Origin), caps a message's size (close 1009 before its payload
is read), answers pings and runs the closing handshake. This codec feeds it the bytes the loop read, turns what it
found into frames for the loop, and renders events as text frames.

- In: a text message is a command line, as over TCP (`/join dev`; a plain line says something in the current
  room); a message of several lines is several lines. A message is at most `max_line` bytes.
- Out: each JSON event (what `/format json` sends as one line) is one text frame. A server's frames are not
  masked, so a frame is the same bytes for every recipient: a run of a room's messages is rendered once for every
  WebSocket client in it (key `WEBSOCKET`).

Input and output each move through phases of their own. The request is answered when it is decoded, but the
answer goes out in delivery order, after whatever was queued for the connection before it (its greeting, which
the codec keeps until the 101 has gone). After a close frame, in either direction, nothing more is sent.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from http import HTTPStatus
from urllib.parse import urlsplit

from websockets.exceptions import PayloadTooBig
from websockets.frames import CloseCode, Opcode
from websockets.frames import Frame as WsFrame
from websockets.http11 import Request
from websockets.protocol import OPEN
from websockets.server import ServerProtocol

from chat.protocol import http
from chat.protocol.codec import Codec, ControlFrame, Frame, Reply
from chat.protocol.commands import Command, Format, Quit, parse_line
from chat.protocol.errors import ChatError, ErrorCode
from chat.protocol.events import Bye, Error, Event
from chat.protocol.render import render_json

WEBSOCKET = "websocket"  # the rendering key of every open WebSocket connection
WS_PATH = "/ws"
HEAD_MAX = 16384  # bytes of request line and headers; past this, 431
GREETING_MAX = 16  # events kept for a connection until its 101 has gone (its hello)
CLOSE_REASON_MAX = 120  # a close frame's reason must fit in 123 bytes

# websockets logs every connection at INFO ("connection open", "connection closed"); the loop already logs each
# connect and disconnect once, with its reason, so its own chatter is kept to warnings and worse.
_protocol_log = logging.getLogger("chat.websocket")
_protocol_log.setLevel(logging.WARNING)


class _In(IntEnum):
    REQUEST = 0  # reading the request line and headers
    ANSWERING = 1  # the request is read; bytes sent meanwhile wait for the answer
    MESSAGES = 2  # the WebSocket is open
    ENDED = 3  # answered without an upgrade, or a close frame was sent or received: input is ignored


class _Out(IntEnum):
    HTTP = 0  # nothing sent yet: chat events wait for the 101
    FRAMES = 1  # the 101 is sent: events go out as frames
    DONE = 2  # an HTTP answer, or a close frame, was sent: nothing more goes out


@dataclass(slots=True, eq=False)
class HttpRequest(ControlFrame):
    head: bytes | None  # the request line and headers; None: they were longer than HEAD_MAX


@dataclass(slots=True, eq=False)
class WebSocketControl(ControlFrame):
    """What websockets answered with while reading (pongs, a close frame), and whether that ends the session."""

    data: bytes
    ends: str | None = None  # why the session ends, when a close frame was received or sent
    error: Error | None = None  # told before the close frame, when the client's message was at fault


@dataclass(slots=True, eq=False)
class Upgrade(Reply):
    """The 101 response: frames follow it."""


@dataclass(slots=True, eq=False)
class Answer(Reply):
    """A final HTTP response (a file, a refusal): the connection closes after it."""


@dataclass(slots=True, eq=False)
class ControlReply(Reply):
    closes: bool = False  # it carries a close frame: nothing may follow it


class WebCodec(Codec):
    __slots__ = ("_early", "_greeting", "_head", "_in", "_origins", "_out", "_parts", "_site", "_ws", "key",
                 "max_line")

    def __init__(self, site: http.Site, origins: http.OriginPolicy, max_line: int) -> None:
        self._site = site
        self._origins = origins
        self.max_line = max_line
        self._ws = ServerProtocol(max_size=max_line, logger=_protocol_log)
        self._in = _In.REQUEST
        self._out = _Out.HTTP
        self._head = bytearray()
        self._early = b""  # bytes after the request, before it was answered (a client should wait for the 101)
        self._greeting: list[Event] = []
        self._parts: list[bytes | bytearray | memoryview] | None = None  # a fragmented text message being put together
        self.key: object = self  # rendered for itself alone until it is a WebSocket

    # --------------------------------------------------------------------------------------------- input

    def frames(self, data: bytes) -> Sequence[Frame]:
        match self._in:
            case _In.MESSAGES:
                return self._messages(data)
            case _In.REQUEST:
                return self._request(data)
            case _In.ANSWERING if len(self._early) + len(data) <= HEAD_MAX:
                self._early += data
        return ()

    def _request(self, data: bytes) -> Sequence[Frame]:
        start = max(0, len(self._head) - 3)
        self._head += data
        end = self._head.find(b"\r\n\r\n", start)
        if end < 0:
            if len(self._head) <= HEAD_MAX:
                return ()
            self._head.clear()
            self._in = _In.ENDED
            return (HttpRequest(None),)
        end += 4
        head, self._early = bytes(self._head[:end]), bytes(self._head[end:end + HEAD_MAX])
        self._head.clear()
        self._in = _In.ANSWERING
        return (HttpRequest(head),)

    def _messages(self, data: bytes) -> Sequence[Frame]:
        ws = self._ws
        ws.receive_data(data)
        out: list[Frame] = []
        error: Error | None = None
        for event in ws.events_received():
            if not isinstance(event, WsFrame):
                continue
            opcode = event.opcode
            if opcode is Opcode.TEXT or opcode is Opcode.CONT:
                if opcode is Opcode.TEXT:
                    self._parts = []
                assert self._parts is not None  # websockets checks that a continuation follows a start
                self._parts.append(event.data)
                if event.fin:
                    payload = b"".join(self._parts)
                    self._parts = None
                    try:
                        text = payload.decode()
                    except UnicodeDecodeError:
                        error = Error(ErrorCode.INVALID_UTF8, "That message was not valid UTF-8; the connection is "
                                      "closed.")
                        ws.fail(CloseCode.INVALID_DATA, "invalid UTF-8")
                        break
                    out.extend(line for line in text.replace("\r\n", "\n").split("\n") if line)
            elif opcode is Opcode.BINARY:
                error = Error(ErrorCode.BAD_ARGUMENT, "Binary messages are not taken here: send each command as a "
                              "text message.")
                ws.fail(CloseCode.UNSUPPORTED_DATA, "text messages only")
                break
            # PING: websockets has queued the pong; PONG: nothing to do; CLOSE: it has queued the echo
        writes = b"".join(w for w in ws.data_to_send() if w)  # b"" in the list means "close": the loop does
        if ws.state is not OPEN:
            self._in = _In.ENDED
            self._parts = None
            ends, found = self._why_closed()
            out.append(WebSocketControl(writes, ends, error or found))
        elif writes:
            out.append(WebSocketControl(writes))
        return out

    def _why_closed(self) -> tuple[str, Error | None]:
        ws = self._ws
        if isinstance(ws.parser_exc, PayloadTooBig):
            return "message too long", Error(ErrorCode.LINE_TOO_LONG, f"That message was longer than {self.max_line}"
                                             " bytes; the connection is closed.")
        if ws.close_rcvd is not None and ws.close_rcvd_then_sent:  # the client closed
            return ws.close_rcvd.reason[:CLOSE_REASON_MAX] or "connection closed", None
        if ws.close_sent is not None:
            return f"websocket error ({ws.close_sent.code}: {ws.close_sent.reason})", None
        return "websocket error", None

    @property
    def buffered(self) -> int:
        return len(self._head) + len(self._early) + len(self._ws.reader.buffer) + sum(map(len, self._parts or ()))

    # -------------------------------------------------------------------------------------------- decode

    def decode(self, frame: str | ControlFrame) -> Sequence[Command | Event | Reply]:
        if type(frame) is str:
            command = parse_line(frame)
            if command is None:
                return ()
            if isinstance(command, Format) and command.format != "json":
                raise ChatError(ErrorCode.BAD_ARGUMENT, "A WebSocket connection always speaks JSON.", command="format")
            return (command,)
        if isinstance(frame, HttpRequest):
            return self._answer(frame.head)
        assert isinstance(frame, WebSocketControl)
        said: list[Command | Event | Reply] = [frame.error] if frame.error else []
        if frame.data:
            said.append(ControlReply(frame.data, closes=frame.ends is not None))
        if frame.ends is not None:
            said.append(Quit(reason=frame.ends))
        return said

    def _answer(self, head: bytes | None) -> Sequence[Command | Event | Reply]:
        """Answer the one HTTP request: the upgrade, a file, or a refusal (and then close)."""
        self._in = _In.ENDED  # until the upgrade, if this is one
        if head is None:
            return _final(http.refusal(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Request headers too large."))
        method, path = _request_line(head) or (b"", "")
        if method and method not in (b"GET", b"HEAD"):  # websockets refuses a request body unread: answer here
            if path != WS_PATH and path not in self._site:
                return _final(http.refusal(HTTPStatus.NOT_FOUND, "Not found."))
            allowed = "GET" if path == WS_PATH else http.ALLOWED_METHODS
            return _final(http.refusal(HTTPStatus.METHOD_NOT_ALLOWED, "Method not allowed.", [("Allow", allowed)]))
        ws = self._ws
        ws.receive_data(head)
        requests = ws.events_received()
        said = b"".join(w for w in ws.data_to_send() if w)  # websockets' own 414 or 431, if it refused
        if not requests:
            status = HTTPStatus(int(said.split(b" ", 2)[1])) if said else HTTPStatus.BAD_REQUEST
            return _final(http.refusal(status, status.phrase + "."))  # in our words and headers
        request = requests[0]
        assert isinstance(request, Request)
        path = urlsplit(request.path).path
        if path == WS_PATH:
            return self._upgrade(request)
        file = self._site.get(path)
        if file is None:
            return _final(http.refusal(HTTPStatus.NOT_FOUND, "Not found.", head=method == b"HEAD"))
        return _final(http.serve_file(file, request.headers, head=method == b"HEAD"))

    def _upgrade(self, request: Request) -> Sequence[Command | Event | Reply]:
        ws = self._ws
        ws.origins = self._origins.origins_for(http.header(request.headers, "Host"))
        response = ws.accept(request)
        if response.status_code != HTTPStatus.SWITCHING_PROTOCOLS:
            for name, value in http.SECURITY_HEADERS:
                response.headers[name] = value
        ws.send_response(response)
        data = b"".join(w for w in ws.data_to_send() if w)
        if response.status_code != HTTPStatus.SWITCHING_PROTOCOLS:
            return _final(data)
        self._in = _In.MESSAGES
        said: list[Command | Event | Reply] = [Upgrade(data)]
        if self._early:  # frames sent before the 101 (a client should wait for it): handled now, after it
            early, self._early = self._early, b""
            for frame in self._messages(early):
                assert not isinstance(frame, ChatError)  # _messages reports trouble as control frames
                try:
                    said.extend(self.decode(frame))
                except ChatError as e:
                    said.append(Error(e.code, e.message, e.command, e.subject, e.room))
        return said

    # -------------------------------------------------------------------------------------------- output

    def render(self, events: Sequence[Event | Reply]) -> bytes:
        if self._out is _Out.FRAMES and len(events) == 1:
            return self._frames(events[0])
        chunks = []
        for event in events:
            out = self._out
            if out is _Out.FRAMES:
                chunks.append(self._frames(event))
            elif out is _Out.HTTP:
                chunks.append(self._before_upgrade(event))
        return b"".join(chunks)

    def _frames(self, event: Event | Reply) -> bytes:
        if isinstance(event, Reply):
            if isinstance(event, ControlReply) and event.closes:
                self._done()
            return event.data
        if type(event) is Bye:
            data = _text_frames(event)
            ws = self._ws
            if ws.state is OPEN:  # else the client's close is being answered: that answer closes
                ws.send_close(_close_code(event.code), _close_reason(event.reason))
                data += b"".join(w for w in ws.data_to_send() if w)
                self._done()
            return data
        return _text_frames(event)

    def _before_upgrade(self, event: Event | Reply) -> bytes:
        if isinstance(event, Upgrade):
            self._out = _Out.FRAMES
            self.key = WEBSOCKET
            greeting, self._greeting = self._greeting, []
            return event.data + b"".join(self._frames(e) for e in greeting)
        if isinstance(event, Reply):  # the final answer
            self._out = _Out.DONE
            return event.data
        if type(event) is Bye:  # closed before it asked anything, or refused at the door
            self._out = _Out.DONE
            return http.refusal(http.status_for_bye(event.code), event.reason)
        if len(self._greeting) < GREETING_MAX:
            self._greeting.append(event)
        return b""

    def _done(self) -> None:
        self._out = _Out.DONE
        self.key = self  # rendered alone from now on, and to nothing

    def resume_point(self, rest: bytes | memoryview) -> int:
        """The end of the frame being sent: the chunk `rest` is the tail of starts with a frame (the 101 response
        and anything before it are sent whole)."""
        if not isinstance(rest, memoryview):
            return 0
        chunk = rest.obj
        assert isinstance(chunk, bytes | bytearray)
        offset = len(chunk) - len(rest)
        position = 0
        while position < offset:
            size = frame_size(chunk, position)
            if size is None:  # not frames (an HTTP response): send the rest of it
                return len(rest)
            position += size
        return position - offset


# ------------------------------------------------------------------------------------------------- helpers

def _final(response: bytes) -> Sequence[Command | Event | Reply]:
    """An HTTP answer, then the end of the connection (a /quit: its goodbye renders as nothing here)."""
    return (Answer(response), Quit())


def _request_line(head: bytes) -> tuple[bytes, str] | None:
    """The method and path of a well-formed request line (None: not one; websockets will say 400)."""
    match = _REQUEST_LINE.match(head)
    if match is None:
        return None
    return match[1], urlsplit(match[2].decode("ascii")).path


_REQUEST_LINE = re.compile(rb"([A-Z]{1,20}) ([\x21-\x7e]+) HTTP/1\.[01]\r\n")


def _text_frames(event: Event) -> bytes:
    lines = render_json(event)
    if lines.count("\n") == 1:
        return WsFrame(Opcode.TEXT, lines[:-1].encode()).serialize(mask=False, extensions=())
    return b"".join(WsFrame(Opcode.TEXT, line.encode()).serialize(mask=False, extensions=())
                    for line in lines[:-1].split("\n"))


def frame_size(chunk: bytes | bytearray, position: int) -> int | None:
    """The length of the unmasked server frame at `position` (header included), or None if none starts there."""
    if position + 2 > len(chunk) or chunk[position] not in _FRAME_STARTS or chunk[position + 1] & 0x80:
        return None
    length = chunk[position + 1]
    if length == 126:
        return 4 + int.from_bytes(chunk[position + 2:position + 4])
    if length == 127:
        return 10 + int.from_bytes(chunk[position + 2:position + 10])
    return 2 + length


_FRAME_STARTS = frozenset(0x80 | op for op in (Opcode.TEXT, Opcode.CLOSE, Opcode.PING, Opcode.PONG))


def _close_code(code: ErrorCode | None) -> CloseCode:
    match code:
        case None:
            return CloseCode.NORMAL_CLOSURE
        case ErrorCode.SERVER_SHUTDOWN | ErrorCode.NODE_LOST:
            return CloseCode.GOING_AWAY
        case ErrorCode.SERVER_FULL:
            return CloseCode.TRY_AGAIN_LATER
    return CloseCode.POLICY_VIOLATION  # flood, send queue, too many connections, no nickname in time


def _close_reason(reason: str) -> str:
    encoded = reason.encode()[:CLOSE_REASON_MAX]
    return encoded.decode(errors="ignore")
