"""The full-screen client's I/O: connect, feed the core, send what it asks, reconnect with backoff.

`ClientSession.run()` keeps a connection to the server until the user quits: when the connection fails or
drops it waits (0.5 s, 1 s, 2 s... up to 30 s, with some jitter so a crowd does not come back at once) and
tries again; /reconnect tries at once. While connected it pings a silent server now and then, so a server
that vanished without closing the connection is noticed too, and measures the lag every `lag_every` seconds.
`on_change` is called after anything that may have changed what the UI shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

from chat.client.connection import LineConnection, describe_os_error
from chat.client.core import HEARTBEAT_TOKEN, ClientCore, Outcome
from chat.client.events import Decoder


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    first_delay: float = 0.5  # seconds before the first retry
    max_delay: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2  # each delay is stretched or shrunk by up to this fraction
    connect_timeout: float = 10.0
    heartbeat: float = 60.0  # seconds of silence from the server before we ping it
    heartbeat_timeout: float = 30.0  # seconds to wait for that ping's answer before giving up the connection
    nick_retry: float = 15.0  # seconds between attempts to take our nick back from a stand-in
    lag_every: float = 30.0  # seconds between pings that measure the lag (shown in the status line)
    quit_wait: float = 3.0  # seconds to wait for the server's goodbye when leaving

    def delay(self, attempt: int) -> float:
        base = min(self.max_delay, self.first_delay * self.factor ** attempt)
        return base * (1 + random.uniform(-self.jitter, self.jitter))


class ClientSession:
    def __init__(self, core: ClientCore, host: str, port: int, policy: ReconnectPolicy | None = None,
                 on_change: Callable[[], None] = lambda: None, tls: ssl.SSLContext | None = None) -> None:
        self.core = core
        self.host = host
        self.port = port
        self.tls = tls  # every connection, reconnects included, is TLS with this context
        self.policy = policy or ReconnectPolicy()
        self.on_change = on_change
        self.attempts = 0  # failed attempts since the last time we were registered
        self._connection: LineConnection | None = None
        self._stopping = False
        self._wake = asyncio.Event()
        self._gone = asyncio.Event()  # set when the current connection has ended
        self._last_heard = 0.0
        self._ping_sent: float | None = None
        self._next_reclaim = 0.0
        self._next_lag = 0.0

    @property
    def connected(self) -> bool:
        return self._connection is not None

    async def run(self) -> None:
        """Stay connected until `quit()`."""
        while not self._stopping:
            self.core.connecting()
            self.on_change()
            try:
                connection = await LineConnection.open(self.host, self.port, self.policy.connect_timeout,
                                                       tls=self.tls)
            except OSError as e:
                self.core.connection_failed(describe_os_error(e))
            else:
                if self._stopping:
                    connection.close()
                    break
                await self._serve(connection)
            if self._stopping:
                break
            await self._wait_before_retry()
        self.core.closed()
        self.on_change()

    async def _wait_before_retry(self) -> None:
        delay = self.policy.delay(self.attempts)
        self.attempts += 1
        self.core.retry_at = time.monotonic() + delay
        self.on_change()
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)
        self.core.retry_at = None

    async def _serve(self, connection: LineConnection) -> None:
        self._connection = connection
        self._gone.clear()
        self._last_heard = time.monotonic()
        self._ping_sent = None
        self.core.connection_opened()
        self._flush()
        self.on_change()
        watchdog = asyncio.create_task(self._watch(connection))
        reason = "the server closed the connection"
        decoder = Decoder()
        try:
            while True:
                lines = await connection.read_lines()
                if lines is None:
                    break
                self._last_heard = time.monotonic()
                self._ping_sent = None
                for raw in lines:
                    try:
                        self.core.receive(decoder.decode(raw))
                    except Exception as e:  # a bug of ours must not take the whole client down with it
                        self.core.internal_error(raw, e)
                if self.core.registered:
                    self.attempts = 0
                self._flush()
                self.on_change()
        finally:
            watchdog.cancel()
            self._connection = None
            connection.close()
            self._gone.set()
        if self._ping_sent is not None:
            reason = "the server stopped answering"
        self.core.connection_lost(reason)
        self.on_change()

    async def _watch(self, connection: LineConnection) -> None:
        """Ping a silent server, drop it when it stays silent, and take our nick back when we can."""
        tick = min(1.0, self.policy.heartbeat / 2, self.policy.nick_retry / 2, self.policy.lag_every / 2)
        self._next_lag = time.monotonic() + self.policy.lag_every
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            if self._ping_sent is not None and now - self._ping_sent > self.policy.heartbeat_timeout:
                connection.abort()
                return
            if self._ping_sent is None and now - self._last_heard > self.policy.heartbeat:
                self._ping_sent = now
                connection.write([f"/ping {HEARTBEAT_TOKEN}"])
            if self.core.wants_nick_back and now >= self._next_reclaim:
                self._next_reclaim = now + self.policy.nick_retry
                self.core.reclaim_nick()
                self._flush()
            if now >= self._next_lag:
                self._next_lag = now + self.policy.lag_every
                self.core.ping_for_lag()
                self._flush()
                self.on_change()

    def _flush(self) -> None:
        lines = self.core.take_outbox()
        if lines and self._connection is not None:
            self._connection.write(lines)

    # ------------------------------------------------------------------------------------ from the UI

    def submit(self, line: str) -> Outcome:
        """The user typed `line`. QUIT is for the caller to act on (with `quit()`)."""
        outcome = self.core.user_input(line)
        if outcome is Outcome.RECONNECT:
            self.reconnect_now()
        self._flush()
        self.on_change()
        return outcome

    def submit_lines(self, lines: list[str]) -> Outcome:
        """Lines pasted at once, each sent as text to the conversation shown (in windows: see outgoing.py)."""
        outcome = self.core.typed.say_lines(lines)
        self._flush()
        self.on_change()
        return outcome

    def fetch_older(self, key: str) -> bool:
        started = self.core.fetch_older(key)
        self._flush()
        if started:
            self.on_change()
        return started

    def reconnect_now(self) -> None:
        if self._connection is None:
            self._wake.set()

    async def quit(self, reason: str | None = None) -> None:
        """Say goodbye (the server tells our rooms), wait briefly for its answer, and stop."""
        self._stopping = True
        self.core.quit_reason = reason or self.core.quit_reason or "leaving"
        self.core.closed()  # from now on, the end of the connection is expected: nothing to report
        connection = self._connection
        if connection is not None:
            connection.write([f"/quit {self.core.quit_reason}"])
            await connection.drain()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._gone.wait(), self.policy.quit_wait)
            connection.close()
        self._wake.set()
