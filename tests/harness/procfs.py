"""Figures of a process read from /proc: memory, CPU time, and the stored messages of a database."""

from __future__ import annotations

import os
import resource
from collections.abc import Iterator
from contextlib import contextmanager

WRITE_SYSCALL = {"x86_64": 1, "aarch64": 64}.get(os.uname().machine)  # write(2)'s number in /proc/PID/syscall


def blocked_writing(pid: int, fd: int) -> bool:
    """Whether the process's main thread is blocked in write(2) on descriptor `fd` (from /proc/PID/syscall)."""
    with open(f"/proc/{pid}/syscall", encoding="ascii") as f:
        fields = f.read().split()
    return len(fields) > 1 and fields[0] == str(WRITE_SYSCALL) and int(fields[1], 16) == fd


def full_pipe() -> tuple[int, int]:
    """A pipe whose buffer is already full: (read end, write end). Whoever writes to it blocks until it is read."""
    r, w = os.pipe()
    os.set_blocking(w, False)
    for chunk in (b"." * 4096, b"."):
        try:
            while True:
                os.write(w, chunk)
        except BlockingIOError:
            pass
    os.set_blocking(w, True)
    return r, w


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
