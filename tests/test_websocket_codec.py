"""The web door's codec alone (chat.protocol.websocket): no sockets, no server. Every event renders as text
frames that parse back to its JSON lines; a cut queue resumes at a frame boundary; any bytes in never crash it
nor make it buffer without bound."""

from __future__ import annotations

import base64
import json
import os
from typing import get_args

from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode

from chat.protocol.codec import Reply
from chat.protocol.commands import Quit, Say
from chat.protocol.errors import ChatError, ErrorCode
from chat.protocol.events import (
    AccountChange,
    Away,
    Bye,
    ChatMessage,
    Current,
    Error,
    Event,
    FormatChanged,
    Hello,
    Help,
    History,
    Invite,
    Join,
    Joined,
    Kick,
    MessageKind,
    Mode,
    NickChange,
    Notice,
    Online,
    Operator,
    Part,
    PasswordWanted,
    Person,
    Pong,
    PrivateHistory,
    RoomInfo,
    RoomList,
    RoomModes,
    SearchResults,
    ServerTime,
    TagMessage,
    Target,
    Targets,
    Topic,
    UserModes,
    Wallops,
    Welcome,
    Who,
    WhoIs,
    WhoWas,
)
from chat.protocol.events import (
    Quit as QuitEvent,
)
from chat.protocol.http import OriginPolicy
from chat.protocol.render import render_json
from chat.protocol.websocket import HEAD_MAX, WEBSOCKET, HttpRequest, Upgrade, WebCodec, frame_size
from chat.web import load_site

SITE = load_site()
MAX_LINE = 1024
T = 1_790_000_000.5
MESSAGE = ChatMessage(7, MessageKind.MESSAGE, "alice", "hi <b>there</b> é", T, room="lobby")
SAMPLES: list[Event] = [
    MESSAGE,
    ChatMessage(8, MessageKind.PRIVATE, "bob", "psst", T, to="alice"),
    Hello("chat", "0.1", MAX_LINE), Notice("note"), Welcome("alice", MAX_LINE), NickChange("a", "b", T),
    Join("lobby", "bob", T), Joined("lobby", ["alice", "bob"], "a topic", T), Current("lobby"), Current(None),
    Part("lobby", "bob", "bye", T), QuitEvent("bob", None, T), Topic("lobby", "t", "bob", T, True),
    History("lobby", [MESSAGE, MESSAGE], True), History("lobby", [], False, "page"),
    RoomList([RoomInfo("lobby", 2, None)], 1), Who("lobby", ["alice"]), Help(None, ["one", "two"]), Pong("x"),
    FormatChanged("json"), Error(ErrorCode.BAD_ARGUMENT, "no", "join", "x"),
    SearchResults("needle", [MESSAGE], True, 7), AccountChange("logged_in", "alice", "alice"),
    PasswordWanted("alice"), WhoIs("bob", True, True, T, None, 12.0, ["lobby"]),
    PrivateHistory("bob", [ChatMessage(9, MessageKind.PRIVATE, "bob", "earlier", T, to="alice")], False),
    Kick("lobby", "bob", "alice", "spam", T), Mode("lobby", "alice", "+o", "bob", T), Invite("lobby", "alice", "bob"),
    RoomModes("lobby", "+t", "alice", None, ["alice"], [], [], []),
    Away("bob", "lunch"), WhoWas("bob", [Person("bob", "b", "Bob")]), Online(3, 5, 2),
    Operator("alice", "boss"), UserModes("alice", "+w", True), Wallops("alice", "hi", T), ServerTime(T),
    Targets([Target("dev", None, T), Target(None, "bob", T)]),
    ChatMessage(10, MessageKind.NOTICE, "bot", "built", T, room="lobby"),
    TagMessage(11, "alice", {"+typing": "active"}, T, room="lobby"),
    Bye("later", ErrorCode.FLOOD, 3),  # last: it closes the codec
]


def request(path: str = "/ws", **headers: str) -> bytes:
    fields = {"Host": "chat.test", "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
              "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(), **headers}
    return (f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n").encode()


def upgraded(greeting: list[Event] | None = None) -> tuple[WebCodec, bytes]:
    """A codec past its handshake, and what it sent for it."""
    codec = WebCodec(SITE, OriginPolicy(), MAX_LINE)
    before = codec.render(greeting or [])
    assert before == b""  # nothing goes out before the 101
    (frame,) = codec.frames(request())
    assert isinstance(frame, HttpRequest)
    (answer,) = codec.decode(frame)
    assert isinstance(answer, Upgrade)
    sent = codec.render([answer])
    assert sent.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert codec.key == WEBSOCKET
    return codec, sent


def parse_frames(data: bytes) -> list[Frame]:
    frames, position = [], 0
    while position < len(data):
        size = frame_size(data, position)
        assert size is not None, f"no frame at {position}"
        header = 2 if data[position + 1] < 126 else 4 if data[position + 1] == 126 else 10
        frames.append(Frame(Opcode(data[position] & 0x0F), data[position + header:position + size]))
        position += size
    assert position == len(data)
    return frames


def client_frame(opcode: Opcode, payload: bytes, fin: bool = True) -> bytes:
    return Frame(opcode, payload, fin).serialize(mask=True, extensions=())


def test_the_samples_cover_every_event() -> None:
    assert {type(e) for e in SAMPLES} == set(get_args(Event))


def test_every_event_is_one_text_frame_per_json_line() -> None:
    codec, _ = upgraded()
    for event in SAMPLES:
        if isinstance(event, Bye):
            continue  # it closes the codec: below
        frames = parse_frames(codec.render([event]))
        assert all(f.opcode is Opcode.TEXT for f in frames)
        assert [json.loads(f.data) for f in frames] == [json.loads(x) for x in render_json(event).splitlines()]


def test_a_bye_is_its_event_then_a_close_frame_and_then_nothing() -> None:
    codec, _ = upgraded()
    frames = parse_frames(codec.render([Bye("Too many lines too fast.", ErrorCode.FLOOD, None)]))
    assert [f.opcode for f in frames] == [Opcode.TEXT, Opcode.CLOSE]
    assert json.loads(frames[0].data)["code"] == "flood"
    assert int.from_bytes(frames[1].data[:2]) == 1008
    assert codec.key is not WEBSOCKET  # no shared rendering reaches it now
    assert codec.render([MESSAGE]) == b""


def test_websocket_codecs_share_their_rendering() -> None:
    one, _ = upgraded()
    two, _ = upgraded()
    assert one.key == two.key == WEBSOCKET
    assert one.render(SAMPLES[:-1]) == two.render(SAMPLES[:-1])


def test_the_greeting_waits_for_the_101() -> None:
    _, sent = upgraded([Hello("chat", "0.1", MAX_LINE)])
    frames = sent.partition(b"\r\n\r\n")[2]
    assert json.loads(parse_frames(frames)[0].data)["type"] == "hello"


def test_lines_in_and_control_frames() -> None:
    codec, _ = upgraded()
    data = client_frame(Opcode.TEXT, b"hello\r\n/quit soon\n") + client_frame(Opcode.PING, b"p")
    *lines, control = codec.frames(data)
    assert lines == ["hello", "/quit soon"]
    assert codec.decode("hello") == (Say(text="hello"),)
    (pong,) = codec.decode(control)
    assert isinstance(pong, Reply) and parse_frames(pong.data)[0].opcode is Opcode.PONG
    (close,) = codec.frames(client_frame(Opcode.CLOSE, (1001).to_bytes(2) + b"bye"))
    echo, quit_ = codec.decode(close)
    assert isinstance(echo, Reply) and parse_frames(echo.data)[0].opcode is Opcode.CLOSE
    assert quit_ == Quit(reason="bye")
    assert codec.frames(client_frame(Opcode.TEXT, b"after the close")) == ()


def test_a_cut_queue_resumes_at_the_end_of_the_frame_being_sent() -> None:
    codec, _ = upgraded()
    texts = ["a", "b" * 200, "c" * 70_000, "d" * 5]
    events = [ChatMessage(i, MessageKind.MESSAGE, "x", t, T, room="r") for i, t in enumerate(texts)]
    chunk = codec.render(events)
    boundaries, position = [0], 0
    while position < len(chunk):
        position += frame_size(chunk, position) or 0
        boundaries.append(position)
    for offset in range(len(chunk)):
        rest = memoryview(chunk)[offset:]
        stop = offset + codec.resume_point(rest)
        assert stop == min(b for b in boundaries if b >= offset), offset
    # a tail of a tail is still measured from the chunk's start
    assert codec.resume_point(memoryview(memoryview(chunk)[3:])[4:]) == boundaries[1] - 7
    # the 101 and what was sent with it are not frames from the start: the rest is sent whole
    _, sent = upgraded([Hello("chat", "0.1", MAX_LINE)])
    assert codec.resume_point(memoryview(sent)[10:]) == len(sent) - 10


@settings(max_examples=200)
@given(st.lists(st.binary(max_size=3000), max_size=8), st.booleans())
def test_any_bytes_never_crash_nor_pile_up(pieces: list[bytes], upgrade_first: bool) -> None:
    codec = upgraded()[0] if upgrade_first else WebCodec(SITE, OriginPolicy(), MAX_LINE)
    for piece in pieces:
        for frame in codec.frames(piece):
            if not isinstance(frame, str | ChatError):
                codec.decode(frame)
        assert codec.buffered <= 2 * HEAD_MAX + MAX_LINE + 3000 + 14


@settings(max_examples=100)
@given(st.lists(st.tuples(st.text(max_size=300), st.integers(1, 4)), max_size=10))
def test_text_messages_in_any_fragments_come_out_as_their_lines(messages: list[tuple[str, int]]) -> None:
    codec, _ = upgraded()
    data, expected = b"", []
    for text, parts in messages:
        payload = text.encode()
        size = max(1, -(-len(payload) // parts))
        pieces = [payload[i:i + size] for i in range(0, len(payload), size)] or [b""]
        for i, piece in enumerate(pieces):
            data += client_frame(Opcode.TEXT if i == 0 else Opcode.CONT, piece, fin=i == len(pieces) - 1)
        if len(payload) > MAX_LINE:
            break  # refused with 1009: nothing after it is read
        expected += [line for line in text.replace("\r\n", "\n").split("\n") if line]
    got = [f for f in codec.frames(data) if isinstance(f, str)]
    assert got == expected
