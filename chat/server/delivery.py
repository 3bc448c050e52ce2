"""Turn an outbox's deliveries into bytes on each recipient's output queue, in order.

Consecutive deliveries to the same recipients (the same members tuple: see state.Room) form a run: the run is
rendered once per codec key (chat.protocol.codec) and the same bytes object is queued for every recipient with
that key. A busy room's batch of messages thus costs one render per key and one queue append per member, not
one per message per member. A recipient that does not get its own messages back (IRC without echo-message) and
sent some of the run gets the same bytes with its own messages cut out (`_Cut`), not a render of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Sequence

from chat.protocol.codec import Codec, Reply
from chat.protocol.errors import ErrorCode
from chat.protocol.events import Bye, ChatMessage, DeliveryState, Error, Event, FormatChanged, History, Join, Part, Quit
from chat.protocol.native import NativeCodec
from chat.server.connection import Connection, Phase
from chat.server.member import Member
from chat.server.outbox import Backlog, CloseAfterFlush, Deliverable, Goodbye, Outbox, SetFormat

log = logging.getLogger("chat.server")

# a run of only these may wait a little for the connection's next send (loop.PRESENCE_DELAY): in a crowd's join
# storm every member would otherwise get a send() per join, and they say nothing that cannot wait 0.25 s
PRESENCE = frozenset({Join, Part, Quit})

NOT_DELIVERED = "Your message was not delivered: the server could not store it. Please send it again."


class Deliverer:
    def __init__(self, sendq: int, on_overflow: Callable[[Connection], None]) -> None:
        self.sendq = sendq
        self.on_overflow = on_overflow
        self.dirty: dict[Connection, None] = {}  # connections with output to flush, in the order they got it
        self.lazy: dict[Connection, None] = {}  # ... with only presence lines to flush: they may wait a little

    def deliver(self, outbox: Outbox) -> None:
        run_to: Sequence[Member] = ()
        run: list[Event | Reply] = []
        senders = outbox.senders
        for planned_to, item in outbox.deliveries:
            if type(item) is ChatMessage:  # the common case first
                if item.state is DeliveryState.FAILED:  # only its sender hears of it
                    sender = senders.get(item.id)
                    to: Sequence[Member] = (sender,) if sender else ()
                    event: Event | Reply | None = Error(ErrorCode.NOT_DELIVERED, NOT_DELIVERED, "say")
                else:
                    to, event = planned_to, item
            elif isinstance(item, SetFormat | CloseAfterFlush):
                # these change how or whether a connection gets what follows: queue what came before first
                if run:
                    self._queue(run_to, run, senders)
                    run_to, run = (), []
                self._apply(planned_to, item)
                if isinstance(item, CloseAfterFlush):
                    continue
                to, event = planned_to, FormatChanged(item.output)
            else:
                to, event = planned_to, self._resolve(planned_to, item)
            if event is None:
                continue
            if to is not run_to:
                if run:
                    self._queue(run_to, run, senders)
                run_to, run = to, [event]
            else:
                run.append(event)
        if run:
            self._queue(run_to, run, senders)

    def push(self, member: Member, event: Event | Reply) -> None:
        """Queue one event (or a codec's own Reply) for one member, outside any outbox (answers to reads, goodbyes)."""
        self._queue((member,), [event], {})

    def _apply(self, to: Sequence[Member], item: SetFormat | CloseAfterFlush) -> None:
        for m in to:
            conn = m.conn
            if isinstance(item, SetFormat):
                if isinstance(conn.codec, NativeCodec):
                    conn.codec.set_output(item.output)
            elif conn.phase < Phase.FLUSHING:
                conn.phase = Phase.FLUSHING
                self.dirty[conn] = None

    @staticmethod
    def _resolve(to: Sequence[Member], item: Deliverable) -> Event | Reply | None:
        """What a planned delivery is, now that the commit is done (None: nothing to send)."""
        if isinstance(item, Backlog):
            stored = [m for m in item.messages if m.state is DeliveryState.STORED]
            return History(item.room, stored, item.more) if stored else None
        if isinstance(item, Goodbye):
            return Bye(item.reason, item.code, to[0].last_stored_id() if item.code else None)
        return item  # type: ignore[return-value]

    def _queue(self, to: Sequence[Member], events: list[Event | Reply], senders: dict[int, Member]) -> None:
        dirty = self.dirty
        sendq = self.sendq
        rendered: dict[Hashable, bytes] = {}
        cuts: dict[Hashable, _Cut] = {}
        last_key: Hashable = None
        last = b""
        own: dict[int, list[int]] | None = None  # sender's member id -> where its messages are in the run
        lazy = self.lazy if all(type(e) in PRESENCE for e in events) else None
        for m in to:
            conn = m.conn
            if conn.phase >= Phase.FLUSHING:
                continue
            codec = conn.codec
            key = codec.key
            mine = None
            if not codec.echo:  # it does not get its own messages back
                if own is None:
                    own = _own_messages(events, senders)
                mine = own.get(m.id)
            if key is None:  # its rendering is its own (an IRC client inside a labeled response)
                chunk = codec.render(_without(events, mine) if mine else events)
            elif mine:  # the key's bytes without its own messages: slices of one object, joined in C
                if len(mine) == len(events):  # the run is all its own (a paced sender's lone message)
                    continue
                cut = cuts.get(key)
                if cut is None:
                    assert own is not None
                    cut = cuts[key] = _Cut(codec, events, own)
                    rendered.setdefault(key, cut.whole)
                chunk = cut.without(mine)
            elif key is last_key:
                chunk = last
            else:
                chunk = rendered.get(key)  # type: ignore[assignment]
                if chunk is None:
                    chunk = rendered[key] = codec.render(events)
                last_key, last = key, chunk
            if not chunk:
                continue
            conn.out.append(chunk)
            conn.out_bytes += len(chunk)
            if lazy is None:
                dirty[conn] = None
            elif conn not in dirty:
                lazy[conn] = None
            # only a client whose socket is already full is behind; a burst to one that still reads is
            # checked once the loop has written what its socket takes (loop._flush)
            if conn.out_bytes > sendq and conn.writing:
                self.on_overflow(conn)


def _own_messages(events: list[Event | Reply], senders: dict[int, Member]) -> dict[int, list[int]]:
    """Where each sender's messages are in a run, by the sender's member id (a message to yourself is also one
    you receive: it is not counted, it stays)."""
    own: dict[int, list[int]] = {}
    for i, e in enumerate(events):
        if type(e) is ChatMessage and e.to != e.nick:
            sender = senders.get(e.id)
            if sender is not None:
                own.setdefault(sender.id, []).append(i)
    return own


def _without(events: list[Event | Reply], skip: list[int]) -> list[Event | Reply]:
    gone = set(skip)
    return [e for i, e in enumerate(events) if i not in gone]


class _Cut:
    """One key's rendering of a run, rendered in parts cut before and after each sender's message, and where each
    such message lies in it (the codec contract: a key's rendering is the same bytes whole or in such parts). A
    client without echo gets the whole minus its own messages' spans: a few slices of one bytes object joined,
    not a render of its own."""

    __slots__ = ("spans", "whole")

    def __init__(self, codec: Codec, events: list[Event | Reply], own: dict[int, list[int]]) -> None:
        parts: list[bytes] = []
        self.spans: dict[int, tuple[int, int]] = {}  # event index -> (start, end) of its bytes in the whole
        at = start = 0
        for i in sorted(i for indices in own.values() for i in indices):
            if start < i:
                parts.append(codec.render(events[start:i]))
                at += len(parts[-1])
            parts.append(codec.render(events[i:i + 1]))
            self.spans[i] = (at, at + len(parts[-1]))
            at += len(parts[-1])
            start = i + 1
        if start < len(events):
            parts.append(codec.render(events[start:]))
        self.whole = b"".join(parts)

    def without(self, skip: list[int]) -> bytes:
        whole = memoryview(self.whole)
        spans = self.spans
        parts = []
        at = 0
        for i in skip:  # in the run's order
            start, end = spans[i]
            if start > at:
                parts.append(whole[at:start])
            at = end
        parts.append(whole[at:])
        return b"".join(parts)
