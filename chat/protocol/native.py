"""The native protocol as a codec: slash-command lines in; text lines (for people) or JSON lines out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import get_args

from chat.protocol.codec import Codec, ControlFrame, Frame, Reply
from chat.protocol.commands import Command, Format, parse_line
from chat.protocol.events import Event
from chat.protocol.framing import LineFramer
from chat.protocol.render import render_json, render_text

FORMATS: tuple[str, ...] = get_args(Format.model_fields["format"].annotation)  # what /format switches between
TEXT, JSON = FORMATS


class NativeCodec(Codec):
    __slots__ = ("_framer", "_render", "key")

    def __init__(self, max_line: int, output: str = TEXT) -> None:
        self._framer = LineFramer(max_line)
        self.key = output
        self._render = render_json if output == JSON else render_text

    @property
    def output(self) -> str:
        return str(self.key)

    def set_output(self, output: str) -> None:
        """`/format text|json`: applied at its place in the delivery order (chat.server.outbox.SetFormat)."""
        self.key = output
        self._render = render_json if output == JSON else render_text

    def frames(self, data: bytes) -> Sequence[Frame]:
        return self._framer.feed(data)

    def decode(self, frame: str | ControlFrame) -> Sequence[Command | Event | Reply]:
        assert type(frame) is str  # this codec makes no control frames
        command = parse_line(frame)
        return () if command is None else (command,)

    def render(self, events: Sequence[Event | Reply]) -> bytes:
        render = self._render
        if len(events) == 1:
            return render(events[0]).encode()  # type: ignore[arg-type]  # it makes no replies
        return "".join([render(e) for e in events]).encode()  # type: ignore[arg-type]

    @property
    def buffered(self) -> int:
        return self._framer.buffered
