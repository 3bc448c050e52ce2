"""A codec is how one connection speaks: bytes in become commands, events out become bytes. Pure: no sockets.

Each connection has its own codec object (it may keep per-connection state: IRC's negotiated capabilities, the
native protocol's output format). The event loop feeds it the bytes the transport received, hands the commands
to the chat services, and asks it to render what the services deliver. Services never learn which codec a
connection speaks.

Rendering is shared: connections whose codecs have equal `key`s get the same bytes for the same events, so a
busy room's run of messages is rendered once per key, not once per member. A codec's rendering of an event
delivered to several connections must therefore depend on nothing but the event and the key; replies to one
connection (errors, numerics that name the recipient) may use the codec's own state. A key of None says the
codec's rendering is its own for now (an IRC client inside a labeled response): it is rendered for it alone.

A codec whose `echo` is False does not get its own messages back. The deliverer gives it the key's bytes without
them, cut out of the shared rendering (chat.server.delivery._Cut), so a shared rendering must be the same bytes
whether the run is rendered whole or in parts cut before and after any ChatMessage.

Some protocols carry traffic of their own besides chat (WebSocket's ping and close frames, the HTTP request
before the upgrade). A codec returns it from `frames` as a `ControlFrame` of its own, handled by `decode` in its
place among the other frames, and answers with `Reply`s: delivered in order like any reply, to that one
connection only, and rendered by that codec alone.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from chat.protocol.commands import Command
from chat.protocol.errors import ChatError
from chat.protocol.events import Event


class ControlFrame:
    """Input a codec handles itself rather than a line (a WebSocket ping or close, an HTTP request): returned by
    its `frames`, given back to its `decode` in order. Flood control counts it like a line."""

    __slots__ = ()


@dataclass(slots=True, eq=False)
class Reply:
    """Bytes a codec answers its own connection with, outside the chat protocol (an HTTP response, a WebSocket
    pong or close frame). Never part of a shared rendering: it is only ever delivered to that one connection."""

    data: bytes


Frame = str | ChatError | ControlFrame  # a line (or message) as received, why one was refused, or the codec's own


class Codec(ABC):
    key: Hashable  # equal keys, equal bytes for the same events; None: rendered alone (module docstring)
    echo: bool = True  # does this connection receive its own messages back (the receipt)?

    def attach(self, member: object) -> None:  # a hook most codecs do without
        """The connection's member (chat.server.member.Member), given once: a codec may read its nick and
        whether it is registered for its replies (IRC's numerics name the recipient). Never changes it."""
        return None  # most codecs need nothing of it

    @abstractmethod
    def frames(self, data: bytes) -> Sequence[Frame]:
        """Split received bytes into frames (lines, WebSocket messages), capped in size; never buffer
        unboundedly. Frames are handled later, one by one (flood control may hold some back)."""

    @abstractmethod
    def decode(self, frame: str | ControlFrame) -> Sequence[Command | Event | Reply]:
        """What one frame asks for: commands for the services, or events answered by the codec itself (IRC's
        CAP negotiation), in order. Raises ChatError for a frame that is refused."""

    @abstractmethod
    def render(self, events: Sequence[Event | Reply]) -> bytes:
        """The bytes for these events, in order (b"" for events this codec does not show)."""

    @property
    @abstractmethod
    def buffered(self) -> int:
        """Bytes received but not yet framed (an unfinished line)."""

    def keepalive_ping(self) -> bytes | None:
        """What asks a silent peer to answer (IRC's PING), or None when the protocol has nothing a client answers
        by itself (the native protocol: a person on `nc` would have to type the answer)."""
        return None

    def resume_point(self, rest: bytes | memoryview) -> int:
        """How much of `rest` (what remains of a partly sent chunk) must still be sent so the peer never gets
        half a line when the rest of its queue is dropped. Line codecs: up to and including the next newline.
        A memoryview `rest` is the tail of `rest.obj`, which starts where a chunk this codec rendered starts (the
        loop never joins a partly sent chunk with the next), so a codec of length-prefixed frames can walk them."""
        end = bytes(rest[:65536]).find(b"\n")
        return end + 1 if end >= 0 else len(rest)
