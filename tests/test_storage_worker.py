"""The reader thread answers a crowd of nick claims with one query: the answers must be those of one query each,
on SQLite and PostgreSQL, a registration made a moment before included, with other reads among the claims."""

from __future__ import annotations

import threading

from chat.protocol.errors import ErrorCode
from chat.protocol.events import Error
from chat.protocol.names import name_key
from chat.server.member import Link, Member
from chat.server.outbox import Outbox
from chat.server.reads import NickLookup, RoomLookup
from chat.server.storage_worker import StorageReader
from chat.storage.accounts import AccountStore
from chat.storage.database import make_engine, upgrade
from chat.storage.records import RoomSettings, StoredRoom, WriteBatch
from chat.storage.repository import ChatStore
from harness import World


def test_claims_taken_together_get_the_answers_of_one_query_each(any_db: str) -> None:
    engine = make_engine(any_db)
    upgrade(engine)
    store = ChatStore(engine)
    accounts = AccountStore(engine)
    accounts.register("Alice", "alice", "$argon2id$stand-in")  # a moment before the claims: reserved at once
    woken = threading.Event()
    reader = StorageReader(store, woken.set, page_budget=64 * 1024)
    nicks = [f"guest{i}" for i in range(40)] + ["ALICE", "bob"]
    gone = Member(99, Link())
    gone.gone = True
    reads: list[NickLookup | RoomLookup] = [NickLookup(Member(i, Link()), name_key(n), n, "claim")
                                            for i, n in enumerate(nicks)]
    reads.insert(10, RoomLookup("dev", "dev", 5))  # another read among them
    reads.append(NickLookup(gone, "carol", "carol", "claim"))  # its member left: nobody waits for it
    for read in reads:  # all queued before the thread starts: it takes them together
        reader.submit(read)
    reader.start()
    try:
        pause = threading.Event()
        for _ in range(200):
            if len(reader.done) == len(reads):
                break
            pause.wait(0.05)
        assert len(reader.done) == len(reads)
        assert woken.is_set()
    finally:
        reader.stop(10)
        store.close()
        engine.dispose()
    assert {id(r) for r in reader.done} == {id(r) for r in reads}  # every read handed back, once
    claims = {r.nick: r for r in reads if isinstance(r, NickLookup)}
    alice = claims["ALICE"]
    assert alice.error is None and alice.found is not None and alice.found.account is not None
    assert alice.found.account.nick == "Alice" and alice.found.nick == "Alice"
    for nick in [*nicks[:40], "bob"]:
        assert claims[nick].error is None and claims[nick].found is None, nick
    assert claims["carol"].found is None
    room = next(r for r in reads if isinstance(r, RoomLookup))
    assert room.error is None and room.found is None  # read, and not there


def _answered(reader: StorageReader, count: int) -> None:
    pause = threading.Event()
    for _ in range(200):
        if len(reader.done) >= count:
            return
        pause.wait(0.05)
    raise AssertionError(f"the reader answered {len(reader.done)} of {count} reads")


def test_a_lookup_the_reader_skipped_is_asked_again_for_one_who_joined_it_after(sqlite_db: str) -> None:
    """The reader skips a lookup whose joiners have all gone, but the loop may add a joiner to it (one lookup per
    room at a time) before it sees the answer. "Skipped" is not "not there": taken for it, the room the database
    has (id 7, invite-only) would get a second, empty room under its name, bypassing its +i, whose row can never
    be written (its name is taken), so every commit after it would fail."""
    engine = make_engine(sqlite_db)
    upgrade(engine)
    store = ChatStore(engine)
    store.write(WriteBatch(rooms=[StoredRoom(7, "dev", "Release", "carol", 1.0, 1.0,
                                             RoomSettings(invite_only=True))]))
    reader = StorageReader(store, lambda: None, page_budget=64 * 1024)
    reader.start()
    try:
        world = World()
        world.state.next_room_id = 8
        alice, bob = world.member("alice"), world.member("bob")
        (lookup,) = world.line(alice, "/join dev", answer_reads=False).reads
        assert isinstance(lookup, RoomLookup)
        world.service.disconnected(alice, "quit", Outbox())  # after the loop handed the lookup over
        reader.submit(lookup)
        _answered(reader, 1)  # skipped: nobody was waiting for it
        world.line(bob, "/join dev", answer_reads=False)  # before the loop saw the answer: bob waits on it too
        assert lookup.joiners == [alice, bob]
        out = Outbox()
        world.service.room_found(reader.done.popleft(), out)
        assert "dev" not in bob.rooms and "dev" not in world.state.rooms  # not a new room
        (again,) = out.reads
        assert isinstance(again, RoomLookup) and again.joiners == [bob] and bob.waiting[-1] is again
        reader.submit(again)
        _answered(reader, 1)
        out = Outbox()
        world.service.room_found(reader.done.popleft(), out)
        (refusal,) = [item for members, item in out.deliveries if members == (bob,)]
        assert isinstance(refusal, Error) and refusal.code is ErrorCode.INVITE_ONLY, refusal
        assert "dev" not in world.state.rooms and world.problems() == []
    finally:
        reader.stop(10)
        store.close()
        engine.dispose()
