"""A connection is transport + codec + member: the socket's bytes, how they are spoken, and who is chatting.

The event loop owns connections. Its lifecycle is one `Phase`, moving only forward:

    OPEN ──(peer sends EOF)──▶ DRAINING ──(its last lines handled)──┐
      └──(/quit, or the server ends it for cause)──▶ ENDING ◀────────┘
                    ENDING ──(its goodbye is queued)──▶ FLUSHING ──(sent, or its deadline)──▶ CLOSED
    (a failed socket goes straight to CLOSED from any phase)

Input is read in OPEN only; frames read but not yet handled wait in `held` (flood control, a storage read in
flight for it, a full output queue, storage far behind). Output is queued up to FLUSHING.
"""

from __future__ import annotations

from collections import deque
from enum import IntEnum

from chat.protocol.codec import Codec, Frame
from chat.server.member import Link, Member
from chat.server.transport import Transport


class Phase(IntEnum):
    OPEN = 0
    DRAINING = 1  # the peer finished sending: answer what it sent, then close
    ENDING = 2  # read nothing more; its last output is on its way through the outbox
    FLUSHING = 3  # its last output is queued: close once it is sent (or at `deadline`)
    CLOSED = 4


class Connection(Link):
    __slots__ = (
        "codec", "connected_at", "deadline", "door", "fd", "heard_at", "held", "held_bytes", "id", "ip",
        "last_refill", "limit_key", "linger", "member", "out", "out_bytes", "peer", "phase", "pinged", "reading",
        "reason", "tokens", "transport", "writing",
    )  # fmt: skip

    def __init__(self, conn_id: int, transport: Transport, codec: Codec, peer: str, ip: str, limit_key: str,
                 door: str, burst: int, now: float, new_room_burst: int = 0) -> None:
        self.id = conn_id
        self.transport = transport
        self.fd = transport.fd
        self.codec = codec
        self.member = Member(conn_id, self, new_room_burst, now, ip)
        codec.attach(self.member)
        self.peer = peer
        self.ip = ip
        self.limit_key = limit_key  # what --max-per-ip counts (an IPv6 client counts by its /64)
        self.door = door  # which listener it came through ("native", "irc", ...)
        self.connected_at = now
        self.heard_at = now  # when it last sent anything (the ping timeout's sweep reads it)
        self.pinged = False  # it was sent a keepalive PING since
        self.phase = Phase.OPEN
        self.reason: str | None = None  # why it is ending, once it is
        self.linger = 0.0  # seconds it may take to send its last output once FLUSHING...
        self.deadline = 0.0  # ...after which it is closed whatever is left to send
        # output: chunks waiting to be sent; the first may be a memoryview of a partly sent chunk
        self.out: list[bytes | memoryview] = []
        self.out_bytes = 0
        self.writing = False  # registered for EPOLLOUT
        self.reading = True  # registered for EPOLLIN
        # input waiting to be handled, and flood control's token bucket
        self.held: deque[Frame] = deque()
        self.held_bytes = 0
        self.tokens = float(burst)
        self.last_refill = now

    def cut_output(self) -> None:
        """Drop what is queued, but finish the line (or message) being sent, so the peer never sees half of one."""
        if not self.out:
            return
        head = self.out[0]
        if isinstance(head, memoryview):  # partly sent
            keep = self.codec.resume_point(head)
            self.out = [head[:keep]] if keep else []
            self.out_bytes = keep
        else:
            self.out.clear()
            self.out_bytes = 0

    @property
    def label(self) -> str:
        return f"#{self.id} {self.member.nick or '-'}@{self.peer}"

    def __repr__(self) -> str:
        return f"<Connection {self.label} {self.phase.name}>"
