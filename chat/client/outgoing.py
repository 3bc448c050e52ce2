"""What the full-screen client sends, paced and accounted for.

The server handles a connection's lines in order and answers `/ping TOKEN` only once everything sent before
it has been handled and stored (docs/PROTOCOL.md). So every batch of lines goes out followed by a "sync" ping,
and its pong says, without guessing, that each message sent before it was either echoed or refused:
- a message is "unconfirmed" from when it is sent until its echo, or the pong after it; only the ones still
  unconfirmed when a connection drops may have been lost, and only they are pointed out;
- at most `WINDOW` lines are in flight (sent, their pong not yet back): a long paste flows at the server's pace
  instead of tripping its flood control;
- each pong measures the lag (the time the server took to answer everything up to it).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

INTERNAL_TOKEN = "chat-client:"  # /ping tokens the client uses for itself; their pongs are not shown
SYNC_TOKEN = INTERNAL_TOKEN + "sync:"
LAG_TOKEN = INTERNAL_TOKEN + "lag:"
WINDOW = 20  # lines in flight before waiting for the server to catch up (its default burst)


@dataclass(frozen=True, slots=True)
class Unsent:
    """What a dropped connection left: conversations with messages that may be lost, and lines never sent."""

    unconfirmed: list[str]  # conversation keys, once each, in order
    not_sent: dict[str, int]  # conversation key -> messages that never left


@dataclass(slots=True)
class _Line:
    text: str
    confirm: str | None  # the conversation a message is for (its echo confirms it); None: not a message


class Outgoing:
    def __init__(self, clock: Callable[[], float], window: int = WINDOW) -> None:
        self.clock = clock
        self.window = window
        self.lag: float | None = None  # seconds, measured by the last pong of ours
        self._queue: deque[_Line] = deque()
        self._pings: list[str] = []  # pings to send at once, outside the window
        self._sent = 0  # lines sent on this connection
        self._answered_upto = 0  # of those, how many were followed by a sync ping that was answered
        self._syncs: deque[tuple[int, int]] = deque()  # unanswered sync pings: (number, lines sent before it)
        self._numbers = itertools.count(1)
        self._unconfirmed: deque[tuple[str, int]] = deque()  # (conversation key, the sync ping after it)
        self._asked: dict[str, float] = {}  # our unanswered ping tokens -> when sent

    @property
    def in_flight(self) -> int:
        """Lines sent whose answer (the pong after them) has not come back yet."""
        return self._sent - self._answered_upto

    def push(self, line: str, confirm: str | None = None) -> None:
        self._queue.append(_Line(line, confirm))

    def ping(self, token: str) -> None:
        """A ping to send now, whatever the window (it is answered in order all the same)."""
        self._asked[token] = self.clock()
        self._pings.append(f"/ping {token}")

    def take(self) -> list[str]:
        """The lines to send now: the window's worth of the queue, then a sync ping."""
        lines, self._pings = self._pings, []
        if not self._queue or self.in_flight >= self.window:
            return lines
        number = next(self._numbers)
        while self._queue and self.in_flight < self.window:
            line = self._queue.popleft()
            lines.append(line.text)
            self._sent += 1
            if line.confirm is not None:
                self._unconfirmed.append((line.confirm, number))
        token = f"{SYNC_TOKEN}{number}"
        self._asked[token] = self.clock()
        self._syncs.append((number, self._sent))
        lines.append(f"/ping {token}")
        return lines

    def answered(self, token: str) -> bool:
        """A pong came back. True if it was one of ours (not for the user's eyes)."""
        asked = self._asked.pop(token, None)
        if asked is not None:
            self.lag = self.clock() - asked
        if token.startswith(SYNC_TOKEN):
            suffix = token.removeprefix(SYNC_TOKEN)
            number = int(suffix) if suffix.isascii() and suffix.isdigit() else 0
            while self._syncs and self._syncs[0][0] <= number:
                self._answered_upto = self._syncs.popleft()[1]
            while self._unconfirmed and self._unconfirmed[0][1] <= number:
                self._unconfirmed.popleft()
        return token.startswith(INTERNAL_TOKEN)

    def echoed(self, key: str) -> None:
        """Our own message came back in conversation `key`: the oldest one unconfirmed there is confirmed."""
        for index, (pending, _) in enumerate(self._unconfirmed):
            if pending == key:
                del self._unconfirmed[index]
                return

    def current_lag(self) -> float | None:
        """The last lag measured, or how long the oldest ping has been waiting if that is longer."""
        if not self._asked:
            return self.lag
        waited = self.clock() - min(self._asked.values())
        return waited if self.lag is None or waited > self.lag else self.lag

    def pinging(self, prefix: str) -> bool:
        """One of our pings whose token starts with `prefix` is waiting for its pong."""
        return any(token.startswith(prefix) for token in self._asked)

    def reset(self) -> Unsent:
        """The connection is gone: forget it, and say what may have been lost."""
        not_sent: dict[str, int] = {}
        for line in self._queue:
            if line.confirm is not None:
                not_sent[line.confirm] = not_sent.get(line.confirm, 0) + 1
        unsent = Unsent(list(dict.fromkeys(key for key, _ in self._unconfirmed)), not_sent)
        self._queue.clear()
        self._pings.clear()
        self._syncs.clear()
        self._unconfirmed.clear()
        self._asked.clear()
        self._sent = self._answered_upto = 0
        return unsent
