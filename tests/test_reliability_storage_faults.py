"""A database that cannot be written: locked past the busy timeout, a read-only file, a full disk. Each is
provoked for real while the server runs. Through each: the server stays up, a sender whose message could not be
stored is told (`not_delivered`), nobody sees a message that is not stored, and the server recovers by itself
when the database does."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from harness import (
    ServerThread,
    capture_logs,
    fill_disk,
    immutable,
    immutable_supported,
    record_figures,
    small_tmpfs,
    sqlite_write_lock,
    stored_messages,
)

NOT_DELIVERED = "[error not_delivered] "


class Outcomes:
    """Alice sends lines one at a time and notes what became of each: delivered (her echo) or refused."""

    def __init__(self, server: ServerThread) -> None:
        self.alice = server.client("alice")
        self.bob = server.client("bob")  # sees the room; must only ever see stored messages
        self.delivered: list[str] = []
        self.refused: list[str] = []

    def say(self, text: str, timeout: float = 15) -> bool:
        self.alice.send(text)
        line = self.alice.expect(lambda line: line == f"[#lobby] alice: {text}" or line.startswith(NOT_DELIVERED),
                                 timeout)
        ok = not line.startswith(NOT_DELIVERED)
        (self.delivered if ok else self.refused).append(text)
        return ok

    def check(self, db: str) -> None:
        """What was delivered is exactly what is stored, and what bob saw; nothing refused is anywhere."""
        self.bob.sync("check")
        seen = [line.split(": ", 1)[1] for line in self.bob.seen if line.startswith("[#lobby] alice: ")]
        stored = [text for _id, (sender, _room, text) in sorted(stored_messages(db).items()) if sender == "alice"]
        assert seen == self.delivered
        assert stored == self.delivered
        assert not set(self.refused) & set(stored)


def _outage(server: ServerThread, db: str, fault: Callable[[], contextlib.AbstractContextManager[object]],
            during: int = 3) -> tuple[Outcomes, str]:
    o = Outcomes(server)
    assert o.say("before the fault")
    with capture_logs() as logs:
        with fault():
            for i in range(during):
                assert not o.say(f"during the fault {i}")
            o.bob.sync("still-up")  # the server answers through the outage
            newcomer = server.client("carol")  # and takes newcomers, whose backlog has only stored messages
            newcomer.sync()
            assert not any("during the fault" in line for line in newcomer.seen)
        problem = logs.expect("storage: commit of")
    assert o.say("after the fault"), "the server did not recover when the database did"
    o.check(db)
    return o, problem


def test_a_database_locked_past_the_busy_timeout(make_server: Callable[..., ServerThread], sqlite_db: str) -> None:
    server = make_server(busy_timeout=0.3)
    _, problem = _outage(server, sqlite_db, lambda: sqlite_write_lock(sqlite_db))
    assert "database is locked" in problem


def test_a_database_file_made_read_only(make_server: Callable[..., ServerThread], tmp_path: Path) -> None:
    why = immutable_supported(tmp_path)
    if why:
        pytest.skip(why)
    db = str(tmp_path / "chat.sqlite")
    server = make_server(db=db)
    server.client("warmup").sync()  # the WAL file exists once something was written
    # the database and its log become unwritable; the -shm index stays (SQLite maps it: see RELIABILITY.md)
    _, problem = _outage(server, db, lambda: immutable(db, db + "-wal"))
    assert "disk I/O error" in problem or "readonly" in problem


def test_a_full_disk(make_server: Callable[..., ServerThread], tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "disk", "2m") as disk:
        db = str(disk / "chat.sqlite")
        server = make_server(db=db)
        o = Outcomes(server)
        assert o.say("before the disk filled")
        filler = fill_disk(disk)
        with capture_logs() as logs:
            big = "z" * 3000
            for i in range(2000):  # until a commit fails for want of space (the log may have room at first)
                if not o.say(f"{i} {big}"):
                    break
            else:
                pytest.fail("the disk never filled up")
            problem = logs.expect("storage: commit of")
            assert "full" in problem
            o.bob.sync("still-up")
            filler.unlink()  # space again
            assert o.say("after the disk had room again")
        o.check(db)
        server.stop()  # before the unmount: it holds the database open
    record_figures("disk_full", delivered=len(o.delivered), refused=len(o.refused))


def test_a_postgresql_table_locked_past_the_busy_timeout(make_server: Callable[..., ServerThread],
                                                        postgres_db: str) -> None:
    server = make_server(db=postgres_db, busy_timeout=0.5)

    @contextlib.contextmanager
    def locked() -> Iterator[None]:
        engine = create_engine(postgres_db)
        with engine.connect() as conn:
            conn.execute(text("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE"))
            yield
            conn.rollback()
        engine.dispose()

    _, problem = _outage(server, postgres_db, locked)
    assert "lock timeout" in problem


def test_a_burst_after_a_slow_commit_drops_nobody(make_server: Callable[..., ServerThread], sqlite_db: str) -> None:
    """Lines accepted while a commit waits are delivered together once it is done: a burst bigger than the send
    queue, to clients that read. They must all get it; none is a slow reader."""
    from harness import Swarm

    server = make_server(busy_timeout=5.0, sendq=64 * 1024)
    swarm = Swarm(server.host, server.port)
    clients = swarm.connect(10)
    swarm.register(clients, [f"u{i}" for i in range(10)])
    line = "b" * 1000
    with sqlite_write_lock(sqlite_db):  # well within the busy timeout: the commit waits, then succeeds
        for c in clients:
            c.send(*[f"{c.nick} {i} {line}" for i in range(100)])
        swarm.run_for(1.0)
    swarm.sync(clients, "after", timeout=30)
    for c in clients:
        said = [x for x in c.lines if x.startswith("[#lobby] u")]
        assert len(said) == 1000, f"{c}: {len(said)} of 1000, last {c.lines[-2:]}"
    assert not any(c.closed for c in clients)
    swarm.close_all()


def test_a_topic_set_during_an_outage_is_stored_when_the_database_is_back(
    make_server: Callable[..., ServerThread], sqlite_db: str,
) -> None:
    """A topic change takes effect at once (the room sees it); if its commit fails it is written again with the
    next commit, or at shutdown, so a restart does not bring the old topic back."""
    for then in ("next commit", "shutdown"):
        server = make_server(busy_timeout=0.3)
        alice = server.client("alice")
        with sqlite_write_lock(sqlite_db):
            alice.send(f"/topic Stored at the {then}", "a message that fails")
            alice.expect("set the topic")
            alice.expect(NOT_DELIVERED)
        if then == "next commit":
            alice.send("after")
            alice.expect("alice: after")
        alice.close()
        server.stop()
        again = make_server(busy_timeout=0.3)
        carol = again.client()
        carol.send("carol")
        assert carol.expect("You joined #lobby").endswith(f"Topic: Stored at the {then}")
        carol.close()
        again.stop()
