"""Test helpers: a real server on 127.0.0.1:0 in a thread, and line clients on real sockets.

Every wait has a deadline; nothing sleeps and hopes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from chat.server.app import ChatServer
from chat.server.config import ServerConfig

WAIT = 10.0  # seconds any single expectation may take


class ServerThread:
    """A ChatServer serving from a thread. `stop()` shuts it down the way SIGTERM does and joins."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.server = ChatServer(config)
        self.host, self.port = self.server.start()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, name="chat-server", daemon=True)
        self.thread.start()
        assert self.server.ready.wait(WAIT)

    def _serve(self) -> None:
        try:
            self.server.serve_forever()
        except BaseException as e:  # surfaced by stop()
            self.error = e
            raise

    @property
    def loop(self) -> Any:
        return self.server.loop

    def client(self, nick: str | None = None, **kwargs: Any) -> LineClient:
        c = LineClient(self.host, self.port, **kwargs)
        if nick:
            c.register(nick)
        return c

    def stop(self) -> None:
        self.server.stop()
        self.thread.join(30)
        assert not self.thread.is_alive(), "server did not stop within 30 s"
        if self.error:
            raise self.error


def server_config(db: str, **overrides: Any) -> ServerConfig:
    """Defaults for tests: any free port, no flood control (tests send fast), keepalive as in production."""
    base = ServerConfig(host="127.0.0.1", port=0, db=db, rate=0)
    return replace(base, **overrides)


class LineClient:
    """A client on a real socket, reading lines with deadlines."""

    def __init__(self, host: str, port: int, json_mode: bool = False) -> None:
        self.sock = socket.create_connection((host, port), timeout=WAIT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = b""
        self.seen: list[str] = []  # every line received, in order
        self.closed = False
        self.nick: str | None = None
        if json_mode:
            self.send("/format json")
            self.expect_event("format")

    # ------------------------------------------------------------------------------------------ sending

    def send(self, *lines: str) -> None:
        self.sock.sendall("".join(line + "\n" for line in lines).encode())

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    # ------------------------------------------------------------------------------------------ reading

    def _next_line(self, deadline: float) -> str | None:
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no complete line in time; last lines: {self.seen[-5:]}")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                data = b""
            if not data:
                self.closed = True
                return None
            self._buf += data
        raw, _, self._buf = self._buf.partition(b"\n")
        line = raw.decode()
        self.seen.append(line)
        return line

    def expect(self, match: str | Callable[[str], bool], timeout: float = WAIT) -> str:
        """Read lines until one contains `match` (or satisfies it); return it."""
        test = match if callable(match) else (lambda line: match in line)
        deadline = time.monotonic() + timeout
        while True:
            line = self._next_line(deadline)
            if line is None:
                raise AssertionError(f"connection closed while waiting for {match!r}; last: {self.seen[-5:]}")
            if test(line):
                return line

    def lines_until(self, match: str | Callable[[str], bool], timeout: float = WAIT) -> list[str]:
        """All lines up to and including the first matching one."""
        start = len(self.seen)
        self.expect(match, timeout)
        return self.seen[start:]

    def expect_event(self, type_: str, timeout: float = WAIT, **fields: Any) -> dict[str, Any]:
        """JSON mode: read until an event of this type with these field values."""

        def test(line: str) -> bool:
            if not line.startswith("{"):  # text sent before /format json took effect
                return False
            obj = json.loads(line)
            return obj.get("type") == type_ and all(obj.get(k) == v for k, v in fields.items())

        return json.loads(self.expect(test, timeout))

    def events_until(self, type_: str, timeout: float = WAIT, **fields: Any) -> list[dict[str, Any]]:
        start = len(self.seen)
        self.expect_event(type_, timeout, **fields)
        return [json.loads(line) for line in self.seen[start:] if line.startswith("{")]

    def expect_closed(self, timeout: float = WAIT) -> list[str]:
        """Read until the server closes the connection; return the lines read meanwhile."""
        start = len(self.seen)
        deadline = time.monotonic() + timeout
        while self._next_line(deadline) is not None:
            pass
        return self.seen[start:]

    def register(self, nick: str) -> None:
        self.send(nick)
        self.expect(lambda line: "You joined #" in line or '"type":"joined"' in line)
        self.nick = nick

    def sync(self, token: str = "sync") -> None:
        """Wait until the server has handled everything sent so far (it answers /ping in order)."""
        self.send(f"/ping {token}")
        self.expect(lambda line: f"pong {token}" in line or f'"token":"{token}"' in line)

    def close(self) -> None:
        self.sock.close()


def wait_for(condition: Callable[[], bool], timeout: float = WAIT, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


# ---------------------------------------------------------------------------------------- subprocesses


def chat_command() -> list[str]:
    """The installed `chat` command next to this Python, or `python -m chat`."""
    script = Path(sys.executable).with_name("chat")
    return [str(script)] if script.exists() else [sys.executable, "-m", "chat"]


@contextmanager
def serve_process(db: str, *args: str, env: dict[str, str] | None = None,
                  cwd: str | None = None) -> Iterator[ServeProcess]:
    proc = ServeProcess(db, *args, env=env, cwd=cwd)
    try:
        yield proc
    finally:
        proc.kill()


class ServeProcess:
    """`chat serve` as a real process on a free port; reads the port from its first line."""

    def __init__(self, db: str, *args: str, env: dict[str, str] | None = None, cwd: str | None = None) -> None:
        cmd = [*chat_command(), "serve", "--db", db, "--port", "0", *args]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
            cwd=cwd,
        )
        self.stderr_lines: list[str] = []
        self._stderr_thread = threading.Thread(target=self._read_stderr, daemon=True)
        self._stderr_thread.start()
        line = self._first_line()
        self.banner = line
        self.port = int(line.split(" listening on ")[1].split()[0].rsplit(":", 1)[1])
        self.host = "127.0.0.1"

    def _first_line(self) -> str:
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(self.proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(WAIT * 3)
        if not result or not result[0]:
            self.kill()
            raise AssertionError(f"chat serve did not start: {''.join(self.stderr_lines)}")
        return result[0]

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:  # type: ignore[union-attr]
            self.stderr_lines.append(line)

    @property
    def log(self) -> str:
        return "".join(self.stderr_lines)

    def client(self, nick: str | None = None, **kwargs: Any) -> LineClient:
        c = LineClient(self.host, self.port, **kwargs)
        if nick:
            c.register(nick)
        return c

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self._stderr_thread.join(5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._stderr_thread.join(5)


# ------------------------------------------------------------------------------- reliability test helpers

# (imported here, not at the top, so this section can grow without touching the shared header)
import errno  # noqa: E402
import logging  # noqa: E402
import resource  # noqa: E402
import selectors  # noqa: E402
import shutil  # noqa: E402


def soak() -> bool:
    """CHAT_SOAK=1 runs the reliability tests at soak scale (minutes); the default is the CI scale."""
    return os.environ.get("CHAT_SOAK", "") not in ("", "0")


def scale(ci: Any, soak_value: Any) -> Any:
    return soak_value if soak() else ci


def record_figures(test: str, **figures: Any) -> None:
    """Print the figures a test measured (shown with -s), and append them as one JSON line to the file named by
    CHAT_FIGURES, so docs/RELIABILITY.md can be refreshed from the last run."""
    line = json.dumps({"test": test, **figures}, sort_keys=True)
    print(f"FIGURES {line}")
    path = os.environ.get("CHAT_FIGURES")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")


class LogCapture(logging.Handler):
    """Every record the server logs while installed (the in-process server logs to `chat.*`)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock:
            self.records.append(record)

    def messages(self, level: int = logging.DEBUG) -> list[str]:
        with self._lock:
            return [r.getMessage() for r in self.records if r.levelno >= level]

    def expect(self, *parts: str, timeout: float = WAIT) -> str:
        """Wait for a message containing every one of `parts` (the server logs from its own thread)."""

        def find() -> str | None:
            return next((m for m in self.messages() if all(p in m for p in parts)), None)

        wait_for(lambda: find() is not None, timeout, f"a log line with {parts}")
        return find()  # type: ignore[return-value]

    def problems(self) -> list[str]:
        """Errors and unhandled exceptions: a clean run has none."""
        with self._lock:
            return [self.format(r) for r in self.records if r.levelno >= logging.ERROR or r.exc_info]


@contextmanager
def capture_logs(level: int = logging.INFO) -> Iterator[LogCapture]:
    logger = logging.getLogger("chat")
    handler = LogCapture()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def log_problems(log: str) -> list[str]:
    """Lines of a `chat serve` log (text or JSON format) that report an error or an unhandled exception."""
    found = []
    for line in log.splitlines():
        if line.startswith("{"):
            obj = json.loads(line)
            if obj.get("level") in ("error", "critical") or "exception" in obj:
                found.append(line)
        elif " ERROR " in line or " CRITICAL " in line or "Traceback" in line:
            found.append(line)
    return found


# --------------------------------------------------------------------------------------- process figures


def _proc_status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        return dict(line.split(":", 1) for line in f if ":" in line)


def rss_bytes(pid: int) -> int:
    """Resident memory of a process now."""
    return int(_proc_status(pid)["VmRSS"].split()[0]) * 1024


def peak_rss_bytes(pid: int) -> int:
    """The most resident memory the process ever had (VmHWM)."""
    return int(_proc_status(pid)["VmHWM"].split()[0]) * 1024


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """CPU time (user + system) of a process, or of one of its threads."""
    path = f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat"
    with open(path, encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu_seconds(pid: int, tid: int | None = None) -> float:
    """Time one thread spent on a CPU, to the nanosecond (schedstat); the main thread by default, which in
    `chat serve` is the event loop."""
    with open(f"/proc/{pid}/task/{tid or pid}/schedstat", encoding="ascii") as f:
        return int(f.read().split()[0]) / 1e9


@contextmanager
def soft_open_file_limit(limit: int) -> Iterator[None]:
    """Start subprocesses with a low soft RLIMIT_NOFILE (they inherit it), to prove they raise it themselves."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(limit, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def stored_messages(db: str) -> dict[int, tuple[str, str | None, str]]:
    """Every message in a database: id -> (sender, room name or private recipient, text)."""
    from sqlalchemy import select

    from chat.storage.database import make_engine
    from chat.storage.repository import MESSAGES, ROOMS

    engine = make_engine(db)
    try:
        with engine.connect() as conn:
            rooms = dict(conn.execute(select(ROOMS.c.id, ROOMS.c.name)).all())
            rows = conn.execute(select(MESSAGES.c.id, MESSAGES.c.sender, MESSAGES.c.room_id, MESSAGES.c.recipient,
                                       MESSAGES.c.text)).all()
    finally:
        engine.dispose()
    return {r.id: (r.sender, rooms[r.room_id] if r.room_id else r.recipient, r.text) for r in rows}


# ------------------------------------------------------------------------------ many clients, one thread


class SwarmClient:
    """One connection of a `Swarm`: bytes waiting to go out, and the lines received (all of them, or those
    `keep` accepts; `received` counts all)."""

    __slots__ = ("closed", "cursor", "fd", "keep", "lines", "name", "nick", "out", "partial", "received", "sock",
                 "state", "swarm")

    def __init__(self, swarm: Swarm, sock: socket.socket, name: str, keep: Callable[[str], bool] | None) -> None:
        self.swarm = swarm
        self.sock = sock
        self.fd = sock.fileno()
        self.name = name
        self.nick: str | None = None
        self.keep = keep
        self.out = bytearray()
        self.partial = b""
        self.lines: list[str] = []
        self.cursor = 0  # where the next expect() looks from
        self.received = 0
        self.closed = False
        self.state: dict[str, Any] = {}  # the test's own bookkeeping

    def send(self, *lines: str) -> None:
        self.send_raw("".join(line + "\n" for line in lines).encode())

    def send_raw(self, data: bytes) -> None:
        if self.closed:
            return
        self.out += data
        self.swarm._write(self)

    def take_new(self) -> list[str]:
        """Lines received since the last call (moves the cursor)."""
        new = self.lines[self.cursor:]
        self.cursor = len(self.lines)
        return new

    def __repr__(self) -> str:
        return f"<SwarmClient {self.name} nick={self.nick} closed={self.closed}>"


class Swarm:
    """Many clients on real sockets, driven by one thread with `selectors`: 2,000 connections need no 2,000
    threads. Clients read all the time (unless `reading` is False for one), so a server never sees them stall
    unless a test wants it to."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.selector = selectors.DefaultSelector()
        self.clients: list[SwarmClient] = []
        self._by_fd: dict[int, SwarmClient] = {}
        self.bytes_in = 0

    def connect(self, count: int, prefix: str = "c", keep: Callable[[str], bool] | None = None,
                source: str | None = None) -> list[SwarmClient]:
        made = []
        for i in range(count):
            sock = socket.create_connection((self.host, self.port), timeout=WAIT,
                                            source_address=(source, 0) if source else None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            c = SwarmClient(self, sock, f"{prefix}{len(self.clients)}" if count > 1 or i else prefix, keep)
            self.clients.append(c)
            self._by_fd[c.fd] = c
            self.selector.register(sock, selectors.EVENT_READ, c)
            made.append(c)
            if i % 64 == 63:
                self.pump(0)  # take the greetings as they come, so no socket buffer fills while connecting
        return made

    # ----------------------------------------------------------------------------------------- events

    def _write(self, c: SwarmClient) -> None:
        try:
            sent = c.sock.send(c.out)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._gone(c)
            return
        del c.out[:sent]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if c.out else 0)
        self.selector.modify(c.sock, events, c)

    def _read(self, c: SwarmClient) -> None:
        try:
            data = c.sock.recv(262144)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._gone(c)
            return
        self.bytes_in += len(data)
        chunks = (c.partial + data).split(b"\n")
        c.partial = chunks.pop()
        c.received += len(chunks)
        keep = c.keep
        for raw in chunks:
            line = raw.decode("utf-8", "replace")
            if keep is None or keep(line):
                c.lines.append(line)

    def _gone(self, c: SwarmClient) -> None:
        if not c.closed:
            c.closed = True
            self.selector.unregister(c.sock)
            c.sock.close()

    def pump(self, timeout: float = 0.05) -> None:
        """Handle what is ready, waiting at most `timeout` for something to be."""
        for key, events in self.selector.select(timeout):
            c = key.data
            if events & selectors.EVENT_WRITE:
                self._write(c)
            if events & selectors.EVENT_READ and not c.closed:
                self._read(c)

    def run_until(self, condition: Callable[[], bool], timeout: float = WAIT, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
            self.pump(0.02)

    def run_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.pump(0.02)

    # ------------------------------------------------------------------------------------ expectations

    def expect_all(self, clients: list[SwarmClient], match: str | Callable[[str], bool], timeout: float = WAIT,
                   what: str | None = None) -> None:
        """Wait until every client has received a line containing `match` (or satisfying it), looking from
        where its previous expectation stopped."""
        test = match if callable(match) else (lambda line: match in line)
        pending = set(clients)

        def done() -> bool:
            for c in list(pending):
                lines = c.lines
                while c.cursor < len(lines):
                    c.cursor += 1
                    if test(lines[c.cursor - 1]):
                        pending.discard(c)
                        break
                else:
                    if c.closed:
                        raise AssertionError(f"{c} closed while waiting for {what or match!r}: {c.lines[-3:]}")
            return not pending

        try:
            self.run_until(done, timeout, what or repr(match))
        except AssertionError as e:
            sample = sorted(pending, key=lambda c: c.name)[:3]
            raise AssertionError(f"{e}; {len(pending)} clients still waiting, e.g. "
                                 f"{[(c.name, c.lines[-3:]) for c in sample]}") from None

    def register(self, clients: list[SwarmClient], nicks: list[str], timeout: float = WAIT * 3) -> None:
        for c, nick in zip(clients, nicks, strict=True):
            c.send(nick)
            c.nick = nick
        self.expect_all(clients, lambda line: "*** Welcome, " in line or '"type":"welcome"' in line, timeout,
                        "welcome")

    def sync(self, clients: list[SwarmClient], token: str = "sync", timeout: float = WAIT * 3) -> None:
        """Wait until the server has handled everything each client sent (it answers /ping in order)."""
        for c in clients:
            c.send(f"/ping {token}")
        self.expect_all(clients, lambda line: f"pong {token}" in line or f'"token":"{token}"' in line, timeout,
                        f"pong {token}")

    def drop(self, c: SwarmClient, reset: bool = False) -> None:
        """Close a client without a word; with `reset`, the way a crashed program's socket goes (RST)."""
        if reset and not c.closed:
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        self._gone(c)

    def close_all(self) -> None:
        for c in self.clients:
            if not c.closed:
                self._gone(c)
        self.selector.close()


# ------------------------------------------------------------------------------------------ real faults

_LOCK_HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


@contextmanager
def sqlite_write_lock(path: str) -> Iterator[None]:
    """Another process holds `BEGIN EXCLUSIVE` on the SQLite file until the block ends."""
    holder = subprocess.Popen([sys.executable, "-c", _LOCK_HOLDER, path], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n", "no lock taken"
        yield
    finally:
        if holder.stdin is not None:
            holder.stdin.close()  # its readline() returns: it rolls back and exits
        holder.wait(10)


def immutable_supported(directory: Path) -> str | None:
    """Why `chattr +i` cannot make files in `directory` unwritable here, or None when it can."""
    if os.geteuid() != 0:
        return "chattr +i needs root"
    if not shutil.which("chattr"):
        return "chattr is not installed"
    probe = directory / ".immutable-probe"
    try:
        with open(probe, "wb", buffering=0) as f:  # opened before: the server's files are open too
            if subprocess.run(["chattr", "+i", str(probe)], capture_output=True).returncode != 0:
                return f"the filesystem of {directory} does not support chattr +i"
            try:
                f.write(b"y")
            except OSError:
                return None
        return f"an immutable file on the filesystem of {directory} still takes writes through an open descriptor"
    finally:
        subprocess.run(["chattr", "-i", str(probe)], capture_output=True)
        probe.unlink()


@contextmanager
def immutable(*paths: str) -> Iterator[None]:
    """Make files unwritable for real, even through descriptors already open and even for root."""
    subprocess.run(["chattr", "+i", *paths], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *paths], check=True)


@contextmanager
def small_tmpfs(directory: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted on `directory` (made if needed), unmounted at the end. Skips the test, saying
    why, where it cannot be mounted (not root, or a container without CAP_SYS_ADMIN)."""
    import pytest

    directory.mkdir(exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield directory
    finally:
        if subprocess.run(["umount", str(directory)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(directory)], capture_output=True)


def fill_disk(directory: Path) -> Path:
    """Fill the filesystem holding `directory` until a write fails for want of space; returns the filler."""
    filler = directory / "filler"
    block = b"\0" * 65536
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(block)
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
        try:  # the last partial block
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass
    return filler


# ------------------------------------------------------------------------------------ client test helpers


class ScriptedServer:
    """A misbehaving "server" on a real socket at 127.0.0.1:0, for testing what clients survive.

    Each connection gets `script` (raw bytes: garbage, half-valid events...) at once. Then it answers just
    enough to let a client finish: `/ping T` gets a JSON pong T, `/quit` a bye and the close. With
    `vanish=True` it closes the socket right after the script instead; with `once=True` only the first
    connection gets the script, later ones are closed at once; with `silent=True` it answers nothing at all
    (a server that hangs). Lines received are in `received`.
    """

    def __init__(self, script: bytes, vanish: bool = False, once: bool = False, silent: bool = False) -> None:
        self.script = script
        self.vanish = vanish
        self.once = once
        self.silent = silent
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.host, self.port = self.listener.getsockname()[:2]
        self.received: list[str] = []
        self.connections = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, name="scripted-server", daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        self.listener.settimeout(0.05)
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            if self.once and self.connections > 1:
                conn.close()
                continue
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        with conn:
            conn.sendall(self.script)
            if self.vanish:
                conn.shutdown(socket.SHUT_WR)  # gone without a goodbye, once the client has read it all
            buffer = b""
            conn.settimeout(WAIT)
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buffer += data
                while b"\n" in buffer:
                    raw, _, buffer = buffer.partition(b"\n")
                    line = raw.decode("utf-8", "replace")
                    self.received.append(line)
                    if self.vanish or self.silent:
                        continue
                    if line.startswith("/ping "):
                        conn.sendall(json.dumps({"type": "pong", "token": line[6:]}).encode() + b"\n")
                    elif line.startswith("/quit"):
                        conn.sendall(b'{"type":"bye","reason":"Bye.","code":null}\n')
                        return

    def close(self) -> None:
        self._stop.set()
        self.listener.close()
        self.thread.join(WAIT)
