"""Plain mode: lines in from stdin, events out as text (or raw JSON), for pipes, scripts and cron jobs.

    printf '/join dev\\nhello\\n' | chat client --nick bot

Every line read is sent as typed (slash commands pass through; other lines are said in the server's current
room). At the end of input the client sends /quit and waits for the server's goodbye, which comes only
after everything sent before was handled and stored; so when it exits 0, everything was accepted.

Exit status: 0 all accepted; 1 could not connect, the nick was refused, or the connection was lost;
2 the server refused some lines (their errors were printed to stderr).

Lines go out in windows of `WINDOW`, each followed by a /ping whose answer opens the next window: a long
input then flows at the server's pace instead of overrunning its flood control.

`--no-backlog` leaves out the recent history a room sends on joining (a cron job that posts one line then
prints just that line), in text and in JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
import sys
import threading
from typing import BinaryIO, TextIO

from chat.client import events as ev
from chat.client.commands import is_quit
from chat.client.connection import LineConnection, describe_os_error
from chat.client.format import text_lines
from chat.client.outgoing import INTERNAL_TOKEN, WINDOW
from chat.protocol import events as protocol
from chat.protocol.errors import ErrorCode

QUIT_WAIT = 30.0  # seconds to wait for the goodbye after /quit
CONNECT_TIMEOUT = 10.0
EXIT_OK, EXIT_FAILED, EXIT_REFUSED = 0, 1, 2


class _End:
    """Stands in the input queue for the end of input, an interrupt, or the connection closing."""

    def __init__(self, why: str) -> None:
        self.why = why


END_OF_INPUT, INTERRUPTED, CONNECTION_CLOSED = _End("eof"), _End("interrupt"), _End("closed")


class Printer:
    def __init__(self, stdout: TextIO, stderr: TextIO, json_output: bool, backlog: bool = True) -> None:
        self.stdout = stdout
        self.stderr = stderr
        self.json_output = json_output
        self.backlog = backlog  # print the history a room sends on joining
        self._broken = False  # stdout was closed (| head): keep going, print nothing
        self._page: list[str] = []  # JSON lines of a history page, printed once we know what page it is

    def event(self, raw: bytes, item: ev.Incoming | None) -> None:
        """Print what the server sent: `raw`, decoded as `item` (None: a line of a history page)."""
        if self.json_output:
            if raw.startswith(b"{"):
                self._page.append(raw.decode("utf-8", "replace"))
            if item is not None:
                lines, self._page = self._page, []
                if self.backlog or not (isinstance(item, protocol.History) and item.reason == "backlog"):
                    for line in lines:
                        self._out(line)
            if isinstance(item, protocol.Error):
                self.error(f"[error {item.code.value}] {item.message}")
            return
        if isinstance(item, protocol.Error):
            self.error(f"[error {item.code.value}] {item.message}")
            return
        if isinstance(item, protocol.History) and item.reason == "backlog" and not self.backlog:
            return
        for line in text_lines(item) if item is not None else []:
            self._out(line)

    def error(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.stderr.write(f"chat client: {text}\n")
            self.stderr.flush()

    def _out(self, line: str) -> None:
        if self._broken:
            return
        try:
            self.stdout.write(line + "\n")
            self.stdout.flush()
        except (OSError, ValueError):
            self._broken = True


class PlainClient:
    def __init__(self, connection: LineConnection, printer: Printer, inbox: asyncio.Queue[str | _End]) -> None:
        self.connection = connection
        self.printer = printer
        self.inbox = inbox  # stdin lines, and the ends
        self.registered = False
        self.nick_given = False
        self.nick_error: protocol.Error | None = None
        self.refused = 0  # errors the server answered our lines with
        self.bye: protocol.Bye | None = None
        self.closed = asyncio.Event()
        self._pongs: dict[str, asyncio.Event] = {}
        self._tokens = 0

    async def receive(self) -> None:
        decoder = ev.Decoder()
        try:
            while (lines := await self.connection.read_lines()) is not None:
                for raw in lines:
                    self._handle(raw, decoder.decode(raw))
        finally:
            self.closed.set()
            self.inbox.put_nowait(CONNECTION_CLOSED)

    def _handle(self, raw: bytes, item: ev.Incoming | None) -> None:
        if isinstance(item, protocol.Pong) and (item.token or "").startswith(INTERNAL_TOKEN):
            waiter = self._pongs.pop(item.token or "", None)
            if waiter is not None:
                waiter.set()
            return
        if isinstance(item, protocol.FormatChanged):
            return  # our own /format json
        if isinstance(item, ev.TextLine) and self.nick_given:
            return  # the greeting asks for a nickname: we gave one
        if isinstance(item, protocol.Welcome):
            self.registered = True
        elif isinstance(item, protocol.PasswordWanted) and not self.registered:
            # the nick is an account: its password is wanted, and we have none (--password-file gives one)
            self.nick_error = protocol.Error(ErrorCode.NICK_REGISTERED, f"{item.nick} is registered: log in with "
                                             "--password-file FILE or --ask-password", "nick", item.nick)
            self.printer.error(self.nick_error.message)
        elif isinstance(item, protocol.Error):
            if not self.registered:
                self.nick_error = item  # no nick yet: whatever was refused was our attempt at one
            else:
                self.refused += 1
        elif isinstance(item, protocol.Bye):
            self.bye = item
        self.printer.event(raw, item)

    async def sync(self) -> bool:
        """Wait until the server has handled everything sent so far. False if the connection closed first."""
        self._tokens += 1
        token = f"{INTERNAL_TOKEN}sync{self._tokens}"
        answered = self._pongs[token] = asyncio.Event()
        await self.send(f"/ping {token}")
        waiter = asyncio.ensure_future(answered.wait())
        closed = asyncio.ensure_future(self.closed.wait())
        await asyncio.wait({waiter, closed}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        closed.cancel()
        return answered.is_set()

    async def send(self, line: str) -> None:
        self.connection.write([line])
        await self.connection.drain()

    async def register(self, nick: str | None, interactive: bool, password: str | None = None) -> int | None:
        """Choose a nick: `nick` (logging in to it with `password`), or lines read from stdin. None once
        registered, else the exit status."""
        attempt = (f"/login {nick} {password}" if password else f"/nick {nick}") if nick else None
        self.nick_given = attempt is not None
        while True:
            if attempt is None:
                line = await self.inbox.get()
                if line is CONNECTION_CLOSED:
                    self.printer.error("the server closed the connection")
                    return EXIT_FAILED
                if isinstance(line, _End):
                    return EXIT_OK  # nothing more to say: leave (the caller says goodbye)
                line = line.rstrip("\r\n").strip()
                if not line:
                    continue
                if is_quit(line):
                    return await self.leave(line)
                attempt = line  # as the server expects: the first line that is not a command is the nick
            self.nick_error = None
            await self.send(attempt)
            attempt = None
            if not await self.sync():
                self.printer.error("the server closed the connection")
                return EXIT_FAILED
            if self.registered:
                return None
            if self.nick_error is not None and not interactive:
                return EXIT_FAILED  # its error was printed; sending the rest under no name would be wrong

    async def pump(self) -> int:
        """Send stdin to the server until it ends, then leave."""
        unsynced = 0
        while True:
            line = await self.inbox.get()
            if line is CONNECTION_CLOSED:
                self.printer.error("the server closed the connection" + (
                    f": {self.bye.reason}" if self.bye else ""))
                return EXIT_FAILED
            if isinstance(line, _End):
                return await self.leave("/quit")
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            await self.send(line)
            if is_quit(line):
                return await self.leave(None)
            unsynced += 1
            if unsynced >= WINDOW:
                unsynced = 0
                if not await self.sync():
                    continue  # the next item is CONNECTION_CLOSED

    async def leave(self, quit_line: str | None) -> int:
        """Say goodbye (unless already said) and wait for the server to close, after answering everything."""
        if quit_line is not None and not self.closed.is_set():
            await self.send(quit_line)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.closed.wait(), QUIT_WAIT)
        if self.bye is None:
            self.printer.error("the server did not confirm the end of the session")
            return EXIT_FAILED
        if self.bye.code is not None:  # not the answer to our /quit: the server threw us out (flood...)
            self.printer.error(f"the server closed the connection: {self.bye.reason} ({self.bye.code})")
            return EXIT_FAILED
        return EXIT_REFUSED if self.refused else EXIT_OK


def _read_stdin(stdin: TextIO | BinaryIO, loop: asyncio.AbstractEventLoop,
                inbox: asyncio.Queue[str | _End]) -> None:
    """Feed stdin lines to the loop (a thread: stdin may be a file, a pipe or a terminal)."""
    source = getattr(stdin, "buffer", stdin)
    try:
        for raw in source:
            line = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
            loop.call_soon_threadsafe(inbox.put_nowait, line)
        loop.call_soon_threadsafe(inbox.put_nowait, END_OF_INPUT)
    except (RuntimeError, OSError, ValueError):  # the loop is gone, or stdin was closed under us
        pass


async def run_plain_async(host: str, port: int, nick: str | None, room: str | None, *, json_output: bool,
                          stdin: TextIO, stdout: TextIO, stderr: TextIO, interactive: bool,
                          backlog: bool = True, password: str | None = None,
                          tls: ssl.SSLContext | None = None) -> int:
    printer = Printer(stdout, stderr, json_output, backlog)
    try:
        connection = await LineConnection.open(host, port, CONNECT_TIMEOUT, tls=tls)
    except OSError as e:
        printer.error(f"cannot connect to {host}:{port}: {describe_os_error(e)}")
        return EXIT_FAILED
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[str | _End] = asyncio.Queue()
    client = PlainClient(connection, printer, inbox)
    receiver = asyncio.create_task(client.receive())
    threading.Thread(target=_read_stdin, args=(stdin, loop, inbox), name="chat-stdin", daemon=True).start()
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread: no signals
        loop.add_signal_handler(signal.SIGINT, inbox.put_nowait, INTERRUPTED)
    try:
        await client.send("/format json")
        status = await client.register(nick, interactive, password)
        if status is None:
            if room:
                await client.send(f"/join {room}")
            status = await client.pump()
        elif status == EXIT_OK and not client.bye:
            status = await client.leave("/quit")
        return status
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGINT)
        receiver.cancel()
        connection.close()


def run_plain(host: str, port: int, nick: str | None, room: str | None, *, json: bool = False,
              backlog: bool = True, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout,
              stderr: TextIO = sys.stderr, password: str | None = None, tls: ssl.SSLContext | None = None) -> int:
    interactive = stdin.isatty() if hasattr(stdin, "isatty") else False
    return asyncio.run(run_plain_async(host, port, nick, room, json_output=json, stdin=stdin, stdout=stdout,
                                       stderr=stderr, interactive=interactive, backlog=backlog, password=password,
                                       tls=tls))
