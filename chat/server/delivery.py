"""Turn an outbox's deliveries into bytes on each recipient's output queue, in order.

Consecutive deliveries to the same recipients (the same members tuple: see state.Room) form a run: the run is
rendered once per output format and the same bytes object is queued for every recipient. A busy room's batch of
messages thus costs one render and one queue append per member, not one per message per member.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from chat.protocol.errors import ErrorCode
from chat.protocol.events import ChatMessage, DeliveryState, Error, Event, FormatChanged, History
from chat.protocol.render import render_json, render_text
from chat.server.outbox import Backlog, CloseAfterFlush, Deliverable, HistoryRequest, Outbox, SetFormat
from chat.server.state import Session

log = logging.getLogger("chat.server")

NOT_DELIVERED = "Your message was not delivered: the server could not store it. Please send it again."
HISTORY_FAILED = "History is unavailable right now: the server could not read it. Please try again."


class Deliverer:
    def __init__(self, sendq: int, on_overflow: Callable[[Session], None]) -> None:
        self.sendq = sendq
        self.on_overflow = on_overflow
        self.dirty: dict[Session, None] = {}  # sessions with output to flush, in the order they got it

    def deliver(self, outbox: Outbox) -> None:
        run_to: Sequence[Session] = ()
        run: list[Event] = []
        for planned_to, item in outbox.deliveries:
            if isinstance(item, SetFormat | CloseAfterFlush):
                # these change how or whether a session gets what follows: queue what came before first
                if run:
                    self._queue(run_to, run)
                    run_to, run = (), []
                self._apply(planned_to, item)
                if isinstance(item, CloseAfterFlush):
                    continue
            to, event = self._resolve(planned_to, item, outbox)
            if event is None:
                continue
            if to is not run_to:
                if run:
                    self._queue(run_to, run)
                run_to, run = to, [event]
            else:
                run.append(event)
        if run:
            self._queue(run_to, run)

    def push(self, session: Session, event: Event) -> None:
        """Queue one event for one session, outside any outbox (refusals, goodbyes)."""
        self._queue((session,), [event])

    def _apply(self, to: Sequence[Session], item: SetFormat | CloseAfterFlush) -> None:
        for session in to:
            if isinstance(item, SetFormat):
                session.json = item.json
            else:
                session.close_after_flush = True
                self.dirty[session] = None

    def _resolve(
        self, to: Sequence[Session], item: Deliverable, outbox: Outbox
    ) -> tuple[Sequence[Session], Event | None]:
        """Who gets what for a planned delivery, now that the commit is done (None: nothing to send)."""
        if type(item) is ChatMessage:
            if item.state is DeliveryState.FAILED:  # only its sender hears of it
                sender = outbox.senders.get(item.id)
                return (sender,) if sender else (), Error(ErrorCode.NOT_DELIVERED, NOT_DELIVERED, "say")
            return to, item
        if isinstance(item, Backlog):
            stored = [m for m in item.messages if m.state is DeliveryState.STORED]
            return to, History(item.room, stored, item.more) if stored else None
        if isinstance(item, HistoryRequest):
            if item.error is not None:
                return to, Error(ErrorCode.HISTORY_UNAVAILABLE, HISTORY_FAILED, "history")
            return to, History(item.room.name, item.messages, item.more, reason="page")
        if isinstance(item, SetFormat):
            return to, FormatChanged("json" if item.json else "text")
        return to, item  # type: ignore[return-value]

    def _queue(self, to: Sequence[Session], events: list[Event]) -> None:
        text: bytes | None = None
        js: bytes | None = None
        dirty = self.dirty
        sendq = self.sendq
        for s in to:
            if s.fd < 0:
                continue
            if s.json:
                if js is None:
                    js = "".join([render_json(e) for e in events]).encode()
                data = js
            else:
                if text is None:
                    text = "".join([render_text(e) for e in events]).encode()
                data = text
            s.out.append(data)
            s.out_bytes += len(data)
            dirty[s] = None
            # only a client whose socket is already full is behind; a burst to one that still reads is
            # checked once the loop has written what its socket takes (loop._flush)
            if s.out_bytes > sendq and s.writing:
                self.on_overflow(s)
