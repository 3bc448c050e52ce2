"""Small loopback clients for the benchmarks that loadgen does not cover (standard library only).

* `IdleClients`: connect N clients, register them and put them in a room, read everything the server sends
  until it is quiet, and keep them connected (for RSS per idle client).
* `time_join`: one client joins a room and times the wait for the room's backlog (the end-of-history line).

Every socket goes to 127.0.0.1 and every wait has a deadline.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import time

LOOPBACK = "127.0.0.1"


class IdleClients:
    """N registered clients in one room, kept open. proto "line" (ours: the lobby is joined on registration)
    or "irc" (NICK/USER, then JOIN #lobby after 001, done at 366 = end of NAMES)."""

    def __init__(self, port: int, n: int, proto: str, prefix: str = "idle", timeout: float = 120.0,
                 concurrency: int = 1000) -> None:
        self.port, self.n, self.proto, self.prefix = port, n, proto, prefix
        self.concurrency = concurrency  # clients between connect() and "in the room" at a time (as loadgen's)
        self.timeout = timeout
        self.socks: list[socket.socket] = []
        self.bytes_read = 0
        self.connect_failed = 0

    def open(self) -> float:
        """Connect and register everyone; return once all are in the room and the server has been quiet for a
        moment (everything it sent is read, so nothing waits in its output queues). Returns seconds taken."""
        t0 = time.monotonic()
        deadline = t0 + self.timeout
        sel = selectors.DefaultSelector()
        state: dict[socket.socket, list] = {}  # sock -> [buffer, stage]; stage 0 registering, 1 joining, 2 in
        done = 0
        for i in range(self.n):
            # a server with a short listen backlog drops SYNs beyond it (a 1 s retransmit): stay within it
            while len(self.socks) - done >= self.concurrency and time.monotonic() < deadline:
                done += self._pump(sel, state, 0.05)
            try:
                s = socket.create_connection((LOOPBACK, self.port), timeout=10)
            except OSError:
                self.connect_failed += 1
                continue
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            nick = f"{self.prefix}{i}"
            if self.proto == "irc":
                s.sendall(f"NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n".encode())
            else:
                s.sendall(f"/nick {nick}\n".encode())
            s.setblocking(False)
            self.socks.append(s)
            state[s] = [b"", 0]
            sel.register(s, selectors.EVENT_READ)
            # read as we go: every registration is announced to everyone already in the room
            done += self._pump(sel, state, 0)
        while time.monotonic() < deadline:
            done += self._pump(sel, state, 0.05)
            if done >= len(self.socks) and time.monotonic() - self._last_read_at > 0.5:
                break
        sel.close()
        if done < len(self.socks):
            raise RuntimeError(f"only {done} of {len(self.socks)} idle clients got into the room")
        return time.monotonic() - t0

    _last_read_at = 0.0

    def _pump(self, sel: selectors.BaseSelector, state: dict, timeout: float) -> int:
        """Read what is ready; return how many clients reached the room in this call."""
        done = 0
        for key, _ in sel.select(timeout):
            s = key.fileobj
            try:
                data = s.recv(65536)  # type: ignore[union-attr]
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:
                raise RuntimeError("the server closed an idle client")
            self.bytes_read += len(data)
            self._last_read_at = time.monotonic()
            st = state[s]
            buf = st[0] + data
            lines = buf.split(b"\n")
            st[0] = lines.pop()
            for line in lines:
                if self.proto == "irc":
                    if line.startswith(b"PING"):
                        s.sendall(b"PONG" + line[4:] + b"\n")  # type: ignore[union-attr]
                    elif st[1] == 0 and b" 001 " in line:
                        st[1] = 1
                        s.sendall(b"JOIN #lobby\r\n")  # type: ignore[union-attr]
                    elif st[1] == 1 and b" 366 " in line:
                        st[1] = 2
                        done += 1
                elif st[1] == 0 and b"You joined #lobby" in line:
                    st[1] = 2
                    done += 1
        return done

    def drain(self, seconds: float) -> None:
        """Keep reading (and answering PINGs) for a while, so the server's queues stay empty."""
        sel = selectors.DefaultSelector()
        state = {}
        for s in self.socks:
            sel.register(s, selectors.EVENT_READ)
            state[s] = [b"", 2]
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self._pump(sel, state, 0.05)
        sel.close()

    def close(self) -> None:
        for s in self.socks:
            with contextlib.suppress(OSError):
                s.close()
        self.socks = []


def _read_until(s: socket.socket, buf: bytearray, needle: bytes, deadline: float) -> tuple[int, float]:
    """Read into buf until needle appears after the current end of buf; return (lines read, time seen)."""
    start = len(buf)
    while True:
        i = buf.find(needle, start)
        if i >= 0:
            j = buf.find(b"\n", i)
            if j >= 0:
                t = time.perf_counter()
                return buf.count(b"\n", start, j + 1), t
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no {needle!r} from the server in time")
        s.settimeout(remaining)
        data = s.recv(1 << 20)
        if not data:
            raise RuntimeError(f"the server closed the connection while waiting for {needle!r}")
        buf += data


def time_join(port: int, room: str, nick: str, json: bool = False, page: bool = True,
              timeout: float = 30.0) -> dict[str, float]:
    """Connect, register, wait until quiet, then time `/join ROOM` up to the end of its backlog (and, with
    page, one `/history` page read from the database by the server). Returns seconds and line counts."""
    deadline = time.monotonic() + timeout
    s = socket.create_connection((LOOPBACK, port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = bytearray()
    try:
        s.sendall(f"/nick {nick}\n".encode())
        _read_until(s, buf, b"You joined #lobby", deadline)
        if json:
            s.sendall(b"/format json\n")
            _read_until(s, buf, b'"type":"format"', deadline)
        end = b'"type":"history_end"' if json else b"*** End of history"
        # anything else the server had for us is read now, so the clock below times the join alone
        s.settimeout(0.2)
        try:
            while s.recv(65536):
                pass
        except (TimeoutError, BlockingIOError):
            pass
        buf.clear()
        t0 = time.perf_counter()
        s.sendall(f"/join {room}\n".encode())
        lines, t1 = _read_until(s, buf, end, deadline)
        result = {"join_s": t1 - t0, "join_lines": float(lines)}
        if page:
            t2 = time.perf_counter()
            s.sendall(b"/history\n")
            lines, t3 = _read_until(s, buf, end, deadline)
            result.update(page_s=t3 - t2, page_lines=float(lines))
        s.sendall(b"/quit\n")
        return result
    finally:
        s.close()
